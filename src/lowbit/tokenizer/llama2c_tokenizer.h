// llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length,
// bytes. Encodes like llama2.c's run.c (dummy " " prefix, highest-score pair merged first, byte
// fallback "<0xXX>" at id byte+3 when the vocab has byte pieces, else <unk>), BOS 1 / EOS 2.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {

class MappedFile;

class Llama2cTokenizer : public Tokenizer {
 public:
  std::vector<int> encode(const std::string& text, bool add_special = true) const override;
  std::string decode(const std::vector<int>& ids, bool skip_special = true) const override;
  std::string decode_token(int prev_id, int id) const override;
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return 1; }
  int eos_id() const override { return 2; }
  // Every token's bytes and merge score, as the file holds them.
  const std::vector<std::string>& pieces() const { return pieces_; }
  const std::vector<float>& scores() const { return scores_; }

  // Reads `vocab_size` tokens (-1: as many as the file holds).
  static std::shared_ptr<Llama2cTokenizer> from_file(const std::string& path, int vocab_size);
  // The same over bytes already mapped or in memory (MappedFile::from_memory: tests, fuzzing);
  // file.path() names them in errors. Nothing points into `file` afterwards.
  static std::shared_ptr<Llama2cTokenizer> from_mapped(const MappedFile& file, int vocab_size);

 private:
  int lookup(const std::string& s) const;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> ids_;
  bool byte_fallback_ = false;
};

}  // namespace lowbit
