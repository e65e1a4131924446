// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): they cut a normalized piece into the words
// the model tokenizes. ByteLevel, Metaspace, Split, Digits, Punctuation, Whitespace,
// WhitespaceSplit and Sequence, with Hugging Face's split behaviours.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/tokenizer/pattern.h"

namespace lowbit {

// A piece of the input; at_start is true when it begins at offset 0 of the original text
// (Metaspace's prepend_scheme "first" only prepends there).
struct Piece {
  std::string text;
  bool at_start = false;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizer {
  enum class Kind { kSequence, kByteLevel, kMetaspace, kSplit };
  Kind kind = Kind::kSequence;
  // ByteLevel
  bool add_prefix_space = false;
  bool use_regex = true;
  // Metaspace
  std::string replacement;
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split = true;
  // Split (also Digits, Punctuation, Whitespace, WhitespaceSplit, ByteLevel's regex)
  Pattern pattern;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  std::vector<PreTokenizer> children;  // Sequence
};

// Parses a "pre_tokenizer" value (null -> empty Sequence). Throws Error for unsupported kinds.
PreTokenizer parse_pre_tokenizer(const nlohmann::json& j, const std::string& where);
void pre_tokenize(const PreTokenizer& p, std::vector<Piece>& pieces);
// The pieces of `p` cut at the matches of `pattern` with Hugging Face's behaviour (empty pieces
// dropped).
void split_piece(const Piece& p, const Pattern& pattern, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out);

// The GPT-2 pre-tokenization regex (ByteLevel with use_regex).
extern const char* const kGpt2Regex;

}  // namespace lowbit
