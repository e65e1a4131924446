#include "lowbit/quant/algo/rtn.h"

#include <algorithm>

#include "lowbit/formats/group_quant.h"
#include "lowbit/util/error.h"

namespace lowbit {

int group_columns(const QuantScheme& s, int in) { return s.group_size > 0 ? s.group_size : in; }

int group_count(const QuantScheme& s, int in) {
  const int gs = group_columns(s, in);
  return (in + gs - 1) / gs;
}

double group_error(const QuantScheme& s, const GroupParams& p, const float* w, const float* imp,
                   int n) {
  double err = 0;
  for (int i = 0; i < n; ++i) {
    const double d = w[i] - dequantize_value(s, p, quantize_value(s, p, w[i]));
    err += (imp ? imp[i] : 1.0) * d * d;
  }
  return err;
}

namespace {

// The clip ratio of one group: the grid 1.0 → clip_min, first best wins (so 1.0 on ties).
GroupParams fit_clipped(const QuantScheme& s, const float* w, const float* imp, int n,
                        const RtnOptions& opt) {
  GroupParams best = fit_group(s, w, n, 1.0f);
  if (opt.clip_grid <= 1) return best;
  double best_err = group_error(s, best, w, imp, n);
  for (int k = 1; k < opt.clip_grid; ++k) {
    const float ratio = 1.0f - (1.0f - opt.clip_min) * k / (opt.clip_grid - 1);
    const GroupParams p = fit_group(s, w, n, ratio);
    const double err = group_error(s, p, w, imp, n);
    if (err < best_err) best_err = err, best = p;
  }
  return best;
}

// A ggml block type: each row encoded by the type's own fitter (formats/ggml_blocks.h), weighted
// by the per-column importance when there is one (llama.cpp's imatrix).
QuantizedWeight quantize_rtn_ggml(const float* W, int out, int in, const QuantScheme& scheme,
                                  const float* importance) {
  QuantizedWeight qw;
  qw.scheme = scheme;
  qw.out = out;
  qw.in = in;
  qw.n_groups = group_count(scheme, in);
  qw.g_idx.resize(in);
  for (int c = 0; c < in; ++c) qw.g_idx[c] = c / scheme.group_size;
  if (in % scheme.group_size != 0) {
    fail("quantize", "{} columns are not a whole number of {} blocks ({} values)", in,
         gguf::type_name(scheme.ggml), scheme.group_size);
  }
  const size_t rb = ggml_row_bytes(scheme, in);
  qw.blocks.resize(size_t(out) * rb);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < out; ++r)
    gguf::quantize_row(scheme.ggml, W + size_t(r) * in, &qw.blocks[size_t(r) * rb], in, importance);
  return qw;
}

}  // namespace

QuantizedWeight quantize_rtn(const float* W, int out, int in, const QuantScheme& scheme,
                             const RtnOptions& opt) {
  if (out <= 0 || in <= 0) fail("quantize_rtn", "bad shape [{}, {}]", out, in);
  if (scheme.type == WeightType::kGgml)
    return quantize_rtn_ggml(W, out, in, scheme, opt.importance);
  const int gs = group_columns(scheme, in);
  QuantizedWeight qw;
  qw.scheme = scheme;
  qw.out = out;
  qw.in = in;
  qw.n_groups = group_count(scheme, in);
  qw.q.resize(size_t(out) * in);
  qw.params.resize(size_t(out) * qw.n_groups);
  qw.g_idx.resize(in);
  for (int c = 0; c < in; ++c) qw.g_idx[c] = c / gs;

#pragma omp parallel for schedule(static)
  for (int r = 0; r < out; ++r) {
    for (int g = 0; g < qw.n_groups; ++g) {
      const int c0 = g * gs, n = std::min(gs, in - c0);
      const float* w = W + size_t(r) * in + c0;
      const float* imp = opt.importance ? opt.importance + c0 : nullptr;
      const size_t pi = size_t(r) * qw.n_groups + g;
      const GroupParams p = !opt.clip_ratios ? fit_clipped(scheme, w, imp, n, opt)
                            : opt.clip_abs   ? fit_group_clamped(scheme, w, n, opt.clip_ratios[pi])
                                             : fit_group(scheme, w, n, opt.clip_ratios[pi]);
      qw.params[pi] = p;
      for (int i = 0; i < n; ++i) qw.q[size_t(r) * in + c0 + i] = quantize_value(scheme, p, w[i]);
    }
  }
  return qw;
}

}  // namespace lowbit
