// Activation quantization schemes (W8A8, W4A8): how the input of a linear layer is turned into
// int8 codes before the integer multiply. Like formats/scheme.h for weights, this says what the
// integers and scales mean, not how they are chosen (calibration, quant/) nor how the multiply
// runs (kernels/).
//
//   x ≈ s · q + m,  q ∈ [−127, 127]  (m = 0 for symmetric schemes)
//
// Granularity of (s, m):
//  - block:  per row and 32-column block, dynamic (computed from x at run time), symmetric —
//            lowbit's default for integer weights (like llama.cpp's Q8_0 activations);
//  - token:  per row (token), dynamic; symmetric (s = max|x| / 127) or asymmetric
//            (s = (max − min) / 254, m = (max + min) / 2);
//  - tensor: one (s, m) for every row, static: fixed from calibration and stored with the model
//            (compressed-tensors' input_scale / input_zero_point).
// A linear whose activations are not quantized has no ActScheme (or `quantized` false).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lowbit {

enum class ActGranularity { kBlock, kToken, kTensor };

struct ActScheme {
  bool quantized = false;  // false: activations stay float
  ActGranularity granularity = ActGranularity::kToken;
  bool sym = true;
  // kTensor (static): x ≈ scale · q + zero. Unused otherwise.
  float scale = 0.0f, zero = 0.0f;

  bool operator==(const ActScheme&) const = default;
};

// "block" | "token" | "tensor"; throws Error("<where>: ...") otherwise.
ActGranularity parse_act_granularity(const std::string& where, const std::string& name);
const char* act_granularity_name(ActGranularity g);
// "fp", "int8 block", "int8 token sym", "int8 token asym", "int8 tensor sym (static)".
std::string act_scheme_name(const ActScheme& a);
// Checks the combination: block is symmetric; tensor needs a finite scale > 0 (and a finite zero);
// throws Error("<where>: ...").
void validate_act_scheme(const std::string& where, const ActScheme& a);

// JSON form stored per module in the quantized config ({"type": "int8", "granularity": "token",
// "sym": true, "dynamic": true}; {"type": "float"}); static scales live in tensors, not here.
nlohmann::json act_scheme_json(const ActScheme& a);
// Reads that form; `where` names it in errors. Static scales are left 0 for the caller to set.
ActScheme act_scheme_from_json(const std::string& where, const nlohmann::json& j);

// (s, m) for one row x[0..n) under a dynamic granularity (token; block uses the row's block), or
// the static pair for kTensor. s is never 0 (an all-zero row gets s = 1).
void act_row_params(const ActScheme& a, const float* x, int n, float* s, float* m);
// q = clamp(round((x − m) / s), −127, 127): the reference rounding the kernels must match.
inline int act_code(float x, float s, float m) {
  float v = (x - m) / s;
  v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);  // also NaN → NaN, caught below
  return v == v ? static_cast<int>(v + (v >= 0.0f ? 0.5f : -0.5f)) : 0;
}

}  // namespace lowbit
