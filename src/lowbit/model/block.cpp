#include "lowbit/model/block.h"

#include <algorithm>
#include <cstring>

#include "lowbit/ops/activation.h"
#include "lowbit/ops/matmul.h"
#include "lowbit/ops/norm.h"
#include "lowbit/ops/rope.h"

namespace lowbit {

namespace {

void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

void add(float* x, const float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace

namespace {

void apply_norm(const ModelConfig& c, const Norm& nw, const float* x, float* y, int n, int dim) {
  if (c.norm == NormKind::kLayer) {
    ops::layernorm(x, nw.w, nw.b, y, n, dim, c.norm_eps);
  } else {
    ops::rmsnorm(x, nw.w, y, n, dim, c.norm_eps);
    if (nw.b != nullptr) {  // a LayerNorm family turned RMSNorm by r1 keeps its (rotated) bias
      for (int t = 0; t < n; ++t)
        for (int i = 0; i < dim; ++i) y[static_cast<size_t>(t) * dim + i] += nw.b[i];
    }
  }
}

}  // namespace

void apply_model_norm(const ModelConfig& c, const Norm& nw, const float* x, float* y, int n,
                      int dim) {
  apply_norm(c, nw, x, y, n, dim);
}

void embed_tokens(const ModelConfig& c, const float* tok_embeddings, const float* pos_embeddings,
                  const Norm& embed_norm, const Linear& proj_in, const int* tokens, int n, int pos0,
                  float* out, float* scratch) {
  const int ed = c.embed_dim();
  float* e = c.proj_dim > 0 ? scratch : out;
  for (int t = 0; t < n; ++t) {
    float* row = e + static_cast<size_t>(t) * ed;
    std::memcpy(row, tok_embeddings + static_cast<size_t>(tokens[t]) * ed, sizeof(float) * ed);
    if (pos_embeddings != nullptr) {
      const float* p = pos_embeddings + static_cast<size_t>(pos0 + t + c.position_offset) * ed;
      for (int i = 0; i < ed; ++i) row[i] += p[i];
    }
  }
  if (c.embed_norm) apply_norm(c, embed_norm, e, e, n, ed);
  if (c.proj_dim > 0) ops::linear(proj_in, e, n, out);
}

const float* head_input(const ModelConfig& c, const Norm& final_norm, const Linear& proj_out,
                        const float* x, int rows, float* norm_out, float* proj_out_buf) {
  const float* h = x;
  if (c.final_norm) {
    apply_norm(c, final_norm, x, norm_out, rows, c.dim);
    h = norm_out;
  }
  if (c.proj_dim > 0) {
    ops::linear(proj_out, h, rows, proj_out_buf);
    h = proj_out_buf;
  }
  return h;
}

Block::Block(const ModelConfig& cfg) : c_(cfg) {
  if (c_.position == PositionKind::kRope) inv_freq_ = ops::rope_inv_freq(c_);
  if (c_.position == PositionKind::kAlibi) alibi_ = ops::alibi_slopes(c_.n_heads);
  if (c_.hadamard_down) hadamard_ = ops::hadamard_plan(c_.hidden_dim);
}

void Block::norm(const Norm& nw, const float* x, float* y, int n) const {
  apply_norm(c_, nw, x, y, n, c_.dim);
}

void Block::attn_in(const LayerWeights& L, const float* x, int n, float* out) const {
  if (c_.post_norm) {
    std::memcpy(out, x, sizeof(float) * static_cast<size_t>(n) * c_.dim);
  } else {
    norm(L.attn_norm, x, out, n);
  }
}

void Block::attention(const LayerWeights& L, const float* xn, int n, int pos0, const KvView& cache,
                      float* out) {
  const int hd = c_.head_dim, q_dim = c_.q_dim(), kv_dim = c_.kv_dim();
  const size_t nn = static_cast<size_t>(n);
  grow(q_, nn * q_dim);
  grow(k_, nn * kv_dim);
  grow(v_, nn * kv_dim);
  const Linear* qkv[] = {&L.wq, &L.wk, &L.wv};
  float* outs[] = {q_.data(), k_.data(), v_.data()};
  ops::linear_multi(qkv, outs, 3, xn, n);
  if (c_.position == PositionKind::kRope) {
    const int rot = c_.rope_dims > 0 ? c_.rope_dims : hd;
    for (int t = 0; t < n; ++t) {
      ops::rope(&q_[t * static_cast<size_t>(q_dim)], c_.n_heads, hd, rot, c_.rope_interleaved,
                pos0 + t, inv_freq_.data());
      ops::rope(&k_[t * static_cast<size_t>(kv_dim)], c_.n_kv_heads, hd, rot, c_.rope_interleaved,
                pos0 + t, inv_freq_.data());
    }
  }
  const size_t elem = ops::kv_elem_size(cache.kind), at = static_cast<size_t>(pos0) * kv_dim;
  ops::kv_store(k_.data(), static_cast<char*>(cache.k) + at * elem, cache.kind, nn * kv_dim);
  ops::kv_store(v_.data(), static_cast<char*>(cache.v) + at * elem, cache.kind, nn * kv_dim);
  ops::attention(q_.data(), cache.k, cache.v, cache.kind, out, n, pos0, c_.n_heads, c_.n_kv_heads,
                 hd, alibi_.empty() ? nullptr : alibi_.data());
}

void Block::after_attention(const LayerWeights& L, float* x, const float* a, int n) const {
  if (c_.parallel_block) return;
  const size_t m = static_cast<size_t>(n) * c_.dim;
  add(x, a, m);
  if (c_.post_norm) norm(L.attn_norm, x, x, n);
}

const float* Block::mlp_in(const LayerWeights& L, const float* x, const float* xn, int n,
                           float* out) const {
  if (c_.parallel_block && c_.shared_norm) return xn;
  if (c_.post_norm) {
    std::memcpy(out, x, sizeof(float) * static_cast<size_t>(n) * c_.dim);
  } else {
    norm(L.ffn_norm, x, out, n);
  }
  return out;
}

void Block::mlp_act(const LayerWeights& L, const float* mi, int n, float* out) {
  const size_t m = static_cast<size_t>(n) * c_.hidden_dim;
  if (!c_.gated_mlp) {
    ops::linear(L.w_up, mi, n, out);
    ops::activate(c_.act, out, m);
  } else {
    grow(up_, m);
    const Linear* gu[] = {&L.w_gate, &L.w_up};
    float* outs[] = {out, up_.data()};
    ops::linear_multi(gu, outs, 2, mi, n);
    ops::gated(c_.act, out, up_.data(), m);
  }
  // R4 (QuaRot): down_proj reads x·M; its weight rows were multiplied by M offline.
  if (c_.hadamard_down) ops::hadamard_rows(hadamard_, out, n);
}

void Block::after_mlp(const LayerWeights& L, float* x, const float* a, const float* m,
                      int n) const {
  const size_t len = static_cast<size_t>(n) * c_.dim;
  if (c_.parallel_block) add(x, a, len);
  add(x, m, len);
  if (c_.post_norm) norm(L.ffn_norm, x, x, n);
}

void Block::forward(const LayerWeights& L, float* x, int n, int pos0, const KvView& cache) {
  const size_t nn = static_cast<size_t>(n);
  grow(xn_, nn * c_.dim);
  grow(mi_, nn * c_.dim);
  grow(att_, nn * c_.q_dim());
  grow(a_, nn * c_.dim);
  grow(act_, nn * c_.hidden_dim);
  grow(m_, nn * c_.dim);
  attn_in(L, x, n, xn_.data());
  attention(L, xn_.data(), n, pos0, cache, att_.data());
  ops::linear(L.wo, att_.data(), n, a_.data());
  after_attention(L, x, a_.data(), n);
  const float* mi = mlp_in(L, x, xn_.data(), n, mi_.data());
  mlp_act(L, mi, n, act_.data());
  ops::linear(L.w_down, act_.data(), n, m_.data());
  after_mlp(L, x, a_.data(), m_.data(), n);
}

}  // namespace lowbit
