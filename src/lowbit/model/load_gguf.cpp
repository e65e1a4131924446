// GGUF file -> ModelConfig + ModelWeights, through the architecture table (config) and the GGUF
// name table (model/gguf_names.h): no per-family code. q4_0 and q8_0 linears are exactly lowbit
// schemes (int4 / int8, groups of 32, symmetric, f16 scales) and are repacked for the kernels;
// every other quantized type is dequantized to fp32 at load (and, with keep_quantized, also kept
// as its ggml blocks, so `export gguf` writes them back unchanged).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lowbit/io/tensor_convert.h"
#include "lowbit/model/gguf_model.h"
#include "lowbit/model/gguf_names.h"
#include "lowbit/model/hold_quantized.h"
#include "lowbit/model/load.h"
#include "lowbit/util/buffer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace {

using enum TensorRole;
using gguf::GgmlType;

constexpr uint64_t kMaxDim = uint64_t{1} << 24;  // any single model dimension

int dim_value(const gguf::Reader& r, const std::string& key, bool required, uint64_t dflt = 0) {
  const uint64_t v = r.get_uint(key, required, dflt);
  if (v == 0 || v > kMaxDim)
    fail(r.path(), "metadata {} = {} is out of range (1..{})", key, v, kMaxDim);
  return static_cast<int>(v);
}

// Whether the q/k rows of `n` are stored in interleaved pairs that lowbit holds rotate-half.
int permuted_heads(const GgufTensorName& n, const ModelConfig& cfg) {
  if (cfg.rope_interleaved || cfg.family == "qwen2") return 0;
  return n.rows == GgufRows::kQHeads    ? cfg.n_heads
         : n.rows == GgufRows::kKvHeads ? cfg.n_kv_heads
                                        : 0;
}

// The grid of q4_0 / q8_0 as a lowbit scheme: value = d · (code − zero) with zero 8 / 128.
bool repackable(GgmlType t) { return t == GgmlType::kQ4_0 || t == GgmlType::kQ8_0; }

// A q4_0 / q8_0 matrix [out, in] as a QuantizedWeight (int4 / int8, g32, sym, f16 scales).
QuantizedWeight quantized_weight(const std::string& path, const gguf::Tensor& t, int out, int in) {
  QuantizedWeight q;
  q.scheme.type = WeightType::kInt;
  q.scheme.bits = t.type == GgmlType::kQ4_0 ? 4 : 8;
  q.scheme.group_size = 32;
  q.scheme.sym = true;
  q.scheme.scale_type = ScaleType::kF16;
  q.out = out;
  q.in = in;
  q.n_groups = in / 32;
  q.q.resize(static_cast<size_t>(out) * static_cast<size_t>(in));
  q.params.resize(static_cast<size_t>(out) * static_cast<size_t>(q.n_groups));
  q.g_idx.resize(static_cast<size_t>(in));
  for (int i = 0; i < in; ++i) q.g_idx[static_cast<size_t>(i)] = i / 32;
  const float sym_zero = static_cast<float>(1 << (q.scheme.bits - 1));
  const size_t bb = static_cast<size_t>(gguf::block_bytes(t.type));
  float scale[32], offset[32];
  for (size_t b = 0; b < q.params.size(); ++b) {
    const uint8_t* block = t.data + b * bb;
    gguf::block_grid(t.type, block, scale, offset);
    gguf::get_codes(t.type, block, q.q.data() + b * 32);
    GroupParams& p = q.params[b];
    p.scale = scale[0];
    p.zero = sym_zero;  // the block's offset is −zero·d by construction
    if (scale[0] != 0.0f && -offset[0] / scale[0] != sym_zero) {
      fail(path, "tensor {}: {} block {} is not on a symmetric grid", t.name,
           gguf::type_name(t.type), b);
    }
  }
  return q;
}

// Any other quantized matrix as its ggml blocks (a kGgml weight): what exporters copy back.
QuantizedWeight ggml_weight(const std::string& path, const gguf::Tensor& t, int out, int in) {
  QuantizedWeight q;
  if (!parse_ggml_scheme(gguf::type_name(t.type), &q.scheme)) {
    fail(path, "tensor {}: {} is not a lowbit scheme", t.name, gguf::type_name(t.type));
  }
  q.out = out;
  q.in = in;
  q.n_groups = in / q.scheme.group_size;
  q.g_idx.resize(static_cast<size_t>(in));
  for (int i = 0; i < in; ++i) q.g_idx[static_cast<size_t>(i)] = i / q.scheme.group_size;
  q.blocks.assign(t.data, t.data + t.bytes);
  return q;
}

