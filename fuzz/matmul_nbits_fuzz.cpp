// libFuzzer target: arbitrary bytes as the tensors and attributes of an ONNX MatMulNBits node, as
// an ONNX graph from elsewhere would give them (formats/matmul_nbits.h). Only lowbit::Error may
// escape. Layout: bits (u8), block_size (u32 LE), K (u16), N (u16), then byte counts (u16 each)
// of B, scales (floats), zero_points, g_idx (int32), perm (int64), then their bytes in that
// order. Tensors the reader accepts must dequantize the same through the QuantizedWeight it makes
// and through the operator's formula; without g_idx they must also survive the writer
// (to_matmul_nbits) unchanged in value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "lowbit/formats/matmul_nbits.h"
#include "lowbit/util/error.h"

namespace {

struct Reader {
  const uint8_t* p;
  size_t n;
  bool ok = true;
  uint64_t uint(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      if (n == 0) {
        ok = false;
        return v;
      }
      v |= static_cast<uint64_t>(*p++) << (8 * i);
      --n;
    }
    return v;
  }
  template <typename T>
  std::vector<T> take(size_t bytes) {
    bytes = std::min(bytes, n) / sizeof(T) * sizeof(T);
    std::vector<T> v(bytes / sizeof(T));
    if (bytes > 0) std::memcpy(v.data(), p, bytes);
    p += bytes;
    n -= bytes;
    return v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r{data, size};
  lowbit::MatMulNBitsWeight m;
  m.bits = static_cast<int>(r.uint(1));
  m.block_size = static_cast<int>(static_cast<int32_t>(r.uint(4)));
  m.K = static_cast<int64_t>(r.uint(2));
  m.N = static_cast<int64_t>(r.uint(2));
  size_t counts[5];
  for (size_t& c : counts) c = static_cast<size_t>(r.uint(2));
  if (!r.ok) return 0;
  m.B = r.take<uint8_t>(counts[0]);
  m.scales = r.take<float>(counts[1]);
  m.zero_points = r.take<uint8_t>(counts[2]);
  m.g_idx = r.take<int32_t>(counts[3]);
  m.perm = r.take<int64_t>(counts[4]);
  std::vector<float> spec;
  lowbit::QuantizedWeight w;
  try {
    w = lowbit::from_matmul_nbits("fuzz: node", m);
    spec = lowbit::dequantize_matmul_nbits("fuzz: node", m);
  } catch (const lowbit::Error&) {
    return 0;  // expected for malformed input
  }
  if (w.dequantize() != spec) std::abort();  // the reader must keep the operator's values
  if (m.g_idx.empty()) {
    try {
      const lowbit::MatMulNBitsWeight again = lowbit::to_matmul_nbits("fuzz: node", w);
      if (lowbit::dequantize_matmul_nbits("fuzz: again", again) != spec) std::abort();
    } catch (const lowbit::Error&) {
      std::abort();  // blocks of a power of two >= 16 are always writable
    }
  }
  return 0;
}
