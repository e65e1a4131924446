// One knob for every thread pool lowbit uses: OpenMP regions and OpenBLAS.
//
// Threads that must all finish a parallel region before the next one starts collapse when another
// program holds one of the cores: the region waits for the thread that the scheduler parked, one
// time slice per region, hundreds of regions per token (a 2-thread eval on a 2-core machine with
// one busy core ran 36x slower than 1 thread). So lowbit watches how busy the CPUs it may use are
// (other processes' share of /proc/stat, over windows of 50 ms) and runs only as many threads as
// there are cores left to it, never more than asked; when the other load goes away, it goes back
// up. docs/PERFORMANCE.md ("Threads on a busy machine") has the measurements behind this choice;
// LOWBIT_ADAPTIVE_THREADS=0 turns it off. Only the CPUs of the affinity mask are watched: a
// container limited by a cgroup CPU quota rather than a mask is not detected.
#pragma once

namespace lowbit {

// The number of threads asked for (0 = all cores this process may run on).
void set_num_threads(int n);
// Threads in use now (≤ what was asked).
int num_threads();
// Re-checks the load (at most every 50 ms; a few microseconds otherwise) and adjusts the threads
// in use. Called at the start of each forward pass and in the quantization loops; does nothing
// inside a parallel region or when adaptation is off.
void adapt_threads();
// How many times adapt_threads() ran fewer threads than asked (a busy machine), for reports.
int threads_lowered_count();

// The rule itself: threads to run on `allowed` cores when `wanted` are asked for and other
// programs kept `others` cores busy (CPU-seconds per second) over the last window. A core that
// others use for more than a third of the time counts as taken.
int threads_for_load(int allowed, int wanted, double others);

}  // namespace lowbit
