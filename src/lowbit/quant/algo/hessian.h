// GPTQ's layer Hessian H = 2/N Σ_t x_t x_tᵀ over the N calibration inputs x_t [in] of a linear
// layer. Batches add XᵀX into a running sum S (no rescaling of S per batch as the GPTQ
// reference's running average does, which costs a pass over S per batch); hessian() returns
// 2/N · S, the same value.
//
// Two ways to form XᵀX: fp32 (one BLAS ssyrk per batch), or — with `bf16` on a CPU with the bf16
// dot product (kernels/kernel_table.h) — the inputs rounded to bf16, gathered transposed into
// batches of kBf16Batch rows and multiplied on vdpbf16ps into the upper triangle of S, fp32 sums:
// twice the arithmetic rate, inputs carry bf16's 2⁻⁹ relative rounding (docs/QUANT_ALGORITHMS.md
// measures what that does to the result).
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit {

struct HessianAccumulator {
  static constexpr int kBf16Batch = 2048;
  int in = 0;
  int64_t n_rows = 0;    // rows seen so far
  std::vector<float> h;  // [in, in] running Σ x xᵀ; only the upper triangle is kept up to date

  // bf16: products of bf16-rounded inputs where the CPU has a bf16 dot product (else fp32).
  explicit HessianAccumulator(int in_features, bool bf16 = false);
  // Adds a batch of activation rows X [rows, in] (row-major).
  void add(const float* X, int rows);
  // Folds rows still waiting in the bf16 batch into h (hessian() and hessian_importance do it).
  void flush();
  // The full symmetric H [in, in].
  std::vector<float> hessian();
  bool uses_bf16() const { return bf16_; }

 private:
  bool bf16_ = false;
  // bf16: pending rows transposed, [in][kLd] (kLd = kBf16Batch + 32: rows not 4 KiB apart, which
  // would put every row the kernel reads into one L1 cache set)
  static constexpr int kLd = kBf16Batch + 32;
  std::vector<uint16_t> xt_;
  int pending_ = 0;
};

// Per-input-channel mean of x_i² over the rows seen = diag(H) / 2: the importance vector of the
// RTN clip search.
std::vector<float> hessian_importance(HessianAccumulator& acc);

}  // namespace lowbit
