#include "lowbit/util/finite.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace lowbit {

namespace {

constexpr size_t kChunk = 4096;

// Whether any value of the chunk has an all-ones exponent (written as an OR reduction the
// compiler vectorizes; the exact position is found afterwards by a second, rare scan).
template <typename Bits>
bool any_special(const uint8_t* p, size_t n, Bits exp_mask) {
  Bits acc = 0;
  for (size_t i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, p + i * sizeof(Bits), sizeof(Bits));
    acc |= static_cast<Bits>((b & exp_mask) == exp_mask);
  }
  return acc != 0;
}

template <typename Bits>
size_t first_special(const void* data, size_t n, Bits exp_mask) {
  const auto* p = static_cast<const uint8_t*>(data);
  const size_t chunks = (n + kChunk - 1) / kChunk;
  size_t first = n;
#pragma omp parallel for schedule(static) reduction(min : first) if (n >= (size_t{1} << 22))
  for (size_t c = 0; c < chunks; ++c) {
    const size_t b = c * kChunk, e = std::min(n, b + kChunk);
    if (!any_special<Bits>(p + b * sizeof(Bits), e - b, exp_mask)) continue;
    for (size_t i = b; i < e; ++i) {
      Bits v;
      std::memcpy(&v, p + i * sizeof(Bits), sizeof(Bits));
      if ((v & exp_mask) == exp_mask) {
        first = std::min(first, i);
        break;
      }
    }
  }
  return first;
}

}  // namespace

size_t first_nonfinite(const float* x, size_t n) {
  return first_special<uint32_t>(x, n, 0x7f800000u);
}

size_t first_nonfinite_raw_f32(const void* x, size_t n) {
  return first_special<uint32_t>(x, n, 0x7f800000u);
}

size_t first_nonfinite_bf16(const void* x, size_t n) {
  return first_special<uint16_t>(x, n, static_cast<uint16_t>(0x7f80));
}

size_t first_nonfinite_f16(const void* x, size_t n) {
  return first_special<uint16_t>(x, n, static_cast<uint16_t>(0x7c00));
}

const char* nonfinite_name(float v) {
  if (std::isnan(v)) return "NaN";
  return v > 0 ? "+Inf" : "-Inf";
}

}  // namespace lowbit
