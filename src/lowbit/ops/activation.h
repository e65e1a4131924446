// SwiGLU: h = silu(gate) · up, elementwise (in place into gate).
#pragma once

#include <cstddef>

namespace lowbit::ops {

void swiglu(float* gate, const float* up, size_t n);

}  // namespace lowbit::ops
