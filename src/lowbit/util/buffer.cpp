#include "lowbit/util/buffer.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

namespace lowbit {

std::shared_ptr<float[]> alloc_floats(size_t n) {
  const size_t huge = size_t{2} << 20;
  size_t bytes = (n > 0 ? n : 1) * sizeof(float);
  const size_t align = bytes >= huge ? huge : 64;
  bytes = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, bytes);
  if (p == nullptr) throw std::bad_alloc();
  if (align == huge) madvise(p, bytes, MADV_HUGEPAGE);
  return std::shared_ptr<float[]>(static_cast<float*>(p), [](float* q) { std::free(q); });
}

}  // namespace lowbit
