#include "lowbit/kernels/packed_matmul.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "lowbit/kernels/blas.h"
#include "lowbit/kernels/cpu_dispatch.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"

namespace lowbit::kernels {

namespace {

std::atomic<int>& mode_store() {
  static std::atomic<int> m{[] {
    const char* env = std::getenv("LOWBIT_ACT");
    return static_cast<int>(env && *env ? parse_act_mode("LOWBIT_ACT", env) : ActMode::kAuto);
  }()};
  return m;
}

bool quantized(const PackedWeight& w) { return w.kind != PackedKind::kBF16; }

// Which path a weight takes for m rows.
enum class Path { kInt8Gemm, kF32Gemm, kBf16Gemv, kBf16Dot, kSgemm };

Path choose(const PackedWeight& w, int m, ActMode mode) {
  if (w.kind == PackedKind::kBF16) {
    // Activations rounded to bf16 and multiplied on the bf16 dot product where the CPU has one
    // (as llama.cpp does for bf16 weights); else fp32 activations.
    if (active_kernels().gemm_bf16 != nullptr) return Path::kBf16Dot;
    return m == 1 ? Path::kBf16Gemv : Path::kSgemm;
  }
  if (w.act) mode = w.act->quantized ? ActMode::kInt8 : ActMode::kF32;  // the linear's own scheme
  if (mode == ActMode::kAuto) mode = w.kind == PackedKind::kLut4 ? ActMode::kF32 : ActMode::kInt8;
  if (mode == ActMode::kInt8 && w.kind != PackedKind::kLut4) return Path::kInt8Gemm;
  return m < 4 ? Path::kF32Gemm : Path::kSgemm;
}

// Activations prepared for one weight (shared by consecutive weights with the same column order).
struct Prepared {
  const PackedWeight* key = nullptr;  // the weight it was prepared for
  const float* x = nullptr;           // [m][k_pad] in packed order (may alias the input)
  std::vector<float> xp;
  std::vector<int8_t> q;
  std::vector<uint16_t> xb;  // bf16 activations [m][in]
  std::vector<float> d, dsum, gsum;
  std::vector<float> mid;  // asymmetric activations: m of each row (x ≈ s·q + m)
  int gsum_group = 0;
};

bool same_input(const PackedWeight& a, const PackedWeight& b) {
  return a.k_pad == b.k_pad && a.in == b.in && a.perm == b.perm && a.act == b.act;
}

// Int8 codes of rows [r0, r1) under a per-row (token) or static (tensor) scheme: one (s, m) per
// row, every block of the row scaled by s; padded columns get code 0. The kernels then compute
// Σ_k W_k · s·q_k; the m · Σ_k W_k term is added after (add_mid_term).
void quantize_rows(const ActScheme& a, const float* x, int in, int k_pad, int8_t* q, float* d,
                   float* dsum, float* mid, int r0, int r1) {
  const int nb = k_pad / kBlockCols;
  for (int t = r0; t < r1; ++t) {
    const float* xr = x + static_cast<size_t>(t) * k_pad;
    int8_t* qr = q + static_cast<size_t>(t) * k_pad;
    float s, m;
    act_row_params(a, xr, in, &s, &m);
    mid[t] = m;
    for (int k = 0; k < in; ++k) qr[k] = static_cast<int8_t>(act_code(xr[k], s, m));
    std::fill(qr + in, qr + k_pad, int8_t{0});
    for (int b = 0; b < nb; ++b) {
      int sum = 0;
      for (int k = b * kBlockCols; k < (b + 1) * kBlockCols; ++k) sum += qr[k];
      d[static_cast<size_t>(t) * nb + b] = s;
      dsum[static_cast<size_t>(t) * nb + b] = s * static_cast<float>(sum);
    }
  }
}

void prepare_x(const PackedWeight& w, const float* x, int m, Prepared* p) {
  if (w.perm.empty() && w.k_pad == w.in) {
    p->x = x;
    return;
  }
  p->xp.assign(static_cast<size_t>(m) * w.k_pad, 0.0f);
  for (int t = 0; t < m; ++t) {
    const float* src = x + static_cast<size_t>(t) * w.in;
    float* dst = p->xp.data() + static_cast<size_t>(t) * w.k_pad;
    if (w.perm.empty()) {
      std::memcpy(dst, src, sizeof(float) * w.in);
    } else {
      for (int k = 0; k < w.in; ++k) dst[k] = src[w.perm[static_cast<size_t>(k)]];
    }
  }
  p->x = p->xp.data();
}

void prepare_int8(const PackedWeight& w, int m, Prepared* p) {
  const int nb = w.n_blocks();
  p->q.resize(static_cast<size_t>(m) * w.k_pad);
  p->d.resize(static_cast<size_t>(m) * nb);
  p->dsum.resize(static_cast<size_t>(m) * nb);
  p->mid.assign(static_cast<size_t>(m), 0.0f);
  const KernelTable& kt = active_kernels();
  const float* x = p->x;
  const bool per_block = !w.act || w.act->granularity == ActGranularity::kBlock;
#pragma omp parallel if (m >= 16)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int r0 = m * t / nt, r1 = m * (t + 1) / nt;
    if (per_block) {
      kt.quantize_int8(x, w.k_pad, p->q.data(), p->d.data(), p->dsum.data(), r0, r1);
    } else {
      quantize_rows(*w.act, x, w.in, w.k_pad, p->q.data(), p->d.data(), p->dsum.data(),
                    p->mid.data(), r0, r1);
    }
  }
}

void prepare_gsum(const PackedWeight& w, int m, Prepared* p) {
  p->gsum.assign(static_cast<size_t>(m) * w.n_groups, 0.0f);
  p->gsum_group = w.group;
  for (int t = 0; t < m; ++t) {
    const float* x = p->x + static_cast<size_t>(t) * w.k_pad;
    for (int g = 0; g < w.n_groups; ++g) {
      const int k1 = std::min(w.k_pad, (g + 1) * w.group);
      float s = 0.0f;
      for (int k = g * w.group; k < k1; ++k) s += x[k];
      p->gsum[static_cast<size_t>(t) * w.n_groups + g] = s;
    }
  }
}

// Weights whose chunks go through BLAS: dequantize (or widen) a chunk of rows, sgemm it.
void sgemm_path(const PackedWeight& w, const float* x, int m, float* y) {
  // Chunks of ~8 MB of fp32 rows (whole tiles), in a buffer kept between calls.
  const int tiles = (w.out + kTileRows - 1) / kTileRows;
  const int chunk_tiles = std::clamp((1 << 21) / std::max(1, w.k_pad) / kTileRows, 1, tiles);
  const int rows_per_chunk = chunk_tiles * kTileRows;
  static thread_local std::vector<float> store;
  std::vector<float>& buf = store;
  if (buf.size() < static_cast<size_t>(rows_per_chunk) * w.k_pad) {
    buf.resize(static_cast<size_t>(rows_per_chunk) * w.k_pad);
  }
  for (int r0 = 0; r0 < w.out; r0 += rows_per_chunk) {
    const int rows = std::min(rows_per_chunk, w.out - r0);
    if (w.kind == PackedKind::kBF16) {
      const uint16_t* src =
          reinterpret_cast<const uint16_t*>(w.codes.data()) + static_cast<size_t>(r0) * w.ld;
      for (int r = 0; r < rows; ++r) {
        bf16_to_f32_n(src + static_cast<size_t>(r) * w.ld,
                      buf.data() + static_cast<size_t>(r) * w.in, static_cast<size_t>(w.in));
      }
    } else {
      const int t0 = r0 / kTileRows, t1 = (r0 + rows + kTileRows - 1) / kTileRows;
#pragma omp parallel
      {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int a = t0 + (t1 - t0) * t / nt, b = t0 + (t1 - t0) * (t + 1) / nt;
        if (a < b) {
          dequantize_tiles(w, a, b, buf.data() + static_cast<size_t>(a - t0) * kTileRows * w.k_pad);
        }
      }
    }
    sgemm(false, true, m, rows, w.k_pad, 1.0f, x, w.k_pad, buf.data(), w.k_pad, 0.0f, y + r0,
          w.out);
  }
}

}  // namespace

