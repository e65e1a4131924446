// bf16 × bf16 matrix products on AVX512-BF16 (vdpbf16ps: 32 bf16 pairs multiplied and summed
// into 16 fp32 lanes per instruction). Compiled with its own flags; cpu_dispatch only calls it
// on CPUs that have AVX512-BF16.
//
// C[i][j] = Σ_k A[i][k] · B[j][k]: both operands row-major along k (activations × weights as
// stored, or Xᵀ × Xᵀ for a Hessian). A micro-kernel holds RM rows of A against RN rows of B in
// RM·RN vector accumulators, 32 columns per step, and reduces each accumulator at the end. Rows
// of A are taken in chunks that stay in L2 while the rows of B stream past them.
// gcc 12 reports the deliberately undefined vectors inside its own AVX-512 intrinsics as
// uninitialized once they are inlined into the templates here (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "lowbit/kernels/kernel_table.h"

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>

#include <algorithm>

namespace lowbit::kernels {
namespace {

// Horizontal sum (shuffles within 512 bits: gcc 12's _mm512_reduce_add_ps warns here).
inline float hsum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xb1));
  __m128 x = _mm512_castps512_ps128(v);
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

template <int RM, int RN>
void micro(int k, const uint16_t* a, size_t lda, const uint16_t* b, size_t ldb, float* c,
           size_t ldc, bool accumulate) {
  __m512 acc[RM][RN];
  for (int i = 0; i < RM; ++i) {
    for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  int kk = 0;
  for (; kk + 32 <= k; kk += 32) {
    __m512bh bv[RN];
    for (int j = 0; j < RN; ++j) {
      bv[j] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + j * ldb + kk));
    }
    for (int i = 0; i < RM; ++i) {
      const __m512bh av = reinterpret_cast<__m512bh>(_mm512_loadu_si512(a + i * lda + kk));
      for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
    }
  }
  if (kk < k) {
    const __mmask32 m = static_cast<__mmask32>((1ull << (k - kk)) - 1);
    __m512bh bv[RN];
    for (int j = 0; j < RN; ++j) {
      bv[j] = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, b + j * ldb + kk));
    }
    for (int i = 0; i < RM; ++i) {
      const __m512bh av = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, a + i * lda + kk));
      for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
    }
  }
  for (int i = 0; i < RM; ++i) {
    for (int j = 0; j < RN; ++j) {
      const float s = hsum(acc[i][j]);
      float& out = c[i * ldc + j];
      out = accumulate ? out + s : s;
    }
  }
}

// RM rows of A against rows [0, n) of B, RN at a time.
template <int RM>
void rows_against(int n, int k, const uint16_t* a, size_t lda, const uint16_t* b, size_t ldb,
                  float* c, size_t ldc, bool acc) {
  constexpr int RN = RM == 1 ? 8 : 6;
  int j = 0;
  for (; j + RN <= n; j += RN) micro<RM, RN>(k, a, lda, b + j * ldb, ldb, c + j, ldc, acc);
  for (; j < n; ++j) micro<RM, 1>(k, a, lda, b + j * ldb, ldb, c + j, ldc, acc);
}

void gemm_bf16(int m, int n, int k, const uint16_t* a, size_t lda, const uint16_t* b, size_t ldb,
               float* c, size_t ldc, bool accumulate) {
  if (m == 1) {
    rows_against<1>(n, k, a, lda, b, ldb, c, ldc, accumulate);
    return;
  }
  // Chunks of A rows of ~256 KB (L2); within a chunk, RN rows of B at a time meet every group of
  // RM rows of A, so those B rows are read from memory once per chunk.
  const int chunk =
      std::clamp(static_cast<int>((256 << 10) / (2 * static_cast<size_t>(k)) / 4 * 4), 4, 128);
  constexpr int RN = 6;
  for (int i0 = 0; i0 < m; i0 += chunk) {
    const int i1 = std::min(m, i0 + chunk);
    for (int j = 0; j < n; j += RN) {
      const int nj = std::min(RN, n - j);
      const uint16_t* bj = b + j * ldb;
      for (int i = i0; i < i1;) {
        const uint16_t* ai = a + i * lda;
        float* ci = c + i * ldc + j;
        const int left = i1 - i;
        if (nj == RN) {
          if (left >= 4) {
            micro<4, RN>(k, ai, lda, bj, ldb, ci, ldc, accumulate);
            i += 4;
          } else if (left >= 2) {
            micro<2, RN>(k, ai, lda, bj, ldb, ci, ldc, accumulate);
            i += 2;
          } else {
            micro<1, RN>(k, ai, lda, bj, ldb, ci, ldc, accumulate);
            i += 1;
          }
        } else {
          const int step = std::min(left, 4);
          switch (step) {
            case 4:
              rows_against<4>(nj, k, ai, lda, bj, ldb, ci, ldc, accumulate);
              break;
            case 3:
              rows_against<3>(nj, k, ai, lda, bj, ldb, ci, ldc, accumulate);
              break;
            case 2:
              rows_against<2>(nj, k, ai, lda, bj, ldb, ci, ldc, accumulate);
              break;
            default:
              rows_against<1>(nj, k, ai, lda, bj, ldb, ci, ldc, accumulate);
              break;
          }
          i += step;
        }
      }
    }
  }
}

}  // namespace

Bf16GemmFn avx512bf16_gemm() { return gemm_bf16; }

}  // namespace lowbit::kernels

#else

namespace lowbit::kernels {
Bf16GemmFn avx512bf16_gemm() { return nullptr; }
}  // namespace lowbit::kernels

#endif
