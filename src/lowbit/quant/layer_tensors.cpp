#include "lowbit/quant/layer_tensors.h"

#include <cstring>

#include "lowbit/util/error.h"

namespace lowbit {

namespace {

using enum TensorRole;

Linear lin(const std::vector<float>& w, const std::vector<float>& b, int out, int in) {
  if (w.empty()) return {};
  return {w.data(), b.empty() ? nullptr : b.data(), out, in};
}

const float* ptr(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

}  // namespace

std::vector<TensorRole> parts_of(TensorRole role) {
  switch (role) {
    case kWqkv:
      return {kWq, kWk, kWv};
    case kBqkv:
      return {kBq, kBk, kBv};
    case kWGateUp:
      return {kWGate, kWUp};
    case kBGateUp:
      return {kBGate, kBUp};
    default:
      return {role};
  }
}

LayerWeights LayerTensors::view(const ModelConfig& c) const {
  LayerWeights L;
  L.attn_norm = {ptr(attn_norm), ptr(attn_norm_b)};
  L.ffn_norm = {ptr(ffn_norm), ptr(ffn_norm_b)};
  L.wq = lin(wq, bq, c.q_dim(), c.dim);
  L.wk = lin(wk, bk, c.kv_dim(), c.dim);
  L.wv = lin(wv, bv, c.kv_dim(), c.dim);
  L.wo = lin(wo, bo, c.dim, c.q_dim());
  L.w_gate = lin(gate, b_gate, c.hidden_dim, c.dim);
  L.w_up = lin(up, b_up, c.hidden_dim, c.dim);
  L.w_down = lin(down, b_down, c.dim, c.hidden_dim);
  for (const auto& [role, s] : in_scale) {
    Linear* l = role == kWq      ? &L.wq
                : role == kWk    ? &L.wk
                : role == kWv    ? &L.wv
                : role == kWo    ? &L.wo
                : role == kWGate ? &L.w_gate
                : role == kWUp   ? &L.w_up
                : role == kWDown ? &L.w_down
                                 : nullptr;
    if (l != nullptr) l->in_scale = s.data();
  }
  return L;
}

std::vector<float>* LayerTensors::part(TensorRole role) {
  switch (role) {
    case kAttnNorm:
      return &attn_norm;
    case kAttnNormBias:
      return &attn_norm_b;
    case kFfnNorm:
      return &ffn_norm;
    case kFfnNormBias:
      return &ffn_norm_b;
    case kWq:
      return &wq;
    case kWk:
      return &wk;
    case kWv:
      return &wv;
    case kWo:
      return &wo;
    case kWGate:
      return &gate;
    case kWUp:
      return &up;
    case kWDown:
      return &down;
    case kBq:
      return &bq;
    case kBk:
      return &bk;
    case kBv:
      return &bv;
    case kBo:
      return &bo;
    case kBGate:
      return &b_gate;
    case kBUp:
      return &b_up;
    case kBDown:
      return &b_down;
    default:
      return nullptr;
  }
}

void LayerTensors::set(TensorRole role, std::vector<float> v, const ModelConfig& c) {
  const std::vector<TensorRole> parts = parts_of(role);
  if (parts.size() == 1) {
    std::vector<float>* dst = part(role);
    if (dst == nullptr) fail("layer tensors", "role {} is not a layer tensor", int(role));
    *dst = std::move(v);
    return;
  }
  const std::vector<std::vector<int>> rows = fused_rows(role, c);
  const size_t cols =
      v.size() / (rows[0].size() + rows[1].size() + (rows.size() > 2 ? rows[2].size() : 0));
  for (size_t p = 0; p < parts.size(); ++p) {
    std::vector<float>& dst = *part(parts[p]);
    dst.resize(rows[p].size() * cols);
    for (size_t i = 0; i < rows[p].size(); ++i) {
      std::memcpy(&dst[i * cols], &v[static_cast<size_t>(rows[p][i]) * cols], sizeof(float) * cols);
    }
  }
}

std::vector<float> LayerTensors::get(TensorRole role, const ModelConfig& c) const {
  const std::vector<TensorRole> parts = parts_of(role);
  auto* self = const_cast<LayerTensors*>(this);
  if (parts.size() == 1) return *self->part(role);
  const std::vector<std::vector<int>> rows = fused_rows(role, c);
  size_t total = 0;
  for (const auto& r : rows) total += r.size();
  const size_t cols = self->part(parts[0])->size() / rows[0].size();
  std::vector<float> v(total * cols);
  for (size_t p = 0; p < parts.size(); ++p) {
    const std::vector<float>& src = *self->part(parts[p]);
    for (size_t i = 0; i < rows[p].size(); ++i) {
      std::memcpy(&v[static_cast<size_t>(rows[p][i]) * cols], &src[i * cols], sizeof(float) * cols);
    }
  }
  return v;
}

}  // namespace lowbit
