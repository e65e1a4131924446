#include "lowbit/model/sampler.h"

#include <algorithm>
#include <cmath>

namespace lowbit {

int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

int Sampler::sample(const float* logits, int vocab) {
  if (p_.temperature <= 0.0f) return argmax(logits, vocab);
  cand_.resize(static_cast<size_t>(vocab));
  for (int i = 0; i < vocab; ++i) cand_[static_cast<size_t>(i)] = {logits[i], i};
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t keep = cand_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < keep) {
    keep = static_cast<size_t>(p_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(keep), cand_.end(),
                      by_logit);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // Softmax over the kept candidates (sorted, so the first is the max).
  const float mx = cand_[0].first;
  double sum = 0.0;
  std::vector<double> prob(keep);
  for (size_t i = 0; i < keep; ++i) {
    prob[i] = std::exp(static_cast<double>((cand_[i].first - mx) / p_.temperature));
    sum += prob[i];
  }
  // Nucleus: smallest prefix whose probability reaches top_p.
  if (p_.top_p < 1.0f) {
    double acc = 0.0;
    for (size_t i = 0; i < keep; ++i) {
      acc += prob[i] / sum;
      if (acc >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    sum = 0.0;
    for (size_t i = 0; i < keep; ++i) sum += prob[i];
  }
  std::uniform_real_distribution<double> u(0.0, sum);
  double r = u(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= prob[i];
    if (r <= 0.0) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace lowbit
