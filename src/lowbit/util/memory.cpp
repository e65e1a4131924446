#include "lowbit/util/memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "lowbit/util/error.h"

namespace lowbit {

namespace {

// The first number of a one-line file such as memory.max ("max" or unreadable: 0).
uint64_t read_number(const char* path) {
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return 0;
  unsigned long long v = 0;
  const int n = std::fscanf(f, "%llu", &v);
  std::fclose(f);
  return n == 1 ? v : 0;
}

uint64_t mem_available_kib() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long long v = 0;
    if (std::sscanf(line, "MemAvailable: %llu kB", &v) == 1) {
      kib = v;
      break;
    }
  }
  std::fclose(f);
  return kib;
}

// LOWBIT_MEMORY_LIMIT: "123", "64K", "512M", "2G"; 0 when unset or malformed.
uint64_t env_limit() {
  const char* s = std::getenv("LOWBIT_MEMORY_LIMIT");
  if (s == nullptr || *s == '\0') return 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  uint64_t mul = 1;
  if (end != nullptr && *end != '\0') {
    switch (*end) {
      case 'K':
      case 'k':
        mul = uint64_t{1} << 10;
        break;
      case 'M':
      case 'm':
        mul = uint64_t{1} << 20;
        break;
      case 'G':
      case 'g':
        mul = uint64_t{1} << 30;
        break;
      default:
        return 0;
    }
  }
  return v * mul;
}

}  // namespace

uint64_t available_memory_bytes() {
  if (const uint64_t lim = env_limit(); lim > 0) return lim;
  uint64_t avail = mem_available_kib() * 1024;
  const uint64_t max = read_number("/sys/fs/cgroup/memory.max");
  if (max > 0) {
    const uint64_t cur = read_number("/sys/fs/cgroup/memory.current");
    const uint64_t left = max > cur ? max - cur : 0;
    if (avail == 0 || left < avail) avail = left;
  }
  // Unknown (no /proc): do not refuse anything.
  return avail == 0 ? UINT64_MAX : avail;
}

uint64_t usable_memory_bytes() {
  const uint64_t avail = available_memory_bytes();
  if (avail == UINT64_MAX || std::getenv("LOWBIT_MEMORY_LIMIT") != nullptr) return avail;
  // Headroom for the rest of the process (weights, buffers not counted by the request) and the
  // system: a request that would take the last tenth of the memory is refused.
  const uint64_t keep = std::max<uint64_t>(avail / 10, uint64_t{256} << 20);
  return avail > keep ? avail - keep : 0;
}

std::string format_bytes(uint64_t n) {
  if (n >= (uint64_t{1} << 40))
    return fmt::format("{:.1f} TiB", double(n) / double(uint64_t{1} << 40));
  if (n >= (uint64_t{1} << 30))
    return fmt::format("{:.1f} GiB", double(n) / double(uint64_t{1} << 30));
  if (n >= (uint64_t{1} << 20))
    return fmt::format("{:.1f} MiB", double(n) / double(uint64_t{1} << 20));
  if (n >= (uint64_t{1} << 10))
    return fmt::format("{:.1f} KiB", double(n) / double(uint64_t{1} << 10));
  return fmt::format("{} bytes", n);
}

void require_memory(const std::string& where, const std::string& what, uint64_t bytes) {
  const uint64_t avail = usable_memory_bytes();
  if (bytes > avail) {
    fail(where, "{} needs {} but only {} of memory is available", what, format_bytes(bytes),
         format_bytes(avail));
  }
}

}  // namespace lowbit
