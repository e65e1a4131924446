// A guard in front of libsentencepiece: the normalization table a .model carries
// (NormalizerSpec.precompiled_charsmap, a Darts-clone double-array trie followed by a pool of
// NUL-terminated replacement strings) is walked by the library's normalizer without bounds checks
// (Debian's 0.1.97: a crafted table makes Encode read outside it, found by
// fuzz/sentencepiece_fuzz.cpp). check_sentencepiece_charsmaps finds the tables of the normalizer
// and denormalizer specs in the serialized ModelProto (only the length-delimited framing of the
// fields on the way is read; the library still parses the model) and walks every trie node a text
// can reach, as the library's prefix search does: every unit it can read, every replacement
// string it can point at, must lie inside the table.
#pragma once

#include <string>

namespace lowbit {

// Throws Error("<name>: ...") when a charsmap would make the library read outside it. Returns
// quietly on a well-formed table, on no table, and on framing it cannot follow (which the library
// itself refuses).
void check_sentencepiece_charsmaps(const std::string& model_bytes, const std::string& name);

}  // namespace lowbit
