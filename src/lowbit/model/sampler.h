// Picks the next token from logits: greedy at temperature 0, else softmax(logits / T) restricted
// to the top-k tokens and the top-p nucleus, drawn with a seeded RNG (reproducible).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace lowbit {

struct SamplerParams {
  float temperature = 0.8f;  // 0 = greedy
  int top_k = 40;            // 0 = off
  float top_p = 0.95f;       // 1 = off
  uint64_t seed = 42;
};

class Sampler {
 public:
  explicit Sampler(SamplerParams p) : p_(p), rng_(p.seed) {}
  int sample(const float* logits, int vocab);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int>> cand_;
};

int argmax(const float* x, int n);

}  // namespace lowbit
