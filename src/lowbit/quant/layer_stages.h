// One decoder layer's forward pass cut at the inputs of its linear layers, for calibration.
// The pipeline quantizes a layer in the order its linears consume their inputs (true-sequential:
// q/k/v, then o, then gate/up, then down), so it needs each input point on its own:
//   attn_in  = rmsnorm(x)                      -> q_proj, k_proj, v_proj
//   attn_out = attention(rope(q), rope(k), v)  -> o_proj
//   mlp_in   = rmsnorm(x + o_proj(attn_out))   -> gate_proj, up_proj
//   mlp_act  = silu(gate(mlp_in)) * up(mlp_in) -> down_proj
// Each call runs one calibration sample (n tokens at positions 0..n-1, causal), with the same ops
// as the Transformer forward pass.
#pragma once

#include <vector>

#include "lowbit/model/config.h"
#include "lowbit/model/weights.h"

namespace lowbit {

// The fp32 tensors of one decoder layer, owned (quantized linears hold their dequantized values).
struct LayerTensors {
  std::vector<float> attn_norm, ffn_norm;
  std::vector<float> wq, wk, wv, wo, bq, bk, bv, gate, up, down;
  LayerWeights view(const ModelConfig& c) const;
};

class LayerStages {
 public:
  explicit LayerStages(const ModelConfig& cfg);
  // attn_in [n, dim]
  void attn_in(const LayerWeights& L, const float* x, int n, float* out) const;
  // attn_out [n, q_dim] from attn_in
  void attn_out(const LayerWeights& L, const float* xn, int n, float* out);
  // x [n, dim] += o_proj(attn_out)
  void add_attn(const LayerWeights& L, const float* att, int n, float* x);
  // mlp_in [n, dim] from x (after add_attn)
  void mlp_in(const LayerWeights& L, const float* x, int n, float* out) const;
  // mlp_act [n, hidden] from mlp_in
  void mlp_act(const LayerWeights& L, const float* xn, int n, float* out);
  // x [n, dim] += down_proj(mlp_act)
  void add_mlp(const LayerWeights& L, const float* act, int n, float* x);

 private:
  ModelConfig c_;
  std::vector<float> inv_freq_, q_, k_, v_, tmp_, up_;
};

}  // namespace lowbit
