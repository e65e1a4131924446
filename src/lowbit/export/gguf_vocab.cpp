#include "lowbit/export/gguf_vocab.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/tokenizer/json_util.h"
#include "lowbit/tokenizer/llama2c_tokenizer.h"
#include "lowbit/tokenizer/sentencepiece_tokenizer.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6;

bool is_byte_piece(const std::string& s) {
  return s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' &&
         std::isxdigit(static_cast<unsigned char>(s[3])) &&
         std::isxdigit(static_cast<unsigned char>(s[4]));
}

// Whether encode() with specials puts BOS first / EOS last, as lowbit's tokenizer does it.
void probe_specials(const Tokenizer& t, GgufVocab* v) {
  const std::vector<int> with = t.encode("a", true), without = t.encode("a", false);
  v->add_bos = with.size() > without.size() && !with.empty() && with.front() == t.bos_id();
  v->add_eos = with.size() > without.size() && !with.empty() && with.back() == t.eos_id() &&
               (!v->add_bos || with.size() > without.size() + 1);
  v->bos = t.bos_id();
  v->eos = t.eos_id();
}

GgufVocab from_sentencepiece(const std::string& file) {
  const auto sp = SentencePieceTokenizer::from_file(file);
  GgufVocab v;
  v.model = "llama";
  for (int i = 0; i < sp->model_size(); ++i) {
    v.tokens.push_back(sp->id_to_piece(i));
    v.scores.push_back(sp->score(i));
    v.types.push_back(sp->piece_type(i));
  }
  probe_specials(*sp, &v);
  v.unk = sp->unk_id();
  return v;
}

GgufVocab from_llama2c(const std::string& file, int vocab_size) {
  const auto t = Llama2cTokenizer::from_file(file, vocab_size);
  GgufVocab v;
  v.model = "llama";
  v.tokens = t->pieces();
  v.scores = t->scores();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    v.types.push_back(i == 0                       ? kUnknown
                      : i <= 2                     ? kControl
                      : is_byte_piece(v.tokens[i]) ? kByte
                                                   : kNormal);
    // llama2.c's export wrote SentencePiece's "▁" as a plain space; llama.cpp looks pieces up
    // with "▁".
    if (v.types.back() == kNormal) {
      std::string s;
      for (char ch : v.tokens[i]) s += ch == ' ' ? std::string("\u2581") : std::string(1, ch);
      v.tokens[i] = s;
    }
  }
  v.bos = 1;
  v.eos = 2;
  v.unk = 0;
  v.add_bos = true;
  return v;
}

// A merge of tokenizer.json: "a b" or ["a", "b"].
std::pair<std::string, std::string> merge_pair(const json& m, const std::string& where) {
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  }
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t sp = s.find(' ', 1);
    if (sp != std::string::npos) return {s.substr(0, sp), s.substr(sp + 1)};
  }
  fail(where, "a merge is neither \"a b\" nor [\"a\", \"b\"]");
}

bool prepends_space(const json& j) {
  // SentencePiece-style: a Prepend("▁") normalizer, or a Metaspace pre-tokenizer that adds it.
  const std::string dump = j.dump();
  return dump.find("\"Prepend\"") != std::string::npos ||
         (dump.find("\"Metaspace\"") != std::string::npos &&
          dump.find("\"prepend_scheme\":\"never\"") == std::string::npos &&
          dump.find("\"add_prefix_space\":false") == std::string::npos);
}

