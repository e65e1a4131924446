#include "lowbit/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lowbit/kernels/blas.h"
#include "lowbit/ops/vec_math.h"
#include "lowbit/util/half.h"
#include "lowbit/util/simd.h"

// The vector decode kernel needs masked 16-bit loads (AVX-512 BW/VL) besides AVX-512F.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define LOWBIT_ATTN_AVX512 1
#endif

namespace lowbit::ops {

namespace {

// ALiBi: row[j] += slope · (j − p) for j < len (p: the query's position).
void add_alibi_scalar(float* row, int len, int p, float slope) {
  for (int j = 0; j < len; ++j) row[j] += slope * static_cast<float>(j - p);
}

void add_alibi(float* row, int len, int p, float slope) {
#if defined(__AVX512F__)
  const __m512 s = _mm512_set1_ps(slope);
  // j − p for 16 keys at a time: exact in fp32 below 2^24.
  __m512 rel = _mm512_add_ps(_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                             _mm512_set1_ps(static_cast<float>(-p)));
  for (int j = 0; j < len; j += 16) {
    const __mmask16 m = lanes16(static_cast<size_t>(len - j));
    const __m512 r = _mm512_maskz_loadu_ps(m, row + j);
    _mm512_mask_storeu_ps(row + j, m, _mm512_fmadd_ps(rel, s, r));
    rel = _mm512_add_ps(rel, _mm512_set1_ps(16.0f));
  }
#else
  add_alibi_scalar(row, len, p, slope);
#endif
}

// Softmax with std::exp, for the scalar reference.
void softmax_scalar(float* x, size_t n) {
  const float mx = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  const float inv = 1.0f / sum;
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

// Prefill (many queries): per head, scores S = Q_h K_hᵀ and output O_h = softmax(S) V_h as two
// BLAS GEMMs over strided views of q and the fp32 keys/values (row stride kv_stride); the causal
// mask, ALiBi biases and softmax in between.
void attention_gemm(const float* q, const float* k, const float* v, int kv_stride, float* out,
                    int n, int pos0, int n_heads, int n_kv_heads, int head_dim,
                    const float* alibi) {
  const int group = n_heads / n_kv_heads;
  const int q_stride = n_heads * head_dim;
  const int len = pos0 + n;  // keys visible to the last query
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> scores(static_cast<size_t>(n) * len);
  for (int h = 0; h < n_heads; ++h) {
    const float* qh = q + static_cast<size_t>(h) * head_dim;
    const size_t kv_off = static_cast<size_t>(h / group) * head_dim;
    kernels::sgemm(false, true, n, len, head_dim, scale, qh, q_stride, k + kv_off, kv_stride, 0.0f,
                   scores.data(), len);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; ++t) {
      float* row = scores.data() + static_cast<size_t>(t) * len;
      const int visible = pos0 + t + 1;
      if (alibi) add_alibi(row, visible, pos0 + t, alibi[h]);
      softmax(row, static_cast<size_t>(visible));
      std::fill(row + visible, row + len, 0.0f);  // causal mask
    }
    kernels::sgemm(false, false, n, head_dim, len, 1.0f, scores.data(), len, v + kv_off, kv_stride,
                   0.0f, out + static_cast<size_t>(h) * head_dim, q_stride);
  }
}

// Prefill over a half cache: rows 0..len-1 of K and V converted to fp32 once (a scratch buffer
// kept per thread), then the fp32 GEMM path.
void attention_gemm_half(const float* q, const uint16_t* k, const uint16_t* v, KvKind kind,
                         float* out, int n, int pos0, int n_heads, int n_kv_heads, int head_dim,
                         const float* alibi) {
  const size_t kv_dim = static_cast<size_t>(n_kv_heads) * head_dim;
  const int len = pos0 + n;
  thread_local std::vector<float> buf;
  const size_t count = static_cast<size_t>(len) * kv_dim;
  if (buf.size() < 2 * count) buf.resize(2 * count);
  float* kf = buf.data();
  float* vf = buf.data() + count;
#pragma omp parallel for schedule(static) if (count >= (1 << 16))
  for (int j = 0; j < len; ++j) {
    const size_t off = static_cast<size_t>(j) * kv_dim;
    if (kind == KvKind::kF16) {
      f16_to_f32_n(k + off, kf + off, kv_dim);
      f16_to_f32_n(v + off, vf + off, kv_dim);
    } else {
      bf16_to_f32_n(k + off, kf + off, kv_dim);
      bf16_to_f32_n(v + off, vf + off, kv_dim);
    }
  }
  attention_gemm(q, kf, vf, static_cast<int>(kv_dim), out, n, pos0, n_heads, n_kv_heads, head_dim,
                 alibi);
}

#if defined(LOWBIT_ATTN_AVX512)
// Mask of the first `left` lanes (none when left ≤ 0).
inline __mmask16 mask_left(int left) {
  return left <= 0 ? static_cast<__mmask16>(0) : lanes16(static_cast<size_t>(left));
}

// 16 cache elements from base[idx..] as fp32 (masked-off lanes read as 0 and touch no memory).
template <KvKind K>
inline __m512 load_kv(const void* base, size_t idx, __mmask16 m) {
  if constexpr (K == KvKind::kF32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(base) + idx);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + idx);
    if constexpr (K == KvKind::kF16) {
      return _mm512_cvtph_ps(h);
    } else {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}

// q · cache[off .. off+head_dim).
template <KvKind K>
inline float dot_kv_vec(const float* q, const void* k, size_t off, int head_dim) {
  __m512 acc = _mm512_setzero_ps();
  for (int d = 0; d < head_dim; d += 16) {
    const __mmask16 m = mask_left(head_dim - d);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), load_kv<K>(k, off + d, m), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

// out[0..head_dim) = Σ_j p[j] · v[j·stride + off ..]; 64 columns (4 registers) per pass.
template <KvKind K>
inline void weighted_sum_kv_vec(const float* p, const void* v, size_t off, size_t stride, int len,
                                int head_dim, float* out) {
  for (int d0 = 0; d0 < head_dim; d0 += 64) {
    const __mmask16 m0 = mask_left(head_dim - d0), m1 = mask_left(head_dim - d0 - 16);
    const __mmask16 m2 = mask_left(head_dim - d0 - 32), m3 = mask_left(head_dim - d0 - 48);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int j = 0; j < len; ++j) {
      const __m512 pj = _mm512_set1_ps(p[j]);
      const size_t base = static_cast<size_t>(j) * stride + off + static_cast<size_t>(d0);
      a0 = _mm512_fmadd_ps(pj, load_kv<K>(v, base, m0), a0);
      if (m1) a1 = _mm512_fmadd_ps(pj, load_kv<K>(v, base + 16, m1), a1);
      if (m2) a2 = _mm512_fmadd_ps(pj, load_kv<K>(v, base + 32, m2), a2);
      if (m3) a3 = _mm512_fmadd_ps(pj, load_kv<K>(v, base + 48, m3), a3);
    }
    _mm512_mask_storeu_ps(out + d0, m0, a0);
    _mm512_mask_storeu_ps(out + d0 + 16, m1, a1);
    _mm512_mask_storeu_ps(out + d0 + 32, m2, a2);
    _mm512_mask_storeu_ps(out + d0 + 48, m3, a3);
  }
}
#endif

// The scalar kernels: the reference, and the decode path without AVX-512.
template <KvKind K>
inline float kv_at(const void* base, size_t i) {
  if constexpr (K == KvKind::kF32) {
    return static_cast<const float*>(base)[i];
  } else if constexpr (K == KvKind::kF16) {
    return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
  } else {
    return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
  }
}

template <KvKind K>
inline float dot_kv_scalar(const float* q, const void* k, size_t off, int head_dim) {
  float s = 0.0f;
  for (int d = 0; d < head_dim; ++d) s += q[d] * kv_at<K>(k, off + d);
  return s;
}

template <KvKind K>
inline void weighted_sum_kv_scalar(const float* p, const void* v, size_t off, size_t stride,
                                   int len, int head_dim, float* out) {
  std::fill(out, out + head_dim, 0.0f);
  for (int j = 0; j < len; ++j) {
    const size_t base = static_cast<size_t>(j) * stride + off;
    for (int d = 0; d < head_dim; ++d) out[d] += p[j] * kv_at<K>(v, base + d);
  }
}

// Decode (few queries): one job per (query, head): scores, ALiBi biases, softmax, weighted sum of
// V, reading the cache rows in their stored type. kVec: the vector kernels (where built), else
// the scalar ones throughout (the reference).
template <KvKind K, bool kVec>
void attention_decode(const float* q, const void* k, const void* v, float* out, int n, int pos0,
                      int n_heads, int n_kv_heads, int head_dim, const float* alibi) {
#if defined(LOWBIT_ATTN_AVX512)
  constexpr bool kUseVec = kVec;
#else
  constexpr bool kUseVec = false;
#endif
  const int group = n_heads / n_kv_heads;
  const size_t q_stride = static_cast<size_t>(n_heads) * head_dim;
  const size_t kv_stride = static_cast<size_t>(n_kv_heads) * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const int total = n * n_heads;
  const long long work = static_cast<long long>(total) * (pos0 + n) * head_dim;
#pragma omp parallel if (work >= (1 << 15))
  {
    std::vector<float> scores(static_cast<size_t>(pos0 + n));
#pragma omp for schedule(dynamic, 4)
    for (int job = 0; job < total; ++job) {
      const int t = job / n_heads;
      const int h = job % n_heads;
      const int len = pos0 + t + 1;  // causal: keys 0..pos0+t
      const float* qh = q + t * q_stride + static_cast<size_t>(h) * head_dim;
      const size_t kv_off = static_cast<size_t>(h / group) * head_dim;
      float* oh = out + t * q_stride + static_cast<size_t>(h) * head_dim;
      if constexpr (kUseVec) {
#if defined(LOWBIT_ATTN_AVX512)
        for (int j = 0; j < len; ++j) {
          scores[static_cast<size_t>(j)] =
              dot_kv_vec<K>(qh, k, static_cast<size_t>(j) * kv_stride + kv_off, head_dim) * scale;
        }
        if (alibi) add_alibi(scores.data(), len, pos0 + t, alibi[h]);
        softmax(scores.data(), static_cast<size_t>(len));
        weighted_sum_kv_vec<K>(scores.data(), v, kv_off, kv_stride, len, head_dim, oh);
#endif
      } else {
        for (int j = 0; j < len; ++j) {
          scores[static_cast<size_t>(j)] =
              dot_kv_scalar<K>(qh, k, static_cast<size_t>(j) * kv_stride + kv_off, head_dim) *
              scale;
        }
        if (alibi) add_alibi_scalar(scores.data(), len, pos0 + t, alibi[h]);
        if constexpr (kVec) {
          softmax(scores.data(), static_cast<size_t>(len));
        } else {
          softmax_scalar(scores.data(), static_cast<size_t>(len));
        }
        weighted_sum_kv_scalar<K>(scores.data(), v, kv_off, kv_stride, len, head_dim, oh);
      }
    }
  }
}

}  // namespace

void kv_store(const float* src, void* dst, KvKind kind, size_t n) {
  if (kind == KvKind::kF32) {
    std::memcpy(dst, src, sizeof(float) * n);
    return;
  }
  uint16_t* d = static_cast<uint16_t*>(dst);
  size_t i = 0;
  if (kind == KvKind::kF16) {
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) {
      const __m256i h =
          _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), h);
    }
