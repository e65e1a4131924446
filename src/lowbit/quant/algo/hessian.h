// GPTQ's layer Hessian H = 2/N Σ_t x_t x_tᵀ over the N calibration inputs x_t [in] of a linear
// layer. Batches add XᵀX into a running sum S (one ssyrk each, no rescaling of S per batch as
// the GPTQ reference's running average does, which costs a pass over S per batch); hessian()
// returns 2/N · S, the same value.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit {

struct HessianAccumulator {
  int in = 0;
  int64_t n_rows = 0;    // rows seen so far
  std::vector<float> h;  // [in, in] running Σ x xᵀ; only the upper triangle is kept up to date

  explicit HessianAccumulator(int in_features);
  // Adds a batch of activation rows X [rows, in] (row-major) with one BLAS ssyrk.
  void add(const float* X, int rows);
  // The full symmetric H [in, in].
  std::vector<float> hessian() const;
};

// Per-input-channel mean of x_i² over the rows seen = diag(H) / 2: the importance vector of the
// RTN clip search.
std::vector<float> hessian_importance(const HessianAccumulator& acc);

}  // namespace lowbit
