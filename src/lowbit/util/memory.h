// How much memory a request may use, checked before allocating it: a hostile size (a context of
// 16M tokens, a 100 MB JSON header) gets a one-line error instead of growing until the kernel
// kills the process.
#pragma once

#include <cstdint>
#include <string>

namespace lowbit {

// Bytes this process can still allocate: MemAvailable of /proc/meminfo (what the process holds
// already is in use and not counted), lowered to the cgroup v2 limit (memory.max −
// memory.current) when one is set. LOWBIT_MEMORY_LIMIT (bytes, or with a K/M/G suffix) overrides
// it, for tests and for users who want a tighter bound.
uint64_t available_memory_bytes();

// What one request may take: available_memory_bytes() less a tenth of it (at least 256 MiB) kept
// as headroom for everything else (with LOWBIT_MEMORY_LIMIT: the limit itself).
uint64_t usable_memory_bytes();

// Throws Error("<where>: <what> needs <X> but only <Y> of memory is available") when `bytes` is
// more than usable_memory_bytes().
void require_memory(const std::string& where, const std::string& what, uint64_t bytes);

// "1.5 GiB", "320.0 MiB", "512 bytes".
std::string format_bytes(uint64_t bytes);

}  // namespace lowbit
