#include "lowbit/quant/algo/rotation.h"

#include <lapacke.h>

#include <cmath>
#include <random>

#include "lowbit/kernels/blas.h"
#include "lowbit/ops/hadamard.h"
#include "lowbit/util/error.h"

namespace lowbit {

namespace {
bool power_of_two(int d) { return d > 0 && (d & (d - 1)) == 0; }
}  // namespace

Rotation make_rotation(int d, uint64_t seed) {
  if (d <= 0) fail("rotation", "size {} must be positive", d);
  Rotation r;
  r.d = d;
  std::mt19937_64 rng(seed);
  if (power_of_two(d)) {
    r.hadamard = true;
    r.signs.resize(static_cast<size_t>(d));
    for (float& s : r.signs) s = (rng() & 1) ? 1.0f : -1.0f;
    return r;
  }
  // Q from the QR factorization of a Gaussian matrix, with R's diagonal made positive (so that Q
  // is Haar-distributed and fixed by the seed).
  std::normal_distribution<double> nd(0.0, 1.0);
  const size_t n = static_cast<size_t>(d);
  std::vector<double> a(n * n), tau(n);
  for (double& v : a) v = nd(rng);
  const kernels::SingleThreadBlas one;  // the same Q with any thread count (kernels/blas.h)
  if (LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, d, d, a.data(), d, tau.data()) != 0)
    fail("rotation", "QR of a random {}x{} matrix failed", d, d);
  std::vector<double> diag(n);
  for (size_t i = 0; i < n; ++i) diag[i] = a[i * n + i];
  if (LAPACKE_dorgqr(LAPACK_ROW_MAJOR, d, d, d, a.data(), d, tau.data()) != 0)
    fail("rotation", "forming Q of a random {}x{} matrix failed", d, d);
  r.q.resize(n * n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j)
      r.q[i * n + j] = static_cast<float>(a[i * n + j] * (diag[j] < 0 ? -1.0 : 1.0));
  return r;
}

void rotate_rows(const Rotation& r, float* X, int64_t rows) {
  const int d = r.d;
  if (r.hadamard) {
    // r Q = (r diag(s)) H / √d.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; ++i) {
      float* x = X + static_cast<size_t>(i) * d;
      for (int j = 0; j < d; ++j) x[j] *= r.signs[static_cast<size_t>(j)];
      ops::fwht(x, d);
    }
    return;
  }
  // Blocks of rows: X_blk ← X_blk Q.
  constexpr int64_t kBlock = 256;
  std::vector<float> tmp(static_cast<size_t>(kBlock) * d);
  for (int64_t i0 = 0; i0 < rows; i0 += kBlock) {
    const int64_t m = std::min(kBlock, rows - i0);
    float* x = X + static_cast<size_t>(i0) * d;
    kernels::sgemm(false, false, static_cast<int>(m), d, d, 1.0f, x, d, r.q.data(), d, 0.0f,
                   tmp.data(), d);
    std::copy(tmp.begin(), tmp.begin() + m * d, x);
  }
}

void rotate_output_rows(const Rotation& r, float* W, int64_t cols) {
  // Qᵀ W = (Wᵀ Q)ᵀ: the columns of W rotated as rows.
  const int d = r.d;
  std::vector<float> t(static_cast<size_t>(cols) * d);
  for (int i = 0; i < d; ++i)
    for (int64_t c = 0; c < cols; ++c)
      t[static_cast<size_t>(c) * d + i] = W[static_cast<size_t>(i) * cols + c];
  rotate_rows(r, t.data(), cols);
  for (int i = 0; i < d; ++i)
    for (int64_t c = 0; c < cols; ++c)
      W[static_cast<size_t>(i) * cols + c] = t[static_cast<size_t>(c) * d + i];
}

}  // namespace lowbit
