// Scalar conversions between fp32 and the 16-bit float formats found in checkpoints.
#pragma once

#include <cstdint>
#include <cstring>

namespace lowbit {

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Bulk conversions (vectorized where the CPU allows).
void bf16_to_f32_n(const uint16_t* src, float* dst, size_t n);
void f16_to_f32_n(const uint16_t* src, float* dst, size_t n);
void f32_to_bf16_n(const float* src, uint16_t* dst, size_t n);  // round to nearest even

}  // namespace lowbit
