// Normalizers of tokenizer.json ("normalizer"): Sequence, Prepend, Replace, Lowercase, Strip,
// NFC/NFD. Each non-added-token piece of the input goes through them before pre-tokenization.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/tokenizer/pattern.h"

namespace lowbit {

struct Normalizer {
  enum class Kind { kSequence, kPrepend, kReplace, kLowercase, kStrip, kNfc, kNfd };
  Kind kind = Kind::kSequence;
  std::string text;  // Prepend: what to prepend; Replace: the replacement
  Pattern pattern;   // Replace
  bool strip_left = false, strip_right = false;
  std::vector<Normalizer> children;  // Sequence
};

// Parses a "normalizer" value (null -> empty Sequence). Throws Error for unsupported kinds.
Normalizer parse_normalizer(const nlohmann::json& j, const std::string& where);
std::string normalize(const Normalizer& n, std::string s);

}  // namespace lowbit
