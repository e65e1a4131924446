#include "lowbit/quant/algo/gptq.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "lowbit/formats/group_quant.h"
#include "lowbit/kernels/blas.h"
#include "lowbit/quant/algo/rtn.h"
#include "lowbit/util/error.h"

namespace lowbit {

std::vector<float> inverse_hessian_cholesky(const std::vector<float>& H, int n, float percdamp,
                                            float* damp) {
  // U = chol(H⁻¹) (upper) without forming H⁻¹: with P the index reversal, P H P = L Lᵀ (lower
  // Cholesky) gives H⁻¹ = (P L⁻¹ P)ᵀ (P L⁻¹ P), so U = P L⁻¹ P. One potrf and one trtri (2n³/3
  // flops) instead of potrf, potri, potrf (4n³/3), in double (docs/QUANT_ALGORITHMS.md). LAPACK is
  // called column-major on row-major data: a row-major lower triangle is a column-major upper one,
  // so no transposes are made.
  double mean_diag = 0;
  for (int i = 0; i < n; ++i) mean_diag += H[size_t(i) * n + i];
  mean_diag /= n;
  std::vector<double> A(size_t(n) * n);
  for (int attempt = 0; attempt < 5; ++attempt, percdamp *= 10) {
    const double lambda = percdamp * mean_diag;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; ++i) {
      const float* h = &H[size_t(n - 1 - i) * n];
      double* a = &A[size_t(i) * n];
      for (int j = 0; j <= i; ++j) a[j] = h[n - 1 - j];  // lower triangle of P H P
      a[i] += lambda;
    }
    {
      const kernels::SingleThreadBlas one;  // the same bits with any thread count (blas.h)
      if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', n, A.data(), n) != 0) continue;  // not PD
      if (LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'U', 'N', n, A.data(), n) != 0) continue;
    }
    std::vector<float> U(size_t(n) * n);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; ++i) {
      float* u = &U[size_t(i) * n];
      const double* a = &A[size_t(n - 1 - i) * n];  // row-major lower triangle of L⁻¹
      for (int j = 0; j < i; ++j) u[j] = 0.0f;
      for (int j = i; j < n; ++j) u[j] = float(a[n - 1 - j]);
    }
    if (damp) *damp = float(lambda);
    return U;
  }
  fail("gptq", "Hessian [{}, {}] is not positive definite even with dampening {}", n, n,
       percdamp / 10);
}

namespace {

// Column order of the sweep: identity, or descending diag(H) for act-order (stable on ties).
std::vector<int> sweep_order(const std::vector<float>& H, int in, bool act_order) {
  std::vector<int> perm(in);
  std::iota(perm.begin(), perm.end(), 0);
  if (act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int a, int b) { return H[size_t(a) * in + a] > H[size_t(b) * in + b]; });
  return perm;
}

// End of the lazy block starting at i1: at most block_size columns, and never cutting a
// dynamically fitted group, so every group is fitted on fully updated columns.
int block_end(int i1, int in, int block_size, int gs, bool dynamic_groups) {
  int i2 = std::min(i1 + block_size, in);
  if (dynamic_groups) {
    const int last_start = ((i2 - 1) / gs) * gs;
    if (last_start > i1 && std::min(last_start + gs, in) > i2) i2 = last_start;
  }
  return i2;
}

// The rounding grid of a ggml block type (formats/ggml_blocks.h) during the sweep. A row's block
// is fitted by the type's own encoder (importance diag(H), as llama.cpp's imatrix) — at the
// block's first column on the error-updated weights, or up front on the original weights when
// the sweep order is permuted (act-order) — and each column is then rounded to the block's grid
// (value = scale · level(code) + offset); the chosen codes are written back into the blocks.
struct GgmlGrid {
  gguf::GgmlType type;
  int in, bv, levels;
  const float* table;
  size_t row_bytes;
  std::vector<float> scale, offset;  // [out, in], original column order
  std::vector<uint8_t> codes;        // [out, in]

  GgmlGrid(const QuantScheme& s, int out, int in_)
      : type(s.ggml),
        in(in_),
        bv(s.group_size),
        levels(gguf::code_levels(s.ggml)),
        table(gguf::code_table(s.ggml)),
        row_bytes(ggml_row_bytes(s, in_)),
        scale(size_t(out) * in_),
        offset(size_t(out) * in_),
        codes(size_t(out) * in_) {}

  // Fits block `b` of row r from its current values `w` (bv of them) into `blocks`.
  void fit(int r, int b, const float* w, const float* imp, uint8_t* blocks) {
    uint8_t* blk = blocks + size_t(r) * row_bytes + size_t(b) * gguf::block_bytes(type);
    gguf::quantize_row(type, w, blk, bv, imp);
    const size_t at = size_t(r) * in + size_t(b) * bv;
    gguf::block_grid(type, blk, &scale[at], &offset[at]);
  }
  float level(int c) const { return table ? table[c] : float(c); }
  // Nearest grid value of w at (r, c); stores its code and returns the value.
  float round(int r, int c, float w) {
    const size_t at = size_t(r) * in + c;
    const float sc = scale[at], off = offset[at];
    int best = 0;
    if (table == nullptr) {
      const float x = sc != 0.0f ? (w - off) / sc : 0.0f;
      best = std::isfinite(x) ? int(std::clamp(std::nearbyint(x), 0.0f, float(levels - 1))) : 0;
    } else {
      float best_d = std::fabs(w - (sc * table[0] + off));
      for (int k = 1; k < levels; ++k) {
        const float d = std::fabs(w - (sc * table[k] + off));
        if (d < best_d) best_d = d, best = k;
      }
    }
    codes[at] = uint8_t(best);
    return sc * level(best) + off;
  }
  void write_codes(int out, uint8_t* blocks) const {
    const int bb = gguf::block_bytes(type);
    for (int r = 0; r < out; ++r)
      for (int b = 0; b < in / bv; ++b)
        gguf::set_codes(type, blocks + size_t(r) * row_bytes + size_t(b) * bb,
                        &codes[size_t(r) * in + size_t(b) * bv]);
  }
};

}  // namespace

