// llama2.c checkpoint (v0 header) -> ModelWeights, q/k rows permuted to rotate-half RoPE order.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "lowbit/io/tensor_convert.h"
#include "lowbit/model/load.h"
#include "lowbit/util/buffer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/mapped_file.h"

namespace lowbit {

namespace {

struct Llama2cHeader {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

void validate(const std::string& path, const Llama2cHeader& h) {
  auto check = [&](const char* name, int64_t v, int64_t max) {
    if (v <= 0 || v > max) {
      fail(path, "invalid llama2.c header: {} = {} (expected 1..{})", name, v, max);
    }
  };
  check("dim", h.dim, 1 << 16);
  check("hidden_dim", h.hidden_dim, 1 << 18);
  check("n_layers", h.n_layers, 1024);
  check("n_heads", h.n_heads, 1024);
  check("n_kv_heads", h.n_kv_heads, 1024);
  check("|vocab_size|", h.vocab_size == INT32_MIN ? 0 : std::abs(h.vocab_size), 1 << 22);
  check("seq_len", h.seq_len, 1 << 22);
  if (h.dim % h.n_heads != 0) {
    fail(path, "invalid llama2.c header: dim {} is not a multiple of n_heads {}", h.dim, h.n_heads);
  }
  if (h.n_heads % h.n_kv_heads != 0) {
    fail(path, "invalid llama2.c header: n_heads {} is not a multiple of n_kv_heads {}", h.n_heads,
         h.n_kv_heads);
  }
  if ((h.dim / h.n_heads) % 2 != 0) fail(path, "invalid llama2.c header: odd head size");
}

// Hugging Face convert_llama_weights_to_hf.py `permute`: per head, rows viewed as
// [head_dim/2, 2] are transposed to [2, head_dim/2], turning interleaved-pair RoPE into
// rotate-half RoPE: new row h*hd + j*(hd/2) + i = old row h*hd + 2*i + j.
void permute_rows(const float* src, float* dst, int n_heads, int head_dim, int cols) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    for (int j = 0; j < 2; ++j) {
      for (int i = 0; i < half; ++i) {
        const size_t new_row = static_cast<size_t>(h) * head_dim + j * half + i;
        const size_t old_row = static_cast<size_t>(h) * head_dim + 2 * i + j;
        std::memcpy(dst + new_row * cols, src + old_row * cols, sizeof(float) * cols);
      }
    }
  }
}

}  // namespace

std::shared_ptr<ModelWeights> load_llama2c_weights(const std::string& path, bool use_mmap) {
  return load_llama2c_weights(MappedFile::open(path), use_mmap);
}

