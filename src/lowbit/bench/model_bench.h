// llama-bench-style throughput of the FP32 forward pass: prefill (pp) of n_prompt random tokens
// in one forward call, then decode (tg) of n_gen tokens one at a time after it; each measured
// separately, after a warm-up run, over `reps` repetitions (mean ± sample std of tokens/s).
// Plus the arithmetic that turns tokens/s into efficiency: FLOPs per prefill token against the
// measured GEMM rate, bytes read per decode token against the measured memory bandwidth.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "lowbit/bench/machine_probe.h"
#include "lowbit/model/config.h"
#include "lowbit/model/transformer.h"
#include "lowbit/model/weights.h"

namespace lowbit {

// Parameter counts derived from the config (fp32 as loaded: 4 bytes each).
struct ParamCounts {
  int64_t embedding = 0;     // vocab * embed_dim (+ learned position rows)
  int64_t layer_linear = 0;  // every linear weight but the head (projections incl.), no biases
  int64_t biases = 0;        // the linears' biases, where the family has them
  int64_t norms = 0;         // norm weights and biases
  int64_t lm_head = 0;       // vocab * dim (the same array as the embedding when tied)
  int64_t total = 0;         // distinct parameters: tied lm_head counted once
};
ParamCounts count_params(const ModelConfig& cfg);

// Useful FLOPs of one forward call over n tokens at positions start_pos..start_pos+n-1 returning
// only the last row of logits: 2 * layer_linear per token (multiply + add), attention
// QK^T and AV over the causal window (4 * n_layers * n_heads * head_dim * (pos + 1) per token),
// and the lm_head once (2 * vocab * dim). Norms, RoPE, SiLU and softmax are not counted.
double forward_flops(const ModelConfig& cfg, int n, int start_pos = 0);

// Bytes read from memory to decode one token at position `pos` (the KV cache then holds pos + 1
// tokens): every layer weight, bias and norm, the lm_head, the token's embedding row, and the
// K and V cache rows of all pos + 1 positions (2 * n_layers * n_kv_heads * head_dim * (pos + 1)
// elements of kv_elem_bytes each); weights as fp32.
double decode_bytes(const ModelConfig& cfg, int pos, int kv_elem_bytes = 4);

// Mean of decode_bytes over positions start_pos .. start_pos + n - 1 (n >= 1).
double mean_decode_bytes(const ModelConfig& cfg, int start_pos, int n, int kv_elem_bytes = 4);

struct BenchOptions {
  int n_prompt = 512;  // 0 skips prefill
  int n_gen = 128;     // 0 skips decode
  int reps = 5;
  int threads = 1;
  uint32_t seed = 1234;   // random token ids
  TransformerOptions tf;  // KV cache type
};

struct Stat {
  std::vector<double> samples;  // tokens/s of each repetition
  double mean = 0;
  double std = 0;  // sample standard deviation (0 for one sample)
};
Stat make_stat(std::vector<double> samples);

struct BenchResult {
  Stat pp;  // prefill tokens/s (empty when n_prompt == 0)
  Stat tg;  // decode tokens/s (empty when n_gen == 0)
};

// Runs the benchmark on `weights` (sets OpenMP/OpenBLAS threads). Throws Error when
// n_prompt + n_gen exceeds the model's context length or an option is out of range.
BenchResult run_model_bench(std::shared_ptr<const ModelWeights> weights, const BenchOptions& opt);

struct Efficiency {
  double prefill_flops_per_token = 0;
  double prefill_gflops = 0;          // achieved: flops per token * pp tokens/s
  double prefill_pct_of_gemm = 0;     // achieved / measured sgemm GFLOP/s * 100
  double decode_bytes_per_token = 0;  // mean over the decoded positions
  double decode_gbs = 0;              // achieved: bytes per token * tg tokens/s
  double decode_bound_tps = 0;        // measured read bandwidth / bytes per token
  double decode_pct_of_bw_bound = 0;  // tg tokens/s / bound * 100
};
// weights: when given, decode bytes count the linear weights as held in memory (quantized,
// bf16 or fp32: linear_weight_bytes) instead of 4 bytes per parameter.
Efficiency compute_efficiency(const ModelConfig& cfg, const BenchOptions& opt,
                              const BenchResult& res, const MachineProbe& probe,
                              const ModelWeights* weights = nullptr);

}  // namespace lowbit
