#include "lowbit/formats/minifloat.h"

#include <cmath>
#include <limits>

namespace lowbit {

uint8_t minifloat_encode(const MiniFloatFormat& f, float x) {
  const int sign_shift = f.exp_bits + f.mant_bits;
  const uint8_t sign = std::signbit(x) ? static_cast<uint8_t>(1u << sign_shift) : 0;
  if (std::isnan(x)) return 0;
  double a = std::fabs(static_cast<double>(x));
  const int min_exp = 1 - f.bias;  // exponent of the smallest normal
  if (a >= f.max_finite) a = f.max_finite;
  int e = min_exp;
  if (a >= std::ldexp(1.0, min_exp)) e = std::ilogb(a);
  // a = r · 2^(e − mant_bits); r rounded to nearest even is the code's significand.
  double r = std::nearbyint(std::ldexp(a, f.mant_bits - e));
  if (std::ldexp(r, e - f.mant_bits) > f.max_finite) r = std::ldexp(f.max_finite, f.mant_bits - e);
  const int one = 1 << f.mant_bits;
  if (r >= 2 * one) {  // rounded up into the next binade
    r /= 2;
    ++e;
  }
  const int ri = static_cast<int>(r);
  unsigned exp_field = 0, mant = static_cast<unsigned>(ri);
  if (ri >= one) {  // normal
    exp_field = static_cast<unsigned>(e + f.bias);
    mant = static_cast<unsigned>(ri - one);
  }
  return static_cast<uint8_t>(sign | (exp_field << f.mant_bits) | mant);
}

float minifloat_decode(const MiniFloatFormat& f, uint8_t code) {
  const int sign_shift = f.exp_bits + f.mant_bits;
  const unsigned exp_mask = (1u << f.exp_bits) - 1, mant_mask = (1u << f.mant_bits) - 1;
  const unsigned exp_field = (code >> f.mant_bits) & exp_mask, mant = code & mant_mask;
  const float sign = (code >> sign_shift) & 1u ? -1.0f : 1.0f;
  if (f.exp_bits == 5 && exp_field == exp_mask) {  // e5m2: IEEE infinities and NaNs
    return mant == 0 ? sign * std::numeric_limits<float>::infinity()
                     : std::numeric_limits<float>::quiet_NaN();
  }
  if (f.exp_bits == 4 && exp_field == exp_mask && mant == mant_mask) {  // e4m3fn NaN
    return std::numeric_limits<float>::quiet_NaN();
  }
  if (exp_field == 0) {
    return sign * static_cast<float>(std::ldexp(mant, 1 - f.bias - f.mant_bits));
  }
  const double sig = static_cast<double>((1u << f.mant_bits) | mant);
  return sign *
         static_cast<float>(std::ldexp(sig, static_cast<int>(exp_field) - f.bias - f.mant_bits));
}

}  // namespace lowbit
