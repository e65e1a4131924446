#include "lowbit/ops/matmul.h"

#include <cblas.h>
#include "lowbit/util/simd.h"

namespace lowbit::ops {

namespace {

inline float dot(const float* a, const float* b, int n) {
  int i = 0;
#if defined(__AVX512F__)
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  for (; i + 64 <= n; i += 64) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), acc2);
    acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), acc3);
  }
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
    i = n;
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
#else
  float s = 0.0f;
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
#endif
}

}  // namespace

void gemv(const float* w, const float* x, float* y, int out, int in) {
  // Threads only pay off once the matrix is large enough (fork/join costs microseconds).
  const bool big = static_cast<long long>(out) * in >= (1 << 16);
#pragma omp parallel for schedule(static) if (big)
  for (int r = 0; r < out; ++r) y[r] = dot(w + static_cast<size_t>(r) * in, x, in);
}

void linear(const Linear& l, const float* x, int n, float* y) {
  if (n == 1) {
    gemv(l.w, x, y, l.out, l.in);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, l.out, l.in, 1.0f, x, l.in, l.w, l.in,
                0.0f, y, l.out);
  }
  if (l.bias != nullptr) {
    for (int t = 0; t < n; ++t) {
      float* row = y + static_cast<size_t>(t) * l.out;
      for (int o = 0; o < l.out; ++o) row[o] += l.bias[o];
    }
  }
}

}  // namespace lowbit::ops
