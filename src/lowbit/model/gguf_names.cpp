#include "lowbit/model/gguf_names.h"

#include <cstring>

namespace lowbit {

namespace {
using enum TensorRole;
}

const std::vector<GgufTensorName>& gguf_tensor_names() {
  static const std::vector<GgufTensorName> kNames = {
      {kTokEmbeddings, "token_embd.weight"},
      {kAttnNorm, "blk.{i}.attn_norm.weight"},
      {kWq, "blk.{i}.attn_q.weight", GgufRows::kQHeads},
      {kWk, "blk.{i}.attn_k.weight", GgufRows::kKvHeads},
      {kWv, "blk.{i}.attn_v.weight"},
      {kBq, "blk.{i}.attn_q.bias", GgufRows::kQHeads},
      {kBk, "blk.{i}.attn_k.bias", GgufRows::kKvHeads},
      {kBv, "blk.{i}.attn_v.bias"},
      {kWo, "blk.{i}.attn_output.weight"},
      {kBo, "blk.{i}.attn_output.bias"},
      {kFfnNorm, "blk.{i}.ffn_norm.weight"},
      {kWGate, "blk.{i}.ffn_gate.weight"},
      {kWUp, "blk.{i}.ffn_up.weight"},
      {kWDown, "blk.{i}.ffn_down.weight"},
      {kFinalNorm, "output_norm.weight"},
      {kLmHead, "output.weight"},
  };
  return kNames;
}

std::string gguf_tensor_name(const GgufTensorName& n, int layer) {
  std::string s = n.name;
  const size_t at = s.find("{i}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(layer));
  return s;
}

const GgufTensorName* gguf_name_of(TensorRole role) {
  for (const GgufTensorName& n : gguf_tensor_names()) {
    if (n.role == role) return &n;
  }
  return nullptr;
}

const ArchSpec* arch_for_gguf(const std::string& gguf_arch) {
  for (const ArchSpec& s : all_archs()) {
    if (s.gguf_arch != nullptr && gguf_arch == s.gguf_arch) return &s;
  }
  return nullptr;
}

std::string gguf_architectures() {
  std::string out;
  for (const ArchSpec& s : all_archs()) {
    if (s.gguf_arch == nullptr || arch_for_gguf(s.gguf_arch) != &s) continue;
    out += (out.empty() ? "" : ", ") + std::string(s.gguf_arch);
  }
  return out;
}

std::vector<int> interleaved_row_order(int n_heads, int head_dim) {
  const int half = head_dim / 2;
  std::vector<int> order(static_cast<size_t>(n_heads) * static_cast<size_t>(head_dim));
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < half; ++i) {
      for (int j = 0; j < 2; ++j) {
        order[static_cast<size_t>(h * head_dim + 2 * i + j)] = h * head_dim + j * half + i;
      }
    }
  }
  return order;
}

std::vector<int> rotate_half_row_order(int n_heads, int head_dim) {
  const int half = head_dim / 2;
  std::vector<int> order(static_cast<size_t>(n_heads) * static_cast<size_t>(head_dim));
  for (int h = 0; h < n_heads; ++h) {
    for (int j = 0; j < 2; ++j) {
      for (int i = 0; i < half; ++i) {
        order[static_cast<size_t>(h * head_dim + j * half + i)] = h * head_dim + 2 * i + j;
      }
    }
  }
  return order;
}

void rows_to_rotate_half(const float* src, float* dst, int n_heads, int head_dim, int cols) {
  const std::vector<int> order = rotate_half_row_order(n_heads, head_dim);
  const size_t c = static_cast<size_t>(cols);
  for (size_t r = 0; r < order.size(); ++r) {
    std::memcpy(dst + r * c, src + static_cast<size_t>(order[r]) * c, sizeof(float) * c);
  }
}

}  // namespace lowbit
