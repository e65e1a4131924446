#include "lowbit/export/gguf_export.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "lowbit/export/gguf_vocab.h"
#include "lowbit/formats/ggml_from_scheme.h"
#include "lowbit/io/gguf_reader.h"
#include "lowbit/model/config.h"
#include "lowbit/model/gguf_names.h"
#include "lowbit/model/load.h"
#include "lowbit/model/weight_source.h"
#include "lowbit/ops/rope.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"
#include "lowbit/util/progress.h"

namespace lowbit {

namespace {

using gguf::GgmlType;

std::vector<float> select_rows(const std::vector<float>& w, const std::vector<int>& rows,
                               size_t cols) {
  std::vector<float> out(w.size());
  for (size_t r = 0; r < rows.size(); ++r)
    std::copy_n(w.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(rows[r]) * cols), cols,
                out.begin() + static_cast<ptrdiff_t>(r * cols));
  return out;
}

// Rows of `cols` values encoded in `type` (quantized types: llama.cpp's reference encoder).
void encode(const std::vector<float>& v, size_t cols, GgmlType type, std::vector<uint8_t>* bytes) {
  bytes->resize(gguf::tensor_bytes(type, v.size()));
  const size_t rows = v.size() / cols, rb = gguf::tensor_bytes(type, cols);
#pragma omp parallel for schedule(dynamic, 16)
  for (size_t r = 0; r < rows; ++r)
    gguf::quantize_row(type, &v[r * cols], bytes->data() + r * rb, static_cast<int64_t>(cols));
}

// The model's tensors, fp32 or (quantized folders) as stored codes.
struct ModelTensors {
  ModelConfig cfg;
  const ArchSpec* arch = nullptr;
  std::shared_ptr<WeightSource> fp;      // floating-point checkpoints: one tensor at a time
  std::shared_ptr<ModelWeights> loaded;  // quantized folders: loaded, codes kept

  // The quantized weight of a linear role; null for floating-point tensors.
  const QuantizedWeight* quant(TensorRole role, int layer) const {
    if (!loaded) return nullptr;
    const std::vector<Linear*> lins = linears_of(role, loaded.get(), layer);
    return lins.size() == 1 && !is_bias(role) ? lins[0]->quant : nullptr;
  }
  static bool is_bias(TensorRole r) {
    return r == TensorRole::kBq || r == TensorRole::kBk || r == TensorRole::kBv ||
           r == TensorRole::kBo;
  }
  std::vector<float> read(TensorRole role, int layer) const {
    if (fp) {
      std::vector<float> v = fp->read(role, layer);
      fp->release(role, layer);
      return v;
    }
    const std::vector<int64_t> shape = role_shape(role, cfg);
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    const float* src = nullptr;
    ModelWeights* w = loaded.get();
    if (role == TensorRole::kTokEmbeddings) {
      src = w->tok_embeddings;
    } else if (Norm* nm = norm_of(role, w, layer)) {
      src = is_norm_bias(role) ? nm->b : nm->w;
    } else {
      const std::vector<Linear*> lins = linears_of(role, w, layer);
      if (lins.size() != 1) fail("gguf", "cannot export tensor role {}", static_cast<int>(role));
      const Linear& l = *lins[0];
      if (is_bias(role)) {
        src = l.bias;
      } else if (l.quant != nullptr) {
        return l.quant->dequantize();
      } else {
        src = l.w;
      }
    }
    if (src == nullptr) fail("gguf", "the model has no tensor for role {}", static_cast<int>(role));
    return std::vector<float>(src, src + n);
  }
};

ModelTensors open_model(const std::string& path, const std::string& tokenizer) {
  ModelTensors m;
  const ModelLocation loc = locate_model(path, tokenizer, false);
  bool quantized = false;
  if (loc.hf) {
    const ModelConfig c =
        load_hf_config((std::filesystem::path(loc.weights) / "config.json").string());
    quantized = !c.quant_method.empty();
  } else if (loc.gguf) {  // a quantized GGUF file: its linears' blocks are kept
    const gguf::Reader r = gguf::Reader::open(loc.weights);
    for (const gguf::Tensor& t : r.tensors()) quantized = quantized || gguf::is_quantized(t.type);
  }
  if (!quantized) {
    m.fp = WeightSource::open(path);
    m.cfg = m.fp->config();
    m.arch = &m.fp->arch();
    return m;
  }
  RuntimeOptions rt;
  rt.keep_quantized = true;  // read() dequantizes from the kept codes where needed
  m.loaded = load_model(path, "", false, rt).weights;
  m.cfg = m.loaded->cfg;
  m.arch = find_arch(m.cfg.architecture);
  for (const LayerWeights& l : m.loaded->layers) {
    for (const Linear* lin : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      if (lin->in_scale != nullptr)
        fail(path, "SmoothQuant scales kept apart (--no-fold) cannot be written to GGUF");
    }
  }
  return m;
}

// llama.cpp's general.file_type (llama_ftype) for the type most matrices have.
uint32_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return 0;
    case GgmlType::kF16:
      return 1;
    case GgmlType::kQ4_0:
      return 2;
    case GgmlType::kQ4_1:
      return 3;
    case GgmlType::kQ8_0:
      return 7;
    case GgmlType::kQ5_0:
      return 8;
    case GgmlType::kQ5_1:
      return 9;
    case GgmlType::kQ4_K:
      return 15;  // Q4_K_M
    case GgmlType::kQ5_K:
      return 17;  // Q5_K_M
    case GgmlType::kQ6_K:
      return 18;
    case GgmlType::kIQ4_NL:
      return 25;
    case GgmlType::kBF16:
      return 32;
  }
  return 1;
}

