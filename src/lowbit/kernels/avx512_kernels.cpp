// AVX-512 kernels (F, BW, VL, DQ, VNNI, F16C). This file is compiled with those flags whatever the
// rest of the build uses; cpu_dispatch only calls into it on CPUs that have them.
//
// int8 activations: a 16-row tile is one vector of int32 accumulators; vpdpbusd multiplies the
// unsigned codes of 4 columns of all 16 rows by the same 4 activation bytes (broadcast) and adds
// the 4 products into each row's lane. Per 32-column block the int32 sums are converted and
// scaled by the block's activation scale; per group by the weight scales, minus the zero-point
// term s·z·Σ(d·Σq). Up to 4 activation rows share each load and unpack of the weights.
#include "lowbit/kernels/kernel_table.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "lowbit/util/simd.h"

namespace lowbit::kernels {
namespace {

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

inline __m512 load_scales(const PackedWeight& w, size_t at) {
  if (w.scales_f16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(w.scales.data()) + at)));
  }
  return _mm512_loadu_ps(reinterpret_cast<const float*>(w.scales.data()) + at);
}

inline __m512 load_zeros(const PackedWeight& w, size_t at) {
  if (!w.has_zero) return _mm512_set1_ps(static_cast<float>(w.zero_const));
  return _mm512_cvtepi32_ps(
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.zeros.data() + at))));
}

inline __mmask16 row_mask(const PackedWeight& w, int tile) {
  const int rows = std::min(kTileRows, w.out - tile * kTileRows);
  return static_cast<__mmask16>((1u << rows) - 1);
}

// TM activation rows [t0, t0 + TM) against TN consecutive tiles from `tile`. TN = 2 for one row
// (decode): two tiles' weights stream side by side, which keeps more memory reads in flight than
// one stream does.
template <int TM, int TN, bool k8bit>
void tiles_int8(const PackedWeight& w, const Int8Acts& a, float* y, int ldy, int tile, int t0) {
  const int nb = w.n_blocks(), bpg = w.group / kBlockCols;
  const size_t tile_bytes = w.tile_stride;
  const uint8_t* wt = w.codes.data() + static_cast<size_t>(tile) * tile_bytes;
  const __m512i m0f = _mm512_set1_epi8(0x0f);
  const int8_t* q[TM];
  const float* d[TM];
  const float* ds[TM];
  __m512 acc[TN][TM];
  for (int i = 0; i < TM; ++i) {
    q[i] = a.q + static_cast<size_t>(t0 + i) * a.k_pad;
    d[i] = a.d + static_cast<size_t>(t0 + i) * nb;
    ds[i] = a.dsum + static_cast<size_t>(t0 + i) * nb;
    for (int n = 0; n < TN; ++n) acc[n][i] = _mm512_setzero_ps();
  }
  for (int g = 0; g < w.n_groups; ++g) {
    __m512 gacc[TN][TM];
    float dsum[TM];
    for (int i = 0; i < TM; ++i) {
      for (int n = 0; n < TN; ++n) gacc[n][i] = _mm512_setzero_ps();
      dsum[i] = 0.0f;
    }
    const int b1 = std::min(nb, (g + 1) * bpg);
    for (int b = g * bpg; b < b1; ++b) {
      const int k0 = b * kBlockCols;
      __m512i iacc[TN][TM];
      for (int n = 0; n < TN; ++n) {
        const uint8_t* wb = wt + n * tile_bytes + static_cast<size_t>(b) * w.block_bytes();
        for (int i = 0; i < TM; ++i) iacc[n][i] = _mm512_setzero_si512();
        if constexpr (k8bit) {
          for (int o = 0; o < 8; ++o) {
            const __m512i v = _mm512_load_si512(wb + o * 64);
            for (int i = 0; i < TM; ++i) {
              iacc[n][i] = _mm512_dpbusd_epi32(iacc[n][i], v, bcast4(q[i] + k0 + 4 * o));
            }
          }
        } else {
          for (int o = 0; o < 4; ++o) {
            const __m512i v = _mm512_load_si512(wb + o * 64);
            const __m512i lo = _mm512_and_si512(v, m0f);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m0f);
            for (int i = 0; i < TM; ++i) {
              iacc[n][i] = _mm512_dpbusd_epi32(iacc[n][i], lo, bcast4(q[i] + k0 + 8 * o));
              iacc[n][i] = _mm512_dpbusd_epi32(iacc[n][i], hi, bcast4(q[i] + k0 + 8 * o + 4));
            }
          }
        }
      }
      for (int i = 0; i < TM; ++i) {
        const __m512 db = _mm512_set1_ps(d[i][b]);
        for (int n = 0; n < TN; ++n) {
          gacc[n][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[n][i]), db, gacc[n][i]);
        }
        dsum[i] += ds[i][b];
      }
    }
    for (int n = 0; n < TN; ++n) {
      const size_t at = (static_cast<size_t>(tile + n) * w.n_groups + g) * kTileRows;
      const __m512 s = load_scales(w, at);
      const __m512 sz = _mm512_mul_ps(s, load_zeros(w, at));
      for (int i = 0; i < TM; ++i) {
        acc[n][i] = _mm512_fmadd_ps(s, gacc[n][i], acc[n][i]);
        acc[n][i] = _mm512_fnmadd_ps(sz, _mm512_set1_ps(dsum[i]), acc[n][i]);
      }
    }
  }
  for (int n = 0; n < TN; ++n) {
    const __mmask16 mask = row_mask(w, tile + n);
    for (int i = 0; i < TM; ++i) {
      _mm512_mask_storeu_ps(y + static_cast<size_t>(t0 + i) * ldy + (tile + n) * kTileRows, mask,
                            acc[n][i]);
    }
  }
}