#endif
    for (; i < n; ++i) d[i] = f32_to_f16(src[i]);
    return;
  }
#if defined(__AVX512F__)
  // bf16 round to nearest even as f32_to_bf16: u + 0x7fff + lsb, NaN quieted instead.
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  for (; i + 16 <= n; i += 16) {
    const __m512i u = _mm512_castps_si512(_mm512_loadu_ps(src + i));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    const __m512i r = _mm512_mask_or_epi32(rounded, nan, u, _mm512_set1_epi32(0x400000));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i),
                        _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
  }
#endif
  for (; i < n; ++i) d[i] = f32_to_bf16(src[i]);
}

void attention(const float* q, const void* k, const void* v, KvKind kind, float* out, int n,
               int pos0, int n_heads, int n_kv_heads, int head_dim, const float* alibi_slopes) {
  if (n >= 16) {
    if (kind == KvKind::kF32) {
      attention_gemm(q, static_cast<const float*>(k), static_cast<const float*>(v),
                     n_kv_heads * head_dim, out, n, pos0, n_heads, n_kv_heads, head_dim,
                     alibi_slopes);
    } else {
      attention_gemm_half(q, static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), kind,
                          out, n, pos0, n_heads, n_kv_heads, head_dim, alibi_slopes);
    }
    return;
  }
  switch (kind) {
    case KvKind::kF32:
      attention_decode<KvKind::kF32, true>(q, k, v, out, n, pos0, n_heads, n_kv_heads, head_dim,
                                           alibi_slopes);
      break;
    case KvKind::kF16:
      attention_decode<KvKind::kF16, true>(q, k, v, out, n, pos0, n_heads, n_kv_heads, head_dim,
                                           alibi_slopes);
      break;
    case KvKind::kBF16:
      attention_decode<KvKind::kBF16, true>(q, k, v, out, n, pos0, n_heads, n_kv_heads, head_dim,
                                            alibi_slopes);
      break;
  }
}