// An owned fp32 copy of a tensor in lowbit's order.
std::shared_ptr<float[]> owned_f32(const gguf::Reader& r, const gguf::Tensor& t,
                                   const GgufTensorName& n, const ModelConfig& cfg) {
  std::shared_ptr<float[]> buf = alloc_floats(static_cast<size_t>(t.numel));
  gguf::to_f32(t, 0, t.numel, buf.get());
  check_finite(r.path(), t.name, buf.get(), static_cast<size_t>(t.numel));
  if (const int heads = permuted_heads(n, cfg); heads > 0) {
    std::shared_ptr<float[]> p = alloc_floats(static_cast<size_t>(t.numel));
    const int cols = t.ne.size() == 1 ? 1 : static_cast<int>(t.ne[0]);  // a bias: one per row
    rows_to_rotate_half(buf.get(), p.get(), heads, cfg.head_dim, cols);
    buf = p;
  }
  return buf;
}

}  // namespace

ModelConfig gguf_model_config(const gguf::Reader& r) {
  const std::string arch = r.get_string("general.architecture", true);
  const ArchSpec* spec = arch_for_gguf(arch);
  if (spec == nullptr) {
    fail(r.path(), "unsupported GGUF architecture '{}' (supported: {})", arch,
         gguf_architectures());
  }
  const std::string a = arch + ".";
  nlohmann::json j;
  j["architectures"] = {spec->architecture};
  j["model_type"] = spec->model_type;
  const int dim = dim_value(r, a + "embedding_length", true);
  const int heads = dim_value(r, a + "attention.head_count", true);
  j["hidden_size"] = dim;
  j["intermediate_size"] = dim_value(r, a + "feed_forward_length", true);
  j["num_hidden_layers"] = dim_value(r, a + "block_count", true);
  j["num_attention_heads"] = heads;
  j["num_key_value_heads"] = dim_value(r, a + "attention.head_count_kv", false, heads);
  const int head_dim = dim_value(r, a + "attention.key_length", false, dim / std::max(heads, 1));
  if (dim_value(r, a + "attention.value_length", false, head_dim) != head_dim) {
    fail(r.path(), "attention.key_length and value_length differ");
  }
  j["head_dim"] = head_dim;
  if (dim_value(r, a + "rope.dimension_count", false, head_dim) != head_dim) {
    fail(r.path(), "partial rotary embeddings ({} of {} dims) are not supported",
         r.get_uint(a + "rope.dimension_count", false), head_dim);
  }
  const gguf::Tensor* embd = r.tensor("token_embd.weight");
  if (embd == nullptr) fail(r.path(), "missing tensor token_embd.weight");
  const uint64_t vocab = r.find(a + "vocab_size") != nullptr
                             ? r.get_uint(a + "vocab_size", true)
                             : (embd->ne.size() == 2 ? embd->ne[1] : 0);
  if (vocab == 0 || vocab > kMaxDim) fail(r.path(), "vocabulary size {} is out of range", vocab);
  j["vocab_size"] = vocab;
  j["max_position_embeddings"] = dim_value(r, a + "context_length", false, 2048);
  j["rms_norm_eps"] = r.get_float(a + "attention.layer_norm_rms_epsilon", true);
  j["rope_theta"] = r.get_float(a + "rope.freq_base", false, 10000.0);
  j["tie_word_embeddings"] = r.tensor("output.weight") == nullptr;
  if (arch == "llama") {
    const bool bias = r.tensor("blk.0.attn_q.bias") != nullptr;
    j["attention_bias"] = bias;
  }
  if (const gguf::Value* v = r.find("tokenizer.ggml.bos_token_id"); v && v->is_integer()) {
    j["bos_token_id"] = v->i;
  }
  if (const gguf::Value* v = r.find("tokenizer.ggml.eos_token_id"); v && v->is_integer()) {
    j["eos_token_id"] = v->i;
  }
  const std::string scaling = r.get_string(a + "rope.scaling.type", false, "none");
  if (scaling != "none") fail(r.path(), "rope scaling '{}' is not supported", scaling);
  ModelConfig cfg = parse_hf_config(r.path(), j.dump());
  if (const gguf::Tensor* f = r.tensor("rope_freqs.weight")) {
    if (f->ne.size() != 1 || f->ne[0] != static_cast<uint64_t>(cfg.head_dim / 2) ||
        f->type != GgmlType::kF32) {
      fail(r.path(), "rope_freqs.weight must be {} f32 values", cfg.head_dim / 2);
    }
    cfg.rope_scaling.type = "factors";
    cfg.rope_scaling.freq_factors.resize(static_cast<size_t>(f->ne[0]));
    gguf::to_f32(*f, 0, f->ne[0], cfg.rope_scaling.freq_factors.data());
    for (float x : cfg.rope_scaling.freq_factors) {
      if (!(std::isfinite(x) && x > 0)) fail(r.path(), "rope_freqs.weight holds {}", x);
    }
  }
  return cfg;
}

const gguf::Tensor& gguf_role_tensor(const gguf::Reader& r, const ModelConfig& cfg, TensorRole role,
                                     int layer) {
  const GgufTensorName* n = gguf_name_of(role);
  if (n == nullptr) fail(r.path(), "GGUF files have no tensor for this role of {}", cfg.family);
  const std::string name = gguf_tensor_name(*n, layer);
  const gguf::Tensor* t = r.tensor(name);
  if (t == nullptr) fail(r.path(), "missing tensor {}", name);
  const std::vector<int64_t> shape = role_shape(role, cfg);
  const std::vector<uint64_t> ne(shape.rbegin(), shape.rend());
  if (t->ne != ne) {
    fail(r.path(), "tensor {} has shape [{}], expected [{}]", name, fmt::join(t->ne, ","),
         fmt::join(ne, ","));
  }
  return *t;
}

