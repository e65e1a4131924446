// Runtime choice of the kernel table: the best instruction set this CPU runs (AVX-512 VNNI, then
// AVX2, then the scalar reference), so one binary runs on any x86-64. The environment variable
// LOWBIT_ISA=avx512|avx2|scalar (or set_isa) caps the choice, e.g. to measure or test a lower one.
#pragma once

#include <string>

#include "lowbit/kernels/kernel_table.h"

namespace lowbit::kernels {

enum class Isa { kScalar, kAvx2, kAvx512 };

const char* isa_name(Isa isa);
Isa parse_isa(const std::string& where, const std::string& name);  // throws Error
// Compiled in and supported by this CPU.
bool isa_available(Isa isa);
// The table of `isa`; the reference table when it is not available.
const KernelTable& kernels_for(Isa isa);
// The table in use: the best available, capped by LOWBIT_ISA / set_isa.
Isa active_isa();
const KernelTable& active_kernels();
void set_isa(Isa isa);  // throws Error when not available

}  // namespace lowbit::kernels
