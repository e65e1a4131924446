#include "lowbit/model/arch.h"

#include <fmt/format.h>

namespace lowbit {

namespace {

using enum TensorRole;
using enum DimSym;

// The Llama layout shared by Llama, Mistral and Qwen2 (Qwen2 adds q/k/v biases).
std::vector<TensorSpec> llama_tensors() {
  return {
      {kTokEmbeddings, "model.embed_tokens.weight", false, {kVocab, kModel}},
      {kAttnNorm, "model.layers.{i}.input_layernorm.weight", true, {kModel}},
      {kWq, "model.layers.{i}.self_attn.q_proj.weight", true, {kQ, kModel}},
      {kWk, "model.layers.{i}.self_attn.k_proj.weight", true, {kKv, kModel}},
      {kWv, "model.layers.{i}.self_attn.v_proj.weight", true, {kKv, kModel}},
      {kBq, "model.layers.{i}.self_attn.q_proj.bias", true, {kQ}, Presence::kQkvBias},
      {kBk, "model.layers.{i}.self_attn.k_proj.bias", true, {kKv}, Presence::kQkvBias},
      {kBv, "model.layers.{i}.self_attn.v_proj.bias", true, {kKv}, Presence::kQkvBias},
      {kWo, "model.layers.{i}.self_attn.o_proj.weight", true, {kModel, kQ}},
      {kFfnNorm, "model.layers.{i}.post_attention_layernorm.weight", true, {kModel}},
      {kWGate, "model.layers.{i}.mlp.gate_proj.weight", true, {kHidden, kModel}},
      {kWUp, "model.layers.{i}.mlp.up_proj.weight", true, {kHidden, kModel}},
      {kWDown, "model.layers.{i}.mlp.down_proj.weight", true, {kModel, kHidden}},
      {kFinalNorm, "model.norm.weight", false, {kModel}},
      {kLmHead, "lm_head.weight", false, {kVocab, kModel}, Presence::kUntied},
  };
}

}  // namespace

const std::vector<ArchSpec>& all_archs() {
  static const std::vector<ArchSpec> archs = {
      {"LlamaForCausalLM", "llama", false, false, llama_tensors()},
      {"MistralForCausalLM", "mistral", false, false, llama_tensors()},
      {"Qwen2ForCausalLM", "qwen2", true, false, llama_tensors()},
  };
  return archs;
}

const ArchSpec* find_arch(const std::string& architecture) {
  for (const auto& a : all_archs()) {
    if (architecture == a.architecture) return &a;
  }
  return nullptr;
}

std::string supported_architectures() {
  std::string s;
  for (const auto& a : all_archs()) s += (s.empty() ? "" : ", ") + std::string(a.architecture);
  return s;
}

bool is_linear_weight(TensorRole r) {
  switch (r) {
    case TensorRole::kWq:
    case TensorRole::kWk:
    case TensorRole::kWv:
    case TensorRole::kWo:
    case TensorRole::kWGate:
    case TensorRole::kWUp:
    case TensorRole::kWDown:
    case TensorRole::kLmHead:
      return true;
    default:
      return false;
  }
}

bool tensor_present(const TensorSpec& spec, const ModelConfig& cfg) {
  switch (spec.presence) {
    case Presence::kAlways:
      return true;
    case Presence::kQkvBias:
      return cfg.qkv_bias;
    case Presence::kUntied:
      return !cfg.tied_embeddings;
  }
  return true;
}

std::string tensor_name(const TensorSpec& spec, int layer) {
  std::string s = spec.name;
  const auto pos = s.find("{i}");
  if (pos != std::string::npos) s.replace(pos, 3, std::to_string(layer));
  return s;
}

std::vector<int64_t> expected_shape(const TensorSpec& spec, const ModelConfig& cfg) {
  std::vector<int64_t> out;
  for (DimSym d : spec.shape) {
    switch (d) {
      case kVocab:
        out.push_back(cfg.vocab_size);
        break;
      case kModel:
        out.push_back(cfg.dim);
        break;
      case kHidden:
        out.push_back(cfg.hidden_dim);
        break;
      case kQ:
        out.push_back(int64_t{cfg.n_heads} * cfg.head_dim);
        break;
      case kKv:
        out.push_back(int64_t{cfg.n_kv_heads} * cfg.head_dim);
        break;
    }
  }
  return out;
}

}  // namespace lowbit
