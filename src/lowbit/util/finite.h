// Finding NaN and Inf in weights and activations, fast enough to run over every tensor at load
// and every logit row at run time: a non-finite value is an error naming where it is, never a
// silent "perplexity: nan".
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit {

// Index of the first NaN or ±Inf in x[0..n), or n when all are finite. Multi-threaded for large n.
size_t first_nonfinite(const float* x, size_t n);
// The same over raw fp32 bits of any alignment (inside a mapped file).
size_t first_nonfinite_raw_f32(const void* x, size_t n);
// The same over raw bf16 / f16 bits (2-byte values, any alignment).
size_t first_nonfinite_bf16(const void* x, size_t n);
size_t first_nonfinite_f16(const void* x, size_t n);

// "NaN", "+Inf" or "-Inf" for a non-finite float.
const char* nonfinite_name(float v);

}  // namespace lowbit
