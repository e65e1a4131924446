// The FP32 reference forward pass of a decoder-only transformer (Llama family), driven by
// ModelConfig: RMSNorm, RoPE (rotate-half, optional llama3 scaling), grouped-query attention with a
// KV cache, SwiGLU MLP. Prefill runs many tokens per call (GEMM via BLAS); decode is one token.
#pragma once

#include <memory>
#include <vector>

#include "lowbit/model/weights.h"

namespace lowbit {

class Transformer {
 public:
  // max_ctx: KV cache length (≤ cfg.max_seq_len unless allow_longer).
  Transformer(std::shared_ptr<const ModelWeights> weights, int max_ctx);
  ~Transformer();

  const ModelConfig& config() const { return w_->cfg; }
  int max_ctx() const { return max_ctx_; }
  int pos() const { return pos_; }  // tokens already in the KV cache
  void reset() { pos_ = 0; }        // forget the KV cache
  // Drop cached tokens beyond `pos` (e.g. to reuse a shared prefix).
  void rewind(int pos);

  // Runs `n` tokens at positions pos()..pos()+n-1, appends them to the KV cache and returns the
  // logits: all n rows ([n, vocab], row-major) when all_logits, else only the last row ([vocab]).
  // The returned pointer stays valid until the next call.
  const float* forward(const int* tokens, int n, bool all_logits = false);

 private:
  struct Scratch;
  std::shared_ptr<const ModelWeights> w_;
  int max_ctx_ = 0;
  int pos_ = 0;
  std::vector<float> k_cache_, v_cache_;  // [layer][pos][kv_heads*head_dim]
  std::vector<float> rope_inv_freq_;      // [head_dim/2]
  std::unique_ptr<Scratch> s_;
};

}  // namespace lowbit
