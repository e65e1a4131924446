// The model described as data: hyper-parameters plus which architectural features are on.
// Every loader (Hugging Face folder, llama2.c file, synthetic generator) produces a ModelConfig;
// the forward pass and the quantization pipeline read nothing else. Each family's config.json
// keys are mapped onto these fields by its entry in the architecture table (model/arch.cpp).
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/ops/activation.h"

namespace lowbit {

struct RopeScaling {
  // "" (none), "llama3", or "factors": each rotary frequency divided by freq_factors[i] (a GGUF
  // file's rope_freqs tensor, read as llama.cpp applies it).
  std::string type;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
  std::vector<float> freq_factors;  // "factors": one per rotated pair
};

enum class NormKind { kRms, kLayer };
// How positions enter the model: rotary q/k, learned absolute embeddings added to the token
// embeddings, or ALiBi biases on the attention scores.
enum class PositionKind { kRope, kLearned, kAlibi };
// Row order of a fused q/k/v projection (one checkpoint tensor holding all three):
//  kSeparate: three tensors;  kConcat: [q | k | v] (GPT-2, Falcon-7b multi-query, Baichuan,
//  ChatGLM);  kPerHead: per head [q_h | k_h | v_h] (Bloom, GPT-NeoX, Falcon MHA);  kGrouped: per
//  kv group [q × heads/kv_heads | k | v] (Falcon-40b's new decoder architecture).
enum class QkvLayout { kSeparate, kConcat, kPerHead, kGrouped };

struct ModelConfig {
  std::string architecture;  // Hugging Face class name, e.g. "LlamaForCausalLM"
  std::string family;        // model_type: "llama", "gpt2", "falcon", ...
  int dim = 0;               // hidden_size
  int hidden_dim = 0;        // intermediate_size (the MLP width)
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;  // dim / n_heads unless the config says otherwise
  int vocab_size = 0;
  int max_seq_len = 0;  // max_position_embeddings
  float norm_eps = 1e-5f;

  // Positions.
  PositionKind position = PositionKind::kRope;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  // RoPE on the first `rope_dims` dims of each head only (GPT-NeoX rotary_pct, GPT-J rotary_dim,
  // Phi partial_rotary_factor); 0 = the whole head. Frequencies run over rope_dims.
  int rope_dims = 0;
  // Pairs (0,1), (2,3), ... rotate together (GPT-J, ChatGLM, llama2.c) instead of Hugging Face's
  // rotate-half pairs (i, i + rope_dims/2).
  bool rope_interleaved = false;
  int position_offset = 0;  // learned positions: position p reads row p + offset (OPT: 2)

  // Norms.
  NormKind norm = NormKind::kRms;
  bool norm_bias = false;   // LayerNorms carry a bias
  bool embed_norm = false;  // a norm right after the token embedding (Bloom)
  bool final_norm = true;   // a norm after the last layer

  // Block topology. Sequential: x += attn(n1(x)); x += mlp(n2(x)). Parallel: x += attn(n1(x)) +
  // mlp(n2(x)), with n2 = n1 when shared_norm. Post-norm (OPT-350m): x = n1(x + attn(x));
  // x = n2(x + mlp(x)).
  bool parallel_block = false;
  bool shared_norm = false;
  bool post_norm = false;

  // Attention.
  QkvLayout qkv_layout = QkvLayout::kSeparate;
  bool qkv_bias = false;  // q/k/v projections carry biases (Qwen2, GPT-2, OPT, ...)
  bool o_bias = false;    // the output projection carries a bias

  // MLP: gated = down(act(gate(x)) · up(x)) (SwiGLU); else down(act(up(x))) (fc1 -> fc2).
  bool gated_mlp = true;
  bool fused_gate_up = false;  // gate and up in one tensor, [gate | up] (Phi-3, ChatGLM)
  ops::Activation act = ops::Activation::kSilu;
  bool mlp_bias = false;

  // Embeddings and head.
  bool tied_embeddings = false;
  bool lm_head_bias = false;
  bool norm_head = false;  // Baichuan2: the lm_head rows are L2-normalized before use
  int proj_dim = 0;        // OPT word_embed_proj_dim when it differs from dim: project_in/out
  // QuaRot R4: an online Hadamard transform (ops/hadamard.h) of down_proj's input, whose weight
  // was rotated to match (config.json "lowbit_hadamard_down_proj": true, any family).
  bool hadamard_down = false;
  // config.json "lowbit_norm": "rms" overrides the family's norm kind (a LayerNorm family rotated
  // by r1, whose stream is mean-free: its LayerNorms are RMSNorms with their bias).

  int bos_id = 1;
  int eos_id = 2;
  // quantization_config.quant_method of a quantized checkpoint ("gptq", "lowbit", ...); "" for
  // floating-point models. The loader reads the rest of the block itself.
  std::string quant_method;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  int embed_dim() const { return proj_dim > 0 ? proj_dim : dim; }  // rows of the embedding
};

// Reading config.json fields by any of their names (n_embd / hidden_size ...), with checked
// types and ranges: every problem is Error("<where>: ...").
class ConfigReader {
 public:
  ConfigReader(std::string where, const nlohmann::json& j) : where_(std::move(where)), j_(j) {}
  const std::string& where() const { return where_; }
  const nlohmann::json& raw() const { return j_; }
  // Whether any of `keys` is present and not null.
  bool has(std::initializer_list<const char*> keys) const;
  int get_int(std::initializer_list<const char*> keys, bool required, int dflt = 0) const;
  double get_num(std::initializer_list<const char*> keys, bool required, double dflt = 0) const;
  // A number kept as a float: one that overflows it is an error, not inf.
  float get_float(std::initializer_list<const char*> keys, bool required, double dflt = 0) const;
  bool get_bool(std::initializer_list<const char*> keys, bool dflt) const;
  std::string get_string(std::initializer_list<const char*> keys, const std::string& dflt) const;
  // Throws Error("<where>: <key> = <value> is not supported by lowbit (<why>)") when `key` is
  // present and differs from `supported`.
  void require_bool(const char* key, bool supported, const char* why) const;

 private:
  const nlohmann::json* find(std::initializer_list<const char*> keys, const char** found) const;
  std::string where_;
  const nlohmann::json& j_;
};

// Parses a Hugging Face config.json. Throws Error("<path>: ...") on missing/invalid fields or an
// unsupported architecture.
ModelConfig load_hf_config(const std::string& config_json_path);
// Parses config.json text; `where` names it in errors.
ModelConfig parse_hf_config(const std::string& where, const std::string& json_text);
// Checks dimensions are positive and consistent. Throws Error("<where>: ...").
void validate_config(const std::string& where, const ModelConfig& cfg);
// The inverse of load_hf_config for the Llama family (synthetic checkpoints and llama2.c models
// saved as Hugging Face folders): a config.json (pretty-printed) for `cfg`.
std::string to_hf_config_json(const ModelConfig& cfg, const std::string& torch_dtype = "float32");

}  // namespace lowbit
