// AWQ (Lin, Tang, Tang, Yang, Dang, Gan, Han, "AWQ: Activation-aware Weight Quantization for
// LLM Compression and Acceleration", MLSys 2024): per-input-channel scales s that protect the
// weights of salient (large-activation) channels, searched as s = mean|x|^α over an α grid, then
// a per-group weight-clipping search. Both minimize the output error on calibration inputs.
// The scales are folded into the preceding norm or linear so the FP model is unchanged:
//   y = x Wᵀ = (x / s) (W diag(s))ᵀ.  See docs/QUANT_ALGORITHMS.md.
#pragma once

#include <vector>

#include "lowbit/formats/scheme.h"

namespace lowbit {

struct AwqOptions {
  int n_grid = 20;               // α ∈ {0, 1/n_grid, ..., (n_grid−1)/n_grid}
  int clip_grid = 20;            // clip ratios 1 − k/clip_grid ...
  float clip_max_shrink = 0.5f;  // ... for k < clip_max_shrink · clip_grid (1.0 .. 0.55)
  int clip_tokens = 512;         // clip search: every (n_tokens / clip_tokens)-th token
};

// One linear W [out, in] of a set sharing the same input (q/k/v, gate/up, o, down).
struct AwqLinear {
  const float* w = nullptr;
  int out = 0;
};

struct AwqScales {
  std::vector<float> s;     // [in]: multiply the linears' columns by s, divide the input by s
  float alpha = 0;          // the chosen α
  double error = 0;         // mean squared output error with the chosen s
  double error_alpha0 = 0;  // ... with s = 1 (plain RTN)
};

// Scale search for linears sharing the input X [n_tokens, in]: for each α, s = mean|x|^α
// (clamped ≥ 1e-4, normalized by sqrt(max s · min s)), every W·diag(s) quantized with RTN, and
// the error ‖X W_allᵀ − (X / s) Q(W_all diag(s))ᵀ‖² / (n_tokens · Σ out) measured; the best
// α wins (the first on ties, so α = 0 unless a scale really helps).
AwqScales awq_search_scales(const std::vector<AwqLinear>& linears, int in, const float* X,
                            int n_tokens, const QuantScheme& scheme, const AwqOptions& opt = {});

// Clip search (AWQ's auto_clip) for one (already scaled) W [out, in] with its input X: per
// (row, group), the clip ratio minimizing Σ_t (x_t,g · (w_g − deq_g))² over a token subsample.
// Returns the ratios [out, n_groups], ready for RtnOptions::clip_ratios.
std::vector<float> awq_search_clip(const float* W, int out, int in, const float* X, int n_tokens,
                                   const QuantScheme& scheme, const AwqOptions& opt = {});

// Folding helpers. The following linears' columns are multiplied by s, their input divided by s.
void scale_input_channels(float* W, int out, int in, const float* s);  // W[:, i] *= s_i
// Preceding RMSNorm/LayerNorm: weight (and bias, may be null) divided by s.
void fold_scales_into_norm(float* norm_w, float* norm_b, int n, const float* s);
// Preceding linear whose outputs are the input (v_proj → o_proj, up_proj → down_proj): its rows
// (and bias) divided by s. Returns false and changes nothing when prev_out != n, which happens
// for v_proj → o_proj under grouped-query attention (n_kv_heads < n_heads: one v row feeds
// several o columns); the AWQ reference skips that pair too.
bool fold_scales_into_linear(float* prev_w, float* prev_b, int prev_out, int prev_in,
                             const float* s, int n);

}  // namespace lowbit
