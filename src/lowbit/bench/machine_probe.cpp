#include "lowbit/bench/machine_probe.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <new>

#include "lowbit/util/buffer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/simd.h"
#include "lowbit/util/threads.h"

namespace lowbit {
namespace {

void use_threads(int threads) {
  if (threads < 1) fail("threads", "must be >= 1, got {}", threads);
  set_num_threads(threads);
}

using FloatBuffer = std::shared_ptr<float[]>;

// Allocated like model weights (lowbit::alloc_floats: aligned, huge pages when large), first
// touched by the threads that will read it.
FloatBuffer filled_floats(size_t n, float value) {
  FloatBuffer p = lowbit::alloc_floats(n);
  const auto count = static_cast<ptrdiff_t>(n);
  float* d = p.get();
#pragma omp parallel for schedule(static)
  for (ptrdiff_t i = 0; i < count; ++i) d[i] = value;
  return p;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs fn() reps times (after one warm-up) and returns the best wall time in seconds.
template <typename Fn>
double best_time(int reps, Fn&& fn) {
  fn();
  double best = 1e300;
  for (int r = 0; r < std::max(reps, 1); ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// Sums p[0..n) reading four interleaved streams (the four quarters of the range) at once, as
// the GEMV kernels do with four weight rows: a single stream underestimates what the memory
// system delivers.
float sum_range(const float* p, size_t n) {
  float total = 0;
  size_t done = 0;
#if defined(__AVX512F__)
  const size_t q = n / 64 * 16;  // floats per stream, a multiple of 16
  const float* p0 = p;
  const float* p1 = p + q;
  const float* p2 = p + 2 * q;
  const float* p3 = p + 3 * q;
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  for (size_t i = 0; i < q; i += 16) {
    s0 = _mm512_add_ps(s0, _mm512_loadu_ps(p0 + i));
    s1 = _mm512_add_ps(s1, _mm512_loadu_ps(p1 + i));
    s2 = _mm512_add_ps(s2, _mm512_loadu_ps(p2 + i));
    s3 = _mm512_add_ps(s3, _mm512_loadu_ps(p3 + i));
  }
  total = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  done = 4 * q;
#endif
  for (size_t i = done; i < n; ++i) total += p[i];
  return total;
}

volatile float g_sink = 0;  // keeps the probe loops from being optimized away

}  // namespace

float parallel_read_sum(const float* data, size_t n) {
  float total = 0;
#pragma omp parallel reduction(+ : total)
  {
    const size_t nt = static_cast<size_t>(omp_get_num_threads());
    const size_t t = static_cast<size_t>(omp_get_thread_num());
    // Chunks of whole cache lines (16 floats), the last thread takes the tail.
    const size_t lines = n / 16;
    const size_t begin = lines * t / nt * 16;
    const size_t end = (t + 1 == nt) ? n : lines * (t + 1) / nt * 16;
    total += sum_range(data + begin, end - begin);
  }
  return total;
}

BandwidthProbe measure_bandwidth(size_t bytes, int reps, int threads) {
  if (bytes < 3 * 64) fail("bandwidth probe", "buffer of {} bytes is too small", bytes);
  use_threads(threads);
  BandwidthProbe out;
  out.bytes = bytes;
  out.threads = threads;
  const size_t n = bytes / sizeof(float);
  FloatBuffer buf = filled_floats(n, 1.0f);
  const double gb = 1e-9;

  double t_read = best_time(reps, [&] { g_sink = g_sink + parallel_read_sum(buf.get(), n); });
  out.read_gbs = static_cast<double>(n * sizeof(float)) * gb / t_read;

  // Copy and triad over thirds of the same buffer: a, b, c.
  const auto third = static_cast<ptrdiff_t>(n / 3 / 16 * 16);
  float* a = buf.get();
  float* b = a + third;
  float* c = b + third;
  double t_copy = best_time(reps, [&] {
#pragma omp parallel for simd schedule(static)
    for (ptrdiff_t i = 0; i < third; ++i) b[i] = a[i];
  });
  out.copy_gbs = 2.0 * static_cast<double>(third) * sizeof(float) * gb / t_copy;
  const float s = 0.5f;
  double t_triad = best_time(reps, [&] {
#pragma omp parallel for simd schedule(static)
    for (ptrdiff_t i = 0; i < third; ++i) a[i] = b[i] + s * c[i];
  });
  out.triad_gbs = 3.0 * static_cast<double>(third) * sizeof(float) * gb / t_triad;
  g_sink = g_sink + a[0] + b[third - 1];
  return out;
}

GemmProbe measure_sgemm(int m, int n, int k, int reps, int threads) {
  if (m < 1 || n < 1 || k < 1) fail("gemm probe", "bad shape {}x{}x{}", m, n, k);
  use_threads(threads);
  GemmProbe out{m, n, k, threads, 0};
  FloatBuffer A = filled_floats(static_cast<size_t>(m) * k, 0.01f);
  FloatBuffer B = filled_floats(static_cast<size_t>(n) * k, 0.02f);
  FloatBuffer C = filled_floats(static_cast<size_t>(m) * n, 0.0f);
  double t = best_time(reps, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, A.get(), k, B.get(), k,
                0.0f, C.get(), n);
  });
  g_sink = g_sink + C[0];
  out.gflops = 2.0 * m * static_cast<double>(n) * k * 1e-9 / t;
  return out;
}

MachineProbe probe_machine(const ProbeOptions& opt) {
  MachineProbe p;
  p.cpu = cpu_model_name();
  p.bw = measure_bandwidth(opt.bw_bytes, opt.bw_reps, opt.threads);
  p.gemm = measure_sgemm(opt.gemm_m, opt.gemm_n, opt.gemm_k, opt.gemm_reps, opt.threads);
  if (opt.square > 0) {
    p.gemm_square = measure_sgemm(opt.square, opt.square, opt.square, opt.gemm_reps, opt.threads);
  }
  return p;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) return "";
    auto start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "";
}

}  // namespace lowbit
