// The quantized kernels of one instruction set, as a table of plain functions. Each instruction
// set (scalar reference, AVX2, AVX-512 VNNI) lives in its own file compiled with its own flags;
// cpu_dispatch.h picks the best table the CPU runs. Every table computes the same thing as the
// scalar reference (kernels/reference_kernels.cpp), which the tests check on random shapes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/kernels/packed_weight.h"

namespace lowbit::kernels {

// Activations quantized to int8 per row and per block of 32 columns (in the weight's packed
// column order, zero-padded to k_pad): x[t][k] ≈ d[t][b] · q[t][k], b = k / 32.
struct Int8Acts {
  int m = 0, k_pad = 0;
  const int8_t* q = nullptr;    // [m][k_pad]
  const float* d = nullptr;     // [m][k_pad / 32]
  const float* dsum = nullptr;  // [m][k_pad / 32]: d · Σ_k q (for the zero-point term)
};

// Activations kept in fp32, in packed column order, zero-padded to k_pad.
struct F32Acts {
  int m = 0, k_pad = 0;
  const float* x = nullptr;     // [m][k_pad]
  const float* gsum = nullptr;  // [m][n_groups]: Σ of x over each weight group (zero-point term)
};

// C[i][j] = Σ_k A[i][k] · B[j][k] (+ C[i][j] when accumulate) for i < m, j < n; A [m][lda] and
// B [n][ldb] bf16 row-major, products and sums in fp32.
using Bf16GemmFn = void (*)(int m, int n, int k, const uint16_t* a, size_t lda, const uint16_t* b,
                            size_t ldb, float* c, size_t ldc, bool accumulate);

struct KernelTable {
  const char* name;
  // y[t·ldy + o] = Σ_k W[o][k] x[t][k] for every row t < m and output o in row tiles
  // [tile0, tile1) (rows beyond w.out are not written). kInt4 / kInt8 weights.
  void (*gemm_int8)(const PackedWeight& w, const Int8Acts& a, float* y, int ldy, int tile0,
                    int tile1);
  // The same with fp32 activations (weights dequantized in registers); kInt4/kInt8/kLut4.
  void (*gemm_f32)(const PackedWeight& w, const F32Acts& a, float* y, int ldy, int tile0,
                   int tile1);
  // Quantizes rows [r0, r1) of x [m][k_pad] into q/d/dsum (laid out as in Int8Acts).
  void (*quantize_int8)(const float* x, int k_pad, int8_t* q, float* d, float* dsum, int r0,
                        int r1);
  // y[o] = W[o] · x for o in [r0, r1); kBF16 weights, one row of activations.
  void (*gemv_bf16)(const PackedWeight& w, const float* x, float* y, int r0, int r1);
  // bf16 × bf16 (AVX512-BF16 vdpbf16ps); nullptr where the CPU has no bf16 dot product: callers
  // then widen to fp32 (BLAS sgemm, gemv_bf16).
  Bf16GemmFn gemm_bf16;
};

// The AVX512-BF16 implementation when compiled in (the CPU check is cpu_dispatch's).
Bf16GemmFn avx512bf16_gemm();

const KernelTable& reference_kernels();
const KernelTable* avx2_kernels();    // nullptr when not compiled in
const KernelTable* avx512_kernels();  // nullptr when not compiled in

}  // namespace lowbit::kernels
