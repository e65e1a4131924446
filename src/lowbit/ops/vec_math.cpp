#include "lowbit/ops/vec_math.h"

#include <algorithm>
#include <cmath>

namespace lowbit::ops {

void vexp(const float* x, float* y, size_t n) {
#if defined(__AVX512F__)
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes16(n - i);
    _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
#else
  for (size_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
#endif
}

double log_sum_exp(const float* x, size_t n) {
#if defined(__AVX512F__)
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes16(n - i);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
  }
  const float mx = _mm512_reduce_max_ps(vmax);
  const __m512d vmx = _mm512_set1_pd(static_cast<double>(mx));
  __m512d vsum = _mm512_setzero_pd();
  for (size_t i = 0; i < n; i += 8) {
    const __mmask8 m = static_cast<__mmask8>(lanes16(std::min<size_t>(n - i, 8)));
    const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i));
    vsum = _mm512_mask_add_pd(vsum, m, vsum, exp8d(_mm512_sub_pd(v, vmx)));
  }
  return static_cast<double>(mx) + std::log(_mm512_reduce_add_pd(vsum));
#else
  const float mx = *std::max_element(x, x + n);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) - mx);
  return static_cast<double>(mx) + std::log(s);
#endif
}

void softmax(float* x, size_t n) {
#if defined(__AVX512F__)
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes16(n - i);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
  }
  const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  __m512 vsum = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes16(n - i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx));
    vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
    _mm512_mask_storeu_ps(x + i, m, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes16(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
#else
  const float mx = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  const float inv = 1.0f / sum;
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
#endif
}

}  // namespace lowbit::ops
