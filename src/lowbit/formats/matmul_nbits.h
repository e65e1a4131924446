// ONNX Runtime's com.microsoft::MatMulNBits weight layout (a format: how the integers and scales of
// a quantized linear are stored in that operator's inputs), to and from lowbit's QuantizedWeight.
//
// The operator computes Y = A · W^T with W [N, K] dequantized block-wise along K:
//   W[n][k] = (code(n, k) − zero(n, b)) · scale(n, b),  b = k / block_size
// with inputs
//   B            uint8 [N, k_blocks, blob_size]: the codes of block b of row n as one little-endian
//                bit stream (4 bits: first code in the low nibble), blob_size = block_size·bits/8,
//                k_blocks = ceil(K / block_size); the last block is padded;
//   scales       float [N·k_blocks];
//   zero_points  uint8 [N · ceil(k_blocks·bits/8)]: each row's zeros as one bit stream like B;
//                absent = every zero is 2^(bits−1);
//   g_idx        int32 [K] (deprecated by ONNX Runtime; read, never written): the block of each
//                input column, the code still at its natural position k.
// and attributes K, N, bits (2, 4, 8), block_size (a power of two ≥ 16).
//
// How lowbit schemes map (to_matmul_nbits):
//  * kInt 2/4/8 bits: as is; int3: stored in 4-bit codes with explicit zero points (exact).
//  * group size G: block_size = the largest power of two ≥ 16 dividing G (each group is then
//    G / block_size blocks with the same scale and zero; exact); per-channel (or one group per
//    row): the largest power of two in [16, 128] dividing K, else the next power of two ≥ K. A
//    group size with no power-of-two divisor ≥ 16 (e.g. 24, 100) is refused.
//  * act-order (g_idx not k / G): MatMulNBits cannot express it portably (ONNX Runtime's CPU
//    kernel handles g_idx for 4 bits only, and the input is deprecated), so the input columns are
//    reordered instead: `perm` lists the original column of each stored column, the graph gathers
//    A's last axis with it before the MatMulNBits (exact). Refused when no order makes the groups
//    consecutive runs of G columns.
//  * zero points: sym schemes use the default 2^(bits−1) and store none; asym ones store theirs
//    (integers in [0, 2^bits − 1], else refused).
//  * scales: stored as float (the scheme's f16/bf16/fp8 rounding is kept exactly).
//  * NF4, FP4, FP8: refused (MatMulNBits has no codebook or float codes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/formats/scheme.h"

namespace lowbit {

struct MatMulNBitsWeight {
  int64_t K = 0, N = 0;
  int bits = 4;
  int block_size = 32;
  std::vector<uint8_t> B;            // [N, k_blocks, blob_size]
  std::vector<float> scales;         // [N · k_blocks]
  std::vector<uint8_t> zero_points;  // [N · zero_point_row_bytes()], empty = default zeros
  std::vector<int32_t> g_idx;        // [K] or empty (read from foreign graphs only)
  std::vector<int64_t> perm;         // [K] or empty: stored column j is input column perm[j]

  int64_t k_blocks() const { return (K + block_size - 1) / block_size; }
  int64_t blob_size() const { return static_cast<int64_t>(block_size) * bits / 8; }
  int64_t zero_point_row_bytes() const { return (k_blocks() * bits + 7) / 8; }
  // Throws Error("<where>: ...") unless attributes and sizes agree with the operator's spec,
  // g_idx entries are blocks, perm is a permutation and scales are finite.
  void check(const std::string& where) const;
};

// The MatMulNBits tensors of w (see above). Throws Error("<where>: ...") for a scheme the operator
// cannot express.
MatMulNBitsWeight to_matmul_nbits(const std::string& where, const QuantizedWeight& w);

// The inverse: a kInt QuantizedWeight (group size = block_size, f32 scales, sym when the zero
// points are absent) whose dequantize() equals dequantize_matmul_nbits(m). Throws on inconsistent
// tensors (m.check).
QuantizedWeight from_matmul_nbits(const std::string& where, const MatMulNBitsWeight& m);

// W [N, K] row-major in the ORIGINAL input order (perm undone), dequantized per the operator's
// spec: what the graph multiplies A by.
std::vector<float> dequantize_matmul_nbits(const std::string& where, const MatMulNBitsWeight& m);

}  // namespace lowbit