template <bool k8bit>
void gemm_int8_impl(const PackedWeight& w, const Int8Acts& a, float* y, int ldy, int tile0,
                    int tile1) {
  int tile = tile0;
  if (a.m == 1) {
    for (; tile + 8 <= tile1; tile += 8) tiles_int8<1, 8, k8bit>(w, a, y, ldy, tile, 0);
    for (; tile + 4 <= tile1; tile += 4) tiles_int8<1, 4, k8bit>(w, a, y, ldy, tile, 0);
    for (; tile + 2 <= tile1; tile += 2) tiles_int8<1, 2, k8bit>(w, a, y, ldy, tile, 0);
  }
  for (; tile < tile1; ++tile) {
    int t = 0;
    for (; t + 4 <= a.m; t += 4) tiles_int8<4, 1, k8bit>(w, a, y, ldy, tile, t);
    switch (a.m - t) {
      case 3:
        tiles_int8<3, 1, k8bit>(w, a, y, ldy, tile, t);
        break;
      case 2:
        tiles_int8<2, 1, k8bit>(w, a, y, ldy, tile, t);
        break;
      case 1:
        tiles_int8<1, 1, k8bit>(w, a, y, ldy, tile, t);
        break;
      default:
        break;
    }
  }
}

void gemm_int8(const PackedWeight& w, const Int8Acts& a, float* y, int ldy, int tile0, int tile1) {
  if (w.kind == PackedKind::kInt8) {
    gemm_int8_impl<true>(w, a, y, ldy, tile0, tile1);
  } else {
    gemm_int8_impl<false>(w, a, y, ldy, tile0, tile1);
  }
}

