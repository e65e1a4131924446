#include "lowbit/kernels/cpu_dispatch.h"

#include <atomic>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <cstdlib>

#include "lowbit/util/error.h"

namespace lowbit::kernels {

namespace {

#if defined(__x86_64__) || defined(__i386__)
// F16C (CPUID.1:ECX bit 29): not every compiler's __builtin_cpu_supports knows its name.
bool has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & (1u << 29)) != 0;
}
#endif

bool cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni") && has_f16c();
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

Isa best_available() {
  Isa best = Isa::kScalar;
  if (isa_available(Isa::kAvx2)) best = Isa::kAvx2;
  if (isa_available(Isa::kAvx512)) best = Isa::kAvx512;
  if (const char* env = std::getenv("LOWBIT_ISA"); env != nullptr && *env != '\0') {
    const Isa cap = parse_isa("LOWBIT_ISA", env);
    if (static_cast<int>(cap) < static_cast<int>(best)) best = cap;
  }
  return best;
}

std::atomic<int>& current() {
  static std::atomic<int> isa{static_cast<int>(best_available())};
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& where, const std::string& name) {
  if (name == "scalar") return Isa::kScalar;
  if (name == "avx2") return Isa::kAvx2;
  if (name == "avx512") return Isa::kAvx512;
  fail(where, "unknown instruction set '{}' (expected avx512, avx2 or scalar)", name);
}

bool isa_available(Isa isa) {
  // Asked on every multiply: CPUID traps to the hypervisor on a VM (microseconds), so the answers
  // are taken once.
  static const bool avx2 = avx2_kernels() != nullptr && cpu_supports(Isa::kAvx2);
  static const bool avx512 = avx512_kernels() != nullptr && cpu_supports(Isa::kAvx512);
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return avx2;
    case Isa::kAvx512:
      return avx512;
  }
  return false;
}

const KernelTable& kernels_for(Isa isa) {
  if (isa == Isa::kAvx512 && isa_available(isa)) return *avx512_kernels();
  if (isa == Isa::kAvx2 && isa_available(isa)) return *avx2_kernels();
  return reference_kernels();
}

Isa active_isa() { return static_cast<Isa>(current().load()); }
const KernelTable& active_kernels() { return kernels_for(active_isa()); }

void set_isa(Isa isa) {
  if (!isa_available(isa)) fail("isa", "{} kernels are not available on this CPU", isa_name(isa));
  current().store(static_cast<int>(isa));
}

}  // namespace lowbit::kernels
