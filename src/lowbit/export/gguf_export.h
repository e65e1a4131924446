// `lowbit export gguf`: a floating-point model written as a GGUF v3 file that llama.cpp loads —
// the architecture's metadata, the tokenizer (export/gguf_vocab.h) and every tensor under
// llama.cpp's name, shape and row order, converted one tensor at a time from the checkpoint.
// Families: Llama, Mistral (both as llama.cpp's "llama") and Qwen2 ("qwen2"). llama.cpp's
// "llama" applies RoPE to interleaved pairs, so the q/k rows of a Hugging Face checkpoint (rotate-
// half) are permuted back to Meta's order, as llama.cpp's converter does; llama2.c files are in
// that order already. Matrices are written in the requested type, norms and biases in f32 (as
// llama.cpp's converter does).
#pragma once

#include <string>

#include "lowbit/io/gguf_writer.h"

namespace lowbit {

struct GgufExportOptions {
  std::string model;      // what load_model accepts (an FP checkpoint)
  std::string tokenizer;  // "" = the one beside the model
  std::string out;        // the .gguf file
  gguf::GgmlType type = gguf::GgmlType::kF16;
  bool progress = true;  // a bar on stderr
};

struct GgufExportResult {
  std::string arch;  // general.architecture
  size_t tensors = 0;
  uint64_t bytes = 0;      // the file
  std::string vocab;       // tokenizer.ggml.model
  std::string vocab_file;  // where the vocabulary came from
  double seconds = 0;
};

GgufExportResult export_gguf(const GgufExportOptions& opt);

}  // namespace lowbit
