// SmoothQuant (Xiao, Lin, Seznec, Wu, Demouth, Han, "SmoothQuant: Accurate and Efficient
// Post-Training Quantization for Large Language Models", ICML 2023): move the difficulty of
// quantizing activations with outlier channels into the weights by a per-input-channel scale
//
//   s_j = max|X_j|^α / max|W_j|^(1−α),   y = x Wᵀ = (x / s) (W diag(s))ᵀ,
//
// with max|W_j| over every linear that reads the input. The scales are folded into the preceding
// norm or linear (awq.h's folding helpers), so the FP model is unchanged; then weights and
// activations are quantized as usual. α is fixed, or chosen per input group on calibration data
// ("auto"): each linear of the group scores every α of the grid by the output error of its
// fake-quantized weights (RTN in the weight scheme) times fake-quantized smoothed activations
// against the FP output; the group takes the mean, min or max of its linears' best α (Intel
// Neural Compressor's shared_criterion). See docs/QUANT_ALGORITHMS.md.
#pragma once

#include <string>
#include <vector>

#include "lowbit/formats/act_scheme.h"
#include "lowbit/formats/scheme.h"

namespace lowbit {

enum class AlphaCriterion { kMean, kMin, kMax };
AlphaCriterion parse_alpha_criterion(const std::string& where, const std::string& name);
const char* alpha_criterion_name(AlphaCriterion c);

struct SmoothOptions {
  float alpha = 0.5f;  // fixed α; < 0: search the grid below
  float alpha_min = 0.3f, alpha_max = 0.7f, alpha_step = 0.05f;
  AlphaCriterion criterion = AlphaCriterion::kMean;
  // false (--no-fold): the scale is not folded into what precedes the input but kept with each
  // smoothed linear as an explicit division of its input (Linear::in_scale, stored as
  // <module>.smooth_scale); then inputs with no foldable producer (down_proj after GELU) are
  // smoothed too.
  bool fold = true;
  // Per-layer α: (glob over module names, α); the last rule matching a group's first linear wins
  // over `alpha` (fixed or auto) for that group.
  std::vector<std::pair<std::string, float>> alpha_rules;
  bool auto_alpha() const { return alpha < 0.0f; }
};

// One linear W [out, in] of a group sharing an input.
struct SmoothLinear {
  const float* w = nullptr;
  int out = 0;
};

// s_j = max(absmax_x[j], 1e-5)^α / max(max_i |W_ij| over the linears, 1e-5)^(1−α), ≥ 1e-5.
std::vector<float> smooth_scales(const std::vector<SmoothLinear>& linears, int in,
                                 const std::vector<float>& absmax_x, float alpha);

struct SmoothChoice {
  float alpha = 0;
  std::vector<float> s;                 // [in]
  std::vector<float> linear_alphas;     // auto: each linear's best α (before the criterion)
  std::vector<double> errors_by_alpha;  // auto: the group's mean relative error per grid α
};

// The scales for a group: fixed α, or the α search above on the sampled inputs X [n, in]
// (weights quantized with `wscheme` by RTN, activations with `ascheme`; a static ascheme gets its
// scale from the sample's range).
SmoothChoice smooth_choose(const std::vector<SmoothLinear>& linears, int in,
                           const std::vector<float>& absmax_x, const float* X, int n,
                           const QuantScheme& wscheme, const ActScheme& ascheme,
                           const SmoothOptions& opt);

// X [n, in] replaced by its fake-quantized values s·q + m under `a` (block: per row and 32
// columns). A static (tensor) scheme with scale 0 takes its scale from X's own range first.
void fake_quantize_acts(const ActScheme& a, float* X, int n, int in);

}  // namespace lowbit
