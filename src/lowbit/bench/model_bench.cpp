#include "lowbit/bench/model_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "lowbit/bench/kernel_bench.h"
#include "lowbit/model/arch.h"
#include "lowbit/model/transformer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/progress.h"
#include "lowbit/util/threads.h"

namespace lowbit {

ParamCounts count_params(const ModelConfig& cfg) {
  // Every tensor role the architecture description says the config has (model/arch.h).
  ParamCounts c;
  auto numel = [&](TensorRole r) {
    int64_t n = 1;
    for (int64_t d : role_shape(r, cfg)) n *= d;
    return n;
  };
  const int64_t layers = cfg.n_layers;
  for (int r = 0; r <= static_cast<int>(TensorRole::kBDown); ++r) {
    const TensorRole role = static_cast<TensorRole>(r);
    if (!tensor_present(role, cfg)) continue;
    const int64_t n = numel(role) * (is_per_layer(role) ? layers : 1);
    switch (role) {
      case TensorRole::kTokEmbeddings:
      case TensorRole::kPosEmbeddings:
        c.embedding += n;
        break;
      case TensorRole::kLmHead:
        break;  // counted below, also when tied
      case TensorRole::kEmbedNorm:
      case TensorRole::kEmbedNormBias:
      case TensorRole::kFinalNorm:
      case TensorRole::kFinalNormBias:
      case TensorRole::kAttnNorm:
      case TensorRole::kAttnNormBias:
      case TensorRole::kFfnNorm:
      case TensorRole::kFfnNormBias:
        c.norms += n;
        break;
      default:
        if (is_linear_weight(role)) {
          c.layer_linear += n;
        } else {
          c.biases += n;
        }
    }
  }
  c.lm_head = numel(TensorRole::kLmHead);
  c.total =
      c.embedding + c.layer_linear + c.biases + c.norms + (cfg.tied_embeddings ? 0 : c.lm_head);
  return c;
}

double forward_flops(const ModelConfig& cfg, int n, int start_pos) {
  if (n <= 0) return 0;
  const ParamCounts c = count_params(cfg);
  // Sum over the n tokens of their causal window length (pos + 1).
  const double first = start_pos + 1.0, last = static_cast<double>(start_pos) + n;
  const double window_sum = (first + last) * n / 2.0;
  const double attn = 4.0 * cfg.n_layers * cfg.n_heads * cfg.head_dim * window_sum;
  return 2.0 * static_cast<double>(c.layer_linear) * n + attn +
         2.0 * static_cast<double>(c.lm_head);
}

double decode_bytes(const ModelConfig& cfg, int pos, int kv_elem_bytes) {
  const ParamCounts c = count_params(cfg);
  const double kv_row = 2.0 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim;
  const double floats =
      static_cast<double>(c.layer_linear + c.biases + c.norms + c.lm_head) + cfg.dim;
  return floats * sizeof(float) + kv_row * (pos + 1.0) * kv_elem_bytes;
}

double mean_decode_bytes(const ModelConfig& cfg, int start_pos, int n, int kv_elem_bytes) {
  if (n <= 0) return 0;
  // decode_bytes is linear in pos: its mean is its value at the mean position.
  const double mid = start_pos + (n - 1) / 2.0;
  const double at0 = decode_bytes(cfg, 0, kv_elem_bytes);
  const double slope = decode_bytes(cfg, 1, kv_elem_bytes) - at0;
  return at0 + slope * mid;
}

Stat make_stat(std::vector<double> samples) {
  Stat s;
  s.samples = std::move(samples);
  if (s.samples.empty()) return s;
  const double n = static_cast<double>(s.samples.size());
  s.mean = std::accumulate(s.samples.begin(), s.samples.end(), 0.0) / n;
  if (s.samples.size() > 1) {
    double ss = 0;
    for (double x : s.samples) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / (n - 1));
  }
  return s;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Run {
  double prefill_s = 0;
  double decode_s = 0;
};

// One repetition from an empty KV cache: prefill all prompt tokens in one call, then decode
// n_gen tokens one call each.
Run run_once(Transformer& model, const std::vector<int>& prompt, const std::vector<int>& gen,
             int n_gen) {
  Run r;
  model.reset();
  if (!prompt.empty()) {
    auto t0 = std::chrono::steady_clock::now();
    model.forward(prompt.data(), static_cast<int>(prompt.size()), false);
    r.prefill_s = seconds_since(t0);
  }
  if (n_gen > 0) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n_gen; ++i) model.forward(&gen[static_cast<size_t>(i)], 1, false);
    r.decode_s = seconds_since(t0);
  }
  return r;
}

}  // namespace

