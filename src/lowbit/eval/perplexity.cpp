#include "lowbit/eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "lowbit/eval/logprobs.h"
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
  MeanStats nll;
  Progress progress(label, plan.n_windows);
  for (int64_t w = 0; w < plan.n_windows; ++w) {
    const std::vector<int> win = window_tokens(plan, tokens, w, bos_id);
    model.reset();
    const float* logits = model.forward(win.data(), plan.ctx, /*all_logits=*/true);
    for (int i = plan.first_scored; i <= plan.ctx - 2; ++i) {
      const float* row = logits + static_cast<size_t>(i) * vocab;
      const int target = win[i + 1];
      nll.add(log_sum_exp(row, vocab) - row[target]);
    }
    progress.update(w + 1, fmt::format("ppl {:.4f}", std::exp(nll.mean())));
  }
  progress.finish();
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