// fp32 activations: codes -> fp32 in registers. 4-bit codes go through a 16-entry table held in
// one register (vpermps reads the low 4 bits of each lane): the code value for kLut4, the code
// itself for kInt4. 8-bit codes are masked and converted.
template <bool k8bit>
void gemm_f32_impl(const PackedWeight& w, const F32Acts& a, float* y, int ldy, int tile0,
                   int tile1) {
  const int nb = w.n_blocks(), bpg = w.group / kBlockCols;
  const __m512 lut = _mm512_loadu_ps(w.lut);
  const __m512i mff = _mm512_set1_epi32(0xff);
  const bool zeros = w.kind != PackedKind::kLut4;
  for (int tile = tile0; tile < tile1; ++tile) {
    const uint8_t* wt = w.codes.data() + static_cast<size_t>(tile) * w.tile_stride;
    for (int t = 0; t < a.m; ++t) {
      const float* x = a.x + static_cast<size_t>(t) * a.k_pad;
      __m512 acc = _mm512_setzero_ps();
      for (int g = 0; g < w.n_groups; ++g) {
        __m512 g0 = _mm512_setzero_ps(), g1 = _mm512_setzero_ps();
        const int b1 = std::min(nb, (g + 1) * bpg);
        for (int b = g * bpg; b < b1; ++b) {
          const uint8_t* wb = wt + static_cast<size_t>(b) * w.block_bytes();
          const float* xb = x + b * kBlockCols;
          if constexpr (k8bit) {
            for (int o = 0; o < 8; ++o) {
              const __m512i v = _mm512_load_si512(wb + o * 64);
              const float* xo = xb + 4 * o;
              g0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, mff)),
                                   _mm512_set1_ps(xo[0]), g0);
              g1 = _mm512_fmadd_ps(
                  _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, 8), mff)),
                  _mm512_set1_ps(xo[1]), g1);
              g0 = _mm512_fmadd_ps(
                  _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, 16), mff)),
                  _mm512_set1_ps(xo[2]), g0);
              g1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v, 24)),
                                   _mm512_set1_ps(xo[3]), g1);
            }
          } else {
            for (int o = 0; o < 4; ++o) {
              const __m512i v = _mm512_load_si512(wb + o * 64);
              const float* xo = xb + 8 * o;
              g0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, lut), _mm512_set1_ps(xo[0]), g0);
              g1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut),
                                   _mm512_set1_ps(xo[4]), g1);
              g0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 8), lut),
                                   _mm512_set1_ps(xo[1]), g0);
              g1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 12), lut),
                                   _mm512_set1_ps(xo[5]), g1);
              g0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 16), lut),
                                   _mm512_set1_ps(xo[2]), g0);
              g1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 20), lut),
                                   _mm512_set1_ps(xo[6]), g1);
              g0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 24), lut),
                                   _mm512_set1_ps(xo[3]), g0);
              g1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 28), lut),
                                   _mm512_set1_ps(xo[7]), g1);
            }
          }
        }
        const size_t at = (static_cast<size_t>(tile) * w.n_groups + g) * kTileRows;
        const __m512 s = load_scales(w, at);
        acc = _mm512_fmadd_ps(s, _mm512_add_ps(g0, g1), acc);
        if (zeros) {
          const __m512 sz = _mm512_mul_ps(s, load_zeros(w, at));
          acc = _mm512_fnmadd_ps(
              sz, _mm512_set1_ps(a.gsum[static_cast<size_t>(t) * w.n_groups + g]), acc);
        }
      }
      _mm512_mask_storeu_ps(y + static_cast<size_t>(t) * ldy + tile * kTileRows, row_mask(w, tile),
                            acc);
    }
  }
}

void gemm_f32(const PackedWeight& w, const F32Acts& a, float* y, int ldy, int tile0, int tile1) {
  if (w.kind == PackedKind::kInt8) {
    gemm_f32_impl<true>(w, a, y, ldy, tile0, tile1);
  } else {
    gemm_f32_impl<false>(w, a, y, ldy, tile0, tile1);
  }
}

