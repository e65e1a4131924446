// `lowbit export gguf`: a floating-point model written as a GGUF v3 file that llama.cpp loads —
// the architecture's metadata, the tokenizer (export/gguf_vocab.h) and every tensor under
// llama.cpp's name, shape and row order, converted one tensor at a time from the checkpoint.
// Families: Llama, Mistral (both as llama.cpp's "llama") and Qwen2 ("qwen2"). llama.cpp's
// "llama" applies RoPE to interleaved pairs, so the q/k rows of a Hugging Face checkpoint (rotate-
// half) are permuted back to Meta's order, as llama.cpp's converter does; llama2.c files are in
// that order already. Matrices are written in the requested type, norms and biases in f32 (as
// llama.cpp's converter does).
// A lowbit-quantized folder is exported from its stored codes: a linear quantized to a ggml block
// type (`quantize --weight-type q4_k`, GPTQ/AWQ/RTN choosing the codes on that type's grid) is
// copied block for block; int4 sym groups of 32·k columns become q4_0, int4 asym q4_1 and int8
// sym q8_0 with the same dequantized values (q4_1: its minimum rounded to f16); anything else is
// dequantized and re-encoded in the requested type (reported).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "lowbit/io/gguf_writer.h"

namespace lowbit {

struct GgufExportOptions {
  std::string model;      // what load_model accepts (an FP checkpoint)
  std::string tokenizer;  // "" = the one beside the model
  std::string out;        // the .gguf file
  // Matrices: a ggml type, or auto (nullopt): f16 for floating-point matrices, and each quantized
  // linear in the type that holds its codes exactly (requantized to q8_0 when none does).
  std::optional<gguf::GgmlType> type;
  // llama-quantize's --token-embedding-type / --output-tensor-type (nullopt: as `type`, f16 when
  // auto).
  std::optional<gguf::GgmlType> embedding_type, output_type;
  bool progress = true;  // a bar on stderr
};

struct GgufExportResult {
  std::string arch;  // general.architecture
  size_t tensors = 0;
  uint64_t bytes = 0;      // the file
  std::string vocab;       // tokenizer.ggml.model
  std::string vocab_file;  // where the vocabulary came from
  double seconds = 0;
  // Matrices by how they were written: copied blocks or codes mapped exactly (`exact`), mapped
  // with the minimum rounded to f16 (`min_rounded`: q4_1), dequantized and re-encoded
  // (`requantized`), or converted from floating point (`from_float`).
  int exact = 0, min_rounded = 0, requantized = 0, from_float = 0;
  // Largest |difference| between a mapped linear's dequantized values in lowbit and in the file.
  double max_mapping_error = 0;
  std::map<std::string, int> types;  // tensor count per ggml type
};

GgufExportResult export_gguf(const GgufExportOptions& opt);

}  // namespace lowbit
