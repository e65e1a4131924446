// Rotations of the residual stream (QuaRot: Ashkboos et al., "QuaRot: Outlier-Free 4-Bit Inference
// in Rotated LLMs", 2024; SpinQuant: Liu et al., 2024). An orthogonal Q (d × d) applied to the
// residual stream, h' = h Q, leaves the model's function unchanged once it is folded into every
// weight that touches the stream (rows are activations, y = x Wᵀ):
//   embeddings E' = E Q;  a linear reading the (RMS-normed) stream W' = W diag(g) Q, the norm's
//   gain g moved into it first (RMSNorm(hQ) = RMSNorm(h) Q only without a gain);
//   a linear writing the stream W' = Qᵀ W, b' = b Q;  the head W' = W diag(g_final) Q.
// Rotated activations have no outlier channels (a Hadamard spreads every channel over all of them),
// which is what int8/int4 activation quantization needs.
//
// Q is a randomized Hadamard matrix H·diag(±1)/√d when d is a power of two (applied by the fast
// Walsh–Hadamard transform), else a random orthogonal matrix (QR of a Gaussian matrix, LAPACK):
// both are seeded, so a run is reproducible. See docs/QUANT_ALGORITHMS.md.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit {

struct Rotation {
  int d = 0;
  bool hadamard = false;     // Q = diag(signs) H / √d
  std::vector<float> signs;  // hadamard: ±1 [d]
  std::vector<float> q;      // otherwise: Q [d, d] row-major
};

// The seeded rotation of size d (d ≥ 1).
Rotation make_rotation(int d, uint64_t seed);
// Each of the `rows` rows r of X [rows, d] ← r Q (embeddings, activations, reading linears).
void rotate_rows(const Rotation& r, float* X, int64_t rows);
// W [d, cols] ← Qᵀ W (a linear writing the stream: its output rows).
void rotate_output_rows(const Rotation& r, float* W, int64_t cols);

}  // namespace lowbit
