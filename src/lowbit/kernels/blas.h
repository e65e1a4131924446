// Products through OpenBLAS whose results do not depend on the number of threads.
//
// OpenBLAS sums in an order that depends on how a call is shaped and split: the same C = A·B
// computed with 1 or 2 threads, or as two halves, differs in the last bits (measured here with
// OpenBLAS 0.3.21: 6 of 8 shapes from 64x64x64 up). lowbit changes its thread count with the
// machine's load (util/threads.h), so raw calls would make a quantized model, a resumed run or a
// printed perplexity depend on what else ran at the time. These wrappers cut every product into
// tiles of a fixed shape (kBlasTileM rows x kBlasTileN columns of C, the whole inner dimension),
// and each tile is one single-threaded OpenBLAS call; the tiles are shared among threads. A result
// then depends on the shapes only: the same bits with any thread count, any load.
//
// Row-major throughout, as the cblas_ calls they replace. LAPACK calls (which run BLAS inside) go
// under a SingleThreadBlas scope for the same reason.
#pragma once

namespace lowbit::kernels {

inline constexpr int kBlasTileM = 256;
inline constexpr int kBlasTileN = 512;

// C[m,n] = alpha · op(A)·op(B) + beta · C, op(X) = X or Xᵀ (row-major, leading dimensions as in
// cblas_sgemm).
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc);

// The upper triangle of C[n,n] = alpha · AᵀA + beta · C for A[k,n] (cblas_ssyrk with CblasUpper,
// CblasTrans); the strict lower triangle of C is left as it was.
void ssyrk_upper_t(int n, int k, float alpha, const float* a, int lda, float beta, float* c,
                   int ldc);

// While alive, OpenBLAS (and LAPACK through it) runs on the calling thread only.
class SingleThreadBlas {
 public:
  SingleThreadBlas();
  ~SingleThreadBlas();
  SingleThreadBlas(const SingleThreadBlas&) = delete;
  SingleThreadBlas& operator=(const SingleThreadBlas&) = delete;

 private:
  int saved_;
};

}  // namespace lowbit::kernels
