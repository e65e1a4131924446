// Model weights as plain arrays, in Hugging Face conventions:
//  * every linear layer is row-major [out_features, in_features] (y = W x + b);
//  * q/k rows are in the rotate-half RoPE order (the llama2.c loader permutes them at load).
// fp32 tensors point straight into the memory-mapped file; tensors stored as bf16/f16 are
// converted once into buffers owned by `keep_alive`. A linear layer may instead be held in a
// kernel compute layout (quantized, or bf16): then `packed` is set and `w` is null.
#pragma once

#include <memory>
#include <vector>

#include "lowbit/model/config.h"

namespace lowbit {

namespace kernels {
struct PackedWeight;
}

struct Linear {
  const float* w = nullptr;     // [out, in] row-major (null when packed)
  const float* bias = nullptr;  // [out] or nullptr
  int out = 0;
  int in = 0;
  const kernels::PackedWeight* packed = nullptr;  // compute layout (kernels/packed_weight.h)
};

struct LayerWeights {
  const float* attn_norm = nullptr;  // [dim]
  Linear wq, wk, wv, wo;
  const float* ffn_norm = nullptr;  // [dim]
  Linear w_gate, w_up, w_down;
};

struct ModelWeights {
  ModelConfig cfg;
  const float* tok_embeddings = nullptr;  // [vocab, dim]
  std::vector<LayerWeights> layers;
  const float* final_norm = nullptr;  // [dim]
  Linear lm_head;                     // [vocab, dim]; aliases tok_embeddings when tied
  // Keeps mapped files and converted buffers alive.
  std::vector<std::shared_ptr<const void>> keep_alive;
};

}  // namespace lowbit
