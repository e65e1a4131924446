#include "lowbit/kernels/blas.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

namespace lowbit::kernels {

// OpenBLAS built for OpenMP (the one lowbit links) runs one thread when called inside an active
// parallel region or when omp_get_max_threads() is 1 (it then takes that count as its own, until
// util/threads.cpp sets it again); the scope makes it 1.
SingleThreadBlas::SingleThreadBlas() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
SingleThreadBlas::~SingleThreadBlas() { omp_set_num_threads(saved_); }

namespace {

int tiles_of(int n, int tile) { return (n + tile - 1) / tile; }

// Tile t of an [m, n] product cut into tiles `tn` to a row: its first row and column, its size.
struct TileBox {
  int i0, j0, rows, cols;
};
TileBox tile_box(int t, int tn, int m, int n) {
  const int i0 = (t / tn) * kBlasTileM, j0 = (t % tn) * kBlasTileN;
  return {i0, j0, std::min(kBlasTileM, m - i0), std::min(kBlasTileN, n - j0)};
}

// Runs tile(i) for i in [0, count): one single-threaded BLAS call each, shared among the threads.
template <class Tile>
void for_tiles(int count, const Tile& tile) {
  if (count <= 0) return;
  if (count == 1 || omp_in_parallel() || omp_get_max_threads() == 1) {
    const SingleThreadBlas one;
    for (int i = 0; i < count; ++i) tile(i);
    return;
  }
#pragma omp parallel
  {
    const SingleThreadBlas one;  // also when the team is smaller than asked (not "in parallel")
#pragma omp for schedule(dynamic, 1)
    for (int i = 0; i < count; ++i) tile(i);
  }
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  const int tm = tiles_of(m, kBlasTileM), tn = tiles_of(n, kBlasTileN);
  for_tiles(tm * tn, [&](int t) {
    const auto [i0, j0, mi, nj] = tile_box(t, tn, m, n);
    // Row i0 of op(A): row i0 of A, or column i0 of Aᵀ; column j0 of op(B) likewise.
    const float* ai = trans_a ? a + i0 : a + static_cast<size_t>(i0) * lda;
    const float* bj = trans_b ? b + static_cast<size_t>(j0) * ldb : b + j0;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, mi, nj, k, alpha, ai, lda, bj, ldb, beta,
                c + static_cast<size_t>(i0) * ldc + j0, ldc);
  });
}

void ssyrk_upper_t(int n, int k, float alpha, const float* a, int lda, float beta, float* c,
                   int ldc) {
  if (n <= 0) return;
  // The tiles of C with a part on or above the diagonal (j1 > i0).
  const int tm = tiles_of(n, kBlasTileM), tn = tiles_of(n, kBlasTileN);
  std::vector<int> upper;
  for (int ti = 0; ti < tm; ++ti) {
    for (int tj = 0; tj < tn; ++tj) {
      if (std::min(n, (tj + 1) * kBlasTileN) > ti * kBlasTileM) upper.push_back(ti * tn + tj);
    }
  }
  for_tiles(static_cast<int>(upper.size()), [&](int u) {
    const auto [i0, j0, mi, nj] = tile_box(upper[static_cast<size_t>(u)], tn, n, n);
    float* ct = c + static_cast<size_t>(i0) * ldc + j0;
    if (j0 >= i0 + mi - 1) {  // wholly on or above the diagonal
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, mi, nj, k, alpha, a + i0, lda, a + j0,
                  lda, beta, ct, ldc);
      return;
    }
    // Crossing the diagonal: the product into a copy, then its upper part back.
    std::vector<float> s(static_cast<size_t>(mi) * nj);
    for (int i = 0; i < mi; ++i) {
      std::copy(ct + static_cast<size_t>(i) * ldc, ct + static_cast<size_t>(i) * ldc + nj,
                s.begin() + static_cast<ptrdiff_t>(i) * nj);
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, mi, nj, k, alpha, a + i0, lda, a + j0, lda,
                beta, s.data(), nj);
    for (int i = 0; i < mi; ++i) {
      const int from = std::max(0, i0 + i - j0);  // column j ≥ row i
      std::copy(s.begin() + static_cast<ptrdiff_t>(i) * nj + from,
                s.begin() + static_cast<ptrdiff_t>(i + 1) * nj,
                ct + static_cast<size_t>(i) * ldc + from);
    }
  });
}

}  // namespace lowbit::kernels
