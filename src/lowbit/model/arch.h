// Model architectures as data (docs/ARCHITECTURE.md, "One description per family"). For each
// supported Hugging Face class, one entry holds:
//  * `configure`: how its config.json keys map onto ModelConfig (dimensions under their names,
//    and the features: norm kind, positions, block topology, fused layouts, biases, activation);
//  * `tensors`: the checkpoint name of each tensor role the family has.
// Everything else follows from the config: which roles are present (tensor_present), their shapes
// (expected_shape), how fused tensors split (fused_rows), which linears a block has, what feeds
// them and what precedes them (block_linears). The loader, the forward pass, the quantization
// pipeline and the synthetic generator all walk this one description: a new family is a new entry
// here (plus any genuinely new op), not a new forward pass.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/model/config.h"

namespace lowbit {

// What a checkpoint tensor is. Per-layer roles come after kAttnNorm.
enum class TensorRole {
  // model level
  kTokEmbeddings,
  kPosEmbeddings,  // learned absolute positions
  kEmbedNorm,
  kEmbedNormBias,
  kProjIn,  // OPT project_in [dim, proj_dim]
  kProjOut,
  kFinalNorm,
  kFinalNormBias,
  kLmHead,
  kLmHeadBias,
  // per layer
  kAttnNorm,
  kAttnNormBias,
  kFfnNorm,
  kFfnNormBias,
  kWq,
  kWk,
  kWv,
  kWqkv,  // fused, rows ordered by cfg.qkv_layout
  kBq,
  kBk,
  kBv,
  kBqkv,
  kWo,
  kBo,
  kWGate,
  kWUp,      // the plain MLP's first linear (fc1, dense_h_to_4h) is "up"
  kWGateUp,  // fused [gate | up]
  kBGate,
  kBUp,
  kBGateUp,
  kWDown,
  kBDown,
};

bool is_per_layer(TensorRole r);
// The weight of a linear layer (q/k/v/o, gate/up/down, fused ones, lm_head, projections): what
// quantization may replace.
bool is_linear_weight(TensorRole r);

struct TensorSpec {
  TensorRole role;
  const char* name;         // "model.layers.{i}.self_attn.q_proj.weight"; {i} = layer index
  bool transposed = false;  // stored [in, out] (GPT-2's Conv1D)
};

class ConfigReader;

struct ArchSpec {
  const char* architecture;  // Hugging Face class name
  const char* model_type;    // ModelConfig::family
  // Names may lack this prefix (checkpoints saved from the base model, e.g. GPT-2's "h.0...").
  const char* base_prefix;
  void (*configure)(const ConfigReader& r, ModelConfig* c);
  std::vector<TensorSpec> tensors;
  // llama.cpp's name for the architecture when `lowbit export gguf` can write it ("llama",
  // "qwen2"); nullptr when it cannot.
  const char* gguf_arch = nullptr;
};

// nullptr when unsupported.
const ArchSpec* find_arch(const std::string& architecture);
const std::vector<ArchSpec>& all_archs();
std::string supported_architectures();  // "LlamaForCausalLM, MistralForCausalLM, ..."

bool tensor_present(TensorRole role, const ModelConfig& cfg);
inline bool tensor_present(const TensorSpec& spec, const ModelConfig& cfg) {
  return tensor_present(spec.role, cfg);
}
std::string tensor_name(const TensorSpec& spec, int layer);
// The shape of the tensor as stored (transposed specs give [in, out]).
std::vector<int64_t> expected_shape(const TensorSpec& spec, const ModelConfig& cfg);
// The shape of a role as lowbit holds it ([out, in] for linears).
std::vector<int64_t> role_shape(TensorRole role, const ModelConfig& cfg);

// Rows of a fused tensor that form each part: for kWqkv / kBqkv {q rows, k rows, v rows} in
// cfg.qkv_layout; for kWGateUp / kBGateUp {gate rows, up rows}. Each list is in the order of the
// part's own rows.
std::vector<std::vector<int>> fused_rows(TensorRole fused, const ModelConfig& cfg);

// ---- the linears of a decoder layer, as the forward pass and the quantizer see them -------------

// The activations a linear reads: the input points of a block.
enum class InputPoint {
  kAttnIn,   // the attention input (the normed block input; the block input itself in post-norm)
  kAttnOut,  // the attention output, before o_proj
  kMlpIn,    // the MLP input
  kMlpAct,   // the activated MLP hidden state, before down_proj
};

// One linear of a decoder layer.
struct BlockLinear {
  TensorRole role;    // kWq, kWk, kWv, kWo, kWGate, kWUp, kWDown
  InputPoint input;   // what it reads; points that compute the same activations are merged (a
                      // parallel block with one norm feeds q/k/v and the MLP from kAttnIn)
  TensorRole module;  // the checkpoint tensor holding it (kWqkv for a fused q, ...)
  int out = 0, in = 0;
};
// The linears of a layer of `cfg` in true-sequential order (each input point's linears
// together, points in the order the forward pass produces them).
std::vector<BlockLinear> block_linears(const ModelConfig& cfg);

// What produces an input point's activations last, where a per-channel scale of those
// activations can be folded so that the model's function is unchanged (AWQ now, SmoothQuant next):
//  kAttnNorm / kFfnNorm: the norm's weight (and bias);  kValue: the rows of v_proj (attention
//  output channels are linear in v);  kUp: the rows of up (gated MLP: act(gate)·up; plain MLP
//  with ReLU, which commutes with positive scales);  kNone: nothing (e.g. GELU before down, or a
//  post-norm block's attention input).
enum class Preceding { kNone, kAttnNorm, kFfnNorm, kValue, kUp };

// The linears that read one input point, and what precedes them.
struct InputGroup {
  InputPoint point;
  std::vector<TensorRole> linears;
  Preceding preceding;
};
std::vector<InputGroup> block_input_groups(const ModelConfig& cfg);

}  // namespace lowbit
