// Quantization schemes (formats): how a weight's integers and scales are defined. Formats say
// nothing about which integers and scales to choose (algorithms, src/lowbit/quant/algo/) nor how to
// multiply fast (kernels).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/formats/ggml_blocks.h"

namespace lowbit {

enum class WeightType {
  kInt,      // uniform integers, 2/3/4/8 bits, optional zero point
  kNF4,      // 16-entry NormalFloat codebook (QLoRA)
  kFP4,      // e2m1 float (±{0, 0.5, 1, 1.5, 2, 3, 4, 6})
  kFP8E4M3,  // OCP e4m3fn, max 448
  kFP8E5M2,  // OCP e5m2, max 57344
  kGgml,     // one of ggml's block types (formats/ggml_blocks.h): QuantScheme::ggml says which;
             // the encoded blocks (QuantizedWeight::blocks) are the weight
};

enum class ScaleType { kF32, kF16, kBF16, kFP8E4M3 };

struct QuantScheme {
  WeightType type = WeightType::kInt;
  int bits = 4;            // kInt: 2, 3, 4, 8; 4 for NF4/FP4; 8 for FP8
  int group_size = 128;    // input columns per group; -1 = one group per output row
  bool sym = false;        // kInt only: symmetric (no stored zero point)
  bool int4_clip = false;  // kInt sym: codes in [-(2^(b-1)-1), 2^(b-1)-1] ("clip") instead of
                           // [-2^(b-1), 2^(b-1)-1] ("fullrange")
  ScaleType scale_type = ScaleType::kF16;
  // kInt asym: keep zero points in [1, 2^bits − 1]. GPTQ checkpoint format v1 stores zero − 1 in
  // `bits` bits, so a zero point of 0 cannot be written; a group whose zero would round to 0 gets
  // zero 1 and a scale covering its range from there (one code of range given up).
  bool zero_from_one = false;
  // kGgml: the block type (q4_0 … q6_k, iq4_nl); group_size is its block width (32 or 256) and
  // bits its nominal code width.
  gguf::GgmlType ggml = gguf::GgmlType::kF32;
};

// Parses/prints "int2|int3|int4|int8", "nf4", "fp4", "fp8_e4m3" ("fp8"), "fp8_e5m2", ggml's
// block types ("q4_0", "q4_k", "iq4_nl", …: parse_ggml_scheme fills the whole scheme) and
// "f32|f16|bf16|fp8_e4m3". Throws Error("<where>: ...") on unknown names.
WeightType parse_weight_type(const std::string& where, const std::string& name, int* bits);
// Sets the weight type of `s` from its name (parse_weight_type), including a ggml type's block
// width as the group size. Throws Error("<where>: ...") on unknown names.
void apply_weight_type(const std::string& where, const std::string& name, QuantScheme* s);
// The name apply_weight_type reads back: weight_type_name, or the ggml type's name.
std::string weight_type_name(const QuantScheme& s);
// The scheme of a ggml block type name ("q4_k"); false when `name` is not one.
bool parse_ggml_scheme(const std::string& name, QuantScheme* s);
ScaleType parse_scale_type(const std::string& where, const std::string& name);
std::string weight_type_name(WeightType t, int bits);  // "int4", "nf4", "fp8_e4m3", ...
std::string scale_type_name(ScaleType t);              // "f32", "f16", "bf16", "fp8_e4m3"
std::string scheme_name(const QuantScheme& s);         // e.g. "int4 g128 asym f16-scales"
// Checks bits / group size / flags are a valid combination (group_size > 0 or -1; any group size
// is accepted, the last group of a row may be ragged; sym and int4_clip matter for kInt only, the
// other types have no zero point). Throws Error("<where>: ...").
void validate_scheme(const std::string& where, const QuantScheme& s);

// Bytes of one encoded row of a kGgml weight of `in` columns.
size_t ggml_row_bytes(const QuantScheme& s, int in);

// Largest integer code of a kInt scheme: 2^bits − 1.
inline int int_maxq(const QuantScheme& s) { return (1 << s.bits) - 1; }
// Groups per row for `in` input columns: ceil(in / group_size), 1 for per-channel.
int groups_per_row(const QuantScheme& s, int in);
// Rounds a scale to the scheme's scale dtype (nearest; a nonzero scale never becomes 0 or inf: it
// is kept within the dtype's smallest subnormal and largest finite value).
float round_scale(ScaleType t, float scale);
// The smallest value of the scale dtype >= scale (scale > 0): fit_group rounds scales up so that
// the rounding never clips the group's range.
float round_scale_up(ScaleType t, float scale);

// Scale and zero point of one group, as stored (scale already rounded to scale_type).
//  kInt:  w ≈ scale · (q − zero), q ∈ [0, 2^bits − 1]; sym: zero = 2^(bits−1) (GPTQ convention).
//  others: w ≈ scale · value(q), q a code index (0..15 for 4-bit, 0..255 for FP8); zero unused.
struct GroupParams {
  float scale = 1.0f;
  float zero = 0.0f;
};

// A quantized linear weight [out, in] in plain unpacked form: what algorithms produce and what
// the storage layouts (GPTQ, lowbit extension) pack.
struct QuantizedWeight {
  QuantScheme scheme;
  int out = 0, in = 0;
  int n_groups = 0;                 // groups per row: ceil(in / group_size), 1 for per-channel
  std::vector<uint8_t> q;           // [out, in] codes
  std::vector<GroupParams> params;  // [out, n_groups]
  std::vector<int32_t> g_idx;       // [in] group of each input column (act-order may permute)
  // kGgml only: the encoded rows, out × tensor_bytes(ggml, in) bytes (ggml's block layout); q and
  // params are then empty and g_idx is the identity grouping (column c in block c / group_size).
  std::vector<uint8_t> blocks;

  // Dequantized weight [out, in] row-major: w[o][i] = dequantize_value(params[o][g_idx[i]], q).
  std::vector<float> dequantize() const;
  // Throws Error("<where>: ...") unless sizes, codes and g_idx are consistent with the scheme.
  void check(const std::string& where) const;
  // The weight made of rows `rows` of this one (a part of a fused tensor); rows are independent,
  // so the result is exactly those rows quantized.
  QuantizedWeight select_rows(const std::vector<int>& rows) const;
};

// The fused weight whose row rows_of[p][i] is row i of parts[p] (the inverse of select_rows over a
// partition). Throws Error("<where>: ...") when the parts' schemes, widths or g_idx differ or the
// rows do not cover [0, total) exactly once.
QuantizedWeight stack_rows(const std::string& where, const std::vector<QuantizedWeight>& parts,
                           const std::vector<std::vector<int>>& rows_of, int total);

}  // namespace lowbit
