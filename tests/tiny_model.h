// A tiny random Llama-shaped model built in memory, for tests that need no files.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "lowbit/model/weights.h"

namespace lowbit::test {

struct TinyModelOptions {
  int dim = 32, hidden = 48, layers = 2, heads = 4, kv_heads = 2, vocab = 40, max_seq = 64;
  bool qkv_bias = false;
  bool tied = false;
  unsigned seed = 1;
};

inline std::shared_ptr<ModelWeights> make_tiny_model(const TinyModelOptions& o = {}) {
  auto w = std::make_shared<ModelWeights>();
  ModelConfig& c = w->cfg;
  c.architecture = "LlamaForCausalLM";
  c.family = "llama";
  c.dim = o.dim;
  c.hidden_dim = o.hidden;
  c.n_layers = o.layers;
  c.n_heads = o.heads;
  c.n_kv_heads = o.kv_heads;
  c.head_dim = o.dim / o.heads;
  c.vocab_size = o.vocab;
  c.max_seq_len = o.max_seq;
  c.qkv_bias = o.qkv_bias;
  c.tied_embeddings = o.tied;
  auto store = std::make_shared<std::vector<std::vector<float>>>();
  std::mt19937 rng(o.seed);
  auto make = [&](size_t n, float scale, float offset) -> const float* {
    std::normal_distribution<float> d(0.0f, 1.0f);
    store->emplace_back(n);
    for (float& v : store->back()) v = offset + scale * d(rng);
    return store->back().data();
  };
  store->reserve(64);
  auto lin = [&](int out, int in, bool bias) {
    Linear l;
    l.out = out;
    l.in = in;
    l.w = make(static_cast<size_t>(out) * in, 1.0f / std::sqrt(static_cast<float>(in)), 0.0f);
    if (bias) l.bias = make(static_cast<size_t>(out), 0.1f, 0.0f);
    return l;
  };
  const int hd = c.head_dim;
  w->tok_embeddings = make(static_cast<size_t>(o.vocab) * o.dim, 1.0f, 0.0f);
  for (int i = 0; i < o.layers; ++i) {
    LayerWeights L;
    L.attn_norm.w = make(o.dim, 0.1f, 1.0f);
    L.wq = lin(o.heads * hd, o.dim, o.qkv_bias);
    L.wk = lin(o.kv_heads * hd, o.dim, o.qkv_bias);
    L.wv = lin(o.kv_heads * hd, o.dim, o.qkv_bias);
    L.wo = lin(o.dim, o.heads * hd, false);
    L.ffn_norm.w = make(o.dim, 0.1f, 1.0f);
    L.w_gate = lin(o.hidden, o.dim, false);
    L.w_up = lin(o.hidden, o.dim, false);
    L.w_down = lin(o.dim, o.hidden, false);
    w->layers.push_back(L);
  }
  w->final_norm.w = make(o.dim, 0.1f, 1.0f);
  if (o.tied) {
    w->lm_head = Linear{w->tok_embeddings, nullptr, o.vocab, o.dim};
  } else {
    w->lm_head = lin(o.vocab, o.dim, false);
  }
  w->keep_alive.push_back(store);
  return w;
}

}  // namespace lowbit::test
