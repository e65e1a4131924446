#include "lowbit/ops/rope.h"

#include <cmath>
#include <numbers>

namespace lowbit::ops {

std::vector<float> rope_inv_freq(const ModelConfig& cfg) {
  const int half = cfg.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    // As Hugging Face computes it: base ** (arange(0, d, 2) / d), in fp32.
    const float expo = static_cast<float>(2 * i) / static_cast<float>(cfg.head_dim);
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(cfg.rope_theta, expo);
  }
  const RopeScaling& rs = cfg.rope_scaling;
  if (rs.type == "llama3") {
    const double old_ctx = rs.original_max_position_embeddings;
    const double low_wavelen = old_ctx / rs.low_freq_factor;
    const double high_wavelen = old_ctx / rs.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f = static_cast<float>(f / rs.factor);
      } else {
        const double smooth =
            (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = static_cast<float>((1.0 - smooth) * f / rs.factor + smooth * f);
      }
    }
  }
  return inv;
}

void rope(float* x, int n_heads, int head_dim, int pos, const float* inv_freq) {
  const int half = head_dim / 2;
  // cos/sin once per position, shared by all heads.
  float cs[512], sn[512];
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    cs[i] = std::cos(angle);
    sn[i] = std::sin(angle);
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim;
#pragma omp simd
    for (int i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cs[i] - b * sn[i];
      v[i + half] = b * cs[i] + a * sn[i];
    }
  }
}

}  // namespace lowbit::ops
