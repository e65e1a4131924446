#include "lowbit/eval/report.h"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>

#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

nlohmann::json plan_json(const WindowPlan& p) {
  return {{"convention", convention_name(p.convention)},
          {"ctx", p.ctx},
          {"text_tokens", p.n_tokens},
          {"windows", p.n_windows},
          {"windows_available", p.n_windows_available},
          {"first_scored_row", p.first_scored},
          {"tokens_scored_per_window", p.n_scored},
          {"tokens_scored", p.tokens_scored()}};
}

nlohmann::json to_json(const PplResult& r) {
  nlohmann::json j = plan_json(r.plan);
  j["ppl"] = r.ppl;
  j["ppl_stderr"] = r.ppl_stderr;
  j["nll_mean"] = r.nll_mean;
  j["nll_stderr"] = r.nll_stderr;
  j["seconds"] = r.seconds;
  return j;
}

nlohmann::json to_json(const KldResult& r) {
  nlohmann::json j = plan_json(r.plan);
  j["kld_mean"] = r.kld_mean;
  j["kld_stderr"] = r.kld_stderr;
  j["kld_median"] = r.kld_median;
  j["kld_p99"] = r.kld_p99;
  j["kld_max"] = r.kld_max;
  j["top1_agreement"] = r.top1_agreement;
  j["base_ppl"] = r.base_ppl;
  j["model_ppl"] = r.model_ppl;
  j["ppl_ratio"] = r.ppl_ratio;
  j["base_nll"] = r.base_nll;
  j["model_nll"] = r.model_nll;
  j["seconds"] = r.seconds;
  return j;
}

nlohmann::json to_json(const LambadaResult& r) {
  return {{"task", "lambada_openai"},
          {"docs", r.n_docs},
          {"correct", r.n_correct},
          {"skipped", r.n_skipped},
          {"accuracy", r.accuracy},
          {"accuracy_stderr", r.accuracy_stderr},
          {"mean_logprob", r.mean_logprob},
          {"ppl", r.ppl},
          {"seconds", r.seconds}};
}

std::string format_plan(const WindowPlan& p) {
  return fmt::format(
      "convention:      {}\n"
      "ctx:             {}\n"
      "text tokens:     {}\n"
      "windows:         {} of {}\n"
      "tokens scored:   {} ({} per window, rows {}..{})\n",
      convention_name(p.convention), p.ctx, p.n_tokens, p.n_windows, p.n_windows_available,
      p.tokens_scored(), p.n_scored, p.first_scored, p.ctx - 2);
}

std::string format_result(const PplResult& r) {
  return format_plan(r.plan) + fmt::format(
                                   "mean NLL:        {:.6f} ± {:.6f} nats/token\n"
                                   "perplexity:      {:.4f} ± {:.4f}\n"
                                   "time:            {:.2f} s\n",
                                   r.nll_mean, r.nll_stderr, r.ppl, r.ppl_stderr, r.seconds);
}

std::string format_result(const KldResult& r) {
  return format_plan(r.plan) + fmt::format(
                                   "KLD mean:        {:.6g} ± {:.3g} nats\n"
                                   "KLD median:      {:.6g}\n"
                                   "KLD 99th pct:    {:.6g}\n"
                                   "KLD max:         {:.6g}\n"
                                   "top-1 agreement: {:.3f} %\n"
                                   "PPL base:        {:.4f}\n"
                                   "PPL model:       {:.4f}\n"
                                   "PPL ratio:       {:.6f}\n"
                                   "time:            {:.2f} s\n",
                                   r.kld_mean, r.kld_stderr, r.kld_median, r.kld_p99, r.kld_max,
                                   r.top1_agreement, r.base_ppl, r.model_ppl, r.ppl_ratio,
                                   r.seconds);
}

std::string format_result(const LambadaResult& r) {
  return fmt::format(
      "task:            lambada_openai\n"
      "documents:       {} (skipped {} without a space)\n"
      "accuracy:        {:.4f} ± {:.4f} ({} correct)\n"
      "perplexity:      {:.4f}\n"
      "time:            {:.2f} s\n",
      r.n_docs, r.n_skipped, r.accuracy, r.accuracy_stderr, r.n_correct, r.ppl, r.seconds);
}

void write_json_file(const std::string& path, const nlohmann::json& j) {
  write_file_atomic(path, j.dump(2) + "\n");
}

}  // namespace lowbit
