// ggml's tensor types (the block formats of GGUF files, llama.cpp): how each stores a row of
// values — blocks of 32 (q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl) or super-blocks of 256 (q4_k,
// q5_k, q6_k) holding codes and scales — with one scalar reference of each: decode a row, encode a
// row (fit the block's scales and choose codes, optionally weighted by per-column importance, as
// llama-quantize does with an imatrix), and the grid a fitted block defines, so an algorithm
// (GPTQ) can choose the codes itself on that grid and write them back into the block.
// Byte layouts are ggml's (little-endian), so a block written here is read by llama.cpp.
#pragma once

#include <cstdint>

namespace lowbit::gguf {

// The numbers are ggml's (ggml_type).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kIQ4_NL = 20,
  kBF16 = 30,
};

// Whether lowbit knows the type (one of the enumerators above).
bool known_type(uint32_t t);
// "f32", "f16", "q4_0", "q4_k", "iq4_nl", "bf16", ... ("?" for an unknown number).
const char* type_name(GgmlType t);
// Parses type_name's spelling (lower case). Returns false on an unknown name.
bool parse_type(const char* name, GgmlType* t);
// Values per block (1 for f32/f16/bf16, 32, or 256) and bytes per block.
int block_values(GgmlType t);
int block_bytes(GgmlType t);
// Bytes of a tensor of `elements` values; `elements` must be a multiple of block_values(t).
uint64_t tensor_bytes(GgmlType t, uint64_t elements);
bool is_quantized(GgmlType t);  // not f32/f16/bf16

// Decodes n values (n a multiple of block_values(t)) from `src` to fp32.
void dequantize_row(GgmlType t, const uint8_t* src, float* dst, int64_t n);

// Encodes n values (a multiple of block_values(t)). `importance` ([n] or null): per-value weights
// of the squared error the block fits minimize (llama.cpp's imatrix; null = llama.cpp's reference
// quantizer without one). f32/f16/bf16 convert.
void quantize_row(GgmlType t, const float* src, uint8_t* dst, int64_t n,
                  const float* importance = nullptr);

// The grid of one encoded block of a quantized type: value i of the block decodes as
//   scale[i] * level(code_i) + offset[i],
// where level(c) = c for the uniform types (codes 0 .. code_levels(t) − 1) and
// level(c) = code_table(t)[c] for iq4_nl. scale/offset have block_values(t) entries.
void block_grid(GgmlType t, const uint8_t* block, float* scale, float* offset);
int code_levels(GgmlType t);          // 16, 32, 64 or 256
const float* code_table(GgmlType t);  // iq4_nl's 16 values; null for the uniform types
// The codes of one block (block_values(t) values in 0 .. code_levels(t) − 1), and writing codes
// back into a block without touching its scales.
void get_codes(GgmlType t, const uint8_t* block, uint8_t* codes);
void set_codes(GgmlType t, uint8_t* block, const uint8_t* codes);

}  // namespace lowbit::gguf
