// Model weights as plain arrays, in Hugging Face conventions, for every architecture of
// model/arch.h:
//  * every linear layer is row-major [out_features, in_features] (y = W x + b); GPT-2's Conv1D
//    weights are transposed at load, fused q/k/v (and gate/up) tensors split into their parts;
//  * q/k rows are in the order the config's RoPE style expects (the llama2.c loader permutes its
//    interleaved rows into rotate-half order).
// fp32 tensors point straight into the memory-mapped file; tensors stored as bf16/f16, transposed
// or split are copied once into buffers owned by `keep_alive`. A linear layer may instead be held
// in a kernel compute layout (quantized, or bf16): then `packed` is set and `w` is null.
// Absent parts (a bias the family does not have, the gate of a plain MLP) are null.
#pragma once

#include <memory>
#include <vector>

#include "lowbit/model/arch.h"
#include "lowbit/model/config.h"

namespace lowbit {

namespace kernels {
struct PackedWeight;
}
struct QuantizedWeight;

struct Linear {
  const float* w = nullptr;     // [out, in] row-major (null when packed)
  const float* bias = nullptr;  // [out] or nullptr
  int out = 0;
  int in = 0;
  const kernels::PackedWeight* packed = nullptr;  // compute layout (kernels/packed_weight.h)
  // [in] or nullptr: the input is divided by it column by column first (SmoothQuant --no-fold: the
  // smoothing scale kept as an explicit input multiply instead of folded into what precedes).
  const float* in_scale = nullptr;
  // The stored codes and scales of a quantized checkpoint's linear (RuntimeOptions::keep_quantized;
  // null otherwise): what exporters to other engines' formats read.
  const QuantizedWeight* quant = nullptr;
  bool present() const { return w != nullptr || packed != nullptr; }
};

// RMSNorm (w) or LayerNorm (w, and b when the family has biases).
struct Norm {
  const float* w = nullptr;  // [dim]
  const float* b = nullptr;  // [dim] or nullptr
};

struct LayerWeights {
  Norm attn_norm;
  Linear wq, wk, wv, wo;
  Norm ffn_norm;  // absent in a parallel block with one norm
  Linear w_gate;  // absent in a plain MLP
  Linear w_up;    // the plain MLP's fc1
  Linear w_down;  // fc2
};

struct ModelWeights {
  ModelConfig cfg;
  const float* tok_embeddings = nullptr;  // [vocab, embed_dim]
  const float* pos_embeddings = nullptr;  // [max_seq_len + position_offset, embed_dim] (learned)
  Norm embed_norm;                        // Bloom
  Linear proj_in, proj_out;               // OPT with word_embed_proj_dim != dim
  std::vector<LayerWeights> layers;
  Norm final_norm;
  Linear lm_head;  // [vocab, embed_dim]; aliases tok_embeddings when tied
  // Keeps mapped files and converted buffers alive.
  std::vector<std::shared_ptr<const void>> keep_alive;
};

// The slots a tensor role of the architecture table (model/arch.h) fills: the norm of a norm
// weight/bias role (null otherwise), and the linear(s) of a weight or bias role — one, or the
// parts of a fused tensor in order (q, k, v; gate, up); empty for other roles.
Norm* norm_of(TensorRole r, ModelWeights* w, int layer);
bool is_norm_bias(TensorRole r);
std::vector<Linear*> linears_of(TensorRole r, ModelWeights* w, int layer);

// Baichuan2's NormHead: each row divided by its L2 norm (torch's F.normalize, eps 1e-12).
void l2_normalize_rows(float* w, int64_t rows, int64_t cols);

}  // namespace lowbit