BenchResult run_model_bench(std::shared_ptr<const ModelWeights> weights, const BenchOptions& opt) {
  if (!weights) fail("bench", "no model weights");
  const ModelConfig& cfg = weights->cfg;
  if (opt.n_prompt < 0 || opt.n_gen < 0) fail("bench", "-p and -n must be >= 0");
  if (opt.n_prompt == 0 && opt.n_gen == 0) fail("bench", "nothing to run: -p 0 and -n 0");
  if (opt.reps < 1) fail("bench", "-r must be >= 1, got {}", opt.reps);
  if (opt.threads < 1) fail("bench", "-t must be >= 1, got {}", opt.threads);
  const int64_t ctx = static_cast<int64_t>(opt.n_prompt) + opt.n_gen;
  if (cfg.max_seq_len > 0 && ctx > cfg.max_seq_len) {
    fail("bench", "-p {} + -n {} = {} tokens exceeds the model's context length {}", opt.n_prompt,
         opt.n_gen, ctx, cfg.max_seq_len);
  }
  if (cfg.vocab_size < 1) fail("bench", "model has an empty vocabulary");
  set_num_threads(opt.threads);

  std::mt19937 rng(opt.seed);
  std::uniform_int_distribution<int> pick(0, cfg.vocab_size - 1);
  std::vector<int> prompt(static_cast<size_t>(opt.n_prompt)), gen(static_cast<size_t>(opt.n_gen));
  for (int& t : prompt) t = pick(rng);
  for (int& t : gen) t = pick(rng);

  Transformer model(weights, static_cast<int>(ctx), opt.tf);
  Progress progress("bench", opt.reps + 1);
  // Warm-up: pages the weights in, sizes the scratch buffers, spins up the thread pools.
  run_once(model, prompt, gen, std::min(opt.n_gen, 4));
  progress.add(1, "warm-up");

  std::vector<double> pp, tg;
  for (int r = 0; r < opt.reps; ++r) {
    Run run = run_once(model, prompt, gen, opt.n_gen);
    if (opt.n_prompt > 0) pp.push_back(opt.n_prompt / std::max(run.prefill_s, 1e-12));
    if (opt.n_gen > 0) tg.push_back(opt.n_gen / std::max(run.decode_s, 1e-12));
    progress.add(1);
  }
  progress.finish();
  return BenchResult{make_stat(std::move(pp)), make_stat(std::move(tg))};
}

Efficiency compute_efficiency(const ModelConfig& cfg, const BenchOptions& opt,
                              const BenchResult& res, const MachineProbe& probe,
                              const ModelWeights* weights) {
  Efficiency e;
  if (opt.n_prompt > 0) {
    e.prefill_flops_per_token = forward_flops(cfg, opt.n_prompt, 0) / opt.n_prompt;
    e.prefill_gflops = e.prefill_flops_per_token * res.pp.mean * 1e-9;
    if (probe.gemm.gflops > 0) e.prefill_pct_of_gemm = 100.0 * e.prefill_gflops / probe.gemm.gflops;
  }
  if (opt.n_gen > 0) {
    e.decode_bytes_per_token = mean_decode_bytes(cfg, opt.n_prompt, opt.n_gen,
                                                 static_cast<int>(ops::kv_elem_size(opt.tf.kv)));
    if (weights != nullptr) {
      const ParamCounts c = count_params(cfg);
      e.decode_bytes_per_token +=
          linear_weight_bytes(*weights) - 4.0 * static_cast<double>(c.layer_linear + c.lm_head);
    }
    e.decode_gbs = e.decode_bytes_per_token * res.tg.mean * 1e-9;
    if (probe.bw.read_gbs > 0) {
      e.decode_bound_tps = probe.bw.read_gbs * 1e9 / e.decode_bytes_per_token;
      e.decode_pct_of_bw_bound = 100.0 * res.tg.mean / e.decode_bound_tps;
    }
  }
  return e;
}

}  // namespace lowbit
