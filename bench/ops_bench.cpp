// Micro-benchmarks of the two machine limits lowbit's forward pass runs against:
//  * fp32 GEMM (OpenBLAS sgemm, C = A * W^T with W row-major [out, in]) at TinyLlama-1.1B shapes,
//    for prefill (M = 512 tokens) and decode (M = 1, a GEMV);
//  * memory read bandwidth over buffers from cache-resident to far beyond the L3.
// Thread count: OMP_NUM_THREADS / OpenBLAS defaults.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <vector>

#include "lowbit/bench/machine_probe.h"

namespace {

void BM_Sgemm(benchmark::State& state) {
  const int m = static_cast<int>(state.range(0));
  const int n = static_cast<int>(state.range(1));
  const int k = static_cast<int>(state.range(2));
  std::vector<float> a(static_cast<size_t>(m) * k, 0.01f), w(static_cast<size_t>(n) * k, 0.02f);
  std::vector<float> c(static_cast<size_t>(m) * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, w.data(), k,
                0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * static_cast<double>(n) * k,
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.counters["GB/s(W)"] = benchmark::Counter(static_cast<double>(w.size()) * sizeof(float),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}
// TinyLlama-1.1B: dim 2048, hidden 5632, kv_dim 256, vocab 32000.
BENCHMARK(BM_Sgemm)
    ->ArgNames({"M", "N", "K"})
    ->Args({512, 2048, 2048})  // q / o projection, prefill
    ->Args({512, 256, 2048})   // k / v projection, prefill
    ->Args({512, 5632, 2048})  // gate / up, prefill
    ->Args({512, 2048, 5632})  // down, prefill
    ->Args({1, 5632, 2048})    // gate / up, decode (GEMV: bandwidth-bound)
    ->Args({1, 32000, 2048})   // lm_head, decode
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ReadBandwidth(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0)) / sizeof(float);
  std::vector<float> data(n, 1.0f);
  for (auto _ : state) benchmark::DoNotOptimize(lowbit::parallel_read_sum(data.data(), n));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(n * sizeof(float)));
}
BENCHMARK(BM_ReadBandwidth)
    ->Arg(256 << 10)  // L2-resident
    ->Arg(16 << 20)   // about L3
    ->Arg(512 << 20)  // memory
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
