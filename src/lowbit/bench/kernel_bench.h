// Per linear-layer shape throughput of the kernels that run a loaded model: for each linear role
// of a decoder layer (q, k, v, o, gate, up, down) and the lm_head, the time of y = x · Wᵀ for one
// row (decode) and for a prefill-sized batch, as GB/s of weight bytes read and GOP/s (2·m·out·in
// operations per call). Decode passes run over that role's weights in every layer in turn, so
// the weights come from memory, not from the caches, as in a real decode.
#pragma once

#include <string>
#include <vector>

#include "lowbit/model/weights.h"

namespace lowbit {

struct KernelBenchOptions {
  int m_prefill = 512;       // rows of the prefill-sized batch (0: decode only)
  double min_seconds = 0.3;  // per measurement (repeat passes until at least this long)
  bool both_modes = true;    // quantized weights: measure int8 and fp32 activations
  int threads = 1;
};

struct KernelBenchRow {
  std::string role;  // "q_proj", ..., "lm_head"
  int out = 0, in = 0;
  int layers = 0;      // weights of this role visited per pass
  std::string format;  // "int4 g128 (f16 scales)", "bf16", "fp32"
  std::string act;     // activations: "int8", "f32"
  int m = 1;
  double seconds = 0;       // per call (one weight)
  double gbs = 0;           // weight bytes / seconds
  double gops = 0;          // 2·m·out·in / seconds / 1e9
  size_t weight_bytes = 0;  // of one weight as held in memory
};

std::vector<KernelBenchRow> run_kernel_bench(const ModelWeights& w, const KernelBenchOptions& opt);

// Bytes of all linear weights (layers + lm_head) as held in memory: the packed size, or 4 bytes
// per fp32 parameter.
double linear_weight_bytes(const ModelWeights& w);
// All weight bytes as held in memory (linears + fp32 embedding, norms and biases; a tied lm_head
// that aliases the embedding is counted once).
double model_bytes(const ModelWeights& w);
// What the linears are held as, e.g. "int4 g32 (f16 scales, zeros); lm_head bf16".
std::string weights_summary(const ModelWeights& w);

}  // namespace lowbit
