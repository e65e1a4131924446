#include "lowbit/ops/activation.h"

#include <cmath>

#include "lowbit/ops/vec_math.h"

namespace lowbit::ops {

void swiglu(float* gate, const float* up, size_t n) {
  // Blocks of 1024 (a multiple of 16) so each thread's slice starts on a vector boundary.
  constexpr size_t kBlock = 1024;
  const long long blocks = static_cast<long long>((n + kBlock - 1) / kBlock);
#pragma omp parallel for schedule(static) if (n > 16384)
  for (long long b = 0; b < blocks; ++b) {
    const size_t lo = static_cast<size_t>(b) * kBlock;
    const size_t hi = lo + kBlock < n ? lo + kBlock : n;
#if defined(__AVX512F__)
    // silu(g)·up = g / (1 + exp(-g)) · up; g → -inf gives exp = inf and g/inf = -0.
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = lo; i < hi; i += 16) {
      const __mmask16 m = lanes16(hi - i);
      const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
      const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
      const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
      const __m512 h = _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u);
      _mm512_mask_storeu_ps(gate + i, m, h);
    }
#else
    for (size_t i = lo; i < hi; ++i) {
      const float g = gate[i];
      gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
#endif
  }
}

}  // namespace lowbit::ops
