// libFuzzer target: arbitrary bytes as a GGUF file (io/gguf_reader.h) over an in-memory file,
// then as a model (load_gguf_weights: repacked, dequantized, codes kept) and as a tokenizer
// (read_gguf_vocab + tokenizer_from_gguf_vocab). Only lowbit::Error may escape. An accepted header
// must describe tensors that lie inside the file (every byte of each is read, so ASan checks the
// bounds) and decode to fp32; a loaded model's arrays are read whole; a tokenizer must encode and
// decode a short text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/export/gguf_vocab.h"
#include "lowbit/io/gguf_reader.h"
#include "lowbit/model/load.h"
#include "lowbit/tokenizer/gguf_tokenizer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/mapped_file.h"

namespace {

uint64_t touch(const float* p, int64_t n) {
  if (n > 0 && p == nullptr) std::abort();
  uint64_t s = 0;
  for (int64_t i = 0; i < n; ++i) s = s * 31 + static_cast<uint64_t>(p[i] != 0.0f);
  return s;
}

uint64_t touch(const lowbit::Linear& l) {
  if (!l.present()) std::abort();
  return l.w != nullptr ? touch(l.w, int64_t{l.out} * l.in) : 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file =
      lowbit::MappedFile::from_memory("fuzz/model.gguf", std::vector<uint8_t>(data, data + size));
  try {
    const lowbit::gguf::Reader r = lowbit::gguf::Reader::from_file(file);
    for (const lowbit::gguf::Tensor& t : r.tensors()) {
      if (t.data < file->data() || t.data + t.bytes > file->data() + file->size()) std::abort();
      uint64_t sum = 0;
      for (uint64_t i = 0; i < t.bytes; ++i) sum += t.data[i];
      if (t.numel <= (1u << 16)) {
        std::vector<float> f(static_cast<size_t>(t.numel));
        lowbit::gguf::to_f32(t, 0, t.numel, f.data());
      }
      (void)sum;
    }
  } catch (const lowbit::Error&) {
    return 0;
  }
  for (int mode = 0; mode < 3; ++mode) {  // repacked, dequantized, codes kept (exporters)
    lowbit::RuntimeOptions rt;
    rt.repack = mode == 0;
    rt.keep_quantized = mode == 2;
    try {
      auto w = lowbit::load_gguf_weights(file, rt);
      const lowbit::ModelConfig& c = w->cfg;
      uint64_t s = touch(w->tok_embeddings, int64_t{c.vocab_size} * c.dim) + touch(w->lm_head);
      for (const lowbit::LayerWeights& l : w->layers) {
        s += touch(l.wq) + touch(l.wk) + touch(l.wv) + touch(l.wo) + touch(l.w_down);
        s += touch(l.attn_norm.w, c.dim);
      }
      (void)s;
    } catch (const lowbit::Error&) {
    }
  }
  try {
    const auto tok = lowbit::tokenizer_from_gguf_vocab(
        lowbit::read_gguf_vocab(lowbit::gguf::Reader::from_file(file)));
    const std::vector<int> ids = tok->encode("Hello, world! 12 \xc3\xa9t\xc3\xa9", true);
    for (int id : ids) {
      if (id < 0 || id >= tok->vocab_size()) std::abort();
    }
    (void)tok->decode(ids);
  } catch (const lowbit::Error&) {
  }
  return 0;
}
