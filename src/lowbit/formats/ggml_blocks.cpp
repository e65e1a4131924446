// The row-level API of formats/ggml_blocks.h: argument checks, the float types, and the loop over
// blocks of the quantized types (ggml_legacy_blocks.cpp, ggml_kquants.cpp).
#include "lowbit/formats/ggml_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "lowbit/formats/ggml_block_codec.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"

namespace lowbit::gguf {

namespace {

using detail::BlockCodec;

const BlockCodec& codec_of(GgmlType t, const char* fn) {
  if (const BlockCodec* c = detail::legacy_codec(t)) return *c;
  if (const BlockCodec* c = detail::kquant_codec(t)) return *c;
  if (!known_type(static_cast<uint32_t>(t)))
    fail("ggml", "{}: unknown type {}", fn, static_cast<uint32_t>(t));
  fail("ggml", "{}: {} is not a quantized block type", fn, type_name(t));
}

void check_count(GgmlType t, int64_t n, const char* fn) {
  if (!known_type(static_cast<uint32_t>(t)))
    fail("ggml", "{}: unknown type {}", fn, static_cast<uint32_t>(t));
  const int bv = block_values(t);
  if (n < 0 || n % bv != 0)
    fail("ggml", "{}: {} values is not a whole number of {} blocks ({} values each)", fn, n,
         type_name(t), bv);
}

// Whether every group of `group` weights has a positive sum (else the block is fitted without).
bool usable_weights(const float* w, int values, int group) {
  for (int g = 0; g < values; g += group) {
    float s = 0;
    for (int i = g; i < g + group; ++i) s += w[i];
    if (!(s > 0)) return false;
  }
  return true;
}

// 16-bit words from bytes that may not be 2-byte aligned, in chunks.
template <typename F>
void for_each_u16_chunk(int64_t n, F&& f) {
  constexpr int64_t kChunk = 4096;
  for (int64_t at = 0; at < n; at += kChunk) f(at, std::min(kChunk, n - at));
}

}  // namespace

void dequantize_row(GgmlType t, const uint8_t* src, float* dst, int64_t n) {
  check_count(t, n, "dequantize_row");
  if (t == GgmlType::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  if (t == GgmlType::kF16 || t == GgmlType::kBF16) {
    uint16_t buf[4096];
    for_each_u16_chunk(n, [&](int64_t at, int64_t len) {
      std::memcpy(buf, src + 2 * at, static_cast<size_t>(len) * 2);
      if (t == GgmlType::kF16)
        f16_to_f32_n(buf, dst + at, static_cast<size_t>(len));
      else
        bf16_to_f32_n(buf, dst + at, static_cast<size_t>(len));
    });
    return;
  }
  const BlockCodec& c = codec_of(t, "dequantize_row");
  const int bv = block_values(t), bb = block_bytes(t);
  for (int64_t b = 0; b < n / bv; ++b) c.decode(src + b * bb, dst + b * bv);
}

void quantize_row(GgmlType t, const float* src, uint8_t* dst, int64_t n, const float* importance) {
  check_count(t, n, "quantize_row");
  if (t == GgmlType::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  if (t == GgmlType::kF16 || t == GgmlType::kBF16) {
    uint16_t buf[4096];
    for_each_u16_chunk(n, [&](int64_t at, int64_t len) {
      if (t == GgmlType::kF16)
        for (int64_t i = 0; i < len; ++i) buf[i] = f32_to_f16(src[at + i]);
      else
        f32_to_bf16_n(src + at, buf, static_cast<size_t>(len));
      std::memcpy(dst + 2 * at, buf, static_cast<size_t>(len) * 2);
    });
    return;
  }
  const BlockCodec& c = codec_of(t, "quantize_row");
  float sum_x2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(src[i]))
      fail("ggml", "quantize_row: value {} is {} (only finite values can be encoded)", i, src[i]);
    sum_x2 += src[i] * src[i];
  }
  if (importance)
    for (int64_t i = 0; i < n; ++i)
      if (!(importance[i] >= 0) || !std::isfinite(importance[i]))
        fail("ggml", "quantize_row: importance {} is {} (must be finite and >= 0)", i,
             importance[i]);
  const float row_sigma2 = n > 0 ? sum_x2 / static_cast<float>(n) : 0.f;
  const int bv = block_values(t), bb = block_bytes(t);
  std::vector<float> check(static_cast<size_t>(bv));
  for (int64_t b = 0; b < n / bv; ++b) {
    const float* imp = importance ? importance + b * bv : nullptr;
    if (imp && !usable_weights(imp, bv, c.weight_group)) imp = nullptr;
    c.encode(src + b * bv, imp, row_sigma2, dst + b * bb);
    // Values so large that a scale overflows fp16 (llama.cpp would store inf) are refused.
    c.decode(dst + b * bb, check.data());
    for (float v : check)
      if (!std::isfinite(v))
        fail("ggml",
             "quantize_row: block {} (values {} .. {}) exceeds the range of {}'s fp16 scales", b,
             b * bv, b * bv + bv - 1, type_name(t));
  }
}

void block_grid(GgmlType t, const uint8_t* block, float* scale, float* offset) {
  codec_of(t, "block_grid").grid(block, scale, offset);
}

int code_levels(GgmlType t) { return codec_of(t, "code_levels").levels; }

const float* code_table(GgmlType t) { return codec_of(t, "code_table").table; }

void get_codes(GgmlType t, const uint8_t* block, uint8_t* codes) {
  codec_of(t, "get_codes").get_codes(block, codes);
}

void set_codes(GgmlType t, uint8_t* block, const uint8_t* codes) {
  const BlockCodec& c = codec_of(t, "set_codes");
  const int bv = block_values(t);
  for (int i = 0; i < bv; ++i)
    if (codes[i] >= c.levels)
      fail("ggml", "set_codes: code {} of value {} is outside {}'s 0 .. {}", codes[i], i,
           type_name(t), c.levels - 1);
  c.set_codes(block, codes);
}

}  // namespace lowbit::gguf
