#include "lowbit/formats/group_quant.h"

#include <algorithm>
#include <cmath>

#include "lowbit/formats/minifloat.h"

namespace lowbit {

const float kNF4Codebook[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

float code_max(WeightType t) {
  switch (t) {
    case WeightType::kNF4:
      return 1.0f;
    case WeightType::kFP4:
      return kE2M1.max_finite;
    case WeightType::kFP8E4M3:
      return kE4M3.max_finite;
    case WeightType::kFP8E5M2:
      return kE5M2.max_finite;
    case WeightType::kInt:
    case WeightType::kGgml:  // per-value grids: formats/ggml_blocks.h
      break;
  }
  return 255.0f;
}

float code_value(WeightType t, uint8_t q) {
  switch (t) {
    case WeightType::kNF4:
      return kNF4Codebook[q & 15];
    case WeightType::kFP4:
      return fp4_e2m1_to_f32(q & 15);
    case WeightType::kFP8E4M3:
      return fp8_e4m3_to_f32(q);
    case WeightType::kFP8E5M2:
      return fp8_e5m2_to_f32(q);
    case WeightType::kInt:
    case WeightType::kGgml:
      break;
  }
  return static_cast<float>(q);
}

namespace {

// Smallest code of a kInt scheme: 1 for the clip variant (codes −(2^(b−1)−1)..2^(b−1)−1 around
// zero 2^(b−1)), else 0.
int int_minq(const QuantScheme& s) { return s.sym && s.int4_clip ? 1 : 0; }

GroupParams fit_int(const QuantScheme& s, float xmin, float xmax) {
  const int maxq = int_maxq(s);
  GroupParams p;
  if (s.sym) {
    float amax = std::max(std::fabs(xmin), std::fabs(xmax));
    if (amax == 0) amax = 1;  // all-zero group: GPTQ's range [-1, 1]
    const int half = 1 << (s.bits - 1);
    p.scale = round_scale_up(s.scale_type, s.int4_clip ? amax / static_cast<float>(half - 1)
                                                       : 2 * amax / static_cast<float>(maxq));
    p.zero = static_cast<float>(half);
    return p;
  }
  // GPTQ asym: the range always contains 0, so that 0 is exactly representable.
  xmin = std::min(xmin, 0.0f);
  xmax = std::max(xmax, 0.0f);
  if (xmin == 0 && xmax == 0) {
    xmin = -1;
    xmax = 1;
  }
  p.scale = round_scale_up(s.scale_type, (xmax - xmin) / static_cast<float>(maxq));
  p.zero = std::clamp(std::nearbyint(-xmin / p.scale), 0.0f, static_cast<float>(maxq));
  if (s.zero_from_one && p.zero < 1) {
    p.scale = round_scale_up(s.scale_type, std::max(xmax / static_cast<float>(maxq - 1), -xmin));
    p.zero = 1;
  }
  return p;
}

// Index of the nearest entry of an ascending table (ties to the lower entry).
int nearest_index(const float* table, int n, float x) {
  const float* it = std::lower_bound(table, table + n, x);
  if (it == table) return 0;
  if (it == table + n) return n - 1;
  const int hi = static_cast<int>(it - table);
  return (x - table[hi - 1] <= table[hi] - x) ? hi - 1 : hi;
}

}  // namespace

GroupParams fit_group(const QuantScheme& s, const float* w, int n, float clip) {
  float xmin = 0, xmax = 0;
  if (n > 0) {
    const auto [lo, hi] = std::minmax_element(w, w + n);
    xmin = *lo * clip;
    xmax = *hi * clip;
  }
  if (s.type == WeightType::kInt) return fit_int(s, xmin, xmax);
  float amax = std::max(std::fabs(xmin), std::fabs(xmax));
  GroupParams p;
  p.scale = amax == 0 ? 1.0f : round_scale_up(s.scale_type, amax / code_max(s.type));
  p.zero = 0;
  return p;
}

GroupParams fit_group_clamped(const QuantScheme& s, const float* w, int n, float ratio) {
  if (s.type != WeightType::kInt || n <= 0) return fit_group(s, w, n, ratio);
  const auto [lo, hi] = std::minmax_element(w, w + n);
  const float bound = ratio * std::max(std::fabs(*lo), std::fabs(*hi));
  return fit_int(s, std::max(*lo, -bound), std::min(*hi, bound));
}

uint8_t quantize_value(const QuantScheme& s, const GroupParams& p, float w) {
  const float x = w / p.scale;
  switch (s.type) {
    case WeightType::kInt: {
      const float q = std::nearbyint(x) + p.zero;
      const float lo = static_cast<float>(int_minq(s)), hi = static_cast<float>(int_maxq(s));
      return static_cast<uint8_t>(std::isnan(q) ? p.zero : std::clamp(q, lo, hi));
    }
    case WeightType::kNF4:
      return static_cast<uint8_t>(nearest_index(kNF4Codebook, 16, std::isnan(x) ? 0.0f : x));
    case WeightType::kFP4:
      return f32_to_fp4_e2m1(x);
    case WeightType::kFP8E4M3:
      return f32_to_fp8_e4m3(x);
    case WeightType::kFP8E5M2:
      return f32_to_fp8_e5m2(x);
    case WeightType::kGgml:  // never per group: the block's own grid (quant/algo/gptq.cpp)
      break;
  }
  return 0;
}

float dequantize_value(const QuantScheme& s, const GroupParams& p, uint8_t q) {
  if (s.type == WeightType::kInt) return p.scale * (static_cast<float>(q) - p.zero);
  return p.scale * code_value(s.type, q);
}

}  // namespace lowbit
