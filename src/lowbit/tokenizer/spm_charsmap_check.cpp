#include "lowbit/tokenizer/spm_charsmap_check.h"

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "lowbit/util/error.h"

namespace lowbit {

namespace {

// Protobuf wire format: a varint of at most 10 bytes.
bool read_varint(const uint8_t*& p, const uint8_t* end, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const uint8_t b = *p++;
    *v |= uint64_t(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// Calls f(bytes) for every length-delimited occurrence of field `field` in `msg`. False when the
// framing cannot be followed.
template <typename F>
bool for_each_bytes_field(std::string_view msg, uint32_t field, F f) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(msg.data());
  const uint8_t* end = p + msg.size();
  while (p < end) {
    uint64_t tag = 0, len = 0, skip = 0;
    if (!read_varint(p, end, &tag)) return false;
    switch (tag & 7) {
      case 0:
        if (!read_varint(p, end, &skip)) return false;
        continue;
      case 1:
        skip = 8;
        break;
      case 5:
        skip = 4;
        break;
      case 2:
        if (!read_varint(p, end, &len) || len > uint64_t(end - p)) return false;
        if ((tag >> 3) == field) f(std::string_view(reinterpret_cast<const char*>(p), len));
        skip = len;
        break;
      default:
        return false;
    }
    if (skip > uint64_t(end - p)) return false;
    p += skip;
  }
  return true;
}

// Darts-clone's double-array unit, as the library reads it.
struct Unit {
  uint32_t u;
  bool has_leaf() const { return ((u >> 8) & 1) == 1; }
  uint32_t value() const { return u & ((1U << 31) - 1); }
  uint32_t label() const { return u & ((1U << 31) | 0xFF); }
  uint32_t offset() const { return (u >> 10) << ((u & (1U << 9)) >> 6); }
};

// "" when the table is safe to walk, else what is wrong.
std::string charsmap_problem(std::string_view blob) {
  if (blob.empty()) return "";
  if (blob.size() <= 4) return "shorter than its header";
  uint32_t trie_bytes = 0;
  std::memcpy(&trie_bytes, blob.data(), 4);  // little-endian, as the library reads it on x86
  if (trie_bytes >= blob.size() - 4 + 1 || trie_bytes % 4 != 0) return "trie size out of range";
  const size_t n = trie_bytes / 4;
  if (n == 0) return "empty trie";
  std::vector<Unit> units(n);
  std::memcpy(units.data(), blob.data() + 4, trie_bytes);
  const std::string_view pool = blob.substr(4 + trie_bytes);
  // Breadth-first over the node positions the prefix search can stand on.
  std::vector<uint8_t> seen(n, 0);
  std::vector<size_t> todo;
  const size_t root = units[0].offset();  // node_pos = 0 ^ offset(unit[0])
  if (root >= n) return "trie root out of range";
  todo.push_back(root);
  seen[root] = 1;
  while (!todo.empty()) {
    const size_t p = todo.back();
    todo.pop_back();
    if ((p | 0xFF) >= n) return "trie node reads past the table";  // unit[p ^ c], any byte c
    for (uint32_t c = 0; c < 256; ++c) {
      const size_t q = p ^ c;
      if (units[q].label() != c) continue;  // the search stops here
      const size_t next = q ^ units[q].offset();
      if (next >= n) return "trie child out of range";
      if (units[q].has_leaf()) {
        const uint32_t v = units[next].value();
        if (v >= pool.size() || pool.find('\0', v) == std::string_view::npos) {
          return "replacement string out of range";
        }
      }
      if (!seen[next]) {
        seen[next] = 1;
        todo.push_back(next);
      }
    }
  }
  return "";
}

}  // namespace

void check_sentencepiece_charsmaps(const std::string& model_bytes, const std::string& name) {
  // ModelProto: normalizer_spec = 3, denormalizer_spec = 5; NormalizerSpec.precompiled_charsmap
  // = 2.
  for (uint32_t spec : {3u, 5u}) {
    for_each_bytes_field(model_bytes, spec, [&](std::string_view spec_bytes) {
      for_each_bytes_field(spec_bytes, 2, [&](std::string_view blob) {
        const std::string problem = charsmap_problem(blob);
        if (!problem.empty()) {
          fail(name, "SentencePiece normalization table ({}) is malformed: {}",
               spec == 3 ? "normalizer" : "denormalizer", problem);
        }
      });
    });
  }
}

}  // namespace lowbit
