#include "lowbit/tokenizer/gguf_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "lowbit/io/gguf_reader.h"
#include "lowbit/tokenizer/hf_tokenizer.h"
#include "lowbit/tokenizer/llama2c_tokenizer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace {

using nlohmann::json;

constexpr int32_t kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5;

// SentencePiece's space mark back to the space llama2c_tokenizer works with.
std::string unmark(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 3, "\u2581") == 0) {
      out += ' ';
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::shared_ptr<Tokenizer> scored(const GgufVocab& v) {
  ScoredVocab s;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    s.pieces.push_back(unmark(v.tokens[i]));
    const int32_t t = v.types[i];
    s.special.push_back(t == kUnknown || t == kControl || t == kUnused);
  }
  s.scores = v.scores;
  s.bos = v.bos;
  s.eos = v.eos;
  s.unk = v.unk;
  s.add_bos = v.add_bos;
  s.add_eos = v.add_eos;
  s.space_prefix = v.add_space_prefix;
  return Llama2cTokenizer::from_vocab(std::move(s), v.source);
}

}  // namespace

std::pair<json, json> gguf_vocab_to_tokenizer_json(const GgufVocab& v) {
  if (v.pre != "gpt-2") {
    fail(v.source,
         "byte-level pre-tokenizer '{}' is not supported (lowbit reads GGUF \"gpt2\" vocabularies "
         "with pre-tokenizer gpt-2)",
         v.pre);
  }
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const int32_t t = v.types[i];
    if (t == kControl || t == kUserDefined) {
      added.push_back({{"id", i},
                       {"content", v.tokens[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", t == kControl}});
    }
    vocab[v.tokens[i]] = i;  // a repeated token keeps its last id, as in tokenizer.json
  }
  const json byte_level = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", true},
                           {"use_regex", true}};
  json tok = {{"version", "1.0"},
              {"added_tokens", added},
              {"normalizer", nullptr},
              {"pre_tokenizer", byte_level},
              {"post_processor", nullptr},
              {"decoder", byte_level},
              {"model",
               {{"type", "BPE"},
                {"unk_token", nullptr},
                {"byte_fallback", false},
                {"vocab", vocab},
                {"merges", v.merges}}}};
  json cfg = {{"add_bos_token", v.add_bos}, {"add_eos_token", v.add_eos}};
  if (v.bos >= 0) cfg["bos_token"] = v.tokens[static_cast<size_t>(v.bos)];
  if (v.eos >= 0) cfg["eos_token"] = v.tokens[static_cast<size_t>(v.eos)];
  return {tok, cfg};
}

std::shared_ptr<Tokenizer> tokenizer_from_gguf_vocab(const GgufVocab& v) {
  if (v.model == "llama") return scored(v);
  const auto [tok, cfg] = gguf_vocab_to_tokenizer_json(v);
  return HfTokenizer::from_json_object(tok, v.source, cfg, json());
}

std::vector<std::pair<std::string, std::string>> gguf_tokenizer_files(const GgufVocab& v) {
  if (v.model == "gpt2") {
    const auto [tok, cfg] = gguf_vocab_to_tokenizer_json(v);
    return {{"tokenizer.json", tok.dump() + "\n"}, {"tokenizer_config.json", cfg.dump(2) + "\n"}};
  }
  bool bytes_at_3 = v.tokens.size() >= 259;
  for (int b = 0; b < 256 && bytes_at_3; ++b) {
    bytes_at_3 = v.tokens[static_cast<size_t>(b) + 3] == fmt::format("<0x{:02X}>", b);
  }
  bool any_byte = false;
  for (int32_t t : v.types) any_byte = any_byte || t == 6;
  if (v.unk != 0 || v.bos != 1 || v.eos != 2 || !v.add_bos || v.add_eos || !v.add_space_prefix ||
      (any_byte && !bytes_at_3)) {
    fail(v.source,
         "this \"llama\" vocabulary has no llama2.c tokenizer.bin form (UNK {}, BOS {}, EOS {}, "
         "add_bos {}, add_eos {}, space prefix {}); pass --tokenizer",
         v.unk, v.bos, v.eos, v.add_bos, v.add_eos, v.add_space_prefix);
  }
  std::string bin(4, '\0');
  int32_t max_len = 1;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const std::string piece = unmark(v.tokens[i]);
    max_len = std::max(max_len, static_cast<int32_t>(piece.size()));
    const int32_t len = static_cast<int32_t>(piece.size());
    bin.append(reinterpret_cast<const char*>(&v.scores[i]), 4);
    bin.append(reinterpret_cast<const char*>(&len), 4);
    bin += piece;
  }
  std::memcpy(bin.data(), &max_len, 4);
  return {{"tokenizer.bin", bin}};
}

void write_gguf_tokenizer_files(const GgufVocab& v, const std::string& dir) {
  for (const auto& [name, content] : gguf_tokenizer_files(v)) {
    write_file_atomic((std::filesystem::path(dir) / name).string(), content);
  }
}

std::shared_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  return tokenizer_from_gguf_vocab(read_gguf_vocab(gguf::Reader::open(path)));
}

}  // namespace lowbit
