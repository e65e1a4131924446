// The one table between lowbit's tensor roles (model/arch.h) and the tensor names of GGUF files
// (llama.cpp's "llama" / "qwen2" architectures): `lowbit export gguf` writes through it and the
// GGUF loader reads through it, so a name is spelled in one place for both directions.
#pragma once

#include <string>
#include <vector>

#include "lowbit/model/arch.h"

namespace lowbit {

// How the rows of a role are ordered in GGUF's "llama" architecture relative to lowbit's.
enum class GgufRows {
  kSame,
  kQHeads,   // q weight/bias: rotate-half rows per head (n_heads) <-> interleaved pairs
  kKvHeads,  // k weight/bias: the same per kv head
};

struct GgufTensorName {
  TensorRole role;
  const char* name;  // "blk.{i}.attn_q.weight"; {i} = layer index
  GgufRows rows = GgufRows::kSame;
};

// Every role a GGUF file of a supported architecture may hold, in the order the exporter writes
// them (model level first, then per layer). Which are present follows from the config
// (tensor_present).
const std::vector<GgufTensorName>& gguf_tensor_names();
// The GGUF name of an entry for `layer` (ignored for model-level roles).
std::string gguf_tensor_name(const GgufTensorName& n, int layer);
// The entry of a role; nullptr when GGUF has no name for it.
const GgufTensorName* gguf_name_of(TensorRole role);
// The architecture table entry whose llama.cpp name is `gguf_arch` (the first: "llama" ->
// LlamaForCausalLM); nullptr when none.
const ArchSpec* arch_for_gguf(const std::string& gguf_arch);
// "llama, qwen2".
std::string gguf_architectures();

// Per head, Hugging Face's rotate-half rows (row j·d/2 + i) and Meta's / GGUF "llama"'s
// interleaved pairs (row 2i + j), for [n_heads · head_dim] rows: the source row of each row of the
// result (for select_rows-style reordering). interleaved_row_order is what the exporter writes,
// rotate_half_row_order its inverse, what the loader reads back.
std::vector<int> interleaved_row_order(int n_heads, int head_dim);
std::vector<int> rotate_half_row_order(int n_heads, int head_dim);
// Rows of a [n_heads · head_dim, cols] matrix (cols = 1 for a bias) put in rotate-half order.
void rows_to_rotate_half(const float* src, float* dst, int n_heads, int head_dim, int cols);

}  // namespace lowbit
