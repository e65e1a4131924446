#include "lowbit/ops/hadamard.h"

#include <fmt/format.h>

#include <cmath>

namespace lowbit::ops {

namespace {

bool is_prime(int q) {
  if (q < 2) return false;
  for (int d = 2; d * d <= q; ++d)
    if (q % d == 0) return false;
  return true;
}

// Paley construction I: q prime, q ≡ 3 (mod 4): H = I + S with S = [[0, 1ᵀ], [−1, Q]], Q the
// Jacobsthal matrix Q_ij = χ(j − i) (quadratic character mod q). H Hᵀ = (q + 1) I.
std::vector<float> paley(int q) {
  const int m = q + 1;
  std::vector<int> chi(static_cast<size_t>(q), -1);
  chi[0] = 0;
  for (int x = 1; x < q; ++x) chi[static_cast<size_t>((x * x) % q)] = 1;
  std::vector<float> h(static_cast<size_t>(m) * m, 0.0f);
  auto at = [&](int i, int j) -> float& { return h[static_cast<size_t>(i) * m + j]; };
  for (int j = 1; j < m; ++j) {
    at(0, j) = 1.0f;
    at(j, 0) = -1.0f;
  }
  for (int i = 1; i < m; ++i)
    for (int j = 1; j < m; ++j)
      at(i, j) = static_cast<float>(chi[static_cast<size_t>(((j - i) % q + q) % q)]);
  for (int i = 0; i < m; ++i) at(i, i) += 1.0f;
  const float s = 1.0f / std::sqrt(static_cast<float>(m));
  for (float& v : h) v *= s;
  return h;
}

}  // namespace

void fwht(float* x, int n) {
  for (int h = 1; h < n; h <<= 1)
    for (int i = 0; i < n; i += 2 * h)
      for (int j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
  const float s = 1.0f / std::sqrt(static_cast<float>(n));
  for (int i = 0; i < n; ++i) x[i] *= s;
}

std::string HadamardPlan::kind() const {
  if (m == 1) return fmt::format("hadamard {}", block);
  return fmt::format("{} {} x {}", kronecker ? "paley" : "block-diagonal", m, block);
}

HadamardPlan hadamard_plan(int n) {
  HadamardPlan h;
  h.n = n;
  h.block = 1;
  while (n % (h.block * 2) == 0) h.block *= 2;
  h.m = n / h.block;
  if (h.m == 1) return h;
  // Prefer a Paley factor: m = q + 1 (or m/2^j = q + 1, moving powers of two into P).
  // The dense mixing across blocks costs n·m per row: P_m only up to kMaxPaley (QuaRot's own
  // tables stop at 172).
  constexpr int kMaxPaley = 172;
  for (int mm = h.m, blk = h.block; blk >= 1 && mm <= kMaxPaley; mm *= 2, blk /= 2) {
    if (is_prime(mm - 1) && (mm - 1) % 4 == 3) {
      h.m = mm;
      h.block = blk;
      h.kronecker = true;
      h.p = paley(mm - 1);
      return h;
    }
    if (blk == 1) break;
  }
  return h;  // block-diagonal
}

void hadamard_rows(const HadamardPlan& h, float* x, int rows) {
  const int n = h.n, b = h.block, m = h.m;
#pragma omp parallel if (static_cast <long long>(rows) * n >= (1 << 16))
  {
    std::vector<float> col(static_cast<size_t>(m)), mixed(static_cast<size_t>(m));
#pragma omp for schedule(static)
    for (int r = 0; r < rows; ++r) {
      float* v = x + static_cast<size_t>(r) * n;
      for (int i = 0; i < m; ++i) fwht(v + static_cast<size_t>(i) * b, b);
      if (!h.kronecker) continue;
      // Across blocks: for each position j, the row vector over blocks times P.
      for (int j = 0; j < b; ++j) {
        for (int i = 0; i < m; ++i) col[static_cast<size_t>(i)] = v[static_cast<size_t>(i) * b + j];
        for (int i = 0; i < m; ++i) {
          float s = 0.0f;
          for (int k = 0; k < m; ++k)
            s += col[static_cast<size_t>(k)] * h.p[static_cast<size_t>(k) * m + i];
          mixed[static_cast<size_t>(i)] = s;
        }
        for (int i = 0; i < m; ++i)
          v[static_cast<size_t>(i) * b + j] = mixed[static_cast<size_t>(i)];
      }
    }
  }
}

}  // namespace lowbit::ops
