// Normalizations, row by row. RMSNorm: y = x / sqrt(mean(x²) + eps) · weight. LayerNorm
// (torch.nn.LayerNorm): y = (x − mean) / sqrt(var + eps) · weight + bias, var the biased variance.
#pragma once

namespace lowbit::ops {

void rmsnorm(const float* x, const float* weight, float* y, int n_rows, int dim, float eps);

// `weight` nullptr: no affine weight (1); `bias` nullptr: no bias. Mean and variance are taken in
// double, so rows of values up to ~1e30 (and beyond, up to FLT_MAX) normalize correctly; a row
// holding Inf or NaN gives NaN. y may equal x.
void layernorm(const float* x, const float* weight, const float* bias, float* y, int n_rows,
               int dim, float eps);

namespace ref {
// Scalar reference of layernorm (double throughout, rounded once).
void layernorm(const float* x, const float* weight, const float* bias, float* y, int n_rows,
               int dim, float eps);
}  // namespace ref

}  // namespace lowbit::ops
