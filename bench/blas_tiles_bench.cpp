// The price of thread-independent products (kernels/blas.h): lowbit's fixed-tile sgemm against
// one multi-threaded OpenBLAS call on the same operands. Each benchmark iteration runs both,
// alternating which goes first, so that the machine's noise falls on both alike; the counters are
// the medians over the iterations: GFLOP/s of each and the time ratio tiled / OpenBLAS (< 1: the
// tiles are faster). Threads follow OMP_NUM_THREADS. Shapes: TinyLlama-1.1B projections at
// prefill (512 and 128 rows) and a small one, its lm_head over 2048 rows, attention per head.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "lowbit/kernels/blas.h"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void BM_TiledVsOpenBlas(benchmark::State& state) {
  const int m = static_cast<int>(state.range(0));
  const int n = static_cast<int>(state.range(1));
  const int k = static_cast<int>(state.range(2));
  std::vector<float> a(static_cast<size_t>(m) * k, 0.01f), w(static_cast<size_t>(n) * k, 0.02f);
  std::vector<float> c(static_cast<size_t>(m) * n);
  using Clock = std::chrono::steady_clock;
  auto time = [](auto f) {
    const auto t0 = Clock::now();
    f();
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  auto openblas = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, w.data(), k,
                0.0f, c.data(), n);
  };
  auto tiled = [&] {
    lowbit::kernels::sgemm(false, true, m, n, k, 1.0f, a.data(), k, w.data(), k, 0.0f, c.data(), n);
  };
  std::vector<double> t_blas, t_tiled;
  bool blas_first = true;
  for (auto _ : state) {
    if (blas_first) {
      t_blas.push_back(time(openblas));
      t_tiled.push_back(time(tiled));
    } else {
      t_tiled.push_back(time(tiled));
      t_blas.push_back(time(openblas));
    }
    blas_first = !blas_first;
    benchmark::DoNotOptimize(c.data());
  }
  const double flops = 2.0 * m * static_cast<double>(n) * k;
  state.counters["openblas_GFLOP/s"] = flops / median(t_blas) / 1e9;
  state.counters["tiled_GFLOP/s"] = flops / median(t_tiled) / 1e9;
  state.counters["ratio"] = median(t_tiled) / median(t_blas);
}
BENCHMARK(BM_TiledVsOpenBlas)
    ->ArgNames({"M", "N", "K"})
    ->Args({512, 2048, 2048})    // q / o projection
    ->Args({512, 5632, 2048})    // gate / up
    ->Args({512, 2048, 5632})    // down
    ->Args({128, 2048, 2048})    // a short prompt
    ->Args({16, 2048, 2048})     // a few tokens
    ->Args({2048, 32000, 2048})  // lm_head over an eval window
    ->Args({512, 512, 64})       // attention scores, one head
    ->Args({512, 64, 512})       // attention output, one head
    ->MinTime(2.0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
