// Converting stored tensors (F32/BF16/F16, possibly misaligned inside a mapped file) to fp32.
#pragma once

#include "lowbit/io/safetensors.h"

namespace lowbit {

// Writes t.numel() floats to dst (multi-threaded). Throws Error("<file>: ...") for dtypes other
// than F32, BF16 and F16.
void tensor_to_f32(const TensorInfo& t, float* dst);

// Throws Error("<file>: tensor <name> holds a non-finite value (NaN) at element <i>") when a stored
// F32/BF16/F16 tensor holds NaN or Inf (other dtypes are not checked here).
void check_finite(const TensorInfo& t);
// The same for `n` floats of the tensor `name` read from `where`.
void check_finite(const std::string& where, const std::string& name, const float* x, size_t n);

}  // namespace lowbit
