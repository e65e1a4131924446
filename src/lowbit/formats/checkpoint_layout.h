// Per-tensor conversion between a QuantizedWeight and the safetensors tensors of a quantized
// checkpoint, in the two on-disk layouts (docs/QUANT_FORMATS.md):
//  - GPTQ (quant_method "gptq", loaded by HF transformers and vLLM): <prefix>.qweight I32
//    [in·b/32, out], <prefix>.qzeros I32 [n_groups, out·b/32], <prefix>.scales F16 [n_groups, out],
//    <prefix>.g_idx I32 [in]. Zero points: checkpoint format v1 ("gptq") stores zero − 1 (the
//    historical off-by-one that loaders add back), v2 ("gptq_v2") stores zero.
//  - lowbit extension (quant_method "lowbit"), for what GPTQ cannot express (nf4, fp4, fp8 weights,
//    f32/bf16/fp8 scales, ragged shapes): <prefix>.qweight U8 [out, ceil(in·b/8)],
//    <prefix>.scales [out, n_groups] in the scale dtype (F32, F16, BF16 or F8_E4M3),
//    <prefix>.zeros U8 [out, n_groups] (int asym only), <prefix>.g_idx I32 [in].
//  - AutoAWQ GEMM (quant_method "awq", version "gemm"; loaded by HF transformers and vLLM), int4
//    only: <prefix>.qweight I32 [in, out/8] and <prefix>.qzeros I32 [n_groups, out/8] packed along
//    the output features in AWQ's interleaved nibble order (pack.h), <prefix>.scales F16
//    [n_groups, out]; the zero point itself is stored (a symmetric scheme has zeros 8); no g_idx.
// The whole-model saver lives in the pipeline; this file only converts one weight.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/formats/scheme.h"
#include "lowbit/io/safetensors.h"

namespace lowbit {

// A tensor that owns its bytes (little-endian, in `dtype` layout).
struct PackedTensor {
  std::string name;
  DType dtype = DType::U8;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  TensorToWrite view() const { return {name, dtype, shape, bytes.data(), bytes.size()}; }
  TensorDecl decl() const { return {name, dtype, shape}; }
};

// Finds a tensor by full name; nullptr when absent (e.g. wraps TensorStore::find).
using TensorLookup = std::function<const TensorInfo*(const std::string& name)>;

// Whether every zero point can be written in GPTQ checkpoint format v1: v1 stores zero − 1 in
// b bits, so a zero point of 0 (asym groups with no negative weight) cannot be stored.
bool gptq_v1_can_store(const QuantizedWeight& w);

// GPTQ tensors of w (version 1 or 2). Throws Error unless gptq_layout_fits(w.scheme, out, in)
// and, for version 1, gptq_v1_can_store(w).
std::vector<PackedTensor> to_gptq_tensors(const QuantizedWeight& w, const std::string& prefix,
                                          int version = 1);
// Reads <prefix>.qweight/.qzeros/.scales/.g_idx (g_idx optional: i / group_size) written in
// checkpoint format `version`; bits, group size and sym come from `s` (the quantization_config).
// Shapes are validated against each other, and the tensors against what the config promises:
// sym means every zero point is 2^(bits-1); desc_act (when known) true needs a g_idx, false
// allows only the plain order i / group_size. Throws Error("<file>: ...") on any mismatch.
QuantizedWeight from_gptq_tensors(const QuantScheme& s, const std::string& prefix,
                                  const TensorLookup& lookup, int version = 1,
                                  std::optional<bool> desc_act = std::nullopt);

std::vector<PackedTensor> to_lowbit_tensors(const QuantizedWeight& w, const std::string& prefix);
QuantizedWeight from_lowbit_tensors(const QuantScheme& s, const std::string& prefix,
                                    const TensorLookup& lookup);

// AutoAWQ GEMM tensors of w. Throws Error unless awq_layout_fits(w.scheme, out, in) and the
// columns are in plain order (AWQ has no g_idx: act-order cannot be stored).
std::vector<PackedTensor> to_awq_tensors(const QuantizedWeight& w, const std::string& prefix);
// Reads <prefix>.qweight/.qzeros/.scales; group size and sym come from `s` (sym: every zero point
// must be 8). Shapes are validated against each other and the group size; a <prefix>.g_idx is
// refused. Throws Error("<file>: ...") on any mismatch.
QuantizedWeight from_awq_tensors(const QuantScheme& s, const std::string& prefix,
                                 const TensorLookup& lookup);

// quantization_config blocks (config.json; the GPTQ one is also quantize_config.json).
nlohmann::json gptq_quantization_config(const QuantScheme& s, bool desc_act, bool static_groups,
                                        int version = 1);
nlohmann::json lowbit_quantization_config(const QuantScheme& s, bool desc_act = false);
// The AWQ block as AutoAWQ writes it for transformers: {quant_method "awq", bits 4, group_size,
// zero_point true, version "gemm"} plus modules_to_not_convert when `not_converted` is not empty.
nlohmann::json awq_quantization_config(const QuantScheme& s,
                                       const std::vector<std::string>& not_converted);
// Parses a gptq, lowbit or awq block back into a scheme (and, for GPTQ, the checkpoint format
// version 1 or 2). AWQ: "bits" or "w_bit", "group_size" or "q_group_size", zero_point true,
// version "gemm" (any case; the default); other versions and bit widths are refused.
// Throws Error("<where>: ...") on missing or invalid keys.
QuantScheme scheme_from_quantization_config(const std::string& where, const nlohmann::json& cfg,
                                            int* gptq_version = nullptr);

// compressed-tensors "int-quantized" (quant_method "compressed-tensors", as llm-compressor writes
// W8A8 for vLLM): <prefix>.weight I8 [out, in] holding the signed codes q (w = scale · q),
// <prefix>.weight_scale [out, 1] (written F32; F16/BF16 read). Int8 per-channel symmetric only
// (ct_int8_fits); lowbit's codes are q + 128.
bool ct_int8_fits(const QuantScheme& s);
std::vector<PackedTensor> to_ct_int8_tensors(const QuantizedWeight& w, const std::string& prefix);
QuantizedWeight from_ct_int8_tensors(const std::string& prefix, const TensorLookup& lookup);

}  // namespace lowbit
