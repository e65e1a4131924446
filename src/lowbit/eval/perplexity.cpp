#include "lowbit/eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "lowbit/eval/logprobs.h"
#include "lowbit/eval/window_runner.h"
#include "lowbit/model/transformer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/progress.h"

namespace lowbit {

void check_ctx(const ModelConfig& cfg, int ctx, const std::string& where) {
  if (ctx > cfg.max_seq_len)
    fail(where, "ctx {} exceeds the model's maximum context {}", ctx, cfg.max_seq_len);
  if (ctx < 1) fail(where, "ctx {} must be positive", ctx);
}

int default_ctx(const ModelConfig& cfg) { return std::min(cfg.max_seq_len, 2048); }

void check_token_range(const std::vector<int>& tokens, int64_t n, int vocab) {
  n = std::min<int64_t>(n, static_cast<int64_t>(tokens.size()));
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      fail("text", "token id {} at position {} is outside the model's vocabulary of {}", tokens[i],
           i, vocab);
}

PplResult perplexity(Transformer& model, const std::vector<int>& tokens, const WindowPlan& plan,
                     int bos_id, const std::string& label) {
  if (plan.ctx > model.max_ctx())
    fail("perplexity", "ctx {} exceeds the KV cache length {}", plan.ctx, model.max_ctx());
  const int vocab = model.config().vocab_size;
  check_token_range(tokens, plan.n_windows * plan.ctx, vocab);
  const auto start = std::chrono::steady_clock::now();
  // NLLs per window, merged in window order (the result does not depend on the threads).
  std::vector<std::vector<double>> nlls(static_cast<size_t>(plan.n_windows));
  MeanStats shown;  // windows finished so far, for the progress bar
  int64_t finished = 0;
  Progress progress(label, plan.n_windows);
  auto score = [&](const std::vector<Transformer*>& m, int64_t w) {
    const std::vector<int> win = window_tokens(plan, tokens, w, bos_id);
    m[0]->reset();
    const float* logits = m[0]->forward(win.data(), plan.ctx, /*all_logits=*/true);
    std::vector<double>& out = nlls[static_cast<size_t>(w)];
    for (int i = plan.first_scored; i <= plan.ctx - 2; ++i) {
      const float* row = logits + static_cast<size_t>(i) * vocab;
      out.push_back(log_sum_exp(row, vocab) - row[win[i + 1]]);
    }
  };
  for_each_window({&model}, plan.n_windows, score, [&](int64_t w) {
    for (double v : nlls[static_cast<size_t>(w)]) shown.add(v);
    progress.update(++finished, fmt::format("ppl {:.4f}", std::exp(shown.mean())));
  });
  progress.finish();
  MeanStats nll;
  for (const auto& v : nlls)
    for (double x : v) nll.add(x);
  PplResult r;
  r.plan = plan;
  r.nll_mean = nll.mean();
  r.nll_stderr = nll.stderr_mean();
  r.ppl = std::exp(r.nll_mean);
  r.ppl_stderr = r.ppl * r.nll_stderr;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace lowbit
