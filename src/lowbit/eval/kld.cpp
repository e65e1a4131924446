#include "lowbit/eval/kld.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "lowbit/eval/logprobs.h"
#include "lowbit/eval/perplexity.h"
#include "lowbit/eval/window_runner.h"
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

  // Per-window results, merged in window order (the result does not depend on the threads).
  struct WindowResult {
    std::vector<double> kl, nll_base, nll_model;
    int64_t agree = 0;
  };
  std::vector<WindowResult> per(static_cast<size_t>(plan.n_windows));
  MeanStats shown;  // windows finished so far, for the progress bar
  int64_t finished = 0;
  Progress progress(label, plan.n_windows);
  auto score = [&](const std::vector<Transformer*>& m, int64_t w) {
    const std::vector<int> win = window_tokens(plan, tokens, w, bos_id);
    const size_t first = static_cast<size_t>(plan.first_scored) * vocab;
    // Only the scored rows of the base logits are kept.
    m[0]->reset();
    const float* lb = m[0]->forward(win.data(), plan.ctx, /*all_logits=*/true);
    std::vector<float> base_rows(lb + first,
                                 lb + first + static_cast<size_t>(plan.n_scored) * vocab);
    m[1]->reset();
    const float* lm = m[1]->forward(win.data(), plan.ctx, /*all_logits=*/true) + first;
    std::vector<double> logp, logq;
    WindowResult& r = per[static_cast<size_t>(w)];
    for (int k = 0; k < plan.n_scored; ++k) {
      const float* pb = base_rows.data() + static_cast<size_t>(k) * vocab;
      const float* pm = lm + static_cast<size_t>(k) * vocab;
      const int target = win[plan.first_scored + k + 1];
      log_softmax(pb, vocab, &logp);
      log_softmax(pm, vocab, &logq);
      r.kl.push_back(kl_divergence_rows(logp, logq));
      r.nll_base.push_back(-logp[target]);
      r.nll_model.push_back(-logq[target]);
      r.agree += argmax(pb, vocab) == argmax(pm, vocab) ? 1 : 0;
    }
  };
  for_each_window({&base, &model}, plan.n_windows, score, [&](int64_t w) {
    for (double v : per[static_cast<size_t>(w)].kl) shown.add(v);
    progress.update(++finished, fmt::format("kld {:.5f}", shown.mean()));
  });
  progress.finish();
  MeanStats kl, nll_base, nll_model;
  std::vector<double> klds;
  klds.reserve(static_cast<size_t>(plan.tokens_scored()));
  int64_t agree = 0;
  for (const WindowResult& r : per) {
    for (size_t k = 0; k < r.kl.size(); ++k) {
      kl.add(r.kl[k]);
      klds.push_back(r.kl[k]);
      nll_base.add(r.nll_base[k]);
      nll_model.add(r.nll_model[k]);
    }
    agree += r.agree;
  }
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
