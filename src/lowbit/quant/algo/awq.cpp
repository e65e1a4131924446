#include "lowbit/quant/algo/awq.h"

#include <algorithm>
#include <cmath>

#include "lowbit/formats/group_quant.h"
#include "lowbit/kernels/blas.h"
#include "lowbit/quant/algo/rtn.h"
#include "lowbit/util/error.h"

namespace lowbit {

namespace {

// Symmetric Gram matrix G = XᵀX of the columns [c0, c0 + n) of X [rows, ld], full [n, n].
std::vector<float> gram(const float* X, int rows, int ld, int c0, int n) {
  std::vector<float> G(size_t(n) * n, 0.0f);
  kernels::ssyrk_upper_t(n, rows, 1.0f, X + c0, ld, 0.0f, G.data(), n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < i; ++j) G[size_t(i) * n + j] = G[size_t(j) * n + i];
  return G;
}

// Σ_r d_r G d_rᵀ for D [rows, n] = ‖X Dᵀ‖² when G = XᵀX.
double output_error(const std::vector<float>& D, int rows, int n, const std::vector<float>& G) {
  std::vector<float> DG(size_t(rows) * n);
  kernels::sgemm(false, false, rows, n, n, 1.0f, D.data(), n, G.data(), n, 0.0f, DG.data(), n);
  double err = 0;
  for (size_t k = 0; k < D.size(); ++k) err += double(D[k]) * DG[k];
  return err;
}

// D = W − Q(W diag(s)) / s for one linear, written to D [out, in].
void scaled_rtn_residual(const AwqLinear& lin, int in, const std::vector<float>& s,
                         const QuantScheme& scheme, float* D) {
  std::vector<float> ws(lin.w, lin.w + size_t(lin.out) * in);
  scale_input_channels(ws.data(), lin.out, in, s.data());
  const std::vector<float> deq = quantize_rtn(ws.data(), lin.out, in, scheme).dequantize();
  for (int r = 0; r < lin.out; ++r)
    for (int i = 0; i < in; ++i) {
      const size_t k = size_t(r) * in + i;
      D[k] = lin.w[k] - deq[k] / s[i];
    }
}

}  // namespace

AwqScales awq_search_scales(const std::vector<AwqLinear>& linears, int in, const float* X,
                            int n_tokens, const QuantScheme& scheme, const AwqOptions& opt) {
  if (linears.empty() || in <= 0 || n_tokens <= 0 || opt.n_grid <= 0)
    fail("awq", "bad search input ({} linears, in {}, {} tokens)", linears.size(), in, n_tokens);
  int out_total = 0;
  for (const AwqLinear& lin : linears) out_total += lin.out;

  std::vector<float> x_mean(in, 0.0f);  // mean |x| per input channel
  for (int t = 0; t < n_tokens; ++t)
    for (int i = 0; i < in; ++i) x_mean[i] += std::fabs(X[size_t(t) * in + i]);
  for (float& v : x_mean) v /= n_tokens;
  const std::vector<float> G = gram(X, n_tokens, in, 0, in);

  AwqScales best;
  std::vector<float> s(in), D(size_t(out_total) * in);
  for (int k = 0; k < opt.n_grid; ++k) {
    const float alpha = float(k) / opt.n_grid;
    for (int i = 0; i < in; ++i) s[i] = std::max(std::pow(x_mean[i], alpha), 1e-4f);
    const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
    const float norm = std::sqrt(*lo * *hi);
    for (float& v : s) v /= norm;

    size_t row0 = 0;
    for (const AwqLinear& lin : linears) {
      scaled_rtn_residual(lin, in, s, scheme, &D[row0 * in]);
      row0 += lin.out;
    }
    const double err = output_error(D, out_total, in, G) / (double(n_tokens) * out_total);
    if (k == 0) best.error_alpha0 = err;
    if (k == 0 || err < best.error) best.error = err, best.alpha = alpha, best.s = s;
  }
  return best;
}

std::vector<float> awq_search_clip(const float* W, int out, int in, const float* X, int n_tokens,
                                   const QuantScheme& scheme, const AwqOptions& opt) {
  if (out <= 0 || in <= 0 || n_tokens <= 0) fail("awq", "bad clip search input");
  const int gs = group_columns(scheme, in), n_groups = group_count(scheme, in);
  const int stride = std::max(1, n_tokens / std::max(1, opt.clip_tokens));
  std::vector<float> Xs;  // token subsample
  for (int t = 0; t < n_tokens; t += stride)
    Xs.insert(Xs.end(), X + size_t(t) * in, X + size_t(t + 1) * in);
  const int rows = int(Xs.size() / in);
  const int n_ratios = std::max(1, int(opt.clip_max_shrink * opt.clip_grid));

  std::vector<float> ratios(size_t(out) * n_groups, 1.0f);
  for (int g = 0; g < n_groups; ++g) {
    const int c0 = g * gs, n = std::min(gs, in - c0);
    const std::vector<float> G = gram(Xs.data(), rows, in, c0, n);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < out; ++r) {
      const float* w = W + size_t(r) * in + c0;
      std::vector<float> d(n);
      double best = 0;
      for (int k = 0; k < n_ratios; ++k) {
        const float ratio = 1.0f - float(k) / opt.clip_grid;
        const GroupParams p = fit_group_clamped(scheme, w, n, ratio);
        for (int i = 0; i < n; ++i)
          d[i] = w[i] - dequantize_value(scheme, p, quantize_value(scheme, p, w[i]));
        double err = 0;  // dᵀ G d
        for (int i = 0; i < n; ++i) {
          double gd = 0;
          for (int j = 0; j < n; ++j) gd += double(G[size_t(i) * n + j]) * d[j];
          err += d[i] * gd;
        }
        if (k == 0 || err < best) best = err, ratios[size_t(r) * n_groups + g] = ratio;
      }
    }
  }
  return ratios;
}

void scale_input_channels(float* W, int out, int in, const float* s) {
  for (int r = 0; r < out; ++r)
    for (int i = 0; i < in; ++i) W[size_t(r) * in + i] *= s[i];
}

void fold_scales_into_norm(float* norm_w, float* norm_b, int n, const float* s) {
  for (int i = 0; i < n; ++i) {
    norm_w[i] /= s[i];
    if (norm_b) norm_b[i] /= s[i];
  }
}

bool fold_scales_into_linear(float* prev_w, float* prev_b, int prev_out, int prev_in,
                             const float* s, int n) {
  if (prev_out != n) return false;
  for (int r = 0; r < prev_out; ++r) {
    for (int i = 0; i < prev_in; ++i) prev_w[size_t(r) * prev_in + i] /= s[r];
    if (prev_b) prev_b[r] /= s[r];
  }
  return true;
}

}  // namespace lowbit
