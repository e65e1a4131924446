// One knob for every thread pool lowbit uses: OpenMP regions and OpenBLAS (0 = all cores).
#pragma once

namespace lowbit {
void set_num_threads(int n);
int num_threads();
}  // namespace lowbit
