#include "lowbit/tokenizer/hf_tokenizer.h"

#include <filesystem>

#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/tokenizer/json_util.h"
#include "lowbit/tokenizer/unicode.h"
#include "lowbit/util/file.h"

namespace lowbit {

using namespace tokjson;

namespace {

// "BPE", or the kind of an unsupported model, inferring it when "type" is missing.
std::string model_type(const json& model, const std::string& where) {
  if (!model.is_object()) fail(where, "'model' is missing or not an object");
  std::string type = get_string(model, "type", where);
  if (!type.empty()) return type;
  if (find(model, "merges")) return "BPE";
  const json* vocab = find(model, "vocab");
  if (vocab && vocab->is_array()) return "Unigram";
  if (find(model, "max_input_chars_per_word")) return "WordPiece";
  if (vocab && vocab->is_object()) return "WordLevel";
  fail(where, "cannot tell the tokenizer model type (no 'type', 'vocab' or 'merges')");
}

// A token named in a config file: "tok" or {"content": "tok", ...}.
std::string config_token(const json& cfg, const char* key) {
  const json* v = find(cfg, key);
  if (!v) return "";
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object() && v->contains("content") && (*v)["content"].is_string()) {
    return (*v)["content"].get<std::string>();
  }
  return "";
}

// A config file beside tokenizer.json (null when there is none).
json read_optional_json(const std::string& path) {
  if (!path_exists(path)) return nullptr;
  return read_json_file(path, kMaxTokenizerConfigBytes, "tokenizer config file");
}

}  // namespace

std::shared_ptr<HfTokenizer> HfTokenizer::from_json(const std::string& json_text,
                                                    const std::string& where,
                                                    const std::string& config_dir) {
  json cfg, map;
  if (!config_dir.empty()) {
    cfg = read_optional_json(config_dir + "/tokenizer_config.json");
    map = read_optional_json(config_dir + "/special_tokens_map.json");
  }
  return from_json_object(parse_json(where, json_text), where, cfg, map);
}

std::shared_ptr<HfTokenizer> HfTokenizer::from_json_object(const json& j, const std::string& where,
                                                           const json& cfg, const json& map) {
  if (!j.is_object()) fail(where, "tokenizer.json is not a JSON object");
  const json* model = find(j, "model");
  if (!model) fail(where, "no 'model' in tokenizer.json");
  std::string type = model_type(*model, where);
  if (type != "BPE") fail(where, "unsupported tokenizer model {}", type);

  auto t = std::make_shared<HfTokenizer>();
  try {
    parse_bpe_model(*model, where, t->model_);
    t->added_ = parse_added_tokens(j.value("added_tokens", json()), where);
    t->normalizer_ = parse_normalizer(j.value("normalizer", json()), where);
    t->pre_tokenizer_ = parse_pre_tokenizer(j.value("pre_tokenizer", json()), where);
    t->post_ = parse_post_processor(j.value("post_processor", json()), where);
    t->decoder_ = parse_decoder(j.value("decoder", json()), where, &t->has_decoder_);
  } catch (const json::exception& e) {
    fail(where, "malformed tokenizer.json: {}", json_error_text(e));
  }

  std::vector<AddedToken> raw, normalized;
  t->vocab_size_ = static_cast<int>(t->model_.id_to_token.size());
  for (size_t i = 0; i < t->added_.size(); ++i) {
    AddedToken a = t->added_[i];
    t->added_by_id_[a.id] = i;
    t->vocab_size_ = std::max(t->vocab_size_, a.id + 1);
    if (a.normalized) {
      a.content = normalize(t->normalizer_, a.content);
      normalized.push_back(std::move(a));
    } else {
      raw.push_back(std::move(a));
    }
  }
  t->raw_matcher_.build(std::move(raw));
  t->normalized_matcher_.build(std::move(normalized));
  t->load_config(cfg, map, where);
  return t;
}

void HfTokenizer::load_config(const json& cfg, const json& map, const std::string& where) {
  auto named = [&](const char* key) {
    std::string name = config_token(cfg, key);
    if (name.empty()) name = config_token(map, key);
    return name.empty() ? -1 : token_id(name);
  };
  bos_id_ = named("bos_token");
  eos_id_ = named("eos_token");
  if (bos_id_ < 0 && !post_.prefix.empty()) bos_id_ = post_.prefix.front();
  if (eos_id_ < 0 && !post_.suffix.empty() && post_.suffix.back() != bos_id_) {
    eos_id_ = post_.suffix.back();
  }
  for (const char* name : {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<|endoftext|>"}) {
    if (bos_id_ < 0) bos_id_ = token_id(name);
  }
  for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>", "<|eot_id|>"}) {
    if (eos_id_ < 0) eos_id_ = token_id(name);
  }
  if (!post_.present && cfg.is_object()) {
    // No post-processor: the transformers config says what to add.
    if (get_bool(cfg, "add_bos_token", where, false) && bos_id_ >= 0) post_.prefix = {bos_id_};
    if (get_bool(cfg, "add_eos_token", where, false) && eos_id_ >= 0) post_.suffix = {eos_id_};
  }
}

int HfTokenizer::token_id(const std::string& token) const {
  for (const AddedToken& a : added_) {
    if (a.content == token) return a.id;
  }
  auto it = model_.vocab.find(token);
  return it == model_.vocab.end() ? -1 : it->second;
}

const std::string* HfTokenizer::token_text(int id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return &added_[it->second].content;
  if (id < 0 || static_cast<size_t>(id) >= model_.id_to_token.size()) return nullptr;
  const std::string& s = model_.id_to_token[id];
  return s.empty() ? nullptr : &s;
}

bool HfTokenizer::is_special(int id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_[it->second].special;
}

void HfTokenizer::encode_piece(const std::string& text, bool at_start,
                               std::vector<int>& out) const {
  std::string norm = normalize(normalizer_, text);
  for (const Segment& seg : normalized_matcher_.split(norm)) {
    if (seg.token >= 0) {
      out.push_back(seg.token);
      continue;
    }
    std::vector<Piece> pieces;
    pieces.push_back({norm.substr(seg.begin, seg.end - seg.begin), at_start && seg.begin == 0});
    pre_tokenize(pre_tokenizer_, pieces);
    for (const Piece& p : pieces) model_.tokenize(p.text, out);
  }
}

std::vector<int> HfTokenizer::encode(const std::string& text, bool add_special) const {
  std::string s = utf8::sanitize(text);
  std::vector<int> out;
  out.reserve(s.size() / 3 + 8);
  if (add_special) out = post_.prefix;
  for (const Segment& seg : raw_matcher_.split(s)) {
    if (seg.token >= 0) {
      out.push_back(seg.token);
    } else {
      encode_piece(s.substr(seg.begin, seg.end - seg.begin), seg.begin == 0, out);
    }
  }
  if (add_special) out.insert(out.end(), post_.suffix.begin(), post_.suffix.end());
  return out;
}

std::string HfTokenizer::decode(const std::vector<int>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int id : ids) {
    const std::string* t = token_text(id);
    if (!t || (skip_special && is_special(id))) continue;
    tokens.push_back(*t);
  }
  if (!has_decoder_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  return decode_tokens(decoder_, std::move(tokens), true);
}

std::string HfTokenizer::decode_token(int prev_id, int id) const {
  const std::string* t = token_text(id);
  if (!t || is_special(id)) return "";
  bool at_start = prev_id < 0 || is_special(prev_id);
  if (!has_decoder_) return (at_start ? "" : " ") + *t;
  return decode_tokens(decoder_, {*t}, at_start);
}

}  // namespace lowbit
