#include "lowbit/model/config.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/model/arch.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

using json = nlohmann::json;

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 20;  // generous bound on any one dimension

// An integer JSON value as an int. Throws Error("<where>: field <key> = <v> is out of range")
// (unsigned values above INT64_MAX included, which get<int64_t>() would wrap to negative).
int int_in_range(const std::string& where, const json& v, const char* key) {
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{std::numeric_limits<int>::max()}) {
    fail(where, "field {} = {} is out of range", key, v.get<uint64_t>());
  }
  const int64_t x = v.get<int64_t>();
  if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max()) {
    fail(where, "field {} = {} is out of range", key, x);
  }
  return static_cast<int>(x);
}

// eos_token_id may be an int or a list of ints (the first is used).
int get_token_id(const std::string& where, const json& j, const char* key, int dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  const json* v = &*it;
  if (v->is_array()) {
    if (v->empty()) return dflt;
    v = &(*v)[0];
  }
  if (!v->is_number_integer()) fail(where, "field {} must be an integer or a list of them", key);
  return int_in_range(where, *v, key);  // not cut to 32 bits: 4294967297 is not token 1
}

RopeScaling parse_rope_scaling(const std::string& where, const json& j) {
  RopeScaling rs;
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return rs;
  if (!it->is_object()) fail(where, "rope_scaling must be an object or null");
  std::string type;
  bool typed = false;
  for (const char* key : {"rope_type", "type"}) {
    auto t = it->find(key);
    if (t == it->end() || t->is_null()) continue;
    if (!t->is_string()) fail(where, "rope_scaling.{} must be a string", key);
    type = t->get<std::string>();
    typed = true;
    break;
  }
  // An object without a type would be silently ignored by a loader that reads only the type:
  // whatever scaling the file meant, this is not a model lowbit can reproduce.
  if (!typed) fail(where, "rope_scaling has no 'rope_type' (or 'type'): which scaling is meant?");
  if (type == "default") return rs;
  if (type != "llama3") fail(where, "unsupported rope_scaling type {}", type);
  rs.type = type;
  const ConfigReader sub(where, *it);
  rs.factor = sub.get_float({"factor"}, true, 1.0);
  rs.low_freq_factor = sub.get_float({"low_freq_factor"}, false, 1.0);
  rs.high_freq_factor = sub.get_float({"high_freq_factor"}, false, 4.0);
  rs.original_max_position_embeddings =
      sub.get_int({"original_max_position_embeddings"}, false, 8192);
  if (!(rs.factor >= 1.0f) || !(rs.low_freq_factor > 0.0f) ||
      !(rs.high_freq_factor > rs.low_freq_factor) || rs.original_max_position_embeddings <= 0) {
    fail(where, "invalid llama3 rope_scaling parameters");
  }
  return rs;
}

// A float as the double with the same shortest decimal form (1e-5f -> 1e-05, not 9.99e-06).
double tidy(float f) { return std::stod(fmt::format("{}", f)); }

}  // namespace

const json* ConfigReader::find(std::initializer_list<const char*> keys, const char** found) const {
  *found = *keys.begin();
  if (!j_.is_object()) return nullptr;
  for (const char* k : keys) {
    auto it = j_.find(k);
    if (it != j_.end() && !it->is_null()) {
      *found = k;
      return &*it;
    }
  }
  return nullptr;
}

bool ConfigReader::has(std::initializer_list<const char*> keys) const {
  const char* k = nullptr;
  return find(keys, &k) != nullptr;
}

int ConfigReader::get_int(std::initializer_list<const char*> keys, bool required, int dflt) const {
  const char* key = nullptr;
  const json* v = find(keys, &key);
  if (v == nullptr) {
    if (required) fail(where_, "missing required field {}", key);
    return dflt;
  }
  if (!v->is_number_integer()) fail(where_, "field {} must be an integer", key);
  return int_in_range(where_, *v, key);
}

