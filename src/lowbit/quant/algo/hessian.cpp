#include "lowbit/quant/algo/hessian.h"

#include <cblas.h>

#include "lowbit/util/error.h"

namespace lowbit {

HessianAccumulator::HessianAccumulator(int in_features) : in(in_features) {
  if (in <= 0) fail("hessian", "bad input size {}", in);
  h.assign(size_t(in) * in, 0.0f);
}

void HessianAccumulator::add(const float* X, int rows) {
  if (rows <= 0) return;
  const double n = double(n_rows), b = double(rows);
  const float beta = float(n / (n + b)), alpha = float(2.0 / (n + b));
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, in, rows, alpha, X, in, beta, h.data(), in);
  n_rows += rows;
}

std::vector<float> HessianAccumulator::hessian() const {
  std::vector<float> full = h;
  for (int i = 0; i < in; ++i)
    for (int j = 0; j < i; ++j) full[size_t(i) * in + j] = h[size_t(j) * in + i];
  return full;
}

std::vector<float> hessian_importance(const HessianAccumulator& acc) {
  std::vector<float> imp(acc.in);
  for (int i = 0; i < acc.in; ++i) imp[i] = 0.5f * acc.h[size_t(i) * acc.in + i];
  return imp;
}

}  // namespace lowbit
