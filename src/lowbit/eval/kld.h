// KL divergence of a model's next-token distributions from a base model's, over the same windows
// and scored positions as perplexity (windows.h). At every scored position t:
//   KLD_t = sum_j P_base(j) * (log P_base(j) - log P_model(j))   (full softmax, nats)
// Reported: mean (± standard error), median, 99th percentile and max of KLD_t; top-1 agreement
// (% of positions where both argmaxes are equal); the PPL of each model and their ratio.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/eval/windows.h"

namespace lowbit {

class Transformer;

struct KldResult {
  WindowPlan plan;
  double kld_mean = 0, kld_stderr = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
  double top1_agreement = 0;  // percent
  double base_nll = 0, model_nll = 0;
  double base_ppl = 0, model_ppl = 0, ppl_ratio = 0;  // ratio = model_ppl / base_ppl
  double seconds = 0;
};

// Percentile q in [0, 100] of `v` by linear interpolation between order statistics (numpy's
// default). `v` is sorted in place. Returns 0 for an empty vector.
double percentile(std::vector<double>* v, double q);

// Both models must have the same vocabulary size (Error otherwise) and KV caches of >= plan.ctx.
KldResult kl_divergence(Transformer& base, Transformer& model, const std::vector<int>& tokens,
                        const WindowPlan& plan, int bos_id, const std::string& label = "kld");

}  // namespace lowbit