double ConfigReader::get_num(std::initializer_list<const char*> keys, bool required,
                             double dflt) const {
  const char* key = nullptr;
  const json* v = find(keys, &key);
  if (v == nullptr) {
    if (required) fail(where_, "missing required field {}", key);
    return dflt;
  }
  if (!v->is_number()) fail(where_, "field {} must be a number", key);
  return v->get<double>();
}

float ConfigReader::get_float(std::initializer_list<const char*> keys, bool required,
                              double dflt) const {
  const double v = get_num(keys, required, dflt);
  if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max()) {
    const char* key = nullptr;
    find(keys, &key);
    fail(where_, "field {} = {} is out of range", key, v);
  }
  return static_cast<float>(v);
}

bool ConfigReader::get_bool(std::initializer_list<const char*> keys, bool dflt) const {
  const char* key = nullptr;
  const json* v = find(keys, &key);
  if (v == nullptr) return dflt;
  if (!v->is_boolean()) fail(where_, "field {} must be a boolean", key);
  return v->get<bool>();
}

std::string ConfigReader::get_string(std::initializer_list<const char*> keys,
                                     const std::string& dflt) const {
  const char* key = nullptr;
  const json* v = find(keys, &key);
  if (v == nullptr) return dflt;
  if (!v->is_string()) fail(where_, "field {} must be a string", key);
  return v->get<std::string>();
}

void ConfigReader::require_bool(const char* key, bool supported, const char* why) const {
  if (get_bool({key}, supported) != supported) {
    fail(where_, "{} = {} is not supported by lowbit ({})", key, !supported, why);
  }
}

void validate_config(const std::string& where, const ModelConfig& c) {
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0 || v > kMaxDim * 16) fail(where, "{} = {} must be positive and sane", name, v);
  };
  positive("hidden_size", c.dim);
  positive("intermediate_size", c.hidden_dim);
  positive("num_hidden_layers", c.n_layers);
  positive("num_attention_heads", c.n_heads);
  positive("num_key_value_heads", c.n_kv_heads);
  positive("head_dim", c.head_dim);
  positive("vocab_size", c.vocab_size);
  positive("max_position_embeddings", c.max_seq_len);
  if (c.dim > kMaxDim || c.hidden_dim > kMaxDim || c.n_layers > 4096) {
    fail(where, "dimensions too large (hidden_size {}, intermediate_size {}, layers {})", c.dim,
         c.hidden_dim, c.n_layers);
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    fail(where, "num_attention_heads {} is not a multiple of num_key_value_heads {}", c.n_heads,
         c.n_kv_heads);
  }
  if (int64_t{c.n_heads} * c.head_dim > kMaxDim) fail(where, "heads * head_dim too large");
  if (c.position == PositionKind::kRope) {
    const int rot = c.rope_dims > 0 ? c.rope_dims : c.head_dim;
    if (rot % 2 != 0 || rot > c.head_dim) {
      fail(where, "rotary dims {} must be even and at most head_dim {}", rot, c.head_dim);
    }
  }
  if (!(c.norm_eps > 0.0f) || !(c.rope_theta > 0.0f) || !std::isfinite(c.norm_eps) ||
      !std::isfinite(c.rope_theta)) {
    fail(where, "rms_norm_eps and rope_theta must be positive and finite");
  }
  if (c.proj_dim < 0 || c.proj_dim > kMaxDim) fail(where, "word_embed_proj_dim {}", c.proj_dim);
  if (c.qkv_layout == QkvLayout::kPerHead && c.n_kv_heads != c.n_heads) {
    fail(where, "a per-head fused q/k/v needs as many kv heads as heads");
  }
}

