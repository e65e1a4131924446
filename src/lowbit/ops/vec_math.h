// Vectorized float math for the ops: exp (AVX-512, 16 lanes) and the softmax built on it. Scalar
// std::exp fallbacks keep the code building without AVX-512.
#pragma once

#include <cstddef>

#include "lowbit/util/simd.h"

namespace lowbit::ops {

#if defined(__AVX512F__)
// exp of 16 lanes. x = n·ln2 + r with |r| ≤ ln2/2 (Cody-Waite split of ln2), exp(r) by the
// Cephes degree-6 polynomial, then ·2^n by scalef (which also makes subnormals, 0 and inf).
// Relative error ≤ 1e-7 over [-87, 88] (8.4e-8 measured); x ≤ -104 (and -inf) gives 0, x ≥ 89 gives
// +inf, NaN stays NaN (the clamps use max/min with x second, so a NaN x passes through).
inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// exp of 8 double lanes, relative error < 1e-12 (enough to round the float results computed from
// it correctly): x = n·ln2 + r (two-part ln2), exp(r) by its Taylor series to degree 10, then ·2^n
// by scalef. x ≤ -745 (and -inf) gives 0 or the smallest subnormal, x ≥ 709 gives ~8e307 (finite:
// callers divide by 1 + exp), NaN stays NaN.
inline __m512d exp8d(__m512d x) {
  x = _mm512_max_pd(_mm512_set1_pd(-745.0), x);
  x = _mm512_min_pd(_mm512_set1_pd(709.0), x);
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
  // 1 + r + r²/2! + ... + r^10/10!, Horner from the top.
  __m512d p = _mm512_set1_pd(1.0 / 3628800.0);
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 362880.0));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 40320.0));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 5040.0));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 720.0));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 120.0));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 24.0));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 6.0));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
  return _mm512_scalef_pd(p, n);
}

// Mask of the first `n` (0..16) lanes.
inline __mmask16 lanes16(size_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1u);
}
#endif

// y[i] = exp(x[i]) for i < n; y may equal x.
void vexp(const float* x, float* y, size_t n);

// log(sum(exp(x[i]))) over n ≥ 1 floats, computed as max + log(sum exp(x - max)) with the exp and
// the sum in double precision (exp8d), so an evaluation's NLL does not depend on the ISA.
double log_sum_exp(const float* x, size_t n);

// In place: x[0..n) = exp(x - max) / sum (n ≥ 1).
void softmax(float* x, size_t n);

}  // namespace lowbit::ops
