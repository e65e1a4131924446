// Perplexity of a model over a tokenized text, in the GPTQ or llama.cpp convention (windows.h).
// PPL = exp(mean NLL) over every scored prediction, NLL = logsumexp(logits) - logit[target].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/eval/windows.h"

namespace lowbit {

class Transformer;
struct ModelConfig;

// Throws Error("<where>: ctx N exceeds the model's maximum context M") when ctx is too long.
void check_ctx(const ModelConfig& cfg, int ctx, const std::string& where);

// The default --ctx: the model's max_seq_len capped at 2048.
int default_ctx(const ModelConfig& cfg);

// Throws Error when one of the first n tokens is not in [0, vocab) (tokenizer/model mismatch).
void check_token_range(const std::vector<int>& tokens, int64_t n, int vocab);

struct PplResult {
  WindowPlan plan;
  double nll_mean = 0;    // nats per scored token
  double nll_stderr = 0;  // standard error of nll_mean
  double ppl = 0;         // exp(nll_mean)
  double ppl_stderr = 0;  // ppl * nll_stderr (first order)
  double seconds = 0;
};

// Evaluates plan.n_windows windows of `tokens` (see windows.h). `model` must hold a KV cache of at
// least plan.ctx tokens; its cache is reset for every window. Shows a Progress bar labelled
// `label` on stderr.
PplResult perplexity(Transformer& model, const std::vector<int>& tokens, const WindowPlan& plan,
                     int bos_id, const std::string& label = "ppl");

}  // namespace lowbit
