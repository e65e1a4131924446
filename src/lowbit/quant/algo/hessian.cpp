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
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, in, rows, 1.0f, X, in, 1.0f, h.data(), in);
  n_rows += rows;
}

std::vector<float> HessianAccumulator::hessian() const {
  std::vector<float> full(h.size());
  const float scale = n_rows > 0 ? float(2.0 / double(n_rows)) : 0.0f;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < in; ++i) {
    for (int j = 0; j < i; ++j) full[size_t(i) * in + j] = scale * h[size_t(j) * in + i];
    for (int j = i; j < in; ++j) full[size_t(i) * in + j] = scale * h[size_t(i) * in + j];
  }
  return full;
}

std::vector<float> hessian_importance(const HessianAccumulator& acc) {
  std::vector<float> imp(acc.in);
  const double n = acc.n_rows > 0 ? double(acc.n_rows) : 1.0;
  for (int i = 0; i < acc.in; ++i) imp[i] = float(acc.h[size_t(i) * acc.in + i] / n);
  return imp;
}

}  // namespace lowbit
