#include "lowbit/model/transformer.h"

#include <algorithm>
#include <cstring>

#include "lowbit/ops/matmul.h"
#include "lowbit/ops/norm.h"
#include "lowbit/util/error.h"
#include "lowbit/util/finite.h"
#include "lowbit/util/memory.h"
#include "lowbit/util/threads.h"

namespace lowbit {

// Activations for up to `cap` tokens per forward call; grown on demand.
struct Transformer::Scratch {
  int cap = 0, logit_rows = 0;  // sizes already checked by reserve_scratch
  std::vector<float> x, xn, proj, logits;
};

namespace {
void grow(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
}

}  // namespace

// Checks the machine has the memory a call of n tokens will grow the activations to.
void Transformer::reserve_scratch(int n, bool all_logits) {
  const ModelConfig& c = w_->cfg;
  if (n <= s_->cap && (!all_logits || n <= s_->logit_rows)) return;
  const size_t nn = static_cast<size_t>(n);
  const size_t q_dim = static_cast<size_t>(c.n_heads) * c.head_dim;
  const size_t kv_dim = static_cast<size_t>(c.n_kv_heads) * c.head_dim;
  // x, xn, q, k, v, att, gate, up; prefill attention scores (one head at a time); logits.
  const size_t floats = nn * (2 * c.dim + q_dim + 2 * kv_dim + std::max<size_t>(q_dim, c.dim) +
                              2 * static_cast<size_t>(c.hidden_dim)) +
                        nn * static_cast<size_t>(pos_ + n) +
                        (all_logits ? nn : 1) * static_cast<size_t>(c.vocab_size);
  require_memory(name_, fmt::format("a forward call of {} tokens", n), floats * sizeof(float));
  s_->cap = std::max(s_->cap, n);
  if (all_logits) s_->logit_rows = std::max(s_->logit_rows, n);
}

KvType parse_kv_type(const std::string& where, const std::string& name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  if (name == "bf16") return KvType::kBF16;
  fail(where, "unknown KV cache type '{}' (expected f32, f16 or bf16)", name);
}

Transformer::Transformer(std::shared_ptr<const ModelWeights> weights, int max_ctx,
                         const TransformerOptions& opt)
    : w_(std::move(weights)),
      max_ctx_(max_ctx),
      kv_(opt.kv),
      name_(opt.name),
      s_(std::make_unique<Scratch>()) {
  const ModelConfig& c = w_->cfg;
  if (max_ctx <= 0) fail(name_, "context length must be positive, got {}", max_ctx);
  if (c.max_seq_len > 0 && max_ctx > c.max_seq_len) {
    fail(name_, "context {} exceeds the model's maximum context {}", max_ctx, c.max_seq_len);
  }
  if (c.head_dim <= 0 || c.head_dim > 1024) {
    fail("transformer", "unsupported head_dim {}", c.head_dim);
  }
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0) {
    fail("transformer", "n_heads {} is not a multiple of n_kv_heads {}", c.n_heads, c.n_kv_heads);
  }
  const size_t kv_dim = static_cast<size_t>(c.n_kv_heads) * c.head_dim;
  const size_t cache = static_cast<size_t>(c.n_layers) * max_ctx * kv_dim;
  const size_t elem = kv_ == KvType::kF32 ? 4 : 2;
  require_memory(name_,
                 fmt::format("a KV cache of {} tokens ({} layers x {} values x 2 x {} bytes)",
                             max_ctx, c.n_layers, kv_dim, elem),
                 2 * cache * elem);
  if (kv_ == KvType::kF32) {
    k_cache_.assign(cache, 0.0f);
    v_cache_.assign(cache, 0.0f);
  } else {
    k_half_.assign(cache, 0);
    v_half_.assign(cache, 0);
  }
  block_ = std::make_unique<Block>(c);
}

Transformer::~Transformer() = default;

void Transformer::rewind(int pos) {
  if (pos < 0 || pos > pos_) fail("transformer", "cannot rewind to {} (at {})", pos, pos_);
  pos_ = pos;
}

const float* Transformer::forward(const int* tokens, int n, bool all_logits) {
  const ModelConfig& c = w_->cfg;
  if (n <= 0) fail(name_, "forward needs at least one token");
  if (pos_ + n > max_ctx_) {
    fail(name_, "{} tokens at position {} exceed the context length {}", n, pos_, max_ctx_);
  }
  for (int t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      fail(name_, "token id {} out of range [0, {})", tokens[t], c.vocab_size);
    }
  }
  adapt_threads();
  reserve_scratch(n, all_logits);
  const int dim = c.dim, ed = c.embed_dim(), kv_dim = c.kv_dim();
  const size_t nn = static_cast<size_t>(n);
  Scratch& s = *s_;
  grow(s.x, nn * dim);
  grow(s.xn, nn * std::max(dim, ed));

  embed_tokens(c, w_->tok_embeddings, w_->pos_embeddings, w_->embed_norm, w_->proj_in, tokens, n,
               pos_, s.x.data(), s.xn.data());

  const size_t layer_cache = static_cast<size_t>(max_ctx_) * kv_dim;
  const bool f32 = kv_ == KvType::kF32;
  for (int l = 0; l < c.n_layers; ++l) {
    const size_t lc = l * layer_cache;
    KvView cache;
    cache.kind = kv_;
    cache.k = f32 ? static_cast<void*>(k_cache_.data() + lc) : k_half_.data() + lc;
    cache.v = f32 ? static_cast<void*>(v_cache_.data() + lc) : v_half_.data() + lc;
    block_->forward(w_->layers[static_cast<size_t>(l)], s.x.data(), n, pos_, cache);
  }
  pos_ += n;

  // Final norm, output projection and classifier: all rows or only the last one.
  const int rows = all_logits ? n : 1;
  const float* last = s.x.data() + (all_logits ? 0 : (nn - 1) * dim);
  grow(s.proj, static_cast<size_t>(rows) * ed);
  const float* h =
      head_input(c, w_->final_norm, w_->proj_out, last, rows, s.xn.data(), s.proj.data());
  grow(s.logits, static_cast<size_t>(rows) * c.vocab_size);
  ops::linear(w_->lm_head, h, rows, s.logits.data());
  const size_t count = static_cast<size_t>(rows) * c.vocab_size;
  const size_t bad = first_nonfinite(s.logits.data(), count);
  if (bad < count) {
    const int position = pos_ - rows + static_cast<int>(bad / static_cast<size_t>(c.vocab_size));
    fail(name_, "non-finite logits ({}) at position {}: the weights or activations overflowed",
         nonfinite_name(s.logits[bad]), position);
  }
  return s.logits.data();
}

}  // namespace lowbit
