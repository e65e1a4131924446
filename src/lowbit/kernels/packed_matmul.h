// y = x · Wᵀ for weights in the compute layout (packed_weight.h): prepares the activations once
// (column order, padding, int8 quantization) and runs the kernel table on all threads, each on a
// contiguous range of 16-row tiles (one 64-byte line of output per row and tile: no false
// sharing).
//
// Paths, by weight kind and activation mode:
//  - kInt4/kInt8, int8 activations: the VNNI/AVX2 int8 GEMM for any number of rows (decode and
//    prefill); activations quantized per row and 32-column block (like llama.cpp's Q8_0).
//  - kInt4/kInt8/kLut4, fp32 activations: the register-dequantizing GEMM for up to 3 rows;
//    from 4 rows on, tiles are dequantized to fp32 in chunks and multiplied by BLAS sgemm.
//  - kBF16: a bf16 GEMV for one row; chunks converted to fp32 + sgemm for more.
#pragma once

#include <string>

#include "lowbit/kernels/packed_weight.h"

namespace lowbit::kernels {

// kAuto: int8 activations for integer weights, fp32 for kLut4 (nf4/fp4) and bf16.
enum class ActMode { kAuto, kF32, kInt8 };
ActMode parse_act_mode(const std::string& where, const std::string& name);  // auto|f32|int8
const char* act_mode_name(ActMode m);
// Process-wide default (the CLI's --act); starts as kAuto or LOWBIT_ACT.
void set_act_mode(ActMode m);
ActMode act_mode();

// ys[i][t·out_i + o] = Σ_k x[t][k] · W_i[o][k] for i < count, t < m (x is [m][in], in shared by
// all weights). One parallel region for all kernel-path weights.
void packed_matmul(const PackedWeight* const* ws, float* const* ys, int count, const float* x,
                   int m, ActMode mode = ActMode::kAuto);
inline void packed_matmul(const PackedWeight& w, float* y, const float* x, int m,
                          ActMode mode = ActMode::kAuto) {
  const PackedWeight* ws[] = {&w};
  float* ys[] = {y};
  packed_matmul(ws, ys, 1, x, m, mode);
}

// Rows [tile0·16, tile1·16) ∩ [0, out) dequantized to fp32, in packed column order:
// out[(row − tile0·16) · k_pad + k]. Quantized kinds only.
void dequantize_tiles(const PackedWeight& w, int tile0, int tile1, float* out);

}  // namespace lowbit::kernels
