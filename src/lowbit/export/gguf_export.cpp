#include "lowbit/export/gguf_export.h"

#include <chrono>
#include <memory>
#include <vector>

#include "lowbit/export/gguf_vocab.h"
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

void encode(const std::vector<float>& v, GgmlType type, std::vector<uint8_t>* bytes) {
  bytes->resize(gguf::tensor_bytes(type, v.size()));
  if (type == GgmlType::kF32) {
    std::memcpy(bytes->data(), v.data(), v.size() * 4);
    return;
  }
  auto* dst = reinterpret_cast<uint16_t*>(bytes->data());
  if (type == GgmlType::kBF16) {
    f32_to_bf16_n(v.data(), dst, v.size());
    return;
  }
  for (size_t i = 0; i < v.size(); ++i) dst[i] = f32_to_f16(v[i]);
}

}  // namespace

GgufExportResult export_gguf(const GgufExportOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<WeightSource> src = WeightSource::open(opt.model);
  const ModelConfig& cfg = src->config();
  if (src->arch().gguf_arch == nullptr) {
    std::string supported;
    for (const ArchSpec& s : all_archs()) {
      if (s.gguf_arch != nullptr)
        supported += (supported.empty() ? "" : ", ") + std::string(s.model_type);
    }
    fail(opt.model, "GGUF export of the {} family is not supported (supported: {})", cfg.family,
         supported);
  }
  const std::string arch = src->arch().gguf_arch;
  if (cfg.rope_dims != 0 && cfg.rope_dims != cfg.head_dim) {
    fail(opt.model, "partial rotary embeddings cannot be exported to GGUF's {}", arch);
  }
  if (!cfg.rope_scaling.type.empty() && cfg.rope_scaling.type != "llama3" &&
      cfg.rope_scaling.type != "factors") {
    fail(opt.model, "rope scaling '{}' cannot be exported to GGUF", cfg.rope_scaling.type);
  }
  const ModelLocation loc = locate_model(opt.model, opt.tokenizer, true);
  const GgufVocab vocab = gguf_vocab(loc.tokenizer, cfg.vocab_size);

  gguf::Writer w;
  const std::string a = arch + ".";
  w.set_string("general.architecture", arch);
  w.set_string("general.name", std::filesystem::path(opt.model).filename().string());
  w.set_u32("general.file_type", opt.type == GgmlType::kF32   ? 0
                                 : opt.type == GgmlType::kF16 ? 1
                                                              : 32);
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

  // Tensors, in llama.cpp's names (model/gguf_names.h). q / k of the "llama" architecture from a
  // rotate-half checkpoint get their rows back in interleaved pairs.
  const bool unpermute = arch == "llama" && !cfg.rope_interleaved;
  auto add = [&](const GgufTensorName& n, int layer) {
    const TensorRole role = n.role;
    const std::vector<int64_t> shape = role_shape(role, cfg);
    std::vector<uint64_t> ne(shape.rbegin(), shape.rend());  // ggml: innermost first
    const GgmlType type =
        is_linear_weight(role) || role == TensorRole::kTokEmbeddings ? opt.type : GgmlType::kF32;
    const int heads = n.rows == GgufRows::kQHeads    ? cfg.n_heads
                      : n.rows == GgufRows::kKvHeads ? cfg.n_kv_heads
                                                     : 0;
    w.add_tensor(
        gguf_tensor_name(n, layer), ne, type,
        [src, role, layer, type, heads, shape, &cfg, unpermute](std::vector<uint8_t>* bytes) {
          std::vector<float> v = src->read(role, layer);
          src->release(role, layer);
          if (heads > 0 && unpermute) {
            const int cols = shape.size() > 1 ? static_cast<int>(shape[1]) : 1;
            std::vector<float> out(v.size());
            rows_to_interleaved(v.data(), out.data(), heads, cfg.head_dim, cols);
            v.swap(out);
          }
          encode(v, type, bytes);
        });
  };
  // Every role the config has must have a GGUF name.
  for (const TensorSpec& s : src->arch().tensors) {
    if (tensor_present(s.role, cfg) && gguf_name_of(s.role) == nullptr) {
      fail(opt.model, "tensor {} has no GGUF name", tensor_name(s, 0));
    }
  }
  for (const GgufTensorName& n : gguf_tensor_names()) {
    if (!is_per_layer(n.role) && tensor_present(n.role, cfg)) add(n, -1);
  }
  for (int l = 0; l < cfg.n_layers; ++l) {
    for (const GgufTensorName& n : gguf_tensor_names()) {
      if (is_per_layer(n.role) && tensor_present(n.role, cfg)) add(n, l);
    }
  }
  if (!cfg.rope_scaling.type.empty()) {
    // llama.cpp divides each rotary frequency by this factor (a GGUF import holds them as read).
    ModelConfig plain = cfg;
    plain.rope_scaling = RopeScaling{};
    const std::vector<float> f0 = ops::rope_inv_freq(plain), f1 = ops::rope_inv_freq(cfg);
    std::vector<float> factors(f0.size());
    for (size_t i = 0; i < f0.size(); ++i) factors[i] = f0[i] / f1[i];
    w.add_tensor(
        "rope_freqs.weight", {factors.size()}, GgmlType::kF32,
        [factors](std::vector<uint8_t>* bytes) { encode(factors, GgmlType::kF32, bytes); });
  }

  Progress bar("export gguf", static_cast<int64_t>(w.tensor_count()));
  w.write(opt.out, [&](size_t done, size_t) {
    if (opt.progress) bar.update(static_cast<int64_t>(done));
  });
  bar.finish();
  GgufExportResult r;
  r.arch = arch;
  r.tensors = w.tensor_count();
  r.bytes = std::filesystem::file_size(opt.out);
  r.vocab = vocab.model;
  r.vocab_file = vocab.source;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace lowbit
