#include "lowbit/ops/activation.h"

#include <cmath>

namespace lowbit::ops {

void swiglu(float* gate, const float* up, size_t n) {
  const long long count = static_cast<long long>(n);
#pragma omp parallel for simd schedule(static) if (count > 16384)
  for (long long i = 0; i < count; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

}  // namespace lowbit::ops
