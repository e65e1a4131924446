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

}  // namespace lowbit::ops
