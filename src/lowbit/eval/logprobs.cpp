#include "lowbit/eval/logprobs.h"

#include <algorithm>
#include <cmath>

namespace lowbit {

double log_sum_exp(const float* row, int n) {
  float mx = row[0];
  for (int j = 1; j < n; ++j) mx = std::max(mx, row[j]);
  double s = 0;
  for (int j = 0; j < n; ++j) s += std::exp(static_cast<double>(row[j]) - mx);
  return static_cast<double>(mx) + std::log(s);
}

void log_softmax(const float* row, int n, std::vector<double>* out) {
  const double lse = log_sum_exp(row, n);
  out->resize(n);
  for (int j = 0; j < n; ++j) (*out)[j] = static_cast<double>(row[j]) - lse;
}

double kl_divergence_rows(const std::vector<double>& logp, const std::vector<double>& logq) {
  double kl = 0;
  for (size_t j = 0; j < logp.size(); ++j) kl += std::exp(logp[j]) * (logp[j] - logq[j]);
  return std::max(kl, 0.0);  // rounding can give -1e-17 for identical rows
}

double MeanStats::stderr_mean() const {
  if (n < 2) return 0.0;
  const double m = mean();
  const double var =
      std::max(0.0, (sum2 - static_cast<double>(n) * m * m) / static_cast<double>(n - 1));
  return std::sqrt(var / static_cast<double>(n));
}

}  // namespace lowbit
