// Scalar reference kernels: the definition of what every SIMD table computes, written for
// clarity (one code at a time through PackedWeight's accessors), and the fallback on CPUs
// without AVX2.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/kernels/kernel_table.h"
#include "lowbit/util/half.h"

namespace lowbit::kernels {
namespace {

int group_blocks_end(const PackedWeight& w, int g) {
  return std::min(w.n_blocks(), (g + 1) * (w.group / kBlockCols));
}

void gemm_int8_ref(const PackedWeight& w, const Int8Acts& a, float* y, int ldy, int tile0,
                   int tile1) {
  const int nb = w.n_blocks(), bpg = w.group / kBlockCols;
  for (int tile = tile0; tile < tile1; ++tile) {
    for (int t = 0; t < a.m; ++t) {
      const int8_t* q = a.q + static_cast<size_t>(t) * a.k_pad;
      for (int r = 0; r < kTileRows; ++r) {
        const int o = tile * kTileRows + r;
        if (o >= w.out) break;
        float acc = 0.0f;
        for (int g = 0; g < w.n_groups; ++g) {
          float gacc = 0.0f, dsum = 0.0f;
          for (int b = g * bpg; b < group_blocks_end(w, g); ++b) {
            int32_t dot = 0;
            for (int c = 0; c < kBlockCols; ++c) {
              const int k = b * kBlockCols + c;
              dot += w.code(o, k) * q[k];
            }
            gacc += static_cast<float>(dot) * a.d[static_cast<size_t>(t) * nb + b];
            dsum += a.dsum[static_cast<size_t>(t) * nb + b];
          }
          const float s = w.scale(o, g);
          acc += s * gacc - s * static_cast<float>(w.zero(o, g)) * dsum;
        }
        y[static_cast<size_t>(t) * ldy + o] = acc;
      }
    }
  }
}

void gemm_f32_ref(const PackedWeight& w, const F32Acts& a, float* y, int ldy, int tile0,
                  int tile1) {
  for (int tile = tile0; tile < tile1; ++tile) {
    for (int t = 0; t < a.m; ++t) {
      const float* x = a.x + static_cast<size_t>(t) * a.k_pad;
      for (int r = 0; r < kTileRows; ++r) {
        const int o = tile * kTileRows + r;
        if (o >= w.out) break;
        float acc = 0.0f;
        for (int g = 0; g < w.n_groups; ++g) {
          float gacc = 0.0f;
          const int k1 = std::min(w.k_pad, (g + 1) * w.group);
          for (int k = g * w.group; k < k1; ++k) {
            const int c = w.code(o, k);
            gacc += (w.kind == PackedKind::kLut4 ? w.lut[c] : static_cast<float>(c)) * x[k];
          }
          const float s = w.scale(o, g);
          acc += s * gacc;
          if (w.kind != PackedKind::kLut4) {
            acc -= s * static_cast<float>(w.zero(o, g)) *
                   a.gsum[static_cast<size_t>(t) * w.n_groups + g];
          }
        }
        y[static_cast<size_t>(t) * ldy + o] = acc;
      }
    }
  }
}

void quantize_int8_ref(const float* x, int k_pad, int8_t* q, float* d, float* dsum, int r0,
                       int r1) {
  const int nb = k_pad / kBlockCols;
  for (int t = r0; t < r1; ++t) {
    for (int b = 0; b < nb; ++b) {
      const float* xb = x + static_cast<size_t>(t) * k_pad + b * kBlockCols;
      int8_t* qb = q + static_cast<size_t>(t) * k_pad + b * kBlockCols;
      float amax = 0.0f;
      for (int c = 0; c < kBlockCols; ++c) amax = std::max(amax, std::fabs(xb[c]));
      const float scale = amax / 127.0f;
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      int32_t sum = 0;
      for (int c = 0; c < kBlockCols; ++c) {
        const int v = static_cast<int>(std::nearbyint(xb[c] * inv));
        qb[c] = static_cast<int8_t>(std::clamp(v, -127, 127));
        sum += qb[c];
      }
      d[static_cast<size_t>(t) * nb + b] = scale;
      dsum[static_cast<size_t>(t) * nb + b] = scale * static_cast<float>(sum);
    }
  }
}

void gemv_bf16_ref(const PackedWeight& w, const float* x, float* y, int r0, int r1) {
  const uint16_t* m = reinterpret_cast<const uint16_t*>(w.codes.data());
  for (int o = r0; o < r1; ++o) {
    const uint16_t* row = m + static_cast<size_t>(o) * w.ld;
    float acc = 0.0f;
    for (int k = 0; k < w.in; ++k) acc += bf16_to_f32(row[k]) * x[k];
    y[o] = acc;
  }
}

void gemm_bf16_ref(int m, int n, int k, const uint16_t* a, size_t lda, const uint16_t* b,
                   size_t ldb, float* c, size_t ldc, bool accumulate) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      float s = 0.0f;
      for (int kk = 0; kk < k; ++kk)
        s += bf16_to_f32(a[i * lda + kk]) * bf16_to_f32(b[j * ldb + kk]);
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + s : s;
    }
  }
}

}  // namespace

const KernelTable& reference_kernels() {
  static const KernelTable t{"scalar",          gemm_int8_ref, gemm_f32_ref,
                             quantize_int8_ref, gemv_bf16_ref, gemm_bf16_ref};
  return t;
}

}  // namespace lowbit::kernels
