// The block-fit searches of ggml's reference quantizers (llama.cpp's ggml-quants.c, build 4748):
// given a few values and per-value weights, choose the scale (and min) of a block and the integer
// codes that minimize the weighted squared error, searching the scale over a small grid of
// candidate reciprocals as llama.cpp does. The arithmetic (float, operation order, round-half-even)
// is llama.cpp's so that a block fitted here is byte-identical to llama-quantize's; these files are
// compiled without floating-point contraction (CMakeLists.txt) to keep it so.
// Internal to formats/ggml_*.cpp.
#pragma once

#include <cstdint>

namespace lowbit::gguf::fit {

// Round half to even, for |f| < 2^22 (the values these searches round); NaN gives 0.
int nearest_int(float f);

// Symmetric codes: value ≈ scale·l with l in [−nmax, nmax − 1]; L[i] = l + nmax. Weights `w` (null
// = x²). Tries the reciprocal −(nmax + 0.1·k)/max for k = −9 … 9 (max = the value of largest
// magnitude) and keeps the least-squares scale of the best codes. Returns the scale (0, with all
// L = 0, when every |x| is below kGroupMaxEps). llama.cpp: make_qx_quants with rmse_type 1.
float symmetric(int n, int nmax, const float* x, const float* w, uint8_t* L);

// Asymmetric codes: value ≈ scale·l − m with l in [0, nmax], m ≥ 0 (the block minimum, clamped to
// ≤ 0, negated). Weights `w` (never null). Tries the reciprocals (nmax + rmin + rdelta·k)/(max −
// min) for k = 0 … nstep, each refitted by weighted least squares of scale and min. Returns the
// scale and writes m to *neg_min. `aux` is scratch of n bytes. llama.cpp: make_qkx2_quants.
float with_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min,
               uint8_t* aux, float rmin, float rdelta, int nstep);

// Non-negative values (the sub-block scales of a super-block) on codes 0 … nmax with weights `w`:
// tries 9 reciprocals around nmax/max, then improves single codes coordinate-wise. Returns the
// scale (0 when all values are below 1e-15). llama.cpp: make_qp_quants.
float positive(int n, int nmax, const float* x, uint8_t* L, const float* w);

// The index of the entry of the sorted 16-entry table nearest x (ties to the upper one).
int nearest_level(const int8_t* table, float x);

// The group-max below which a block counts as all zero.
inline constexpr float kGroupMaxEps = 1e-15f;

}  // namespace lowbit::gguf::fit
