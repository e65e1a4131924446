#include "lowbit/synth/synth.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "lowbit/io/output_dir.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/model/arch.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"
#include "lowbit/util/half.h"
#include "lowbit/util/progress.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

struct Shape {
  const char* name;
  const char* arch;
  int dim, hidden, layers, heads, kv_heads, vocab, ctx;
  float eps, theta;
  bool tied;
  int bos, eos;
  bool llama3_scaling;
};

// Hyper-parameters of the published config.json files.
constexpr Shape kShapes[] = {
    {"tinyllama-1.1b", "LlamaForCausalLM", 2048, 5632, 22, 32, 4, 32000, 2048, 1e-5f, 1e4f, false,
     1, 2, false},
    {"llama-2-7b", "LlamaForCausalLM", 4096, 11008, 32, 32, 32, 32000, 4096, 1e-5f, 1e4f, false, 1,
     2, false},
    {"llama-3-8b", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 8192, 1e-5f, 5e5f, false,
     128000, 128001, false},
    {"llama-3.2-1b", "LlamaForCausalLM", 2048, 8192, 16, 32, 8, 128256, 131072, 1e-5f, 5e5f, true,
     128000, 128001, true},
    {"qwen2-0.5b", "Qwen2ForCausalLM", 896, 4864, 24, 14, 2, 151936, 131072, 1e-6f, 1e6f, true,
     151643, 151643, false},
    {"mistral-7b", "MistralForCausalLM", 4096, 14336, 32, 32, 8, 32000, 32768, 1e-5f, 1e4f, false,
     1, 2, false},
    {"small", "LlamaForCausalLM", 256, 688, 4, 8, 4, 512, 512, 1e-5f, 1e4f, false, 1, 2, false},
};

// Shapes of the other families: their published config.json, read by the family's own entry in
// the architecture table (model/arch.cpp) exactly as a downloaded checkpoint's would be, and
// written out as it is (with the layer count of --layers). `layers_key` names the layer count.
struct ConfigShape {
  const char* name;
  const char* layers_key;
  const char* config;
};

constexpr ConfigShape kConfigShapes[] = {
    {"gpt-j-6b", "n_layer",
     R"({"architectures": ["GPTJForCausalLM"], "model_type": "gptj", "activation_function": "gelu_new",
         "bos_token_id": 50256, "eos_token_id": 50256, "layer_norm_epsilon": 1e-05, "n_embd": 4096,
         "n_head": 16, "n_inner": null, "n_layer": 28, "n_positions": 2048, "rotary": true,
         "rotary_dim": 64, "tie_word_embeddings": false, "vocab_size": 50400})"},
    {"opt-6.7b", "num_hidden_layers",
     R"({"architectures": ["OPTForCausalLM"], "model_type": "opt", "activation_function": "relu",
         "bos_token_id": 2, "do_layer_norm_before": true, "eos_token_id": 2, "ffn_dim": 16384,
         "hidden_size": 4096, "max_position_embeddings": 2048, "num_attention_heads": 32,
         "num_hidden_layers": 32, "pad_token_id": 1, "prefix": "</s>", "vocab_size": 50272,
         "word_embed_proj_dim": 4096})"},
    {"falcon-7b", "num_hidden_layers",
     R"({"architectures": ["FalconForCausalLM"], "model_type": "falcon", "alibi": false,
         "apply_residual_connection_post_layernorm": false, "bias": false, "bos_token_id": 11,
         "eos_token_id": 11, "hidden_size": 4544, "layer_norm_epsilon": 1e-05, "multi_query": true,
         "new_decoder_architecture": false, "num_attention_heads": 71, "num_hidden_layers": 32,
         "parallel_attn": true, "vocab_size": 65024})"},
    {"bloom-7b1", "n_layer",
     R"({"architectures": ["BloomForCausalLM"], "model_type": "bloom",
         "apply_residual_connection_post_layernorm": false, "bos_token_id": 1, "eos_token_id": 2,
         "hidden_size": 4096, "layer_norm_epsilon": 1e-05, "n_head": 32, "n_inner": null,
         "n_layer": 30, "pad_token_id": 3, "pretraining_tp": 1, "slow_but_exact": false,
         "unk_token_id": 0, "vocab_size": 250880})"},
    {"gpt-neox-20b", "num_hidden_layers",
     R"({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "bos_token_id": 0,
         "eos_token_id": 0, "hidden_act": "gelu_fast", "hidden_size": 6144,
         "intermediate_size": 24576, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048,
         "num_attention_heads": 64, "num_hidden_layers": 44, "rotary_emb_base": 10000,
         "rotary_pct": 0.25, "tie_word_embeddings": false, "use_parallel_residual": true,
         "vocab_size": 50432})"},
};

