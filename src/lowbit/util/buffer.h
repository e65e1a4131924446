// Large float buffers for weights: 64-byte aligned, and on 2 MiB boundaries with transparent huge
// pages requested when big, so that streaming them in decode is not slowed by TLB misses.
#pragma once

#include <cstddef>
#include <memory>

namespace lowbit {

std::shared_ptr<float[]> alloc_floats(size_t n);

}  // namespace lowbit
