#include "lowbit/eval/logprobs.h"

#include <algorithm>
#include <cmath>

#include "lowbit/ops/vec_math.h"

namespace lowbit {

double log_sum_exp(const float* row, int n) {
  return ops::log_sum_exp(row, static_cast<size_t>(n));
}

void log_softmax(const float* row, int n, std::vector<double>* out) {
  const double lse = log_sum_exp(row, n);
  out->resize(n);
  for (int j = 0; j < n; ++j) (*out)[j] = static_cast<double>(row[j]) - lse;
}

double kl_divergence_rows(const std::vector<double>& logp, const std::vector<double>& logq) {
  const size_t n = logp.size();
  size_t j = 0;
  double kl = 0;
#if defined(__AVX512F__)
  __m512d acc = _mm512_setzero_pd();
  for (; j + 8 <= n; j += 8) {
    const __m512d p = _mm512_loadu_pd(logp.data() + j);
    const __m512d d = _mm512_sub_pd(p, _mm512_loadu_pd(logq.data() + j));
    acc = _mm512_fmadd_pd(ops::exp8d(p), d, acc);
  }
  kl = _mm512_reduce_add_pd(acc);
#endif
  for (; j < n; ++j) kl += std::exp(logp[j]) * (logp[j] - logq[j]);
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
