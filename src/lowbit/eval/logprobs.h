// Numerically stable log-probabilities over a row of logits, and running mean statistics.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/model/sampler.h"  // argmax(row, n): the first largest logit

namespace lowbit {

// log(sum_j exp(row[j])), accumulated in double around the row maximum.
double log_sum_exp(const float* row, int n);

// log p_j = row[j] - log_sum_exp(row) for every j, in double.
void log_softmax(const float* row, int n, std::vector<double>* out);

// KL(P || Q) = sum_j p_j (log p_j - log q_j) for two log-softmax rows of equal length.
double kl_divergence_rows(const std::vector<double>& logp, const std::vector<double>& logq);

// Sum, sum of squares and count of a series, for its mean and the standard error of the mean.
struct MeanStats {
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  void add(double x) {
    sum += x;
    sum2 += x * x;
    ++n;
  }
  double mean() const { return n > 0 ? sum / static_cast<double>(n) : 0.0; }
  // Sample standard deviation / sqrt(n); 0 when n < 2.
  double stderr_mean() const;
};

}  // namespace lowbit
