#include "lowbit/io/tensor_convert.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "lowbit/util/error.h"
#include "lowbit/util/finite.h"
#include "lowbit/util/half.h"

namespace lowbit {

void tensor_to_f32(const TensorInfo& t, float* dst) {
  const size_t n = static_cast<size_t>(t.numel());
  const uint8_t* src = t.data;
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::BF16:
    case DType::F16: {
      const bool bf = t.dtype == DType::BF16;
      const int64_t chunk = int64_t{1} << 13;
      const int64_t n_chunks = (static_cast<int64_t>(n) + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < n_chunks; ++c) {
        const size_t begin = static_cast<size_t>(c * chunk);
        const size_t len = std::min(static_cast<size_t>(chunk), n - begin);
        // The source may be 2-byte misaligned inside the file; copy through a local buffer.
        uint16_t tmp[1 << 13];
        std::memcpy(tmp, src + begin * 2, len * 2);
        if (bf) {
          bf16_to_f32_n(tmp, dst + begin, len);
        } else {
          f16_to_f32_n(tmp, dst + begin, len);
        }
      }
      return;
    }
    default:
      fail(t.file, "tensor {} has dtype {}; only F32, BF16 and F16 are supported", t.name,
           dtype_name(t.dtype));
  }
}

void check_finite(const std::string& where, const std::string& name, const float* x, size_t n) {
  const size_t i = first_nonfinite(x, n);
  if (i < n) {
    fail(where, "tensor {} holds a non-finite value ({}) at element {}", name, nonfinite_name(x[i]),
         i);
  }
}

void check_finite(const TensorInfo& t) {
  const size_t n = static_cast<size_t>(t.numel());
  size_t i = n;
  float v = 0;
  switch (t.dtype) {
    case DType::F32:
      i = first_nonfinite_raw_f32(t.data, n);
      if (i < n) std::memcpy(&v, t.data + i * 4, 4);
      break;
    case DType::BF16:
    case DType::F16: {
      i = t.dtype == DType::BF16 ? first_nonfinite_bf16(t.data, n) : first_nonfinite_f16(t.data, n);
      if (i < n) {
        uint16_t h;
        std::memcpy(&h, t.data + i * 2, 2);
        v = t.dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
      }
      break;
    }
    default:
      return;
  }
  if (i < n) {
    fail(t.file, "tensor {} holds a non-finite value ({}) at element {}", t.name, nonfinite_name(v),
         i);
  }
}

}  // namespace lowbit