GgufVocab from_tokenizer_json(const json& j, const std::string& file, const Tokenizer& tok) {
  const json* model = tokjson::find(j, "model");
  if (model == nullptr || tokjson::get_string(*model, "type", file) != "BPE") {
    fail(file, "GGUF export reads BPE tokenizer.json files only");
  }
  const json* vocab = tokjson::find(*model, "vocab");
  if (vocab == nullptr || !vocab->is_object()) fail(file, "model.vocab is not an object");
  std::unordered_map<std::string, int> ids;
  int n = 0;
  for (const auto& [text, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > 10'000'000) {
      fail(file, "vocab id of '{}' is not an id", text);
    }
    ids[text] = id.get<int>();
    n = std::max(n, id.get<int>() + 1);
  }
  struct Added {
    int id;
    std::string text;
    bool special;
  };
  std::vector<Added> added;
  if (const json* a = tokjson::find(j, "added_tokens"); a != nullptr && a->is_array()) {
    for (const json& t : *a) {
      const long long id = tokjson::get_int(t, "id", file, -1);
      if (id < 0 || id > 10'000'000) fail(file, "added token without a valid id");
      added.push_back({static_cast<int>(id), tokjson::get_string(t, "content", file),
                       tokjson::get_bool(t, "special", file, false)});
      n = std::max(n, static_cast<int>(id) + 1);
    }
  }
  GgufVocab v;
  v.tokens.assign(static_cast<size_t>(n), "");
  v.types.assign(static_cast<size_t>(n), kNormal);
  std::vector<bool> filled(static_cast<size_t>(n), false);
  for (const auto& [text, id] : ids) {
    v.tokens[static_cast<size_t>(id)] = text;
    filled[static_cast<size_t>(id)] = true;
  }
  for (const Added& a : added) {
    v.tokens[static_cast<size_t>(a.id)] = a.text;
    v.types[static_cast<size_t>(a.id)] = a.special ? kControl : kUserDefined;
    filled[static_cast<size_t>(a.id)] = true;
  }
  for (int i = 0; i < n; ++i) {
    if (!filled[static_cast<size_t>(i)]) {
      v.tokens[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";
      v.types[static_cast<size_t>(i)] = kUnused;
    }
  }
  const json* merges = tokjson::find(*model, "merges");
  if (merges != nullptr && !merges->is_array()) fail(file, "model.merges is not an array");
  const bool byte_fallback = tokjson::get_bool(*model, "byte_fallback", file, false);
  if (byte_fallback) {
    // SentencePiece-style: llama.cpp merges the adjacent pair whose concatenation has the highest
    // score; giving each merge product −rank makes that the tokenizer.json merge order.
    v.model = "llama";
    v.scores.assign(static_cast<size_t>(n), 0.0f);
    std::vector<bool> scored(static_cast<size_t>(n), false);
    if (merges != nullptr) {
      for (size_t r = 0; r < merges->size(); ++r) {
        const auto [a, b] = merge_pair((*merges)[r], file);
        const auto it = ids.find(a + b);
        if (it == ids.end() || scored[static_cast<size_t>(it->second)]) continue;
        scored[static_cast<size_t>(it->second)] = true;
        v.scores[static_cast<size_t>(it->second)] = -static_cast<float>(r);
      }
    }
    for (int i = 0; i < n; ++i) {
      if (v.types[static_cast<size_t>(i)] == kNormal &&
          is_byte_piece(v.tokens[static_cast<size_t>(i)]))
        v.types[static_cast<size_t>(i)] = kByte;
    }
    const std::string unk = tokjson::get_string(*model, "unk_token", file);
    if (const auto it = ids.find(unk); !unk.empty() && it != ids.end()) {
      v.unk = it->second;
      v.types[static_cast<size_t>(it->second)] = kUnknown;
    }
    v.add_space_prefix = prepends_space(j);
  } else {
    // Byte-level BPE: llama.cpp knows a fixed set of pre-tokenizer regexes by name.
    const json* pre = tokjson::find(j, "pre_tokenizer");
    const bool gpt2 = pre != nullptr && tokjson::get_string(*pre, "type", file) == "ByteLevel" &&
                      tokjson::get_bool(*pre, "use_regex", file, true);
    if (!gpt2) {
      fail(file,
           "byte-level BPE with a pre-tokenizer llama.cpp does not know by name (GGUF export "
           "writes GPT-2's ByteLevel pre-tokenizer)");
    }
    v.model = "gpt2";
    v.pre = "gpt-2";
    v.add_space_prefix = false;
    if (merges != nullptr) {
      for (const json& m : *merges) {
        const auto [a, b] = merge_pair(m, file);
        v.merges.push_back(a + " " + b);
      }
    }
  }
  probe_specials(tok, &v);
  return v;
}

void pad_to(GgufVocab* v, int vocab_size) {
  if (static_cast<int>(v->tokens.size()) > vocab_size) {
    fail(v->source, "{} tokens, more than the model's {} embedding rows", v->tokens.size(),
         vocab_size);
  }
  for (int i = static_cast<int>(v->tokens.size()); i < vocab_size; ++i) {
    v->tokens.push_back("[PAD" + std::to_string(i) + "]");
    v->types.push_back(kUnused);
    if (v->model == "llama") v->scores.push_back(0.0f);
  }
}

}  // namespace

