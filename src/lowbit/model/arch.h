// Model architectures as data: for each supported Hugging Face class, the tensors a checkpoint
// holds (name templates, expected shapes from the config, when each is present) and the features
// it implies. Loaders and the synthetic generator walk this table; adding a family that reuses
// the Llama forward pass means adding a row, not code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/model/config.h"

namespace lowbit {

// Where a tensor goes in ModelWeights.
enum class TensorRole {
  kTokEmbeddings,
  kFinalNorm,
  kLmHead,
  kAttnNorm,
  kWq,
  kWk,
  kWv,
  kWo,
  kBq,
  kBk,
  kBv,
  kFfnNorm,
  kWGate,
  kWUp,
  kWDown,
};

// A dimension of an expected shape, resolved against a ModelConfig.
enum class DimSym { kVocab, kModel, kHidden, kQ /* heads*head_dim */, kKv /* kv_heads*head_dim */ };

// When a tensor is present in a checkpoint.
enum class Presence { kAlways, kQkvBias /* cfg.qkv_bias */, kUntied /* !cfg.tied_embeddings */ };

struct TensorSpec {
  TensorRole role;
  const char* name;  // "model.layers.{i}.self_attn.q_proj.weight"; {i} = layer index
  bool per_layer;
  std::vector<DimSym> shape;
  Presence presence = Presence::kAlways;
};

struct ArchSpec {
  const char* architecture;  // Hugging Face class name
  const char* family;        // ModelConfig::family
  bool qkv_bias;             // q/k/v projections carry biases
  bool default_tied;         // tie_word_embeddings when config.json does not say
  std::vector<TensorSpec> tensors;
};

// nullptr when unsupported.
const ArchSpec* find_arch(const std::string& architecture);
const std::vector<ArchSpec>& all_archs();
std::string supported_architectures();  // "LlamaForCausalLM, MistralForCausalLM, ..."

// The weight of a linear layer (q/k/v/o, gate/up/down, lm_head): what quantization may replace.
bool is_linear_weight(TensorRole r);
bool tensor_present(const TensorSpec& spec, const ModelConfig& cfg);
std::string tensor_name(const TensorSpec& spec, int layer);
std::vector<int64_t> expected_shape(const TensorSpec& spec, const ModelConfig& cfg);

}  // namespace lowbit
