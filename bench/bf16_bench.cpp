// bf16 × bf16 GEMM at TinyLlama-1.1B prefill shapes, C = A · Wᵀ (A [M, K] activations, W [N, K]
// weights, fp32 C): lowbit's AVX512-BF16 kernel (kernels::gemm_bf16 of the active table, one
// thread per half of W's rows as packed_matmul runs it) against OpenBLAS's cblas_sbgemm and fp32
// cblas_sgemm on the same values. docs/RUNTIME.md quotes the result.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <vector>

#include "lowbit/kernels/cpu_dispatch.h"
#include "lowbit/util/half.h"

namespace {

struct Operands {
  int m, n, k;
  size_t ld;  // row stride of both operands (k, or k + 32: rows not 4 KiB apart)
  std::vector<uint16_t> a, w;
  std::vector<float> af, wf, c;
  Operands(int m_, int n_, int k_, int pad = 0) : m(m_), n(n_), k(k_), ld(k_ + pad) {
    a.resize(static_cast<size_t>(m) * ld);
    w.resize(static_cast<size_t>(n) * ld);
    for (size_t i = 0; i < a.size(); ++i)
      a[i] = lowbit::f32_to_bf16(0.01f * static_cast<float>(i % 97));
    for (size_t i = 0; i < w.size(); ++i)
      w[i] = lowbit::f32_to_bf16(0.02f * static_cast<float>(i % 89));
    af.resize(a.size());
    wf.resize(w.size());
    lowbit::bf16_to_f32_n(a.data(), af.data(), a.size());
    lowbit::bf16_to_f32_n(w.data(), wf.data(), w.size());
    c.resize(static_cast<size_t>(m) * n);
  }
};

void counters(benchmark::State& state, const Operands& o) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * o.m * static_cast<double>(o.n) * o.k,
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

void BM_LowbitBf16(benchmark::State& state) {
  Operands o(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)),
             static_cast<int>(state.range(2)), static_cast<int>(state.range(3)));
  const lowbit::kernels::Bf16GemmFn gemm = lowbit::kernels::active_kernels().gemm_bf16;
  if (gemm == nullptr) {
    state.SkipWithError("no AVX512-BF16 on this CPU");
    return;
  }
  for (auto _ : state) {
#pragma omp parallel
    {
      const int nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int j0 = o.n * t / nt, j1 = o.n * (t + 1) / nt;
      gemm(o.m, j1 - j0, o.k, o.a.data(), o.ld, o.w.data() + static_cast<size_t>(j0) * o.ld, o.ld,
           o.c.data() + j0, o.n, false);
    }
    benchmark::DoNotOptimize(o.c.data());
  }
  counters(state, o);
}

void BM_OpenblasSgemm(benchmark::State& state) {
  Operands o(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)),
             static_cast<int>(state.range(2)));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, o.m, o.n, o.k, 1.0f, o.af.data(), o.k,
                o.wf.data(), o.k, 0.0f, o.c.data(), o.n);
    benchmark::DoNotOptimize(o.c.data());
  }
  counters(state, o);
}

#define SHAPES                                          \
  ArgNames({"M", "N", "K"})                             \
      ->Args({512, 2048, 2048}) /* q / o, prefill */    \
      ->Args({512, 5632, 2048}) /* gate / up */         \
      ->Args({512, 2048, 5632}) /* down */              \
      ->Args({1, 5632, 2048})   /* gate / up, decode */ \
      ->UseRealTime()

// PAD: 0 = rows exactly K apart (4 KiB for K = 2048: every row in the same L1 set), 32 = padded.
BENCHMARK(BM_LowbitBf16)
    ->ArgNames({"M", "N", "K", "PAD"})
    ->Args({512, 2048, 2048, 0})
    ->Args({512, 2048, 2048, 32})
    ->Args({512, 5632, 2048, 0})
    ->Args({512, 5632, 2048, 32})
    ->Args({512, 2048, 5632, 0})
    ->Args({1, 5632, 2048, 0})
    ->Args({1, 5632, 2048, 32})
    ->UseRealTime();
BENCHMARK(BM_OpenblasSgemm)->SHAPES;

}  // namespace

BENCHMARK_MAIN();
