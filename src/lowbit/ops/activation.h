// Elementwise activations of the MLP: x = act(x) (fc1 -> act -> fc2 MLPs) and the gated form
// gate = act(gate) · up (SwiGLU and GeGLU MLPs), in place.
#pragma once

#include <cstddef>
#include <string>

namespace lowbit::ops {

// kSilu: x · sigmoid(x) ("silu", "swish"). kGeluErf: x/2 · (1 + erf(x/√2)), torch's exact GELU
// ("gelu"). kGeluTanh: x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³))) ("gelu_new",
// "gelu_pytorch_tanh", "gelu_fast", "gelu_accurate": one function written four ways). kRelu:
// max(x, 0).
enum class Activation { kSilu, kGeluErf, kGeluTanh, kRelu };

// The activation a Hugging Face config names (hidden_act / activation_function /
// hidden_activation). Throws Error("<where>: unsupported activation '<name>'") for any other name.
Activation parse_activation(const std::string& where, const std::string& hf_name);

// The Hugging Face name of `a` ("silu", "gelu", "gelu_new", "relu").
const char* activation_name(Activation a);

// x[0..n) = act(x). Within 2e-7 relative (1e-7 absolute near 0) of the exact function for every
// float; ±inf give the limits (act(+inf) = +inf, act(-inf) = 0), NaN stays NaN.
void activate(Activation a, float* x, size_t n);

// gate[0..n) = act(gate) · up.
void gated(Activation a, float* gate, const float* up, size_t n);

// SwiGLU: gate = silu(gate) · up; the same as gated(Activation::kSilu, gate, up, n).
void swiglu(float* gate, const float* up, size_t n);

// Scalar references (computed in double, rounded once): what the vector code is tested against,
// and the code path without AVX-512.
namespace ref {
float activation(Activation a, float x);
void activate(Activation a, float* x, size_t n);
void gated(Activation a, float* gate, const float* up, size_t n);
}  // namespace ref

}  // namespace lowbit::ops