void attention(const float* q, const float* k, const float* v, float* out, int n, int pos0,
               int n_heads, int n_kv_heads, int head_dim, const float* alibi_slopes) {
  attention(q, k, v, KvKind::kF32, out, n, pos0, n_heads, n_kv_heads, head_dim, alibi_slopes);
}

namespace ref {

void attention(const float* q, const void* k, const void* v, KvKind kind, float* out, int n,
               int pos0, int n_heads, int n_kv_heads, int head_dim, const float* alibi_slopes) {
  switch (kind) {
    case KvKind::kF32:
      attention_decode<KvKind::kF32, false>(q, k, v, out, n, pos0, n_heads, n_kv_heads, head_dim,
                                            alibi_slopes);
      break;
    case KvKind::kF16:
      attention_decode<KvKind::kF16, false>(q, k, v, out, n, pos0, n_heads, n_kv_heads, head_dim,
                                            alibi_slopes);
      break;
    case KvKind::kBF16:
      attention_decode<KvKind::kBF16, false>(q, k, v, out, n, pos0, n_heads, n_kv_heads, head_dim,
                                             alibi_slopes);
      break;
  }
}

}  // namespace ref

std::vector<float> alibi_slopes(int n_heads) {
  // transformers' build_alibi_tensor: closest_power_of_2 = 2 ** floor(log2(n)); base = 2 **
  // (-(2 ** -(log2(closest) - 3))) = 2^(-8/closest) made an fp32 tensor; slopes =
  // pow(base, 1..closest) in fp32; then, for n not a power of two, extra_base = 2^(-8/(2·closest))
  // and its powers 1, 3, 5, ... for the remaining min(closest, n − closest) heads. pow of the fp32
  // base is taken in double and rounded once.
  int closest = 1;
  while (closest <= n_heads / 2) closest *= 2;
  auto powers = [](double exponent_of_two, int count, int first, int step,
                   std::vector<float>& out) {
    const float base = static_cast<float>(std::pow(2.0, exponent_of_two));
    for (int i = 0; i < count; ++i)
      out.push_back(static_cast<float>(std::pow(static_cast<double>(base), first + i * step)));
  };
  std::vector<float> slopes;
  slopes.reserve(static_cast<size_t>(n_heads > 0 ? n_heads : 0));
  if (n_heads <= 0) return slopes;
  powers(-8.0 / closest, closest, 1, 1, slopes);
  if (closest != n_heads)
    powers(-4.0 / closest, std::min(closest, n_heads - closest), 1, 2, slopes);
  return slopes;
}

}  // namespace lowbit::ops
