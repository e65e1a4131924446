// RMSNorm: y = x / sqrt(mean(x²) + eps) · weight, row by row.
#pragma once

namespace lowbit::ops {

void rmsnorm(const float* x, const float* weight, float* y, int n_rows, int dim, float eps);

}  // namespace lowbit::ops