std::shared_ptr<ModelWeights> load_llama2c_weights(std::shared_ptr<MappedFile> file,
                                                   bool use_mmap) {
  const std::string& path = file->path();
  Llama2cHeader h{};
  if (file->size() < sizeof(h)) {
    fail(path, "truncated llama2.c checkpoint: {} bytes, smaller than the header", file->size());
  }
  std::memcpy(&h, file->data(), sizeof(h));
  validate(path, h);

  auto w = std::make_shared<ModelWeights>();
  ModelConfig& c = w->cfg;
  c.architecture = "LlamaForCausalLM";
  c.family = "llama";
  c.dim = h.dim;
  c.hidden_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.vocab_size = std::abs(h.vocab_size);
  c.max_seq_len = h.seq_len;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.tied_embeddings = h.vocab_size > 0;
  c.bos_id = 1;
  c.eos_id = 2;

  const int64_t dim = c.dim, hidden = c.hidden_dim, L = c.n_layers, vocab = c.vocab_size;
  const int64_t kv_dim = int64_t{c.n_kv_heads} * c.head_dim;
  const int64_t floats = vocab * dim + L * dim + L * dim * dim + 2 * L * kv_dim * dim +
                         L * dim * dim + L * dim + 3 * L * hidden * dim + dim +
                         int64_t{c.max_seq_len} * c.head_dim +
                         (c.tied_embeddings ? 0 : vocab * dim);
  const int64_t expected = static_cast<int64_t>(sizeof(h)) + floats * 4;
  const int64_t size = static_cast<int64_t>(file->size());
  if (size < expected) {
    fail(path, "truncated llama2.c checkpoint: {} bytes, its header needs {}", size, expected);
  }
  if (size > expected) {
    fail(path,
         "{} bytes more than a llama2.c checkpoint with this header holds ({} bytes): a "
         "different format or version, or something appended",
         size - expected, expected);
  }

  const float* p = reinterpret_cast<const float*>(file->data() + sizeof(h));
  if (use_mmap) {
    w->keep_alive.push_back(file);
  } else {
    std::shared_ptr<float[]> copy = alloc_floats(static_cast<size_t>(floats));
    std::memcpy(copy.get(), p, static_cast<size_t>(floats) * sizeof(float));
    w->keep_alive.push_back(copy);
    p = copy.get();
  }
  auto take = [&p](int64_t n) {
    const float* r = p;
    p += n;
    return r;
  };
  w->tok_embeddings = take(vocab * dim);
  w->layers.resize(static_cast<size_t>(L));
  const float* rms_att = take(L * dim);
  const float* wq = take(L * dim * dim);
  const float* wk = take(L * kv_dim * dim);
  const float* wv = take(L * kv_dim * dim);
  const float* wo = take(L * dim * dim);
  const float* rms_ffn = take(L * dim);
  const float* w1 = take(L * hidden * dim);
  const float* w2 = take(L * dim * hidden);
  const float* w3 = take(L * hidden * dim);
  w->final_norm.w = take(dim);
  take(int64_t{c.max_seq_len} * c.head_dim);  // freq_cis_real + freq_cis_imag (unused)
  const float* wcls = c.tied_embeddings ? w->tok_embeddings : take(vocab * dim);

  // Permuted q/k live in one owned buffer.
  std::shared_ptr<float[]> qk = alloc_floats(static_cast<size_t>(L * (dim + kv_dim) * dim));
  w->keep_alive.push_back(qk);
  const int d = c.dim, hd = c.hidden_dim, kvd = static_cast<int>(kv_dim);
  for (int64_t l = 0; l < L; ++l) {
    LayerWeights& lw = w->layers[static_cast<size_t>(l)];
    float* q_dst = qk.get() + l * (dim + kv_dim) * dim;
    float* k_dst = q_dst + dim * dim;
    permute_rows(wq + l * dim * dim, q_dst, c.n_heads, c.head_dim, d);
    permute_rows(wk + l * kv_dim * dim, k_dst, c.n_kv_heads, c.head_dim, d);
    lw.attn_norm.w = rms_att + l * dim;
    lw.ffn_norm.w = rms_ffn + l * dim;
    lw.wq = {q_dst, nullptr, d, d};
    lw.wk = {k_dst, nullptr, kvd, d};
    lw.wv = {wv + l * kv_dim * dim, nullptr, kvd, d};
    lw.wo = {wo + l * dim * dim, nullptr, d, d};
    lw.w_gate = {w1 + l * hidden * dim, nullptr, hd, d};
    lw.w_down = {w2 + l * dim * hidden, nullptr, d, hd};
    lw.w_up = {w3 + l * hidden * dim, nullptr, hd, d};
  }
  w->lm_head = {wcls, nullptr, c.vocab_size, d};
  const struct {
    const char* name;
    const float* p;
    int64_t n;
  } arrays[] = {{"token_embedding_table", w->tok_embeddings, vocab * dim},
                {"rms_att_weight", rms_att, L * dim},
                {"wq", wq, L * dim * dim},
                {"wk", wk, L * kv_dim * dim},
                {"wv", wv, L * kv_dim * dim},
                {"wo", wo, L * dim * dim},
                {"rms_ffn_weight", rms_ffn, L * dim},
                {"w1", w1, L * hidden * dim},
                {"w2", w2, L * dim * hidden},
                {"w3", w3, L * hidden * dim},
                {"rms_final_weight", w->final_norm.w, dim},
                {"wcls", wcls, c.tied_embeddings ? 0 : vocab * dim}};
  for (const auto& a : arrays) check_finite(path, a.name, a.p, static_cast<size_t>(a.n));
  return w;
}

}  // namespace lowbit
