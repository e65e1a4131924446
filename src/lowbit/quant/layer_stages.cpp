#include "lowbit/quant/layer_stages.h"

#include "lowbit/ops/activation.h"
#include "lowbit/ops/attention.h"
#include "lowbit/ops/matmul.h"
#include "lowbit/ops/norm.h"
#include "lowbit/ops/rope.h"

namespace lowbit {

namespace {
Linear lin(const std::vector<float>& w, const std::vector<float>& b, int out, int in) {
  return {w.data(), b.empty() ? nullptr : b.data(), out, in};
}
void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}
}  // namespace

LayerWeights LayerTensors::view(const ModelConfig& c) const {
  const int q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  LayerWeights L;
  L.attn_norm = attn_norm.data();
  L.ffn_norm = ffn_norm.data();
  L.wq = lin(wq, bq, q_dim, c.dim);
  L.wk = lin(wk, bk, kv_dim, c.dim);
  L.wv = lin(wv, bv, kv_dim, c.dim);
  L.wo = lin(wo, {}, c.dim, q_dim);
  L.w_gate = lin(gate, {}, c.hidden_dim, c.dim);
  L.w_up = lin(up, {}, c.hidden_dim, c.dim);
  L.w_down = lin(down, {}, c.dim, c.hidden_dim);
  return L;
}

LayerStages::LayerStages(const ModelConfig& cfg) : c_(cfg), inv_freq_(ops::rope_inv_freq(cfg)) {}

void LayerStages::attn_in(const LayerWeights& L, const float* x, int n, float* out) const {
  ops::rmsnorm(x, L.attn_norm, out, n, c_.dim, c_.norm_eps);
}

void LayerStages::attn_out(const LayerWeights& L, const float* xn, int n, float* out) {
  const int hd = c_.head_dim, q_dim = c_.n_heads * hd, kv_dim = c_.n_kv_heads * hd;
  const size_t nn = static_cast<size_t>(n);
  grow(q_, nn * q_dim);
  grow(k_, nn * kv_dim);
  grow(v_, nn * kv_dim);
  const Linear* qkv[] = {&L.wq, &L.wk, &L.wv};
  float* outs[] = {q_.data(), k_.data(), v_.data()};
  ops::linear_multi(qkv, outs, 3, xn, n);
  for (int t = 0; t < n; ++t) {
    ops::rope(&q_[t * static_cast<size_t>(q_dim)], c_.n_heads, hd, t, inv_freq_.data());
    ops::rope(&k_[t * static_cast<size_t>(kv_dim)], c_.n_kv_heads, hd, t, inv_freq_.data());
  }
  ops::attention(q_.data(), k_.data(), v_.data(), out, n, 0, c_.n_heads, c_.n_kv_heads, hd);
}

void LayerStages::add_attn(const LayerWeights& L, const float* att, int n, float* x) {
  const size_t m = static_cast<size_t>(n) * c_.dim;
  grow(tmp_, m);
  ops::linear(L.wo, att, n, tmp_.data());
  for (size_t i = 0; i < m; ++i) x[i] += tmp_[i];
}

void LayerStages::mlp_in(const LayerWeights& L, const float* x, int n, float* out) const {
  ops::rmsnorm(x, L.ffn_norm, out, n, c_.dim, c_.norm_eps);
}

void LayerStages::mlp_act(const LayerWeights& L, const float* xn, int n, float* out) {
  const size_t m = static_cast<size_t>(n) * c_.hidden_dim;
  grow(up_, m);
  const Linear* gu[] = {&L.w_gate, &L.w_up};
  float* outs[] = {out, up_.data()};
  ops::linear_multi(gu, outs, 2, xn, n);
  ops::swiglu(out, up_.data(), m);
}

void LayerStages::add_mlp(const LayerWeights& L, const float* act, int n, float* x) {
  const size_t m = static_cast<size_t>(n) * c_.dim;
  grow(tmp_, m);
  ops::linear(L.w_down, act, n, tmp_.data());
  for (size_t i = 0; i < m; ++i) x[i] += tmp_[i];
}

}  // namespace lowbit
