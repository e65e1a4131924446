// Converting stored tensors (F32/BF16/F16, possibly misaligned inside a mapped file) to fp32.
#pragma once

#include "lowbit/io/safetensors.h"

namespace lowbit {

// Writes t.numel() floats to dst (multi-threaded). Throws Error("<file>: ...") for dtypes other
// than F32, BF16 and F16.
void tensor_to_f32(const TensorInfo& t, float* dst);

}  // namespace lowbit
