#include "lowbit/ops/norm.h"

#include <cmath>
#include <cstddef>

namespace lowbit::ops {

void rmsnorm(const float* x, const float* weight, float* y, int n_rows, int dim, float eps) {
#pragma omp parallel for schedule(static) if (n_rows > 1)
  for (int r = 0; r < n_rows; ++r) {
    const float* xr = x + static_cast<size_t>(r) * dim;
    float* yr = y + static_cast<size_t>(r) * dim;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int i = 0; i < dim; ++i) ss += xr[i] * xr[i];
    const float scale = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
#pragma omp simd
    for (int i = 0; i < dim; ++i) yr[i] = xr[i] * scale * weight[i];
  }
}

}  // namespace lowbit::ops
