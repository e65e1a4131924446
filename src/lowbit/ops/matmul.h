// Dense fp32 linear layers: y[n, out] = x[n, in] · W[out, in]ᵀ (+ bias).
// Many rows (prefill) go to BLAS sgemm; one row (decode) uses a bandwidth-bound GEMV threaded
// with OpenMP over output rows. Linears held in a kernel compute layout (Linear::packed: quantized
// or bf16) go to kernels::packed_matmul.
#pragma once

#include "lowbit/model/weights.h"

namespace lowbit::ops {

void linear(const Linear& l, const float* x, int n, float* y);

// Several linear layers reading the same input x[n, in] (q/k/v; gate/up): ys[i] = x · W_iᵀ.
// For decode (n == 1) all of them run in one parallel region (one fork/join, not `count`).
void linear_multi(const Linear* const* ls, float* const* ys, int count, const float* x, int n);

// GEMV: y[out] = W[out, in] · x[in]. Scalar-reference semantics, AVX-512 when available.
void gemv(const float* w, const float* x, float* y, int out, int in);

}  // namespace lowbit::ops
