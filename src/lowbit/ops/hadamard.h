// The online Hadamard transform of QuaRot's R4: x ← x M for rows of n values, M orthogonal,
// applied at run time to the input of down_proj (whose weight rows were multiplied by the same M
// offline, so y = (x M)(W M)ᵀ = x Wᵀ). Rotated inputs have no outlier channels.
//
// n = 2^k · m. M = (P_m ⊗ H_{2^k}) / √n with H the Sylvester Hadamard matrix (fast Walsh–Hadamard
// transform) and P_m a Hadamard matrix of order m: m = 1, 2, or m = q + 1 for a prime q ≡ 3 (mod 4)
// (Paley's construction: 12, 20, 24, 32, 44, 48, ...; m ≤ 172, as the mixing costs n·m per row).
// Other m (e.g. 43 for Llama-2-7B's 11008 =
// 43 · 256) have no construction here: M is then block-diagonal, one H_{2^k} per block of 2^k
// columns (orthogonal, spreading each channel over its block only) — `kind` says which.
#pragma once

#include <string>
#include <vector>

namespace lowbit::ops {

struct HadamardPlan {
  int n = 0, block = 0, m = 0;  // n = m · block, block a power of two
  bool kronecker = false;       // P_m ⊗ H_block; false: block-diagonal H_block (m blocks)
  std::vector<float> p;         // P_m / √m [m, m] when kronecker
  std::string kind() const;     // "hadamard 2^k", "paley m x 2^k", "block-diagonal m x 2^k"
};

HadamardPlan hadamard_plan(int n);
// x[i] ← the normalized Walsh–Hadamard transform of x (n a power of two): H x / √n.
void fwht(float* x, int n);
// Rows [rows, n] ← rows · M, in place.
void hadamard_rows(const HadamardPlan& h, float* x, int rows);

}  // namespace lowbit::ops
