// One decoder layer's tensors as owned fp32 copies the quantizer may change: quantized linears
// hold their dequantized values, AWQ rescales norms and the rows that precede a scaled input. The
// copies are in lowbit's orientation ([out, in]) and fused checkpoint tensors are held as their
// parts (q, k, v; gate, up), exactly as the forward pass (model/block.h) reads them through
// view().
#pragma once

#include <map>
#include <vector>

#include "lowbit/model/arch.h"
#include "lowbit/model/weights.h"

namespace lowbit {

struct LayerTensors {
  std::vector<float> attn_norm, attn_norm_b, ffn_norm, ffn_norm_b;
  std::vector<float> wq, wk, wv, wo, gate, up, down;
  std::vector<float> bq, bk, bv, bo, b_gate, b_up, b_down;
  // SmoothQuant --no-fold: per linear role (kWq, ...), the scale its input is divided by.
  std::map<TensorRole, std::vector<float>> in_scale;

  LayerWeights view(const ModelConfig& c) const;
  // The vector holding a role that is not fused (kWq -> wq, kBUp -> b_up, kAttnNorm -> ...).
  std::vector<float>* part(TensorRole role);
  // Stores the checkpoint tensor of `role` ([out, in]); fused ones are split into their parts.
  void set(TensorRole role, std::vector<float> v, const ModelConfig& c);
  // The checkpoint tensor of `role` ([out, in]), fused ones assembled from their parts.
  std::vector<float> get(TensorRole role, const ModelConfig& c) const;
};

// The parts a fused role is held as (kWqkv -> {kWq, kWk, kWv}, ...); {role} for the others.
std::vector<TensorRole> parts_of(TensorRole role);

}  // namespace lowbit
