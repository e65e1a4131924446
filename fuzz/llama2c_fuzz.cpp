// libFuzzer target: arbitrary bytes as a llama2.c checkpoint (.bin: v0 header + fp32 arrays),
// through load_llama2c_weights over an in-memory file. Only lowbit::Error may escape. A loaded
// model must describe arrays that lie inside what it keeps alive (every float is read, so ASan
// checks the bounds), and the mmap and copy paths must give the same numbers. Headers with dims of
// 1-16 make valid tiny models well inside -max_len.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "lowbit/model/load.h"
#include "lowbit/util/error.h"
#include "lowbit/util/mapped_file.h"

namespace {

// Sum of the bits of n floats at p: reads every one of them.
uint64_t touch(const float* p, int64_t n) {
  if (n > 0 && p == nullptr) std::abort();
  uint64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, 4);
    sum = sum * 31 + bits;
  }
  return sum;
}

uint64_t touch(const lowbit::Linear& m, int out, int in) {
  if (m.out != out || m.in != in) std::abort();
  return touch(m.w, int64_t{out} * in);
}

uint64_t touch(const lowbit::Norm& m, int n) {
  return touch(m.w, n) + (m.b != nullptr ? touch(m.b, n) : 0);
}

// Reads every array of the model and checks the shapes agree with the config.
uint64_t checksum(const lowbit::ModelWeights& w) {
  const lowbit::ModelConfig& c = w.cfg;
  if (c.dim <= 0 || c.head_dim * c.n_heads != c.dim || c.n_heads % c.n_kv_heads != 0) std::abort();
  if (static_cast<int>(w.layers.size()) != c.n_layers) std::abort();
  const int kv = c.n_kv_heads * c.head_dim;
  uint64_t s = touch(w.tok_embeddings, int64_t{c.vocab_size} * c.dim);
  s += touch(w.final_norm, c.dim);
  s += touch(w.lm_head, c.vocab_size, c.dim);
  for (const lowbit::LayerWeights& l : w.layers) {
    s += touch(l.attn_norm, c.dim) + touch(l.ffn_norm, c.dim);
    s += touch(l.wq, c.dim, c.dim) + touch(l.wk, kv, c.dim) + touch(l.wv, kv, c.dim);
    s += touch(l.wo, c.dim, c.dim);
    s += touch(l.w_gate, c.hidden_dim, c.dim) + touch(l.w_up, c.hidden_dim, c.dim);
    s += touch(l.w_down, c.dim, c.hidden_dim);
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file =
      lowbit::MappedFile::from_memory("fuzz/model.bin", std::vector<uint8_t>(data, data + size));
  std::shared_ptr<lowbit::ModelWeights> mapped;
  try {
    mapped = lowbit::load_llama2c_weights(file, /*use_mmap=*/true);
  } catch (const lowbit::Error&) {
    return 0;  // expected for malformed input
  }
  // Accepted: the copying path must accept it too and read the same numbers.
  try {
    auto copied = lowbit::load_llama2c_weights(file, /*use_mmap=*/false);
    file.reset();  // the mmap model must keep its bytes alive by itself
    if (checksum(*mapped) != checksum(*copied)) std::abort();
  } catch (const lowbit::Error&) {
    std::abort();
  }
  return 0;
}
