// libFuzzer target: arbitrary bytes as the tokenizer.json of a model exported to GGUF
// (export/gguf_vocab.h). Only lowbit::Error may escape. When lowbit's tokenizer reads the text and
// the vocabulary builds, the vocabulary must be consistent: exactly the model's rows (padded),
// every type a GGUF token type, scores for "llama" and merges only for "gpt2", special ids inside
// the vocabulary; and its metadata must serialize.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "lowbit/export/gguf_vocab.h"
#include "lowbit/io/gguf_writer.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::shared_ptr<lowbit::Tokenizer> tok;
  try {
    tok = lowbit::load_tokenizer_from_json_string(text, "fuzz/tokenizer.json");
  } catch (const lowbit::Error&) {
    return 0;
  }
  for (int vocab_size : {tok->vocab_size(), tok->vocab_size() + 7}) {
    lowbit::GgufVocab v;
    try {
      v = lowbit::gguf_vocab_from_json(text, "fuzz/tokenizer.json", *tok, vocab_size);
    } catch (const lowbit::Error&) {
      continue;  // e.g. a byte-level pre-tokenizer GGUF cannot name, or more tokens than rows
    }
    const size_t n = static_cast<size_t>(vocab_size);
    if (v.tokens.size() != n || v.types.size() != n) std::abort();
    if (v.model == "llama") {
      if (v.scores.size() != n || !v.merges.empty()) std::abort();
    } else if (v.model == "gpt2") {
      if (!v.scores.empty() || v.pre.empty()) std::abort();
    } else {
      std::abort();
    }
    for (int32_t t : v.types) {
      if (t < 1 || t > 6) std::abort();
    }
    for (int id : {v.bos, v.eos, v.unk}) {
      if (id >= vocab_size) std::abort();
    }
    lowbit::gguf::Writer w;
    lowbit::write_gguf_vocab(v, &w);
  }
  return 0;
}