const ConfigShape* find_config_shape(const std::string& name) {
  for (const auto& s : kConfigShapes) {
    if (name == s.name) return &s;
  }
  return nullptr;
}

// The config.json of a published-config shape with `layers` layers (0: its own count).
nlohmann::ordered_json config_shape_json(const ConfigShape& s, int layers) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(s.config);
  if (layers > 0) j[s.layers_key] = layers;
  return j;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Counter-based: the value of element i depends only on (key, i), not on threads or chunking.
double uniform01(uint64_t key, uint64_t i) {
  return (static_cast<double>(splitmix64(key ^ (i * 0xd1b54a32d192ed03ull)) >> 11) + 0.5) *
         0x1.0p-53;
}

// How one tensor's entries are drawn.
struct TensorRecipe {
  uint64_t key = 0;
  float scale = 0;  // std of the bulk
  float mean = 0;   // norms: ~1
  bool abs = false;
  int64_t in = 1;                  // row length (columns)
  std::vector<float> column_gain;  // per input channel (outliers > 1); empty = all 1
};

// Outlier input channels of one activation space of one layer: k channels with gain 6..12.
std::vector<float> outlier_gains(uint64_t key, int64_t in) {
  std::vector<float> g(static_cast<size_t>(in), 1.0f);
  const int64_t k = std::max<int64_t>(2, in / 512);
  for (int64_t j = 0; j < k; ++j) {
    const auto c = static_cast<size_t>(splitmix64(key + 2 * j) % static_cast<uint64_t>(in));
    g[c] = 6.0f + 6.0f * static_cast<float>(uniform01(key, 2 * j + 1));
  }
  return g;
}

TensorRecipe recipe_for(const TensorSpec& spec, int layer, const ModelConfig& cfg, uint64_t seed,
                        uint64_t tensor_id) {
  TensorRecipe r;
  r.key = splitmix64(seed * 0x9e3779b97f4a7c15ull + tensor_id);
  const std::vector<int64_t> shape = expected_shape(spec, cfg);
  r.in = shape.size() == 2 ? shape[1] : 1;
  const uint64_t layer_key = splitmix64(seed ^ (0x51ed270b27d1c5ull * (layer + 1)));
  switch (spec.role) {
    case TensorRole::kAttnNorm:
    case TensorRole::kFfnNorm:
    case TensorRole::kFinalNorm:
    case TensorRole::kEmbedNorm:
      r.mean = 1.0f;
      r.scale = 0.1f;
      r.abs = true;
      break;
    case TensorRole::kBq:
    case TensorRole::kBk:
    case TensorRole::kBv:
    case TensorRole::kBqkv:
      r.scale = 0.05f;
      break;
    case TensorRole::kAttnNormBias:
    case TensorRole::kFfnNormBias:
    case TensorRole::kFinalNormBias:
    case TensorRole::kEmbedNormBias:
    case TensorRole::kBo:
    case TensorRole::kBGate:
    case TensorRole::kBUp:
    case TensorRole::kBGateUp:
    case TensorRole::kBDown:
    case TensorRole::kLmHeadBias:
      r.scale = 0.02f;
      break;
    case TensorRole::kTokEmbeddings:
    case TensorRole::kPosEmbeddings:
    case TensorRole::kLmHead:
      r.scale = 0.02f;
      break;
    default: {
      r.scale = 1.0f / std::sqrt(static_cast<float>(r.in));
      // Outlier channels belong to an input: q/k/v share the attention input, gate/up the MLP
      // input; o and down have their own.
      uint64_t space = 0;
      if (spec.role == TensorRole::kWo) space = 1;
      // A parallel block with one norm feeds the MLP from the attention input.
      if ((spec.role == TensorRole::kWGate || spec.role == TensorRole::kWUp ||
           spec.role == TensorRole::kWGateUp) &&
          !(cfg.parallel_block && cfg.shared_norm)) {
        space = 2;
      }
      if (spec.role == TensorRole::kWDown) space = 3;
      r.column_gain = outlier_gains(splitmix64(layer_key + space), r.in);
      break;
    }
  }
  return r;
}

