#include "lowbit/eval/window_runner.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>

#include "lowbit/model/transformer.h"
#include "lowbit/util/threads.h"

namespace lowbit {

namespace {
constexpr int kSmallDim = 512;
}

int window_threads(const std::vector<Transformer*>& models, int64_t n_windows) {
  const char* env = std::getenv("LOWBIT_WINDOW_THREADS");
  if (env != nullptr && std::strcmp(env, "0") == 0) return 1;
  for (const Transformer* m : models)
    if (m->config().dim > kSmallDim || m->config().embed_dim() > kSmallDim) return 1;
  adapt_threads();
  const int t = num_threads();
  return t > 1 && n_windows >= 2 * static_cast<int64_t>(t) ? t : 1;
}

void for_each_window(const std::vector<Transformer*>& models, int64_t n_windows,
                     const WindowScoreFn& score, const std::function<void(int64_t w)>& done,
                     int threads) {
  if (threads <= 0) threads = window_threads(models, n_windows);
  if (threads == 1) {
    for (int64_t w = 0; w < n_windows; ++w) {
      score(models, w);
      done(w);
    }
    return;
  }
  // Thread 0 uses the caller's models; the others get replicas (built here, on this thread, so
  // that a failed allocation is an ordinary Error).
  std::vector<std::vector<Transformer*>> sets(static_cast<size_t>(threads), models);
  std::vector<std::unique_ptr<Transformer>> replicas;
  for (int t = 1; t < threads; ++t) {
    for (size_t i = 0; i < models.size(); ++i) {
      replicas.push_back(std::make_unique<Transformer>(models[i]->weights(), models[i]->max_ctx(),
                                                       models[i]->options()));
      sets[static_cast<size_t>(t)][i] = replicas.back().get();
    }
  }
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    const std::vector<Transformer*>& mine = sets[static_cast<size_t>(omp_get_thread_num())];
    while (!failed.load()) {
      const int64_t w = next.fetch_add(1);
      if (w >= n_windows) break;
      try {
        score(mine, w);
#pragma omp critical(lowbit_window_done)
        done(w);
      } catch (...) {
#pragma omp critical(lowbit_window_error)
        if (!error) error = std::current_exception();
        failed.store(true);
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace lowbit
