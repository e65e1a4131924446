// llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length,
// bytes. Encodes like llama2.c's run.c (dummy " " prefix, highest-score pair merged first, byte
// fallback "<0xXX>" at id byte+3 when the vocab has byte pieces, else <unk>), BOS 1 / EOS 2.
// The same algorithm is SentencePiece-style BPE over scored pieces as llama.cpp runs GGUF "llama"
// vocabularies: from_vocab builds it from such pieces with their own special ids.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {

class MappedFile;

// A scored-piece vocabulary (spaces written as ' ', not SentencePiece's U+2581).
struct ScoredVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<bool> special;  // control / unknown / unused: decoded as nothing
  int bos = 1, eos = 2, unk = 0;
  bool add_bos = true, add_eos = false;
  bool space_prefix = true;  // a " " before the text (SentencePiece's add_dummy_prefix)
};

class Llama2cTokenizer : public Tokenizer {
 public:
  std::vector<int> encode(const std::string& text, bool add_special = true) const override;
  std::string decode(const std::vector<int>& ids, bool skip_special = true) const override;
  std::string decode_token(int prev_id, int id) const override;
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return bos_; }
  int eos_id() const override { return eos_; }
  // Every token's bytes and merge score, as the file holds them.
  const std::vector<std::string>& pieces() const { return pieces_; }
  const std::vector<float>& scores() const { return scores_; }

  // Reads `vocab_size` tokens (-1: as many as the file holds).
  static std::shared_ptr<Llama2cTokenizer> from_file(const std::string& path, int vocab_size);
  // The same over bytes already mapped or in memory (MappedFile::from_memory: tests, fuzzing);
  // file.path() names them in errors. Nothing points into `file` afterwards.
  static std::shared_ptr<Llama2cTokenizer> from_mapped(const MappedFile& file, int vocab_size);
  // From pieces and scores held elsewhere (GGUF metadata); `where` names them in errors.
  static std::shared_ptr<Llama2cTokenizer> from_vocab(ScoredVocab v, const std::string& where);

 private:
  int lookup(const std::string& s) const;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> ids_;
  void index();  // ids_, byte_ids_
  bool byte_fallback_ = false;
  std::vector<int> byte_ids_;  // byte -> id of "<0xXX>" (byte_fallback_)
  std::vector<bool> special_;
  int bos_ = 1, eos_ = 2, unk_ = 0;
  bool add_bos_ = true, add_eos_ = false, space_prefix_ = true;
};

}  // namespace lowbit
