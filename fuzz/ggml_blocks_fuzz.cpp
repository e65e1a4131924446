// libFuzzer target: arbitrary bytes as blocks of a ggml type (formats/ggml_blocks.h), as a GGUF
// file from a stranger would hold them. Byte 0 picks the type, byte 1 whether the re-encode uses
// importance; the rest are whole blocks. Decoding must accept any bytes; for a quantized type each
// block's grid must reproduce its decoded values exactly, get_codes must stay below code_levels and
// set_codes(get_codes) must leave the block unchanged; re-encoding the decoded values either works
// or throws lowbit::Error (non-finite values), and nothing else may escape.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "lowbit/formats/ggml_blocks.h"
#include "lowbit/util/error.h"

namespace {

using lowbit::gguf::GgmlType;

constexpr GgmlType kTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16,
                               GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                               GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ4_K,
                               GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kIQ4_NL};

bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace gg = lowbit::gguf;
  if (size < 2) return 0;
  const GgmlType t = kTypes[data[0] % (sizeof(kTypes) / sizeof(kTypes[0]))];
  const bool with_importance = (data[1] & 1) != 0;
  const int bv = gg::block_values(t), bb = gg::block_bytes(t);
  const size_t blocks = (size - 2) / static_cast<size_t>(bb);
  if (blocks == 0) return 0;
  const int64_t n = static_cast<int64_t>(blocks) * bv;
  std::vector<uint8_t> bytes(data + 2, data + 2 + blocks * static_cast<size_t>(bb));
  std::vector<float> y(static_cast<size_t>(n));
  gg::dequantize_row(t, bytes.data(), y.data(), n);
  if (gg::is_quantized(t)) {
    const int levels = gg::code_levels(t);
    const float* table = gg::code_table(t);
    std::vector<float> scale(static_cast<size_t>(bv)), offset(static_cast<size_t>(bv));
    std::vector<uint8_t> codes(static_cast<size_t>(bv));
    for (size_t b = 0; b < blocks; ++b) {
      uint8_t* blk = bytes.data() + b * static_cast<size_t>(bb);
      const std::vector<uint8_t> orig(blk, blk + bb);
      gg::get_codes(t, blk, codes.data());
      gg::block_grid(t, blk, scale.data(), offset.data());
      for (int i = 0; i < bv; ++i) {
        const size_t k = static_cast<size_t>(i);
        if (codes[k] >= levels) std::abort();
        const float level = table ? table[codes[k]] : static_cast<float>(codes[k]);
        // inf·0 and inf − inf make NaN on one side only when a scale field is inf: compare
        // finite grids only.
        if (!std::isfinite(scale[k]) || !std::isfinite(offset[k])) continue;
        if (!same(scale[k] * level + offset[k], y[b * static_cast<size_t>(bv) + k])) std::abort();
      }
      gg::set_codes(t, blk, codes.data());
      if (std::memcmp(blk, orig.data(), static_cast<size_t>(bb)) != 0) std::abort();
    }
  }
  // Re-encode what was decoded (importance from the decoded magnitudes).
  std::vector<float> imp(static_cast<size_t>(n));
  for (size_t i = 0; i < imp.size(); ++i) imp[i] = std::isfinite(y[i]) ? std::fabs(y[i]) : 0.f;
  std::vector<uint8_t> again(gg::tensor_bytes(t, static_cast<uint64_t>(n)));
  try {
    gg::quantize_row(t, y.data(), again.data(), n, with_importance ? imp.data() : nullptr);
  } catch (const lowbit::Error&) {
    return 0;  // non-finite values
  }
  std::vector<float> back(static_cast<size_t>(n));
  gg::dequantize_row(t, again.data(), back.data(), n);
  if (gg::is_quantized(t))
    for (float v : back)
      if (std::isnan(v)) std::abort();  // finite inputs never encode to NaN
  return 0;
}
