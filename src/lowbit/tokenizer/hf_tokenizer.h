// A Hugging Face tokenizer.json tokenizer (model type BPE): added tokens -> normalizer ->
// pre-tokenizer -> BPE model -> post-processor, and the decoder for the way back.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lowbit/tokenizer/added_vocab.h"
#include "lowbit/tokenizer/bpe_model.h"
#include "lowbit/tokenizer/decoder.h"
#include "lowbit/tokenizer/normalizer.h"
#include "lowbit/tokenizer/post_processor.h"
#include "lowbit/tokenizer/pre_tokenizer.h"
#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {

class HfTokenizer : public Tokenizer {
 public:
  std::vector<int> encode(const std::string& text, bool add_special = true) const override;
  std::string decode(const std::vector<int>& ids, bool skip_special = true) const override;
  std::string decode_token(int prev_id, int id) const override;
  int vocab_size() const override { return vocab_size_; }
  int bos_id() const override { return bos_id_; }
  int eos_id() const override { return eos_id_; }

  // Parses tokenizer.json text; `where` names it in errors; `config_dir` ("" for none) may hold
  // tokenizer_config.json / special_tokens_map.json.
  static std::shared_ptr<HfTokenizer> from_json(const std::string& json_text,
                                                const std::string& where,
                                                const std::string& config_dir);
  // The same for a parsed tokenizer.json with tokenizer_config.json / special_tokens_map.json
  // contents given (null when absent): tokenizers built in memory (GGUF metadata).
  static std::shared_ptr<HfTokenizer> from_json_object(const nlohmann::json& j,
                                                       const std::string& where,
                                                       const nlohmann::json& config,
                                                       const nlohmann::json& special_tokens_map);

 private:
  int token_id(const std::string& token) const;  // -1 when unknown
  const std::string* token_text(int id) const;   // nullptr when unknown
  bool is_special(int id) const;
  void load_config(const nlohmann::json& cfg, const nlohmann::json& map, const std::string& where);
  void encode_piece(const std::string& text, bool at_start, std::vector<int>& out) const;

  BpeModel model_;
  std::vector<AddedToken> added_;
  std::unordered_map<int, size_t> added_by_id_;
  AddedTokenMatcher raw_matcher_, normalized_matcher_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  PostProcessor post_;
  Decoder decoder_;
  bool has_decoder_ = false;
  int vocab_size_ = 0, bos_id_ = -1, eos_id_ = -1;
};

}  // namespace lowbit