QuantizedWeight quantize_gptq(const float* W, int out, int in, std::vector<float> H,
                              const QuantScheme& scheme, const GptqOptions& opt, GptqStats* stats) {
  if (out <= 0 || in <= 0) fail("gptq", "bad shape [{}, {}]", out, in);
  if (H.size() != size_t(in) * in) fail("gptq", "Hessian has {} values, want {}²", H.size(), in);
  const int gs = group_columns(scheme, in);
  const bool per_channel = scheme.group_size <= 0;
  const bool ggml = scheme.type == WeightType::kGgml;
  // A ggml block is contiguous in the original column order: under act-order it is fitted up
  // front, as static groups are.
  const bool static_groups = per_channel || opt.static_groups || (ggml && opt.act_order);
  GptqStats st;

  // Dead columns (never activated): H_ii = 1 and W[:, i] = 0.
  std::vector<float> Wc(W, W + size_t(out) * in);
  for (int i = 0; i < in; ++i) {
    if (H[size_t(i) * in + i] != 0.0f) continue;
    H[size_t(i) * in + i] = 1.0f;
    for (int r = 0; r < out; ++r) Wc[size_t(r) * in + i] = 0.0f;
    ++st.dead_columns;
  }

  QuantizedWeight qw = quantize_rtn(Wc.data(), out, in, scheme);  // shapes; static params
  const int n_groups = qw.n_groups;
  std::vector<float> hdiag(in);
  for (int i = 0; i < in; ++i) hdiag[i] = H[size_t(i) * in + i];
  std::optional<GgmlGrid> grid;
  if (ggml) {
    grid.emplace(scheme, out, in);
    if (static_groups) {
#pragma omp parallel for schedule(static)
      for (int r = 0; r < out; ++r)
        for (int b = 0; b < in / gs; ++b)
          grid->fit(r, b, &Wc[size_t(r) * in + size_t(b) * gs], &hdiag[size_t(b) * gs],
                    qw.blocks.data());
    }
  }

  // Act-order: permute W's columns and H's rows/columns; g_idx follows the sweep position.
  const std::vector<int> perm = sweep_order(H, in, opt.act_order);
  std::vector<float> Wp, Hp;
  if (opt.act_order) {
    Wp.resize(size_t(out) * in);
    Hp.resize(size_t(in) * in);
    for (int r = 0; r < out; ++r)
      for (int j = 0; j < in; ++j) Wp[size_t(r) * in + j] = Wc[size_t(r) * in + perm[j]];
    for (int i = 0; i < in; ++i)
      for (int j = 0; j < in; ++j) Hp[size_t(i) * in + j] = H[size_t(perm[i]) * in + perm[j]];
    std::vector<float>().swap(Wc);
  } else {
    Wp = std::move(Wc);
    Hp = std::move(H);
  }
  std::vector<float>().swap(H);
  for (int j = 0; j < in; ++j) qw.g_idx[perm[j]] = static_groups ? perm[j] / gs : j / gs;

  const std::vector<float> U = inverse_hessian_cholesky(Hp, in, opt.percdamp, &st.damp);
  std::vector<float>().swap(Hp);

  std::vector<double> row_loss(out, 0.0);
  std::vector<float> err;
  for (int i1 = 0; i1 < in;) {
    const int i2 = block_end(i1, in, std::max(1, opt.block_size), gs, !static_groups);
    const int count = i2 - i1;
    err.assign(size_t(out) * count, 0.0f);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < out; ++r) {
      float* w = &Wp[size_t(r) * in];
      for (int j = i1; j < i2; ++j) {
        float value;
        if (ggml) {
          if (!static_groups && j % gs == 0)
            grid->fit(r, j / gs, w + j, &hdiag[j], qw.blocks.data());
          value = grid->round(r, perm[j], w[j]);
        } else {
          const int g = qw.g_idx[perm[j]];
          GroupParams& p = qw.params[size_t(r) * n_groups + g];
          if (!static_groups && j % gs == 0) p = fit_group(scheme, w + j, std::min(gs, in - j));
          const uint8_t q = quantize_value(scheme, p, w[j]);
          qw.q[size_t(r) * in + perm[j]] = q;
          value = dequantize_value(scheme, p, q);
        }
        const float d = U[size_t(j) * in + j];
        const float e = (w[j] - value) / d;
        row_loss[r] += 0.5 * double(e) * e;
        for (int k = j + 1; k < i2; ++k) w[k] -= e * U[size_t(j) * in + k];
        err[size_t(r) * count + (j - i1)] = e;
      }
    }
    // Lazy batch update of the remaining columns: W[:, i2:] -= Err · U[i1:i2, i2:].
    if (i2 < in)
      kernels::sgemm(false, false, out, in - i2, count, -1.0f, err.data(), count,
                     &U[size_t(i1) * in + i2], in, 1.0f, &Wp[i2], in);
    i1 = i2;
  }
  if (ggml) {
    grid->write_codes(out, qw.blocks.data());
    for (int c = 0; c < in; ++c) qw.g_idx[c] = c / gs;  // blocks stay in column order
  }
  st.error = std::accumulate(row_loss.begin(), row_loss.end(), 0.0);
  if (stats) *stats = st;
  return qw;
}

}  // namespace lowbit
