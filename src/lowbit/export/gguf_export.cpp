#include "lowbit/export/gguf_export.h"

#include <chrono>
#include <memory>
#include <vector>

#include "lowbit/export/gguf_vocab.h"
#include "lowbit/model/load.h"
#include "lowbit/model/weight_source.h"
#include "lowbit/ops/rope.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"
#include "lowbit/util/progress.h"

namespace lowbit {

namespace {

using gguf::GgmlType;

// Hugging Face's rotate-half rows of each head back to interleaved pairs (Meta's order, which
// llama.cpp's "llama" rope expects): new row 2i + j of a head = old row j·(d/2) + i.
std::vector<float> unpermute_heads(const std::vector<float>& w, int n_heads, int head_dim,
                                   int cols) {
  std::vector<float> out(w.size());
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < half; ++i) {
      for (int j = 0; j < 2; ++j) {
        const size_t src = static_cast<size_t>(h * head_dim + j * half + i) * cols;
        const size_t dst = static_cast<size_t>(h * head_dim + 2 * i + j) * cols;
        std::copy(w.begin() + static_cast<long>(src), w.begin() + static_cast<long>(src + cols),
                  out.begin() + static_cast<long>(dst));
      }
    }
  }
  return out;
}

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
  if (!cfg.rope_scaling.type.empty() && cfg.rope_scaling.type != "llama3") {
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

  // Tensors, in llama.cpp's names. `permute_heads`: q (n_heads) / k (n_kv_heads) of the "llama"
  // architecture from a rotate-half checkpoint.
  const bool unpermute = arch == "llama" && !cfg.rope_interleaved;
  auto add = [&](const std::string& name, TensorRole role, int layer, bool matrix,
                 int permute_heads) {
    const std::vector<int64_t> shape = role_shape(role, cfg);
    std::vector<uint64_t> ne(shape.rbegin(), shape.rend());  // ggml: innermost first
    const GgmlType type = matrix ? opt.type : GgmlType::kF32;
    w.add_tensor(name, ne, type,
                 [src, role, layer, type, permute_heads, shape, &cfg,
                  unpermute](std::vector<uint8_t>* bytes) {
                   std::vector<float> v = src->read(role, layer);
                   src->release(role, layer);
                   if (permute_heads > 0 && unpermute) {
                     const int cols = shape.size() > 1 ? static_cast<int>(shape[1]) : 1;
                     v = unpermute_heads(v, permute_heads, cfg.head_dim, cols);
                   }
                   encode(v, type, bytes);
                 });
  };
  add("token_embd.weight", TensorRole::kTokEmbeddings, -1, true, 0);
  for (int l = 0; l < cfg.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", TensorRole::kAttnNorm, l, false, 0);
    add(b + "attn_q.weight", TensorRole::kWq, l, true, cfg.n_heads);
    add(b + "attn_k.weight", TensorRole::kWk, l, true, cfg.n_kv_heads);
    add(b + "attn_v.weight", TensorRole::kWv, l, true, 0);
    if (cfg.qkv_bias) {
      add(b + "attn_q.bias", TensorRole::kBq, l, false, cfg.n_heads);
      add(b + "attn_k.bias", TensorRole::kBk, l, false, cfg.n_kv_heads);
      add(b + "attn_v.bias", TensorRole::kBv, l, false, 0);
    }
    add(b + "attn_output.weight", TensorRole::kWo, l, true, 0);
    if (cfg.o_bias) add(b + "attn_output.bias", TensorRole::kBo, l, false, 0);
    add(b + "ffn_norm.weight", TensorRole::kFfnNorm, l, false, 0);
    add(b + "ffn_gate.weight", TensorRole::kWGate, l, true, 0);
    add(b + "ffn_up.weight", TensorRole::kWUp, l, true, 0);
    add(b + "ffn_down.weight", TensorRole::kWDown, l, true, 0);
  }
  add("output_norm.weight", TensorRole::kFinalNorm, -1, false, 0);
  if (!cfg.tied_embeddings) add("output.weight", TensorRole::kLmHead, -1, true, 0);
  if (cfg.rope_scaling.type == "llama3") {
    // llama.cpp divides each rotary frequency by this factor.
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