void quantize_int8(const float* x, int k_pad, int8_t* q, float* d, float* dsum, int r0, int r1) {
  const int nb = k_pad / kBlockCols;
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int t = r0; t < r1; ++t) {
    for (int b = 0; b < nb; ++b) {
      const float* xb = x + static_cast<size_t>(t) * k_pad + b * kBlockCols;
      int8_t* qb = q + static_cast<size_t>(t) * k_pad + b * kBlockCols;
      const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
      const float amax =
          _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(x0, sign), _mm512_and_ps(x1, sign)));
      const float scale = amax / 127.0f;
      const __m512 inv = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
      const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, inv));
      const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, inv));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb), _mm512_cvtsepi32_epi8(i0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb + 16), _mm512_cvtsepi32_epi8(i1));
      const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
      d[static_cast<size_t>(t) * nb + b] = scale;
      dsum[static_cast<size_t>(t) * nb + b] = scale * static_cast<float>(sum);
    }
  }
}

// bf16 rows -> fp32 by a 16-bit shift; four rows share each load of x.
void gemv_bf16(const PackedWeight& w, const float* x, float* y, int r0, int r1) {
  const uint16_t* m = reinterpret_cast<const uint16_t*>(w.codes.data());
  const size_t ld = static_cast<size_t>(w.ld);
  const int in = w.in, body = in - in % 16;
  const __mmask16 tm = static_cast<__mmask16>((1u << (in % 16)) - 1);
  auto row16 = [](const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  };
  auto row16_tail = [tm](const uint16_t* p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(tm, p)), 16));
  };
  // Eight rows per pass: eight independent streams keep more memory reads in flight.
  int o = r0;
  for (; o + 8 <= r1; o += 8) {
    const uint16_t* w0 = m + static_cast<size_t>(o) * ld;
    __m512 acc[8];
    for (int r = 0; r < 8; ++r) acc[r] = _mm512_setzero_ps();
    for (int k = 0; k < body; k += 16) {
      const __m512 xv = _mm512_loadu_ps(x + k);
      for (int r = 0; r < 8; ++r) {
        acc[r] = _mm512_fmadd_ps(row16(w0 + static_cast<size_t>(r) * ld + k), xv, acc[r]);
      }
    }
    if (body < in) {
      const __m512 xv = _mm512_maskz_loadu_ps(tm, x + body);
      for (int r = 0; r < 8; ++r) {
        acc[r] = _mm512_fmadd_ps(row16_tail(w0 + static_cast<size_t>(r) * ld + body), xv, acc[r]);
      }
    }
    for (int r = 0; r < 8; ++r) y[o + r] = _mm512_reduce_add_ps(acc[r]);
  }
  for (; o < r1; ++o) {
    const uint16_t* wr = m + static_cast<size_t>(o) * ld;
    __m512 a0 = _mm512_setzero_ps();
    for (int k = 0; k < body; k += 16) {
      a0 = _mm512_fmadd_ps(row16(wr + k), _mm512_loadu_ps(x + k), a0);
    }
    if (body < in)
      a0 = _mm512_fmadd_ps(row16_tail(wr + body), _mm512_maskz_loadu_ps(tm, x + body), a0);
    y[o] = _mm512_reduce_add_ps(a0);
  }
}

}  // namespace

// The bf16 dot product where the CPU has AVX512-BF16, unless LOWBIT_BF16_DOT=0 (to measure the
// fp32 fallback).
Bf16GemmFn bf16_gemm_if_supported() {
  const char* env = std::getenv("LOWBIT_BF16_DOT");
  if (env != nullptr && std::string(env) == "0") return nullptr;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") ? avx512bf16_gemm() : nullptr;
}

const KernelTable* avx512_kernels() {
  static const KernelTable t{"avx512-vnni", gemm_int8, gemm_f32,
                             quantize_int8, gemv_bf16, bf16_gemm_if_supported()};
  return &t;
}

}  // namespace lowbit::kernels

#else

namespace lowbit::kernels {
const KernelTable* avx512_kernels() { return nullptr; }
}  // namespace lowbit::kernels

#endif
