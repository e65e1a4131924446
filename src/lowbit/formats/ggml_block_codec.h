// One quantized ggml block type as a set of functions on a single block (internal to
// formats/ggml_*.cpp; the public API is formats/ggml_blocks.h, which checks its arguments and
// loops over the blocks of a row).
#pragma once

#include <cstdint>
#include <cstring>

#include "lowbit/formats/ggml_blocks.h"
#include "lowbit/util/half.h"

namespace lowbit::gguf::detail {

struct BlockCodec {
  GgmlType type;
  int levels;          // codes 0 … levels − 1
  const float* table;  // level of each code (iq4_nl); null: level(c) = c
  int weight_group;    // the values that share one fitted scale (32, or 16 for q6_k)
  void (*decode)(const uint8_t* block, float* out);
  void (*grid)(const uint8_t* block, float* scale, float* offset);
  void (*get_codes)(const uint8_t* block, uint8_t* codes);
  void (*set_codes)(uint8_t* block, const uint8_t* codes);
  // Fits one block to x. `importance` (null = the reference quantizer without one) holds the
  // block's weights, non-negative, with a positive sum over every weight_group values (the caller
  // passes null for a block where that fails); `row_sigma2` is Σx²/n over the whole row
  // (the weighted fits of the 32-value types use it).
  void (*encode)(const float* x, const float* importance, float row_sigma2, uint8_t* block);
};

// The codecs of q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl (ggml_legacy_blocks.cpp) and of q4_k, q5_k,
// q6_k (ggml_kquants.cpp); null for another type.
const BlockCodec* legacy_codec(GgmlType t);
const BlockCodec* kquant_codec(GgmlType t);

// Little-endian fp16 fields of a block.
inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
inline void store_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

}  // namespace lowbit::gguf::detail
