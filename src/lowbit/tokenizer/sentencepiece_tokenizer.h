// SentencePiece `.model` files (Llama-2's tokenizer.model, Baichuan, ChatGLM, llama2.c's
// tok*.model) through Debian's libsentencepiece (in a module of its own, spm_processor.h): encoding
// is the library's own (BPE, Unigram, Char and Word models, the model's normalizer), so ids are
// those of Python's `sentencepiece`.
//
// Special tokens: with add_special, encode() puts the model's BOS first (as Hugging Face's slow
// LlamaTokenizer and Baichuan's tokenizer do; no EOS), then the prefix pieces a caller set
// (ChatGLM2/3 put "[gMASK]" "sop" before the text, without BOS). Like the library, encode() reads
// control pieces written in the text ("<s>") as plain text; user-defined pieces are matched.
//
// Decoding mirrors the library's Decode (the first piece's leading "▁" dropped when the model adds
// a dummy prefix or removes extra whitespace, <unk> as the model's unk surface " ⁇ " also when
// special pieces are kept, control pieces invisible unless kept) except that byte pieces (<0xXX>)
// are kept as raw bytes, as lowbit's other tokenizers do (the library writes U+FFFD for an
// incomplete UTF-8 run). A model's denormalizer is not applied.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {

class SpmProcessor;

class SentencePieceTokenizer : public Tokenizer {
 public:
  ~SentencePieceTokenizer() override;

  // Reads a .model file (a regular file of at most kMaxTokenizerJsonBytes, io/limits.h). Throws
  // Error("<path>: ...") when it cannot be read or is not a SentencePiece model.
  static std::shared_ptr<SentencePieceTokenizer> from_file(const std::string& path);
  // Parses a serialized SentencePiece ModelProto held in memory; `name` names it in errors.
  static std::shared_ptr<SentencePieceTokenizer> from_serialized(const std::string& bytes,
                                                                 const std::string& name);

  std::vector<int> encode(const std::string& text, bool add_special = true) const override;
  std::string decode(const std::vector<int>& ids, bool skip_special = true) const override;
  std::string decode_token(int prev_id, int id) const override;
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return bos_id_; }
  int eos_id() const override { return eos_id_; }
  int unk_id() const { return unk_id_; }

  // The id of a piece (pieces appended by append_special_pieces first, then the model's), -1 when
  // there is none. The piece of an id ("" when out of range).
  int piece_to_id(const std::string& piece) const;
  std::string id_to_piece(int id) const;

  // What encode(text, true) adds: BOS first (default on, when the model has one), EOS last
  // (default off).
  void set_add_bos(bool on) { add_bos_ = on; }
  void set_add_eos(bool on) { add_eos_ = on; }
  // Pieces put after BOS and before the text by encode(text, true), e.g. {"[gMASK]", "sop"}. Each
  // must be a piece of the model or one appended below; throws Error("<file>: ...") naming the
  // first one missing (and changes nothing then). An empty list removes the prefix.
  void set_prefix_pieces(const std::vector<std::string>& pieces);
  // Adds special tokens after the model's vocabulary, ids vocab_size() upward in order, as
  // ChatGLM2/3's tokenizer does for "[MASK]" "[gMASK]" "[sMASK]" "sop" "eop" (their .model lacks
  // them). They decode to "" (skip_special) or their text; encode() never produces them from text.
  void append_special_pieces(const std::vector<std::string>& pieces);

  // The pieces of the model itself (without appended ones) with their scores and types, the
  // types numbered as SentencePiece's ModelProto numbers them (1 normal, 2 unknown, 3 control,
  // 5 unused, 6 byte; user-defined pieces read as normal): what another vocabulary format needs.
  int model_size() const { return model_size_; }
  float score(int id) const;
  int piece_type(int id) const;

 private:
  SentencePieceTokenizer();
  // from_serialized without the translation of the library's own exceptions into Error.
  static std::shared_ptr<SentencePieceTokenizer> build(const std::string& bytes,
                                                       const std::string& name);
  enum class Kind : uint8_t { kNormal, kControl, kUnknown, kByte, kAppended };
  bool is_special(int id) const;
  // The text of a normal piece ("▁" as a space), without its leading "▁" when strip_first.
  std::string piece_text(int id, bool strip_first) const;

  std::string name_;
  std::unique_ptr<SpmProcessor> sp_;  // libsentencepiece (tokenizer/spm_processor.h)
  int model_size_ = 0;                // pieces in the model; appended ones follow
  std::vector<std::string> pieces_;   // every id's piece
  std::vector<Kind> kinds_;           // every id's kind
  std::vector<uint8_t> bytes_;        // the byte of a kByte piece
  std::unordered_map<std::string, int> appended_;
  std::vector<int> prefix_;
  int bos_id_ = -1, eos_id_ = -1, unk_id_ = -1;
  bool add_bos_ = true, add_eos_ = false;
  // Probed from the library at load: its Decode drops the first piece's leading "▁"
  // (add_dummy_prefix or remove_extra_whitespaces), and only that one "▁" (not
  // remove_extra_whitespaces); the text of <unk>.
  bool strip_first_ws_ = true;
  bool strip_one_ws_only_ = true;
  std::string unk_surface_;
};

}  // namespace lowbit
