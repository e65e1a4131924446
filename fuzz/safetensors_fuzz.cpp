// libFuzzer target: arbitrary bytes parsed as a safetensors file. Only lowbit::Error may escape
// the parser; a valid parse must describe tensors that lie inside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "lowbit/io/safetensors.h"
#include "lowbit/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = lowbit::SafetensorsFile::from_memory("fuzz.safetensors",
                                                  std::vector<uint8_t>(data, data + size));
    const uint8_t* begin = f->mapped()->data();
    const uint8_t* end = begin + f->mapped()->size();
    volatile uint8_t sink = 0;
    for (const auto& t : f->tensors()) {
      if (t.nbytes == 0) continue;
      if (t.data < begin || t.data + t.nbytes > end) std::abort();
      if (static_cast<size_t>(t.numel()) * lowbit::dtype_size(t.dtype) != t.nbytes) std::abort();
      sink = sink + t.data[0] + t.data[t.nbytes - 1];  // touch both ends (ASan checks)
      if (f->find(t.name) == nullptr) std::abort();
    }
  } catch (const lowbit::Error&) {
  }
  return 0;
}
