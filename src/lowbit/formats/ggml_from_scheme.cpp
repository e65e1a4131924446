#include "lowbit/formats/ggml_from_scheme.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/util/error.h"
#include "lowbit/util/half.h"

namespace lowbit {

using gguf::GgmlType;

namespace {

bool f16_exact(float v) { return f16_to_f32(f32_to_f16(v)) == v; }

void put_f16(uint8_t* at, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(at, &h, 2);
}

}  // namespace

std::optional<GgmlType> ggml_type_of(const QuantizedWeight& w) {
  const QuantScheme& s = w.scheme;
  if (s.type == WeightType::kGgml) return s.ggml;
  if (s.type != WeightType::kInt || (s.bits != 4 && s.bits != 8)) return std::nullopt;
  const int gs = s.group_size > 0 ? s.group_size : w.in;
  if (gs % 32 != 0 || w.in % 32 != 0) return std::nullopt;
  for (int c = 0; c < w.in; ++c)
    if (w.g_idx[static_cast<size_t>(c)] != c / gs) return std::nullopt;  // act-order
  for (const GroupParams& p : w.params)
    if (!f16_exact(p.scale)) return std::nullopt;
  if (s.bits == 8) return s.sym ? std::optional(GgmlType::kQ8_0) : std::nullopt;
  return s.sym ? GgmlType::kQ4_0 : GgmlType::kQ4_1;
}

std::vector<uint8_t> ggml_blocks_of(const QuantizedWeight& w, GgmlType t, double* max_error) {
  const std::optional<GgmlType> own = ggml_type_of(w);
  if (!own || *own != t)
    fail("gguf", "{} weights are not {} blocks", scheme_name(w.scheme), gguf::type_name(t));
  if (w.scheme.type == WeightType::kGgml) {
    if (max_error) *max_error = 0;
    return w.blocks;
  }
  const size_t bb = static_cast<size_t>(gguf::block_bytes(t));
  const size_t row_bytes = gguf::tensor_bytes(t, static_cast<uint64_t>(w.in));
  const int blocks_per_row = w.in / 32;
  std::vector<uint8_t> out(static_cast<size_t>(w.out) * row_bytes);
  for (int o = 0; o < w.out; ++o) {
    for (int b = 0; b < blocks_per_row; ++b) {
      uint8_t* blk = &out[static_cast<size_t>(o) * row_bytes + static_cast<size_t>(b) * bb];
      const int c0 = b * 32;
      const GroupParams& p =
          w.params[static_cast<size_t>(o) * w.n_groups + static_cast<size_t>(w.g_idx[c0])];
      put_f16(blk, p.scale);  // d: the first field of q4_0, q4_1 and q8_0
      if (t == GgmlType::kQ4_1) put_f16(blk + 2, -p.scale * p.zero);  // m
      // q4_0 codes are q + 8 and q8_0 codes q + 128 on the block grid: lowbit's symmetric codes
      // (zero 2^(bits−1)) as they are; q4_1's codes are lowbit's asymmetric codes.
      gguf::set_codes(t, blk, &w.q[static_cast<size_t>(o) * w.in + c0]);
    }
  }
  if (max_error) {
    const std::vector<float> ref = w.dequantize();
    std::vector<float> row(static_cast<size_t>(w.in));
    double m = 0;
    for (int o = 0; o < w.out; ++o) {
      gguf::dequantize_row(t, &out[static_cast<size_t>(o) * row_bytes], row.data(), w.in);
      for (int c = 0; c < w.in; ++c)
        m = std::max(m, std::fabs(double(row[static_cast<size_t>(c)]) -
                                  ref[static_cast<size_t>(o) * w.in + c]));
    }
    *max_error = m;
  }
  return out;
}

}  // namespace lowbit
