#include "lowbit/quant/algo/hessian.h"

#include <omp.h>

#include <algorithm>

#include "lowbit/kernels/blas.h"
#include "lowbit/kernels/cpu_dispatch.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"

namespace lowbit {

HessianAccumulator::HessianAccumulator(int in_features, bool bf16) : in(in_features) {
  if (in <= 0) fail("hessian", "bad input size {}", in);
  h.assign(size_t(in) * in, 0.0f);
  bf16_ = bf16 && kernels::active_kernels().gemm_bf16 != nullptr;
  if (bf16_) xt_.assign(size_t(in) * kLd, 0);
}

void HessianAccumulator::add(const float* X, int rows) {
  if (rows <= 0) return;
  n_rows += rows;
  if (!bf16_) {
    kernels::ssyrk_upper_t(in, rows, 1.0f, X, in, 1.0f, h.data(), in);
    return;
  }
  for (int r0 = 0; r0 < rows;) {
    const int take = std::min(rows - r0, kBf16Batch - pending_);
    // Transpose in blocks of 16 rows × 64 columns (cache-friendly on both sides).
#pragma omp parallel for schedule(static) if (size_t(take) * in >= (1u << 16))
    for (int i0 = 0; i0 < in; i0 += 64) {
      const int i1 = std::min(in, i0 + 64);
      for (int r = 0; r < take; r += 16) {
        const int re = std::min(take, r + 16);
        for (int i = i0; i < i1; ++i) {
          uint16_t* dst = xt_.data() + size_t(i) * kLd + pending_;
          for (int rr = r; rr < re; ++rr) dst[rr] = f32_to_bf16(X[size_t(r0 + rr) * in + i]);
        }
      }
    }
    pending_ += take;
    r0 += take;
    if (pending_ == kBf16Batch) flush();
  }
}

void HessianAccumulator::flush() {
  if (!bf16_ || pending_ == 0) return;
  const kernels::Bf16GemmFn gemm = kernels::active_kernels().gemm_bf16;
  if (gemm == nullptr) fail("hessian", "the bf16 dot product went away (instruction set changed)");
  // Upper triangle, in blocks of 32 rows of S: S[i0:i1, i0:in] += Xᵀ[i0:i1] · Xᵀ[i0:in]ᵀ.
  constexpr int kRows = 32;
  const int blocks = (in + kRows - 1) / kRows;
  const int k = pending_;
#pragma omp parallel for schedule(dynamic, 1)
  for (int b = 0; b < blocks; ++b) {
    const int i0 = b * kRows, i1 = std::min(in, i0 + kRows);
    const uint16_t* a = xt_.data() + size_t(i0) * kLd;
    gemm(i1 - i0, in - i0, k, a, kLd, a, kLd, h.data() + size_t(i0) * in + i0, in, true);
  }
  pending_ = 0;
}

std::vector<float> HessianAccumulator::hessian() {
  flush();
  std::vector<float> full(h.size());
  const float scale = n_rows > 0 ? float(2.0 / double(n_rows)) : 0.0f;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < in; ++i) {
    for (int j = 0; j < i; ++j) full[size_t(i) * in + j] = scale * h[size_t(j) * in + i];
    for (int j = i; j < in; ++j) full[size_t(i) * in + j] = scale * h[size_t(i) * in + j];
  }
  return full;
}

std::vector<float> hessian_importance(HessianAccumulator& acc) {
  acc.flush();
  std::vector<float> imp(acc.in);
  const double n = acc.n_rows > 0 ? double(acc.n_rows) : 1.0;
  for (int i = 0; i < acc.in; ++i) imp[i] = float(acc.h[size_t(i) * acc.in + i] / n);
  return imp;
}

}  // namespace lowbit
