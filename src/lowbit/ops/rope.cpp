#include "lowbit/ops/rope.h"

#include <cmath>
#include <numbers>

#include "lowbit/util/simd.h"

namespace lowbit::ops {

std::vector<float> rope_inv_freq(const ModelConfig& cfg) {
  const int dims = cfg.rope_dims > 0 ? cfg.rope_dims : cfg.head_dim;
  const int half = dims / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    // As Hugging Face computes it: base ** (arange(0, d, 2) / d), in fp32.
    const float expo = static_cast<float>(2 * i) / static_cast<float>(dims);
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(cfg.rope_theta, expo);
  }
  const RopeScaling& rs = cfg.rope_scaling;
  if (rs.type == "factors" && rs.freq_factors.size() == inv.size()) {
    for (size_t i = 0; i < inv.size(); ++i) inv[i] /= rs.freq_factors[i];
  }
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

namespace {

// cos/sin of pos · inv_freq[i] for i < half, in fp32 as Hugging Face computes them (the angle is
// the fp32 product, then cos and sin of it). Rows of 512 on the stack (head_dim ≤ 1024 needs no
// more), a heap buffer beyond.
class Angles {
 public:
  Angles(int half, int pos, const float* inv_freq) {
    if (half > kStack) {
      heap_.resize(2 * static_cast<size_t>(half));
      cs_ = heap_.data();
      sn_ = cs_ + half;
    }
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos) * inv_freq[i];
      cs_[i] = std::cos(angle);
      sn_[i] = std::sin(angle);
    }
  }
  Angles(const Angles&) = delete;
  Angles& operator=(const Angles&) = delete;
  const float* cs() const { return cs_; }
  const float* sn() const { return sn_; }

 private:
  static constexpr int kStack = 512;
  float buf_[2 * kStack];
  std::vector<float> heap_;
  float* cs_ = buf_;
  float* sn_ = buf_ + kStack;
};

// Pairs (i, i + half) of one head.
inline void rotate_half(float* v, int half, const float* cs, const float* sn) {
#pragma omp simd
  for (int i = 0; i < half; ++i) {
    const float a = v[i], b = v[i + half];
    v[i] = a * cs[i] - b * sn[i];
    v[i + half] = b * cs[i] + a * sn[i];
  }
}

#if !defined(__AVX512F__)
// Pairs (2i, 2i + 1) of one head, scalar.
inline void rotate_pairs_scalar(float* v, int half, const float* cs, const float* sn) {
  for (int i = 0; i < half; ++i) {
    const float a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = a * cs[i] - b * sn[i];
    v[2 * i + 1] = b * cs[i] + a * sn[i];
  }
}
#endif

}  // namespace

namespace ref {

void rope(float* x, int n_heads, int head_dim, int rot_dims, bool interleaved, int pos,
          const float* inv_freq) {
  const int half = rot_dims / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos) * inv_freq[i];
      const float c = std::cos(angle), s = std::sin(angle);
      const int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
      const float a = v[i0], b = v[i1];
      v[i0] = a * c - b * s;
      v[i1] = b * c + a * s;
    }
  }
}

}  // namespace ref

void rope(float* x, int n_heads, int head_dim, int rot_dims, bool interleaved, int pos,
          const float* inv_freq) {
  const int half = rot_dims / 2;
  // cos/sin once per position, shared by all heads.
  const Angles ang(half, pos, inv_freq);
  const float* cs = ang.cs();
  const float* sn = ang.sn();
  if (!interleaved) {
    for (int h = 0; h < n_heads; ++h)
      rotate_half(x + static_cast<size_t>(h) * head_dim, half, cs, sn);
    return;
  }
#if defined(__AVX512F__)
  // 8 pairs per vector: out = v·(c0 c0 c1 c1 ..) + swap(v)·(-s0 s0 -s1 s1 ..), swap exchanging
  // the two elements of each pair. The expanded cos/sin rows are built once for all heads.
  const int groups = (half + 7) / 8;
  constexpr int kStackGroups = 64;  // rot_dims ≤ 1024 on the stack
  float stack[2 * 16 * kStackGroups];
  std::vector<float> heap;
  float* cv = stack;
  if (groups > kStackGroups) {
    heap.resize(2 * 16 * static_cast<size_t>(groups));
    cv = heap.data();
  }
  float* sv = cv + 16 * static_cast<size_t>(groups);
  const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  // The sign bit of the even lanes.
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi64(0x80000000LL));
  for (int g = 0; g < groups; ++g) {
    const int left = half - 8 * g;
    const __mmask16 m8 =
        left >= 8 ? static_cast<__mmask16>(0xff) : static_cast<__mmask16>((1u << left) - 1u);
    const __m512 c = _mm512_maskz_loadu_ps(m8, cs + 8 * g);
    const __m512 s = _mm512_maskz_loadu_ps(m8, sn + 8 * g);
    _mm512_storeu_ps(cv + 16 * g, _mm512_permutexvar_ps(dup, c));
    _mm512_storeu_ps(sv + 16 * g, _mm512_xor_ps(_mm512_permutexvar_ps(dup, s), sign));
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim;
    for (int g = 0; g < groups; ++g) {
      const int left = rot_dims - 16 * g;
      const __mmask16 m =
          left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
      const __m512 a = _mm512_maskz_loadu_ps(m, v + 16 * g);
      const __m512 sw = _mm512_permute_ps(a, 0xB1);  // (v1 v0 v3 v2 ..)
      const __m512 r = _mm512_add_ps(_mm512_mul_ps(a, _mm512_loadu_ps(cv + 16 * g)),
                                     _mm512_mul_ps(sw, _mm512_loadu_ps(sv + 16 * g)));
      _mm512_mask_storeu_ps(v + 16 * g, m, r);
    }
  }
#else
  for (int h = 0; h < n_heads; ++h)
    rotate_pairs_scalar(x + static_cast<size_t>(h) * head_dim, half, cs, sn);
#endif
}

void rope(float* x, int n_heads, int head_dim, int pos, const float* inv_freq) {
  rope(x, n_heads, head_dim, head_dim, false, pos, inv_freq);
}

}  // namespace lowbit::ops
