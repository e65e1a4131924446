// Bit-exact small float formats used as weight codes and scales: OCP FP8 e4m3fn (max 448, no
// infinities, S.1111.111 = NaN), OCP FP8 e5m2 (IEEE-like, max 57344) and OCP MX FP4 e2m1
// (S.EE.M, ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}). Encoding rounds to nearest, ties to even code, and
// saturates to the largest finite value; NaN encodes as +0 (weights are checked finite upstream).
#pragma once

#include <cstdint>

namespace lowbit {

struct MiniFloatFormat {
  int exp_bits, mant_bits, bias;
  float max_finite;
};

inline constexpr MiniFloatFormat kE4M3{4, 3, 7, 448.0f};
inline constexpr MiniFloatFormat kE5M2{5, 2, 15, 57344.0f};
inline constexpr MiniFloatFormat kE2M1{2, 1, 1, 6.0f};

// Code layout: sign bit above exp_bits exponent bits above mant_bits mantissa bits.
uint8_t minifloat_encode(const MiniFloatFormat& f, float x);
float minifloat_decode(const MiniFloatFormat& f, uint8_t code);

inline uint8_t f32_to_fp8_e4m3(float x) { return minifloat_encode(kE4M3, x); }
inline float fp8_e4m3_to_f32(uint8_t c) { return minifloat_decode(kE4M3, c); }
inline uint8_t f32_to_fp8_e5m2(float x) { return minifloat_encode(kE5M2, x); }
inline float fp8_e5m2_to_f32(uint8_t c) { return minifloat_decode(kE5M2, c); }
inline uint8_t f32_to_fp4_e2m1(float x) { return minifloat_encode(kE2M1, x); }
inline float fp4_e2m1_to_f32(uint8_t c) { return minifloat_decode(kE2M1, c); }

}  // namespace lowbit