GgufVocab gguf_vocab(const std::string& tokenizer_path, int vocab_size) {
  std::string file = tokenizer_path;
  if (is_file(file) && gguf::has_gguf_magic(file)) {  // a GGUF model's own vocabulary
    GgufVocab v = read_gguf_vocab(gguf::Reader::open(file));
    pad_to(&v, vocab_size);
    return v;
  }
  if (is_dir(file)) {
    const fs::path d(file);
    if (is_file((d / "tokenizer.model").string())) {
      file = (d / "tokenizer.model").string();
    } else if (is_file((d / "tokenizer.json").string())) {
      file = (d / "tokenizer.json").string();
    } else {
      fail(file, "no tokenizer.model or tokenizer.json to write into the GGUF file");
    }
  }
  const std::string ext = fs::path(file).extension().string();
  GgufVocab v;
  if (ext == ".model") {
    v = from_sentencepiece(file);
  } else if (ext == ".json") {
    const auto tok = load_tokenizer(is_file(file) ? fs::path(file).parent_path().string() : file);
    v = from_tokenizer_json(read_json_file(file, kMaxTokenizerJsonBytes, "tokenizer.json"), file,
                            *tok);
  } else {
    v = from_llama2c(file, vocab_size);
  }
  v.source = file;
  pad_to(&v, vocab_size);
  return v;
}

GgufVocab gguf_vocab_from_json(const std::string& json_text, const std::string& name,
                               const Tokenizer& tok, int vocab_size) {
  GgufVocab v = from_tokenizer_json(parse_json(name, json_text), name, tok);
  v.source = name;
  pad_to(&v, vocab_size);
  return v;
}

void write_gguf_vocab(const GgufVocab& v, gguf::Writer* w) {
  w->set_string("tokenizer.ggml.model", v.model);
  if (!v.pre.empty()) w->set_string("tokenizer.ggml.pre", v.pre);
  w->set_strings("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) w->set_f32s("tokenizer.ggml.scores", v.scores);
  w->set_i32s("tokenizer.ggml.token_type", v.types);
  if (!v.merges.empty()) w->set_strings("tokenizer.ggml.merges", v.merges);
  if (v.bos >= 0) w->set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos));
  if (v.eos >= 0) w->set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos));
  if (v.unk >= 0) w->set_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk));
  w->set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w->set_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  if (v.model == "llama") w->set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
}

GgufVocab read_gguf_vocab(const gguf::Reader& r) {
  GgufVocab v;
  v.source = r.path();
  v.model = r.get_string("tokenizer.ggml.model", true);
  if (v.model != "llama" && v.model != "gpt2") {
    fail(r.path(), "tokenizer.ggml.model '{}' is not supported (llama, gpt2)", v.model);
  }
  v.tokens = r.get_strings("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  if (n == 0) fail(r.path(), "tokenizer.ggml.tokens is empty");
  if (r.find("tokenizer.ggml.token_type") != nullptr) {
    v.types = r.get_i32s("tokenizer.ggml.token_type");
    if (v.types.size() != n) {
      fail(r.path(), "tokenizer.ggml.token_type has {} entries for {} tokens", v.types.size(), n);
    }
  } else {
    v.types.assign(n, kNormal);
  }
  const bool llama = v.model == "llama";
  if (llama) {
    if (r.find("tokenizer.ggml.scores") != nullptr) {
      v.scores = r.get_f32s("tokenizer.ggml.scores");
      if (v.scores.size() != n) {
        fail(r.path(), "tokenizer.ggml.scores has {} entries for {} tokens", v.scores.size(), n);
      }
      for (float x : v.scores) {
        if (!std::isfinite(x)) fail(r.path(), "tokenizer.ggml.scores holds {}", x);
      }
    } else {
      v.scores.assign(n, 0.0f);
    }
  } else {
    v.pre = r.get_string("tokenizer.ggml.pre", false, "gpt-2");
    v.merges = r.get_strings("tokenizer.ggml.merges");
  }
  auto id = [&](const char* key, int dflt) {
    const gguf::Value* x = r.find(key);
    if (x == nullptr) return dflt;
    const uint64_t i = r.get_uint(key, true);
    if (i >= n) fail(r.path(), "{} = {} is outside the {} tokens", key, i, n);
    return static_cast<int>(i);
  };
  v.bos = id("tokenizer.ggml.bos_token_id", llama ? 1 : -1);
  v.eos = id("tokenizer.ggml.eos_token_id", llama ? 2 : -1);
  v.unk = id("tokenizer.ggml.unknown_token_id", llama ? 0 : -1);
  for (int x : {v.bos, v.eos, v.unk}) {
    if (x >= static_cast<int>(n)) fail(r.path(), "special token id {} outside the {} tokens", x, n);
  }
  v.add_bos = r.get_bool("tokenizer.ggml.add_bos_token", llama);
  v.add_eos = r.get_bool("tokenizer.ggml.add_eos_token", false);
  v.add_space_prefix = r.get_bool("tokenizer.ggml.add_space_prefix", llama);
  return v;
}

}  // namespace lowbit
