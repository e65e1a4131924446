#include "lowbit/ops/norm.h"

#include <cmath>
#include <cstddef>

#include "lowbit/util/simd.h"

namespace lowbit::ops {

namespace {

// Sum of squares of x[0..n): 512-bit FMAs with two accumulators (GCC's auto-vectorizer stops at
// 256 bits under -march=native), masked tail.
float sum_squares(const float* x, int n) {
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
    a0 = _mm512_fmadd_ps(x0, x0, a0);
    a1 = _mm512_fmadd_ps(x1, x1, a1);
  }
  for (; i < n; i += 16) {
    const int left = n - i;
    const __mmask16 m = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1u);
    const __m512 x0 = _mm512_maskz_loadu_ps(m, x + i);
    a0 = _mm512_fmadd_ps(x0, x0, a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#else
  float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
  for (int i = 0; i < n; ++i) ss += x[i] * x[i];
  return ss;
#endif
}

#if defined(__AVX512F__)
// The two halves of 16 floats (masked: off lanes read 0) as 8 doubles each.
inline __m512d lo8d(__m512 x) { return _mm512_cvtps_pd(_mm512_castps512_ps256(x)); }
inline __m512d hi8d(__m512 x) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
}
inline __mmask16 mask16(int left) {
  return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
}

// One LayerNorm row, 16 floats per step, all arithmetic in double (two passes for mean and
// variance, then (x − mean)·rstd·w + b rounded once).
template <bool kWeight, bool kBias>
void layernorm_row(const float* x, const float* w, const float* b, float* y, int dim, float eps) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (int i = 0; i < dim; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(mask16(dim - i), x + i);
    s0 = _mm512_add_pd(s0, lo8d(v));
    s1 = _mm512_add_pd(s1, hi8d(v));
  }
  const double mean_d = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / dim;
  const __m512d mean = _mm512_set1_pd(mean_d);
  s0 = _mm512_setzero_pd();
  s1 = _mm512_setzero_pd();
  for (int i = 0; i < dim; i += 16) {
    const __mmask16 m = mask16(dim - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512d d0 = _mm512_maskz_sub_pd(static_cast<__mmask8>(m), lo8d(v), mean);
    const __m512d d1 = _mm512_maskz_sub_pd(static_cast<__mmask8>(m >> 8), hi8d(v), mean);
    s0 = _mm512_fmadd_pd(d0, d0, s0);
    s1 = _mm512_fmadd_pd(d1, d1, s1);
  }
  const double var = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / dim;
  const __m512d rstd = _mm512_set1_pd(1.0 / std::sqrt(var + static_cast<double>(eps)));
  for (int i = 0; i < dim; i += 16) {
    const __mmask16 m = mask16(dim - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    __m512d r0 = _mm512_mul_pd(_mm512_sub_pd(lo8d(v), mean), rstd);
    __m512d r1 = _mm512_mul_pd(_mm512_sub_pd(hi8d(v), mean), rstd);
    if constexpr (kWeight) {
      const __m512 wv = _mm512_maskz_loadu_ps(m, w + i);
      r0 = _mm512_mul_pd(r0, lo8d(wv));
      r1 = _mm512_mul_pd(r1, hi8d(wv));
    }
    if constexpr (kBias) {
      const __m512 bv = _mm512_maskz_loadu_ps(m, b + i);
      r0 = _mm512_add_pd(r0, lo8d(bv));
      r1 = _mm512_add_pd(r1, hi8d(bv));
    }
    const __m512d lo = _mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(r0)));
    const __m512 out =
        _mm512_castpd_ps(_mm512_insertf64x4(lo, _mm256_castps_pd(_mm512_cvtpd_ps(r1)), 1));
    _mm512_mask_storeu_ps(y + i, m, out);
  }
}

template <bool kWeight, bool kBias>
void layernorm_rows(const float* x, const float* w, const float* b, float* y, int n_rows, int dim,
                    float eps) {
#pragma omp parallel for schedule(static) if (n_rows > 1)
  for (int r = 0; r < n_rows; ++r) {
    const size_t off = static_cast<size_t>(r) * dim;
    layernorm_row<kWeight, kBias>(x + off, w, b, y + off, dim, eps);
  }
}
#endif

}  // namespace

void rmsnorm(const float* x, const float* weight, float* y, int n_rows, int dim, float eps) {
#pragma omp parallel for schedule(static) if (n_rows > 1)
  for (int r = 0; r < n_rows; ++r) {
    const float* xr = x + static_cast<size_t>(r) * dim;
    float* yr = y + static_cast<size_t>(r) * dim;
    double ss = sum_squares(xr, dim);
    if (!std::isfinite(ss)) {
      // Values beyond ~1e19 overflow a float sum of squares (the row would become 0): redo it in
      // double, as llama.cpp does; a row holding Inf or NaN stays non-finite and is caught later.
      ss = 0;
      for (int i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    }
    const float scale = static_cast<float>(1.0 / std::sqrt(ss / dim + eps));
#if defined(__AVX512F__)
    const __m512 s = _mm512_set1_ps(scale);
    for (int i = 0; i < dim; i += 16) {
      const int left = dim - i;
      const __mmask16 m = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1u);
      const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), s);
      _mm512_mask_storeu_ps(yr + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, weight + i)));
    }
#else
#pragma omp simd
    for (int i = 0; i < dim; ++i) yr[i] = xr[i] * scale * weight[i];
#endif
  }
}

namespace ref {

void layernorm(const float* x, const float* weight, const float* bias, float* y, int n_rows,
               int dim, float eps) {
  for (int r = 0; r < n_rows; ++r) {
    const float* xr = x + static_cast<size_t>(r) * dim;
    float* yr = y + static_cast<size_t>(r) * dim;
    double sum = 0;
    for (int i = 0; i < dim; ++i) sum += xr[i];
    const double mean = sum / dim;
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += (xr[i] - mean) * (xr[i] - mean);
    const double rstd = 1.0 / std::sqrt(ss / dim + static_cast<double>(eps));
    for (int i = 0; i < dim; ++i) {
      double v = (xr[i] - mean) * rstd;
      if (weight) v *= weight[i];
      if (bias) v += bias[i];
      yr[i] = static_cast<float>(v);
    }
  }
}

}  // namespace ref

void layernorm(const float* x, const float* weight, const float* bias, float* y, int n_rows,
               int dim, float eps) {
#if defined(__AVX512F__)
  if (weight && bias) {
    layernorm_rows<true, true>(x, weight, bias, y, n_rows, dim, eps);
  } else if (weight) {
    layernorm_rows<true, false>(x, weight, bias, y, n_rows, dim, eps);
  } else if (bias) {
    layernorm_rows<false, true>(x, weight, bias, y, n_rows, dim, eps);
  } else {
    layernorm_rows<false, false>(x, weight, bias, y, n_rows, dim, eps);
  }
#else
#pragma omp parallel for schedule(static) if (n_rows > 1)
  for (int r = 0; r < n_rows; ++r) {
    const size_t off = static_cast<size_t>(r) * dim;
    ref::layernorm(x + off, weight, bias, y + off, 1, dim, eps);
  }
#endif
}

}  // namespace lowbit::ops