std::vector<float> read_gguf_role(const gguf::Reader& r, const ModelConfig& cfg, TensorRole role,
                                  int layer) {
  const gguf::Tensor& t = gguf_role_tensor(r, cfg, role, layer);
  const std::shared_ptr<float[]> p = owned_f32(r, t, *gguf_name_of(role), cfg);
  return std::vector<float>(p.get(), p.get() + t.numel);
}

bool is_gguf_path(const std::string& path) {
  if (!is_file(path)) return false;
  return std::filesystem::path(path).extension() == ".gguf" || gguf::has_gguf_magic(path);
}

std::shared_ptr<ModelWeights> load_gguf_weights(const std::string& path, const RuntimeOptions& rt) {
  return load_gguf_weights(MappedFile::open(path), rt);
}

std::shared_ptr<ModelWeights> load_gguf_weights(std::shared_ptr<MappedFile> file,
                                                const RuntimeOptions& rt) {
  const gguf::Reader r = gguf::Reader::from_file(file);
  auto w = std::make_shared<ModelWeights>();
  w->cfg = gguf_model_config(r);
  const ModelConfig& cfg = w->cfg;
  w->layers.resize(static_cast<size_t>(cfg.n_layers));
  bool mapped = false;  // some tensor points into the file
  auto place = [&](const GgufTensorName& n, int layer) {
    const gguf::Tensor& t = gguf_role_tensor(r, cfg, n.role, layer);
    const std::vector<Linear*> lins = linears_of(n.role, w.get(), layer);
    Linear* lin = lins.size() == 1 ? lins[0] : nullptr;
    const std::vector<int64_t> shape = role_shape(n.role, cfg);
    // q4_0 / q8_0 for the kernels; with keep_quantized every quantized linear keeps its codes.
    if (lin != nullptr && is_linear_weight(n.role) && gguf::is_quantized(t.type) &&
        ((rt.repack && repackable(t.type)) || rt.keep_quantized)) {
      const int out = static_cast<int>(shape[0]), in = static_cast<int>(shape[1]);
      QuantizedWeight q = repackable(t.type) ? quantized_weight(r.path(), t, out, in)
                                             : ggml_weight(r.path(), t, out, in);
      if (const int heads = permuted_heads(n, cfg); heads > 0) {
        q = q.select_rows(rotate_half_row_order(heads, cfg.head_dim));
      }
      q.check(r.path() + ": " + t.name);
      set_quantized(lin, q, rt.repack, rt.keep_quantized, w.get(), std::nullopt,
                    r.path() + ": " + t.name);
      return;
    }
    const float* p = nullptr;
    if (t.type == GgmlType::kF32 && rt.use_mmap && permuted_heads(n, cfg) == 0 &&
        reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0) {
      p = reinterpret_cast<const float*>(t.data);
      check_finite(r.path(), t.name, p, static_cast<size_t>(t.numel));
      mapped = true;
    } else {
      std::shared_ptr<float[]> buf = owned_f32(r, t, n, cfg);
      w->keep_alive.push_back(buf);
      p = buf.get();
    }
    if (n.role == kTokEmbeddings) {
      w->tok_embeddings = p;
      return;
    }
    if (Norm* nm = norm_of(n.role, w.get(), layer)) {
      (is_norm_bias(n.role) ? nm->b : nm->w) = p;
      return;
    }
    if (lin == nullptr) fail(r.path(), "tensor {} has no place in a {} model", t.name, cfg.family);
    if (is_linear_weight(n.role)) {
      lin->w = p;
      lin->out = static_cast<int>(shape[0]);
      lin->in = static_cast<int>(shape[1]);
    } else {
      lin->bias = p;
    }
  };
  const ArchSpec& arch = *find_arch(cfg.architecture);
  for (const TensorSpec& s : arch.tensors) {
    if (tensor_present(s.role, cfg) && gguf_name_of(s.role) == nullptr) {
      fail(r.path(), "a {} model needs tensor {}, which GGUF files do not name", cfg.family,
           tensor_name(s, 0));
    }
  }
  for (const GgufTensorName& n : gguf_tensor_names()) {
    if (!tensor_present(n.role, cfg)) continue;
    if (!is_per_layer(n.role)) {
      place(n, -1);
      continue;
    }
    for (int layer = 0; layer < cfg.n_layers; ++layer) place(n, layer);
  }
  if (cfg.tied_embeddings) {
    w->lm_head = {w->tok_embeddings, nullptr, cfg.vocab_size, cfg.embed_dim()};
  }
  if (mapped) w->keep_alive.push_back(file);
  return w;
}

}  // namespace lowbit