float draw(const TensorRecipe& r, uint64_t i) {
  float v = r.scale * synth_heavy_tail(uniform01(r.key, i));
  if (!r.column_gain.empty()) v *= r.column_gain[static_cast<size_t>(i % r.in)];
  v += r.mean;
  return r.abs ? std::max(std::fabs(v), 0.05f) : v;
}

// Generates and writes `n` elements of a tensor in chunks (parallel within a chunk).
void stream_tensor(const TensorRecipe& r, int64_t n, DType dtype, SafetensorsWriter& w,
                   Progress& progress) {
  constexpr int64_t kChunk = int64_t{1} << 22;
  const size_t esize = dtype_size(dtype);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[static_cast<size_t>(std::min(n, kChunk)) * esize]);
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = std::min(kChunk, n - start);
    float* f = reinterpret_cast<float*>(buf.get());
    uint16_t* h = reinterpret_cast<uint16_t*>(buf.get());
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < len; ++j) {
      const float v = draw(r, static_cast<uint64_t>(start + j));
      if (dtype == DType::F32) {
        f[j] = v;
      } else if (dtype == DType::BF16) {
        h[j] = f32_to_bf16(v);
      } else {
        h[j] = f32_to_f16(v);
      }
    }
    const size_t nb = static_cast<size_t>(len) * esize;
    w.write(buf.get(), nb);
    progress.add(static_cast<int64_t>(nb));
  }
}

void copy_tokenizer(const std::string& src, const fs::path& dst_dir) {
  const PathKind kind = path_kind(src);
  if (kind == PathKind::kDir) {
    int copied = 0;
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                             "tokenizer.model"}) {
      const fs::path p = fs::path(src) / name;
      if (!path_exists(p.string())) continue;
      copy_file(p.string(), (dst_dir / name).string());
      ++copied;
    }
    if (copied == 0) fail(src, "no tokenizer.json / tokenizer.model in this folder");
  } else if (kind == PathKind::kFile) {
    const fs::path p(src);
    const std::string name = p.extension() == ".json" ? "tokenizer.json" : p.filename().string();
    copy_file(src, (dst_dir / name).string());
  } else {
    fail(src, "tokenizer not found");
  }
}

const char* torch_dtype_name(DType t) {
  return t == DType::F32 ? "float32" : t == DType::BF16 ? "bfloat16" : "float16";
}

}  // namespace

float synth_heavy_tail(double u) {
  // Closed-form quantile of Student-t with 4 degrees of freedom; variance 2.
  const double a = 4.0 * u * (1.0 - u);
  const double sa = std::sqrt(a);
  const double q = std::cos(std::acos(sa) / 3.0) / sa;
  double t = 2.0 * std::sqrt(std::max(q - 1.0, 0.0));
  if (u < 0.5) t = -t;
  t *= 0.70710678118654752;  // unit variance
  return static_cast<float>(std::clamp(t, -16.0, 16.0));
}

std::vector<std::string> synth_shape_names() {
  std::vector<std::string> v;
  for (const auto& s : kShapes) v.push_back(s.name);
  for (const auto& s : kConfigShapes) v.push_back(s.name);
  return v;
}

ModelConfig synth_shape(const std::string& name) {
  if (const ConfigShape* cs = find_config_shape(name)) {
    return parse_hf_config("synth " + name, config_shape_json(*cs, 0).dump());
  }
  for (const auto& s : kShapes) {
    if (name != s.name) continue;
    const ArchSpec* arch = find_arch(s.arch);
    ModelConfig c;
    c.architecture = arch->architecture;
    c.family = arch->model_type;
    c.qkv_bias = c.family == "qwen2";
    c.dim = s.dim;
    c.hidden_dim = s.hidden;
    c.n_layers = s.layers;
    c.n_heads = s.heads;
    c.n_kv_heads = s.kv_heads;
    c.head_dim = s.dim / s.heads;
    c.vocab_size = s.vocab;
    c.max_seq_len = s.ctx;
    c.norm_eps = s.eps;
    c.rope_theta = s.theta;
    c.tied_embeddings = s.tied;
    c.bos_id = s.bos;
    c.eos_id = s.eos;
    if (s.llama3_scaling) c.rope_scaling = {"llama3", 32.0f, 1.0f, 4.0f, 8192, {}};
    return c;
  }
  std::string names;
  for (const auto& n : synth_shape_names()) names += (names.empty() ? "" : ", ") + n;
  fail("synth", "unknown shape {} (known: {})", name, names);
}

