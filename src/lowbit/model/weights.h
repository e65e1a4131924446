// Model weights as plain arrays, in Hugging Face conventions:
//  * every linear layer is row-major [out_features, in_features] (y = W x + b);
//  * q/k rows are in the rotate-half RoPE order (the llama2.c loader permutes them at load).
// fp32 tensors point straight into the memory-mapped file; tensors stored as bf16/f16 are
// converted once into buffers owned by `owned`.
#pragma once

#include <memory>
#include <vector>

#include "lowbit/model/config.h"

namespace lowbit {

struct Linear {
  const float* w = nullptr;     // [out, in] row-major
  const float* bias = nullptr;  // [out] or nullptr
  int out = 0;
  int in = 0;
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