ActMode parse_act_mode(const std::string& where, const std::string& name) {
  if (name == "auto") return ActMode::kAuto;
  if (name == "f32") return ActMode::kF32;
  if (name == "int8") return ActMode::kInt8;
  fail(where, "unknown activation mode '{}' (expected auto, f32 or int8)", name);
}

const char* act_mode_name(ActMode m) {
  switch (m) {
    case ActMode::kAuto:
      return "auto";
    case ActMode::kF32:
      return "f32";
    case ActMode::kInt8:
      return "int8";
  }
  return "?";
}

void set_act_mode(ActMode m) { mode_store().store(static_cast<int>(m)); }
ActMode act_mode() { return static_cast<ActMode>(mode_store().load()); }

void dequantize_tiles(const PackedWeight& w, int tile0, int tile1, float* out) {
  const int nb = w.n_blocks(), bpg = w.group / kBlockCols;
  const bool k8 = w.kind == PackedKind::kInt8, lut = w.kind == PackedKind::kLut4;
  for (int tile = tile0; tile < tile1; ++tile) {
    const uint8_t* wt = w.codes.data() + static_cast<size_t>(tile) * w.tile_stride;
    const int rows = std::min(kTileRows, w.out - tile * kTileRows);
    float* base = out + static_cast<size_t>(tile - tile0) * kTileRows * w.k_pad;
    for (int b = 0; b < nb; ++b) {
      const uint8_t* wb = wt + static_cast<size_t>(b) * w.block_bytes();
      const int g = b / bpg;
      for (int r = 0; r < rows; ++r) {
        const int o = tile * kTileRows + r;
        const float s = w.scale(o, g);
        const float z = lut ? 0.0f : static_cast<float>(w.zero(o, g));
        float* dst = base + static_cast<size_t>(r) * w.k_pad + b * kBlockCols;
        for (int c = 0; c < kBlockCols; ++c) {
          int code;
          if (k8) {
            code = wb[(c / 4) * 64 + r * 4 + c % 4];
          } else {
            const uint8_t byte = wb[(c / 8) * 64 + r * 4 + c % 4];
            code = (c % 8) >= 4 ? byte >> 4 : byte & 15;
          }
          dst[c] = lut ? s * w.lut[code] : s * (static_cast<float>(code) - z);
        }
      }
    }
  }
}

