// Tokenizers: a small interface over the kinds lowbit reads (Hugging Face tokenizer.json of type
// BPE, both SentencePiece-style and byte-level; SentencePiece .model files; llama2.c
// tokenizer.bin).
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace lowbit {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Encodes text. With add_special, adds what the tokenizer's post-processor / config adds
  // (e.g. BOS for Llama); special/added tokens written in the text are matched either way,
  // as Hugging Face does.
  virtual std::vector<int> encode(const std::string& text, bool add_special = true) const = 0;
  // Decodes ids to text (special tokens skipped when skip_special).
  virtual std::string decode(const std::vector<int>& ids, bool skip_special = true) const = 0;
  // Decodes one token for streaming, given the previous token (SentencePiece strips the leading
  // space of the first piece after BOS). Byte pieces that form part of a UTF-8 character are
  // returned as raw bytes; concatenating the outputs gives the full text.
  virtual std::string decode_token(int prev_id, int id) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 when none
  virtual int eos_id() const = 0;  // -1 when none
};

// Loads a tokenizer from a folder holding tokenizer.json (+ tokenizer_config.json), else
// tokenizer.model (SentencePiece), else tokenizer.bin; from a tokenizer.json file, a SentencePiece
// .model file (SentencePieceTokenizer) or a llama2.c tokenizer .bin file. Throws
// Error("<path>: ...") for malformed files and for unsupported types (WordPiece, Unigram
// tokenizer.json, tiktoken).
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path);

// Parses tokenizer.json text held in memory (tests, fuzzing); `name` names it in errors.
std::shared_ptr<Tokenizer> load_tokenizer_from_json_string(const std::string& json_text,
                                                           const std::string& name);

// llama2.c tokenizer.bin needs the model's vocab size.
std::shared_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& bin_path, int vocab_size);

}  // namespace lowbit
