// AVX2 kernels (AVX2, FMA, F16C), for x86-64 CPUs without AVX-512 VNNI. The int8-activation GEMM
// uses vpmaddubsw + vpmaddwd (u8 × s8 pairs summed into int16, then into int32 lanes) on each
// 8-row half of a 16-row tile. vpmaddubsw saturates int16, so 8-bit codes are split into two
// nibbles (each product pair then stays below 2·15·127). The other kernels are the reference ones.
#include "lowbit/kernels/kernel_table.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <algorithm>
#include <cstring>

#include "lowbit/util/simd.h"

namespace lowbit::kernels {
namespace {

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Σ of 4 u8·s8 products per int32 lane.
inline __m256i dot4(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

inline __m256 load_scales8(const PackedWeight& w, size_t at) {
  if (w.scales_f16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(
        reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(w.scales.data()) + at)));
  }
  return _mm256_loadu_ps(reinterpret_cast<const float*>(w.scales.data()) + at);
}

inline __m256 load_zeros8(const PackedWeight& w, size_t at) {
  if (!w.has_zero) return _mm256_set1_ps(static_cast<float>(w.zero_const));
  int64_t z;
  std::memcpy(&z, w.zeros.data() + at, 8);
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(z)));
}

// One activation row against rows [8h, 8h + 8) of one tile.
void half_tile(const PackedWeight& w, const Int8Acts& a, float* y, int ldy, int tile, int h,
               int t) {
  const int nb = w.n_blocks(), bpg = w.group / kBlockCols;
  const bool k8 = w.kind == PackedKind::kInt8;
  const uint8_t* wt = w.codes.data() + static_cast<size_t>(tile) * w.tile_stride + h * 32;
  const int8_t* q = a.q + static_cast<size_t>(t) * a.k_pad;
  const float* d = a.d + static_cast<size_t>(t) * nb;
  const float* ds = a.dsum + static_cast<size_t>(t) * nb;
  const __m256i m0f = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  for (int g = 0; g < w.n_groups; ++g) {
    __m256 gacc = _mm256_setzero_ps();
    float dsum = 0.0f;
    const int b1 = std::min(nb, (g + 1) * bpg);
    for (int b = g * bpg; b < b1; ++b) {
      const uint8_t* wb = wt + static_cast<size_t>(b) * w.block_bytes();
      const int k0 = b * kBlockCols;
      __m256i iacc = _mm256_setzero_si256();
      if (k8) {
        for (int o = 0; o < 8; ++o) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + o * 64));
          const __m256i s = bcast4(q + k0 + 4 * o);
          const __m256i lo = dot4(_mm256_and_si256(v, m0f), s);
          const __m256i hi = dot4(_mm256_and_si256(_mm256_srli_epi16(v, 4), m0f), s);
          iacc = _mm256_add_epi32(iacc, _mm256_add_epi32(lo, _mm256_slli_epi32(hi, 4)));
        }
      } else {
        for (int o = 0; o < 4; ++o) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + o * 64));
          iacc = _mm256_add_epi32(iacc, dot4(_mm256_and_si256(v, m0f), bcast4(q + k0 + 8 * o)));
          iacc = _mm256_add_epi32(iacc, dot4(_mm256_and_si256(_mm256_srli_epi16(v, 4), m0f),
                                             bcast4(q + k0 + 8 * o + 4)));
        }
      }
      gacc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc), _mm256_set1_ps(d[b]), gacc);
      dsum += ds[b];
    }
    const size_t at = (static_cast<size_t>(tile) * w.n_groups + g) * kTileRows + h * 8;
    const __m256 s = load_scales8(w, at);
    acc = _mm256_fmadd_ps(s, gacc, acc);
    acc = _mm256_fnmadd_ps(_mm256_mul_ps(s, load_zeros8(w, at)), _mm256_set1_ps(dsum), acc);
  }
  alignas(32) float out[8];
  _mm256_store_ps(out, acc);
  const int row0 = tile * kTileRows + h * 8;
  const int rows = std::min(8, w.out - row0);
  for (int r = 0; r < rows; ++r) y[static_cast<size_t>(t) * ldy + row0 + r] = out[r];
}

void gemm_int8(const PackedWeight& w, const Int8Acts& a, float* y, int ldy, int tile0, int tile1) {
  for (int tile = tile0; tile < tile1; ++tile) {
    for (int t = 0; t < a.m; ++t) {
      half_tile(w, a, y, ldy, tile, 0, t);
      if (tile * kTileRows + 8 < w.out) half_tile(w, a, y, ldy, tile, 1, t);
    }
  }
}

}  // namespace

const KernelTable* avx2_kernels() {
  const KernelTable& ref = reference_kernels();
  static const KernelTable t{"avx2",        gemm_int8, ref.gemm_f32, ref.quantize_int8,
                             ref.gemv_bf16, nullptr};
  return &t;
}

}  // namespace lowbit::kernels

#else

namespace lowbit::kernels {
const KernelTable* avx2_kernels() { return nullptr; }
}  // namespace lowbit::kernels

#endif