SynthResult synth_checkpoint(const SynthOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  if (opt.dtype != DType::F32 && opt.dtype != DType::BF16 && opt.dtype != DType::F16) {
    fail("synth", "dtype {} not supported (use f32, f16 or bf16)", dtype_name(opt.dtype));
  }
  if (opt.out_dir.empty()) fail("synth", "no output folder given");
  SynthResult res;
  res.cfg = synth_shape(opt.shape);
  if (opt.layers < 0 || opt.layers > 4096) fail("synth", "--layers {} out of range", opt.layers);
  if (opt.layers > 0) res.cfg.n_layers = opt.layers;
  validate_config("synth", res.cfg);
  const ConfigShape* config_shape = find_config_shape(opt.shape);

  OutputDirOptions oo;
  oo.force = opt.force;
  oo.inputs = {opt.tokenizer};
  oo.command = "synth";
  OutputDir dir(opt.out_dir, oo);
  const fs::path tmp = dir.tmp();

  {
    // Declarations and recipes, in Hugging Face order: per-layer tensors grouped by layer.
    const ArchSpec* arch = find_arch(res.cfg.architecture);
    std::vector<TensorDecl> decls;
    std::vector<std::pair<const TensorSpec*, int>> which;
    auto add = [&](const TensorSpec& spec, int layer) {
      decls.push_back({tensor_name(spec, layer), opt.dtype, expected_shape(spec, res.cfg)});
      which.emplace_back(&spec, layer);
    };
    for (const auto& spec : arch->tensors) {
      if (!is_per_layer(spec.role) && spec.role == TensorRole::kTokEmbeddings) add(spec, 0);
    }
    for (int l = 0; l < res.cfg.n_layers; ++l) {
      for (const auto& spec : arch->tensors) {
        if (is_per_layer(spec.role) && tensor_present(spec, res.cfg)) add(spec, l);
      }
    }
    for (const auto& spec : arch->tensors) {
      if (!is_per_layer(spec.role) && spec.role != TensorRole::kTokEmbeddings &&
          tensor_present(spec, res.cfg)) {
        add(spec, 0);
      }
    }
    int64_t total = 0;
    for (const auto& d : decls) {
      total += static_cast<int64_t>(d.nbytes());
      res.params += static_cast<int64_t>(d.nbytes() / dtype_size(opt.dtype));
    }
    res.bytes = total;

    Progress progress(fmt::format("synth {}", opt.shape), total);
    res.files = write_sharded_safetensors(
        tmp.string(), decls,
        [&](size_t i, SafetensorsWriter& w) {
          const TensorSpec& spec = *which[i].first;
          const TensorRecipe r = recipe_for(spec, which[i].second, res.cfg, opt.seed, i);
          int64_t n = 1;
          for (int64_t d : decls[i].shape) n *= d;
          stream_tensor(r, n, opt.dtype, w, progress);
        },
        opt.max_shard_bytes, {{"format", "pt"}, {"lowbit_synth", opt.shape}});
    progress.finish();

    std::string config_text;
    if (config_shape != nullptr) {
      nlohmann::ordered_json j = config_shape_json(*config_shape, opt.layers);
      j["torch_dtype"] = torch_dtype_name(opt.dtype);
      config_text = j.dump(2) + "\n";
    } else {
      config_text = to_hf_config_json(res.cfg, torch_dtype_name(opt.dtype));
    }
    write_file_atomic((tmp / "config.json").string(), config_text);
    res.files.push_back("config.json");
    if (!opt.tokenizer.empty()) copy_tokenizer(opt.tokenizer, tmp);

    dir.commit();
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace lowbit
