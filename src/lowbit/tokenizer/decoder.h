// Decoders of tokenizer.json ("decoder"): turn token strings back into text. ByteLevel,
// Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder and Sequence. Byte pieces are kept as
// raw bytes (not replaced by U+FFFD) so that streamed output concatenates to the full text.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/tokenizer/pattern.h"

namespace lowbit {

struct Decoder {
  enum class Kind {
    kSequence,
    kByteLevel,
    kMetaspace,
    kReplace,
    kByteFallback,
    kFuse,
    kStrip,
    kBpe
  };
  Kind kind = Kind::kSequence;
  std::string text;         // Metaspace: replacement; Replace: content; Strip: content; Bpe: suffix
  Pattern pattern;          // Replace
  bool prepend = true;      // Metaspace: strip the space the pre-tokenizer prepended
  int start = 0, stop = 0;  // Strip
  std::vector<Decoder> children;
};

// Parses a "decoder" value (null -> none: tokens are joined with spaces, as Hugging Face does).
Decoder parse_decoder(const nlohmann::json& j, const std::string& where, bool* present);
// Decodes tokens. `at_start`: the first token begins the text (Metaspace / Strip remove the
// prefix space only there).
std::string decode_tokens(const Decoder& d, std::vector<std::string> tokens, bool at_start);

}  // namespace lowbit
