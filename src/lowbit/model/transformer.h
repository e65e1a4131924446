// The forward pass of a decoder-only transformer of any architecture in model/arch.h, driven by
// ModelConfig: embeddings (learned positions, embedding norm, input projection where the family
// has them), the decoder layers (model/block.h) over a KV cache, the final norm and the head.
// Prefill runs many tokens per call (GEMM via BLAS); decode is one token.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/model/block.h"
#include "lowbit/model/weights.h"
#include "lowbit/ops/attention.h"

namespace lowbit {

// Element type of the KV cache: fp32 (exact), or fp16/bf16 (half the memory and the bandwidth
// attention reads per token; new rows are rounded to nearest even).
using KvType = ops::KvKind;  // the ops layer's cache element type

// "f32", "f16" or "bf16"; anything else fails as "<where>: ...".
KvType parse_kv_type(const std::string& where, const std::string& name);

struct TransformerOptions {
  KvType kv = KvType::kF32;
  std::string name = "transformer";  // the model, as errors name it (e.g. the path given)
};

class Transformer {
 public:
  // max_ctx: KV cache length (≤ cfg.max_seq_len). The cache is allocated here, after checking the
  // machine has the memory for it (Error naming the model and the size otherwise).
  Transformer(std::shared_ptr<const ModelWeights> weights, int max_ctx,
              const TransformerOptions& opt = {});
  ~Transformer();

  const ModelConfig& config() const { return w_->cfg; }
  const std::shared_ptr<const ModelWeights>& weights() const { return w_; }
  TransformerOptions options() const { return {kv_, name_}; }
  int max_ctx() const { return max_ctx_; }
  KvType kv_type() const { return kv_; }
  int pos() const { return pos_; }  // tokens already in the KV cache
  void reset() { pos_ = 0; }        // forget the KV cache
  // Drop cached tokens beyond `pos` (e.g. to reuse a shared prefix).
  void rewind(int pos);

  // Runs `n` tokens at positions pos()..pos()+n-1, appends them to the KV cache and returns the
  // logits: all n rows ([n, vocab], row-major) when all_logits, else only the last row ([vocab]).
  // The returned pointer stays valid until the next call. A NaN or Inf among the returned logits
  // is an Error naming the position (the weights or activations overflowed), never a result.
  const float* forward(const int* tokens, int n, bool all_logits = false);

 private:
  struct Scratch;
  void reserve_scratch(int n, bool all_logits);
  std::shared_ptr<const ModelWeights> w_;
  int max_ctx_ = 0;
  int pos_ = 0;
  KvType kv_ = KvType::kF32;
  // [layer][pos][kv_heads*head_dim]: the fp32 cache, or the fp16/bf16 bits; only one is used.
  std::vector<float> k_cache_, v_cache_;
  std::vector<uint16_t> k_half_, v_half_;
  std::unique_ptr<Block> block_;  // the layer computation (model/block.h)
  std::string name_;
  std::unique_ptr<Scratch> s_;
};

}  // namespace lowbit