// `want` when the row width holds whole blocks of it, else q8_0 (32-wide) or f16, as llama.cpp
// falls back for widths its k-quants cannot hold.
GgmlType fitting_type(GgmlType want, int64_t cols) {
  if (cols % gguf::block_values(want) == 0) return want;
  if (cols % 32 == 0) return GgmlType::kQ8_0;
  return GgmlType::kF16;
}

}  // namespace

GgufExportResult export_gguf(const GgufExportOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto src = std::make_shared<ModelTensors>(open_model(opt.model, opt.tokenizer));
  const ModelConfig& cfg = src->cfg;
  if (src->arch == nullptr || src->arch->gguf_arch == nullptr) {
    std::string supported;
    for (const ArchSpec& s : all_archs()) {
      if (s.gguf_arch != nullptr)
        supported += (supported.empty() ? "" : ", ") + std::string(s.model_type);
    }
    fail(opt.model, "GGUF export of the {} family is not supported (supported: {})", cfg.family,
         supported);
  }
  const std::string arch = src->arch->gguf_arch;
  if (cfg.rope_dims != 0 && cfg.rope_dims != cfg.head_dim) {
    fail(opt.model, "partial rotary embeddings cannot be exported to GGUF's {}", arch);
  }
  if (!cfg.rope_scaling.type.empty() && cfg.rope_scaling.type != "llama3" &&
      cfg.rope_scaling.type != "factors") {
    fail(opt.model, "rope scaling '{}' cannot be exported to GGUF", cfg.rope_scaling.type);
  }
  if (cfg.hadamard_down) {
    fail(opt.model, "an online Hadamard transform (--rotate r4) cannot be written to GGUF");
  }
  const ModelLocation loc = locate_model(opt.model, opt.tokenizer, true);
  const GgufVocab vocab = gguf_vocab(loc.tokenizer, cfg.vocab_size);

  // Decide every tensor's type and content up front (the file's header lists the types).
  GgufExportResult r;
  struct Plan {
    std::string name;
    TensorRole role;
    int layer;
    int permute_heads;  // q / k of the "llama" architecture: rows to interleave
    GgmlType type;
    bool mapped;  // written from the stored codes (ggml_blocks_of)
  };
  std::vector<Plan> plans;
  const bool unpermute = arch == "llama" && !cfg.rope_interleaved;
  auto matrix_type = [&](TensorRole role, int layer, bool* mapped) {
    *mapped = false;
    const std::vector<int64_t> shape = role_shape(role, cfg);
    std::optional<GgmlType> want = opt.type;
    if (role == TensorRole::kTokEmbeddings && opt.embedding_type) want = opt.embedding_type;
    if (role == TensorRole::kLmHead && opt.output_type) want = opt.output_type;
    if (const QuantizedWeight* q = src->quant(role, layer)) {
      const std::optional<GgmlType> own = ggml_type_of(*q);
      if (own && (!want || *want == *own)) {
        *mapped = true;
        return *own;
      }
      if (!want) return fitting_type(GgmlType::kQ8_0, shape[1]);  // requantized
      return fitting_type(*want, shape[1]);
    }
    return want ? fitting_type(*want, shape[1]) : GgmlType::kF16;
  };
  auto add = [&](const std::string& name, TensorRole role, int layer, bool matrix,
                 int permute_heads) {
    Plan p{name, role, layer, unpermute ? permute_heads : 0, GgmlType::kF32, false};
    if (matrix) p.type = matrix_type(role, layer, &p.mapped);
    plans.push_back(p);
  };
  // Tensors in llama.cpp's names (model/gguf_names.h, the table the GGUF loader reads through).
  for (const TensorSpec& s : src->arch->tensors) {
    if (tensor_present(s.role, cfg) && gguf_name_of(s.role) == nullptr)
      fail(opt.model, "tensor {} has no GGUF name", tensor_name(s, 0));
  }
  auto add_named = [&](const GgufTensorName& n, int layer) {
    const int heads = n.rows == GgufRows::kQHeads    ? cfg.n_heads
                      : n.rows == GgufRows::kKvHeads ? cfg.n_kv_heads
                                                     : 0;
    add(gguf_tensor_name(n, layer), n.role, layer,
        is_linear_weight(n.role) || n.role == TensorRole::kTokEmbeddings, heads);
  };
  for (const GgufTensorName& n : gguf_tensor_names()) {
    if (!is_per_layer(n.role) && tensor_present(n.role, cfg)) add_named(n, -1);
  }
  for (int l = 0; l < cfg.n_layers; ++l) {
    for (const GgufTensorName& n : gguf_tensor_names()) {
      if (is_per_layer(n.role) && tensor_present(n.role, cfg)) add_named(n, l);
    }
  }

  // The file type: the type most of the blocks' linear weights have.
  std::map<GgmlType, int> counts;
  for (const Plan& p : plans)
    if (p.layer >= 0 && role_shape(p.role, cfg).size() == 2) ++counts[p.type];
  GgmlType main_type = GgmlType::kF32;
  int best = -1;
  for (const auto& [t, n] : counts)
    if (n > best) best = n, main_type = t;

  gguf::Writer w;
  const std::string a = arch + ".";
  w.set_string("general.architecture", arch);
  w.set_string("general.name", std::filesystem::path(opt.model).filename().string());
  w.set_u32("general.file_type", file_type_of(main_type));
  w.set_u32("general.quantization_version", 2);
  w.set_u32(a + "vocab_size", static_cast<uint32_t>(cfg.vocab_size));
  w.set_u32(a + "context_length", static_cast<uint32_t>(cfg.max_seq_len));
  w.set_u32(a + "embedding_length", static_cast<uint32_t>(cfg.dim));
  w.set_u32(a + "block_count", static_cast<uint32_t>(cfg.n_layers));
  w.set_u32(a + "feed_forward_length", static_cast<uint32_t>(cfg.hidden_dim));
  w.set_u32(a + "rope.dimension_count", static_cast<uint32_t>(cfg.head_dim));
  w.set_u32(a + "attention.head_count", static_cast<uint32_t>(cfg.n_heads));
  w.set_u32(a + "attention.head_count_kv", static_cast<uint32_t>(cfg.n_kv_heads));
  if (cfg.head_dim * cfg.n_heads != cfg.dim) {
    w.set_u32(a + "attention.key_length", static_cast<uint32_t>(cfg.head_dim));
    w.set_u32(a + "attention.value_length", static_cast<uint32_t>(cfg.head_dim));
  }
  w.set_f32(a + "attention.layer_norm_rms_epsilon", cfg.norm_eps);
  w.set_f32(a + "rope.freq_base", cfg.rope_theta);
  write_gguf_vocab(vocab, &w);

  auto mapping_error = std::make_shared<double>(0.0);
  for (const Plan& p : plans) {
    const std::vector<int64_t> shape = role_shape(p.role, cfg);
    const std::vector<uint64_t> ne(shape.rbegin(), shape.rend());  // ggml: innermost first
    const size_t cols = shape.size() > 1    ? static_cast<size_t>(shape[1])
                        : shape.size() == 1 ? size_t(shape[0])
                                            : 1;
    ++r.types[gguf::type_name(p.type)];
    const QuantizedWeight* q = src->quant(p.role, p.layer);
    if (p.type != GgmlType::kF32 || shape.size() > 1) {
      if (p.mapped) {
        ++(q->scheme.type == WeightType::kInt && !q->scheme.sym ? r.min_rounded : r.exact);
      } else if (q != nullptr) {
        ++r.requantized;
      } else if (shape.size() > 1) {
        ++r.from_float;
      }
    }
    const int hd = cfg.head_dim;
    w.add_tensor(
        p.name, ne, p.type, [src, p, q, cols, hd, mapping_error](std::vector<uint8_t>* bytes) {
          if (p.mapped) {
            const QuantizedWeight rows =
                p.permute_heads > 0 ? q->select_rows(interleaved_row_order(p.permute_heads, hd))
                                    : *q;
            double err = 0;
            *bytes = ggml_blocks_of(rows, p.type, &err);
            *mapping_error = std::max(*mapping_error, err);
            return;
          }
          std::vector<float> v = src->read(p.role, p.layer);
          if (p.permute_heads > 0) {
            const size_t c = p.role == TensorRole::kBq || p.role == TensorRole::kBk ? 1 : cols;
            v = select_rows(v, interleaved_row_order(p.permute_heads, hd), c);
          }
          encode(v, p.type == GgmlType::kF32 ? v.size() : cols, p.type, bytes);
        });
  }
  if (!cfg.rope_scaling.type.empty()) {
    // llama.cpp divides each rotary frequency by this factor (a GGUF import holds them as read).
    ModelConfig plain = cfg;
    plain.rope_scaling = RopeScaling{};
    const std::vector<float> f0 = ops::rope_inv_freq(plain), f1 = ops::rope_inv_freq(cfg);
    std::vector<float> factors(f0.size());
    for (size_t i = 0; i < f0.size(); ++i) factors[i] = f0[i] / f1[i];
    w.add_tensor("rope_freqs.weight", {factors.size()}, GgmlType::kF32,
                 [factors](std::vector<uint8_t>* bytes) {
                   encode(factors, factors.size(), GgmlType::kF32, bytes);
                 });
  }

  Progress bar("export gguf", static_cast<int64_t>(w.tensor_count()));
  w.write(opt.out, [&](size_t done, size_t) {
    if (opt.progress) bar.update(static_cast<int64_t>(done));
  });
  bar.finish();
  r.arch = arch;
  r.tensors = w.tensor_count();
  r.bytes = std::filesystem::file_size(opt.out);
  r.vocab = vocab.model;
  r.vocab_file = vocab.source;
  r.max_mapping_error = *mapping_error;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace lowbit
