// Runs an evaluation's windows: one after another on the caller's models (each forward pass
// spread over the threads), or, for small models, one window per thread on replicas that share
// the models' weights.
//
// A small model's forward pass over one window is too short to split across threads: every op
// ends at a barrier, and with 128-wide rows the barriers cost as much as the arithmetic
// (docs/PERFORMANCE.md, "Small models"). Windows are independent (each starts from an empty KV
// cache), so running whole windows in parallel has no barrier at all. Results do not depend on
// the choice: a window's logits are computed by the same single-window code either way, and
// callers merge per-window results in window order.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace lowbit {

class Transformer;

// Threads that window-level parallelism would use for these models (1 = run windows one after
// another): the threads in use (util/threads.h) when every model is small (hidden size ≤ 512) and
// there are at least two windows per thread. LOWBIT_WINDOW_THREADS=0 forces 1.
int window_threads(const std::vector<Transformer*>& models, int64_t n_windows);

// Calls score(models, w) for every window w in [0, n_windows), with `models` the caller's models
// or one thread's replicas of them (same weights, KV type and context). done(w) runs after window
// w, one call at a time (for progress). score must touch only per-window state. The first Error (or
// other exception) thrown by score stops the run and is rethrown here. threads > 0 overrides
// window_threads() (tests).
using WindowScoreFn = std::function<void(const std::vector<Transformer*>& models, int64_t w)>;
void for_each_window(const std::vector<Transformer*>& models, int64_t n_windows,
                     const WindowScoreFn& score, const std::function<void(int64_t w)>& done,
                     int threads = 0);

}  // namespace lowbit
