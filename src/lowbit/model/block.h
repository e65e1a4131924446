// One decoder layer of any architecture of model/arch.h, cut at the inputs of its linears
// (InputPoint). There is one implementation of the layer: the forward pass (Transformer) runs the
// steps back to back, and the quantizer runs them with its calibration windows, quantizing each
// input point's linears before the steps that read their outputs (true-sequential).
//
//   xn  = attn_in(x)                    kAttnIn: n1(x), or x in a post-norm block
//   att = attention(xn)                 kAttnOut: q/k/v, RoPE or ALiBi, causal attention
//   a   = o(att)
//   after_attention(x, a)               sequential: x += a (post-norm: x = n1(x + a))
//   mi  = mlp_in(x, xn)                 kMlpIn: n2(x); xn itself in a parallel block with one norm
//   act = mlp_act(mi)                   kMlpAct: act(gate(mi))·up(mi), or act(up(mi))
//   m   = down(act)
//   after_mlp(x, a, m)                  sequential: x += m (post-norm: x = n2(x + m));
//                                       parallel: x += a + m
#pragma once

#include <vector>

#include "lowbit/model/config.h"
#include "lowbit/model/weights.h"
#include "lowbit/ops/attention.h"
#include "lowbit/ops/hadamard.h"

namespace lowbit {

// A layer's KV cache: rows indexed by position, each [n_kv_heads * head_dim] of `kind`.
struct KvView {
  void* k = nullptr;
  void* v = nullptr;
  ops::KvKind kind = ops::KvKind::kF32;
};

// The first layer's input for tokens at positions pos0..pos0+n-1: token embedding rows (+ learned
// position rows), the embedding norm, the input projection (out [n, dim]; `scratch` holds
// [n, embed_dim] when the family projects).
void embed_tokens(const ModelConfig& c, const float* tok_embeddings, const float* pos_embeddings,
                  const Norm& embed_norm, const Linear& proj_in, const int* tokens, int n, int pos0,
                  float* out, float* scratch);

// The head's input for `rows` rows of the last layer's output x: the final norm and the output
// projection, where the family has them. Returns x itself, `norm_out` ([rows, dim]) or
// `proj_out_buf`
// ([rows, embed_dim]).
const float* head_input(const ModelConfig& c, const Norm& final_norm, const Linear& proj_out,
                        const float* x, int rows, float* norm_out, float* proj_out_buf);

// The model's norm (RMSNorm, or LayerNorm, per c.norm; an RMSNorm with a bias adds it) over n
// rows of `dim` values; y may equal x.
void apply_model_norm(const ModelConfig& c, const Norm& nw, const float* x, float* y, int n,
                      int dim);

class Block {
 public:
  explicit Block(const ModelConfig& cfg);
  const ModelConfig& config() const { return c_; }

  // kAttnIn [n, dim].
  void attn_in(const LayerWeights& L, const float* x, int n, float* out) const;
  // kAttnOut [n, q_dim] from kAttnIn for tokens at positions pos0..pos0+n-1; their k/v rows are
  // written into `cache`, whose rows 0..pos0-1 hold the earlier tokens.
  void attention(const LayerWeights& L, const float* xn, int n, int pos0, const KvView& cache,
                 float* out);
  // x ← after the attention branch a = o(att) [n, dim] (nothing for a parallel block).
  void after_attention(const LayerWeights& L, float* x, const float* a, int n) const;
  // kMlpIn [n, dim]: returns `out` filled, or `xn` (kAttnIn) when the MLP reads the same.
  const float* mlp_in(const LayerWeights& L, const float* x, const float* xn, int n,
                      float* out) const;
  // kMlpAct [n, hidden_dim].
  void mlp_act(const LayerWeights& L, const float* mi, int n, float* out);
  // x ← the layer's output, from the attention branch a and the MLP branch m = down(act).
  void after_mlp(const LayerWeights& L, float* x, const float* a, const float* m, int n) const;

  // Runs the whole layer on x [n, dim] (the steps above back to back).
  void forward(const LayerWeights& L, float* x, int n, int pos0, const KvView& cache);

 private:
  void norm(const Norm& nw, const float* x, float* y, int n) const;
  ModelConfig c_;
  std::vector<float> inv_freq_;  // RoPE frequencies
  std::vector<float> alibi_;     // ALiBi slopes per head
  ops::HadamardPlan hadamard_;   // cfg.hadamard_down: the online transform of down's input
  std::vector<float> q_, k_, v_, up_, xn_, mi_, att_, a_, act_, m_;
};

}  // namespace lowbit
