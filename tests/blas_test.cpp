// The thread-independent BLAS wrappers (kernels/blas.h): the products are right (against a
// double-precision loop, every transpose, strided operands, tile edges), ssyrk leaves the lower
// triangle alone, and the bits are the same with 1, 2 or 3 threads.
#include "lowbit/kernels/blas.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace lowbit::kernels {
namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// The operands of one product: op(A) [m, k], op(B) [k, n], C [m, n], each with a leading
// dimension larger than it needs (strided views, as the callers pass).
struct Gemm {
  bool ta, tb;
  int m, n, k;
  int lda, ldb, ldc;
  std::vector<float> a, b, c;
  Gemm(bool ta_, bool tb_, int m_, int n_, int k_) : ta(ta_), tb(tb_), m(m_), n(n_), k(k_) {
    lda = (ta ? m : k) + 3;
    ldb = (tb ? k : n) + 5;
    ldc = n + 7;
    a = randn(size_t(ta ? k : m) * lda, 1);
    b = randn(size_t(tb ? n : k) * ldb, 2);
    c = randn(size_t(m) * ldc, 3);
  }
  float A(int i, int p) const { return ta ? a[size_t(p) * lda + i] : a[size_t(i) * lda + p]; }
  float B(int p, int j) const { return tb ? b[size_t(j) * ldb + p] : b[size_t(p) * ldb + j]; }
  std::vector<float> run(float alpha, float beta) const {
    std::vector<float> out = c;
    sgemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, out.data(), ldc);
    return out;
  }
};

// Runs f with `threads` OpenMP threads, then puts the count back.
template <class F>
auto with_threads(int threads, const F& f) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  auto r = f();
  omp_set_num_threads(saved);
  return r;
}

TEST(Blas, SgemmMatchesADoubleLoopForEveryTranspose) {
  // Shapes across tile edges (kBlasTileM = 256 rows, kBlasTileN = 512 columns) and tiny ones.
  static_assert(kBlasTileM == 256 && kBlasTileN == 512, "shapes below straddle these edges");
  const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {257, 513, 33}, {520, 1030, 20}, {256, 512, 300}};
  for (const auto& s : shapes) {
    for (int t = 0; t < 4; ++t) {
      const Gemm g(t & 1, t & 2, s[0], s[1], s[2]);
      const float alpha = 0.75f, beta = -0.5f;
      const std::vector<float> got = g.run(alpha, beta);
      double worst = 0;
      for (int i = 0; i < g.m; ++i) {
        for (int j = 0; j < g.n; ++j) {
          double ref = 0, mag = 0;
          for (int p = 0; p < g.k; ++p) {
            ref += double(g.A(i, p)) * g.B(p, j);
            mag += std::abs(double(g.A(i, p)) * g.B(p, j));
          }
          ref = alpha * ref + beta * double(g.c[size_t(i) * g.ldc + j]);
          mag = alpha * mag + std::abs(beta * double(g.c[size_t(i) * g.ldc + j])) + 1e-30;
          worst = std::max(worst, std::abs(got[size_t(i) * g.ldc + j] - ref) / mag);
        }
        // Padding between rows of C is not written.
        for (int j = g.n; j < g.ldc && i + 1 < g.m; ++j) {
          ASSERT_EQ(got[size_t(i) * g.ldc + j], g.c[size_t(i) * g.ldc + j]) << i << "," << j;
        }
      }
      EXPECT_LT(worst, 1e-5) << s[0] << "x" << s[1] << "x" << s[2] << " ta=" << g.ta
                             << " tb=" << g.tb;
    }
  }
}

TEST(Blas, SsyrkWritesTheUpperTriangleOnly) {
  for (int n : {1, 7, 257, 520, 1100}) {
    const int k = 45, lda = n + 2, ldc = n + 3;
    const std::vector<float> a = randn(size_t(k) * lda, 4);
    const std::vector<float> c0 = randn(size_t(n) * ldc, 5);
    std::vector<float> c = c0;
    ssyrk_upper_t(n, k, 2.0f, a.data(), lda, 0.25f, c.data(), ldc);
    double worst = 0;
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < ldc; ++j) {
        const size_t at = size_t(i) * ldc + j;
        if (j < i || j >= n) {
          ASSERT_EQ(c[at], c0[at]) << "n=" << n << " (" << i << "," << j << ") was written";
          continue;
        }
        double ref = 0, mag = 0;
        for (int p = 0; p < k; ++p) {
          ref += double(a[size_t(p) * lda + i]) * a[size_t(p) * lda + j];
          mag += std::abs(double(a[size_t(p) * lda + i]) * a[size_t(p) * lda + j]);
        }
        ref = 2.0 * ref + 0.25 * c0[at];
        mag = 2.0 * mag + std::abs(0.25 * c0[at]);
        worst = std::max(worst, std::abs(c[at] - ref) / mag);
      }
    }
    EXPECT_LT(worst, 1e-5) << "n=" << n;
  }
}

TEST(Blas, SameBitsWithAnyThreadCount) {
  // Large enough for many tiles and for OpenBLAS's own threading (whose sums depend on the split:
  // the reason for the wrappers).
  for (int t = 0; t < 4; ++t) {
    const Gemm g(t & 1, t & 2, 600, 1100, 333);
    const std::vector<float> one = with_threads(1, [&] { return g.run(1.0f, 0.5f); });
    for (int threads : {2, 3}) {
      const std::vector<float> many = with_threads(threads, [&] { return g.run(1.0f, 0.5f); });
      EXPECT_EQ(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)), 0)
          << "sgemm ta=" << g.ta << " tb=" << g.tb << ", " << threads << " threads";
    }
  }
  const int n = 1100, k = 700;
  const std::vector<float> a = randn(size_t(k) * n, 6);
  auto syrk = [&] {
    std::vector<float> c(size_t(n) * n, 1.0f);
    ssyrk_upper_t(n, k, 1.0f, a.data(), n, 1.0f, c.data(), n);
    return c;
  };
  const std::vector<float> one = with_threads(1, syrk);
  for (int threads : {2, 3}) {
    const std::vector<float> many = with_threads(threads, syrk);
    EXPECT_EQ(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)), 0)
        << "ssyrk, " << threads << " threads";
  }
  // Inside a parallel region of the caller (the tiles then run on the calling thread).
  std::vector<float> nested;
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    nested = syrk();
  }
  EXPECT_EQ(std::memcmp(one.data(), nested.data(), one.size() * sizeof(float)), 0)
      << "ssyrk inside a parallel region";
}

TEST(Blas, SingleThreadScopeRestoresTheThreadCount) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  {
    const SingleThreadBlas one;
    EXPECT_EQ(omp_get_max_threads(), 1);
  }
  EXPECT_EQ(omp_get_max_threads(), 3);
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace lowbit::kernels
