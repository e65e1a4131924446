#include "lowbit/eval/kld.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "lowbit/eval/logprobs.h"
#include "lowbit/eval/perplexity.h"
#include "lowbit/model/transformer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/progress.h"

namespace lowbit {

double percentile(std::vector<double>* v, double q) {
  if (v->empty()) return 0.0;
  std::sort(v->begin(), v->end());
  const double pos = std::clamp(q, 0.0, 100.0) / 100.0 * static_cast<double>(v->size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v->size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return (*v)[lo] + frac * ((*v)[hi] - (*v)[lo]);
}

KldResult kl_divergence(Transformer& base, Transformer& model, const std::vector<int>& tokens,
                        const WindowPlan& plan, int bos_id, const std::string& label) {
  const int vocab = base.config().vocab_size;
  if (model.config().vocab_size != vocab)
    fail("kld", "the models' vocabularies differ: base has {} tokens, model has {}", vocab,
         model.config().vocab_size);
  if (plan.ctx > base.max_ctx() || plan.ctx > model.max_ctx())
    fail("kld", "ctx {} exceeds a model's KV cache length", plan.ctx);
  check_token_range(tokens, plan.n_windows * plan.ctx, vocab);
  const auto start = std::chrono::steady_clock::now();

  // Only the scored rows of the current window's base logits are kept.
  std::vector<float> base_rows(static_cast<size_t>(plan.n_scored) * vocab);
  std::vector<double> logp, logq, klds;
  klds.reserve(static_cast<size_t>(plan.tokens_scored()));
  MeanStats kl, nll_base, nll_model;
  int64_t agree = 0;
  Progress progress(label, plan.n_windows);
  for (int64_t w = 0; w < plan.n_windows; ++w) {
    const std::vector<int> win = window_tokens(plan, tokens, w, bos_id);
    const size_t first = static_cast<size_t>(plan.first_scored) * vocab;
    base.reset();
    const float* lb = base.forward(win.data(), plan.ctx, /*all_logits=*/true);
    std::memcpy(base_rows.data(), lb + first, base_rows.size() * sizeof(float));
    model.reset();
    const float* lm = model.forward(win.data(), plan.ctx, /*all_logits=*/true) + first;
    for (int k = 0; k < plan.n_scored; ++k) {
      const float* pb = base_rows.data() + static_cast<size_t>(k) * vocab;
      const float* pm = lm + static_cast<size_t>(k) * vocab;
      const int target = win[plan.first_scored + k + 1];
      log_softmax(pb, vocab, &logp);
      log_softmax(pm, vocab, &logq);
      const double d = kl_divergence_rows(logp, logq);
      kl.add(d);
      klds.push_back(d);
      nll_base.add(-logp[target]);
      nll_model.add(-logq[target]);
      agree += argmax(pb, vocab) == argmax(pm, vocab) ? 1 : 0;
    }
    progress.update(w + 1, fmt::format("kld {:.5f}", kl.mean()));
  }
  progress.finish();

  KldResult r;
  r.plan = plan;
  r.kld_mean = kl.mean();
  r.kld_stderr = kl.stderr_mean();
  r.kld_median = percentile(&klds, 50.0);
  r.kld_p99 = percentile(&klds, 99.0);
  r.kld_max = klds.empty() ? 0.0 : klds.back();
  r.top1_agreement = kl.n > 0 ? 100.0 * static_cast<double>(agree) / static_cast<double>(kl.n) : 0;
  r.base_nll = nll_base.mean();
  r.model_nll = nll_model.mean();
  r.base_ppl = std::exp(r.base_nll);
  r.model_ppl = std::exp(r.model_nll);
  r.ppl_ratio = r.model_ppl / r.base_ppl;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace lowbit
