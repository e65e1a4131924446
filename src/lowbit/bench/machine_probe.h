// Measured limits of the machine, the yardsticks for the model benchmark:
//  * memory bandwidth (GB/s): decode reads every weight once per token, so read bandwidth over a
//    buffer far larger than the caches bounds tokens/s;
//  * fp32 GEMM rate (GFLOP/s) of OpenBLAS cblas_sgemm: prefill is GEMM-bound.
// All figures are the best of several runs (the least disturbed one), with the given threads.
#pragma once

#include <cstddef>
#include <string>

namespace lowbit {

struct BandwidthProbe {
  size_t bytes = 0;  // buffer size probed
  int threads = 0;
  double read_gbs = 0;   // sum of all floats (AVX-512 loads): bytes read / s
  double copy_gbs = 0;   // b = a over two halves-ish: (read + write) bytes / s, STREAM style
  double triad_gbs = 0;  // a = b + s*c over three thirds: 3 arrays' bytes / s, STREAM style
};

struct GemmProbe {
  int m = 0, n = 0, k = 0;  // C[m,n] = A[m,k] * B[n,k]^T (weights row-major [out, in])
  int threads = 0;
  double gflops = 0;  // 2*m*n*k / best time
};

struct MachineProbe {
  std::string cpu;  // "model name" from /proc/cpuinfo, or "" when unknown
  BandwidthProbe bw;
  GemmProbe gemm;         // the prefill-shaped GEMM (the yardstick for prefill)
  GemmProbe gemm_square;  // a square 2048^3 GEMM, for reference
};

struct ProbeOptions {
  size_t bw_bytes = size_t{1} << 30;  // 1 GiB, far beyond any L3
  int bw_reps = 5;
  int gemm_m = 512, gemm_n = 5632, gemm_k = 2048;  // TinyLlama MLP up-projection, 512 tokens
  int square = 2048;                               // 0 skips the square GEMM
  int gemm_reps = 3;
  int threads = 1;
};

// Sum of n floats, split over the current OpenMP threads (the read-bandwidth kernel).
float parallel_read_sum(const float* data, size_t n);

BandwidthProbe measure_bandwidth(size_t bytes, int reps, int threads);
GemmProbe measure_sgemm(int m, int n, int k, int reps, int threads);
MachineProbe probe_machine(const ProbeOptions& opt);

// "model name" of the first CPU in /proc/cpuinfo ("" when unavailable).
std::string cpu_model_name();

}  // namespace lowbit
