// The model described as data: hyper-parameters plus which architectural features are on.
// Every loader (Hugging Face folder, llama2.c file, synthetic generator) produces a ModelConfig;
// the forward pass reads nothing else.
#pragma once

#include <string>

namespace lowbit {

struct RopeScaling {
  std::string type;  // "" (none) or "llama3"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // Hugging Face class name, e.g. "LlamaForCausalLM"
  std::string family;        // "llama", "mistral", "qwen2"
  int dim = 0;               // hidden_size
  int hidden_dim = 0;        // intermediate_size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;  // dim / n_heads unless the config says otherwise
  int vocab_size = 0;
  int max_seq_len = 0;  // max_position_embeddings
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tied_embeddings = false;
  bool qkv_bias = false;  // Qwen2: q/k/v projections carry biases
  int bos_id = 1;
  int eos_id = 2;
  // quantization_config.quant_method of a quantized checkpoint ("gptq", "lowbit", ...); "" for
  // floating-point models. The loader reads the rest of the block itself.
  std::string quant_method;
};

// Parses a Hugging Face config.json. Throws Error("<path>: ...") on missing/invalid fields or an
// unsupported architecture.
ModelConfig load_hf_config(const std::string& config_json_path);
// Parses config.json text; `where` names it in errors.
ModelConfig parse_hf_config(const std::string& where, const std::string& json_text);
// Checks dimensions are positive and consistent. Throws Error("<where>: ...").
void validate_config(const std::string& where, const ModelConfig& cfg);
// The inverse of load_hf_config: a Hugging Face config.json (pretty-printed) for `cfg`.
std::string to_hf_config_json(const ModelConfig& cfg, const std::string& torch_dtype = "float32");

}  // namespace lowbit