ModelConfig parse_hf_config(const std::string& where, const std::string& text) {
  json j = parse_json(where, text);
  if (!j.is_object()) fail(where, "config is not a JSON object");

  auto archs = j.find("architectures");
  if (archs == j.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    fail(where, "missing required field architectures");
  }
  const std::string arch_name = (*archs)[0].get<std::string>();
  const ArchSpec* arch = find_arch(arch_name);
  if (arch == nullptr) {
    fail(where, "unsupported architecture {} (supported: {})", arch_name,
         supported_architectures());
  }

  ModelConfig c;
  c.architecture = arch->architecture;
  c.family = arch->model_type;
  const ConfigReader r(where, j);
  arch->configure(r, &c);
  if (c.position == PositionKind::kRope) c.rope_scaling = parse_rope_scaling(where, j);
  c.bos_id = get_token_id(where, j, "bos_token_id", 1);
  c.eos_id = get_token_id(where, j, "eos_token_id", 2);
  if (auto nk = j.find("lowbit_norm"); nk != j.end() && !nk->is_null()) {
    // r1 on a LayerNorm family (docs/QUANTIZE.md, "Rotations"): its norms are RMSNorms now.
    if (!nk->is_string() || (*nk != "rms" && *nk != "layer"))
      fail(where, "lowbit_norm must be \"rms\" or \"layer\"");
    c.norm = *nk == "rms" ? NormKind::kRms : NormKind::kLayer;
  }
  if (auto en = j.find("lowbit_embed_norm"); en != j.end() && !en->is_null()) {
    // r1 on Bloom: the embedding norm's output is baked into the (rotated) table.
    if (!en->is_boolean() || en->get<bool>())
      fail(where, "lowbit_embed_norm can only be false (the embedding norm baked into the table)");
    c.embed_norm = false;
  }
  if (auto h = j.find("lowbit_hadamard_down_proj"); h != j.end() && !h->is_null()) {
    if (!h->is_boolean()) fail(where, "lowbit_hadamard_down_proj must be true or false");
    c.hadamard_down = h->get<bool>();
  }
  auto qc = j.find("quantization_config");
  if (qc != j.end() && !qc->is_null()) {
    auto m = qc->is_object() ? qc->find("quant_method") : qc->end();
    c.quant_method = (m != qc->end() && m->is_string()) ? m->get<std::string>() : "unknown";
  }
  validate_config(where, c);
  return c;
}

ModelConfig load_hf_config(const std::string& path) {
  return parse_hf_config(path, read_file(path, kMaxConfigBytes, "config.json"));
}

std::string to_hf_config_json(const ModelConfig& c, const std::string& torch_dtype) {
  nlohmann::ordered_json j;
  j["architectures"] = {c.architecture};
  j["model_type"] = c.family;
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rms_norm_eps"] = tidy(c.norm_eps);
  j["rope_theta"] = tidy(c.rope_theta);
  if (c.rope_scaling.type.empty()) {
    j["rope_scaling"] = nullptr;
  } else {
    j["rope_scaling"] = {
        {"rope_type", c.rope_scaling.type},
        {"factor", tidy(c.rope_scaling.factor)},
        {"low_freq_factor", tidy(c.rope_scaling.low_freq_factor)},
        {"high_freq_factor", tidy(c.rope_scaling.high_freq_factor)},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  j["tie_word_embeddings"] = c.tied_embeddings;
  if (c.hadamard_down) j["lowbit_hadamard_down_proj"] = true;
  // Llama says whether its projections carry biases; Mistral only when they do (Qwen2's q/k/v
  // always do, its o_proj never).
  if (c.family == "llama" || (c.family == "mistral" && c.qkv_bias)) {
    j["attention_bias"] = c.qkv_bias;
  }
  if (c.mlp_bias) j["mlp_bias"] = true;
  j["hidden_act"] = "silu";
  j["bos_token_id"] = c.bos_id;
  j["eos_token_id"] = c.eos_id;
  j["torch_dtype"] = torch_dtype;
  return j.dump(2) + "\n";
}

}  // namespace lowbit