void packed_matmul(const PackedWeight* const* ws, float* const* ys, int count, const float* x,
                   int m, ActMode mode) {
  if (mode == ActMode::kAuto) mode = act_mode();
  // Prepare the activations, sharing them between weights with the same column order.
  static thread_local std::vector<Prepared> prep_store;
  std::vector<Prepared>& preps = prep_store;  // the calling thread's, shared with the team
  if (preps.size() < static_cast<size_t>(count)) preps.resize(static_cast<size_t>(count));
  std::vector<Path> paths(static_cast<size_t>(count));
  std::vector<int> prep_of(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    const PackedWeight& w = *ws[i];
    const Path path = choose(w, m, mode);
    paths[static_cast<size_t>(i)] = path;
    int j = 0;
    for (; j < i; ++j) {
      if (same_input(*ws[j], w) && paths[static_cast<size_t>(j)] == path &&
          (path != Path::kF32Gemm || ws[j]->group == w.group)) {
        break;
      }
    }
    prep_of[static_cast<size_t>(i)] = j;
    if (j < i) continue;
    Prepared& p = preps[static_cast<size_t>(i)];
    if (path == Path::kBf16Gemv || (path == Path::kSgemm && !quantized(w))) {
      p.x = x;
      continue;
    }
    if (path == Path::kBf16Dot) {
      // Rows at bf16_row_stride: not 4 KiB apart (see packed_weight.h).
      const int ld = bf16_row_stride(w.in);
      p.xb.resize(static_cast<size_t>(m) * ld);
#pragma omp parallel if (static_cast <size_t>(m) * w.in >= (1 << 16))
      {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        for (int r = m * t / nt; r < m * (t + 1) / nt; ++r) {
          f32_to_bf16_n(x + static_cast<size_t>(r) * w.in,
                        p.xb.data() + static_cast<size_t>(r) * ld, static_cast<size_t>(w.in));
        }
      }
      continue;
    }
    prepare_x(w, x, m, &p);
    if (path == Path::kInt8Gemm) prepare_int8(w, m, &p);
    if (path == Path::kF32Gemm) prepare_gsum(w, m, &p);
  }
  // Kernel-path weights: one parallel region, each thread a contiguous range of tiles.
  long long work = 0;
  bool any_kernel = false;
  for (int i = 0; i < count; ++i) {
    if (paths[static_cast<size_t>(i)] == Path::kSgemm) continue;
    any_kernel = true;
    work += static_cast<long long>(ws[i]->out) * ws[i]->in * m;
  }
  if (any_kernel) {
    const KernelTable& kt = active_kernels();
#pragma omp parallel if (work >= (1 << 16))
    {
      const int nt = omp_get_num_threads(), t = omp_get_thread_num();
      for (int i = 0; i < count; ++i) {
        const PackedWeight& w = *ws[i];
        const Path path = paths[static_cast<size_t>(i)];
        if (path == Path::kSgemm) continue;
        const Prepared& p = preps[static_cast<size_t>(prep_of[static_cast<size_t>(i)])];
        const int tiles = (w.out + kTileRows - 1) / kTileRows;
        const int a = tiles * t / nt, b = tiles * (t + 1) / nt;
        if (a >= b) continue;
        switch (path) {
          case Path::kInt8Gemm: {
            // Cache blocking: rows of activations in chunks that stay in L2 while the thread's
            // tiles stream past them once per chunk.
            const int nb = w.n_blocks();
            const int chunk = std::max(4, (256 << 10) / w.k_pad / 4 * 4);
            for (int t0 = 0; t0 < m; t0 += chunk) {
              const int rows = std::min(chunk, m - t0);
              const size_t off = static_cast<size_t>(t0);
              const Int8Acts acts{rows, w.k_pad, p.q.data() + off * w.k_pad, p.d.data() + off * nb,
                                  p.dsum.data() + off * nb};
              kt.gemm_int8(w, acts, ys[i] + off * w.out, w.out, a, b);
            }
            break;
          }
          case Path::kF32Gemm: {
            const F32Acts acts{m, w.k_pad, p.x, p.gsum.data()};
            kt.gemm_f32(w, acts, ys[i], w.out, a, b);
            break;
          }
          case Path::kBf16Gemv:
            kt.gemv_bf16(w, p.x, ys[i], a * kTileRows, std::min(w.out, b * kTileRows));
            break;
          case Path::kBf16Dot: {
            const int r0 = a * kTileRows, r1 = std::min(w.out, b * kTileRows);
            const uint16_t* wb = reinterpret_cast<const uint16_t*>(w.codes.data());
            kt.gemm_bf16(m, r1 - r0, w.in, p.xb.data(), bf16_row_stride(w.in),
                         wb + static_cast<size_t>(r0) * w.ld, w.ld, ys[i] + r0, w.out, false);
            break;
          }
          case Path::kSgemm:
            break;
        }
      }
    }
  }
  // Asymmetric activations: y[t][o] += m_t · Σ_k W[o][k].
  for (int i = 0; i < count; ++i) {
    const PackedWeight& w = *ws[i];
    if (paths[static_cast<size_t>(i)] != Path::kInt8Gemm || w.row_sums.empty()) continue;
    const Prepared& p = preps[static_cast<size_t>(prep_of[static_cast<size_t>(i)])];
    for (int t = 0; t < m; ++t) {
      const float mt = p.mid[static_cast<size_t>(t)];
      float* y = ys[i] + static_cast<size_t>(t) * w.out;
      for (int o = 0; o < w.out; ++o) y[o] += mt * w.row_sums[static_cast<size_t>(o)];
    }
  }
  for (int i = 0; i < count; ++i) {
    if (paths[static_cast<size_t>(i)] != Path::kSgemm) continue;
    const Prepared& p = preps[static_cast<size_t>(prep_of[static_cast<size_t>(i)])];
    sgemm_path(*ws[i], p.x, m, ys[i]);
  }
}

}  // namespace lowbit::kernels
