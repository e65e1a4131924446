#include "lowbit/quant/algo/smoothquant.h"

#include <algorithm>
#include <cmath>

#include "lowbit/quant/algo/rtn.h"
#include "lowbit/util/error.h"

namespace lowbit {

AlphaCriterion parse_alpha_criterion(const std::string& where, const std::string& name) {
  if (name == "mean") return AlphaCriterion::kMean;
  if (name == "min") return AlphaCriterion::kMin;
  if (name == "max") return AlphaCriterion::kMax;
  fail(where, "unknown alpha criterion '{}' (expected mean, min or max)", name);
}

const char* alpha_criterion_name(AlphaCriterion c) {
  switch (c) {
    case AlphaCriterion::kMean:
      return "mean";
    case AlphaCriterion::kMin:
      return "min";
    case AlphaCriterion::kMax:
      return "max";
  }
  return "?";
}

std::vector<float> smooth_scales(const std::vector<SmoothLinear>& linears, int in,
                                 const std::vector<float>& absmax_x, float alpha) {
  std::vector<float> wmax(static_cast<size_t>(in), 0.0f);
  for (const SmoothLinear& l : linears)
    for (int r = 0; r < l.out; ++r)
      for (int j = 0; j < in; ++j)
        wmax[j] = std::max(wmax[j], std::fabs(l.w[static_cast<size_t>(r) * in + j]));
  std::vector<float> s(static_cast<size_t>(in));
  for (int j = 0; j < in; ++j) {
    const double a = std::max(absmax_x[j], 1e-5f), w = std::max(wmax[j], 1e-5f);
    s[j] = static_cast<float>(std::max(std::pow(a, alpha) / std::pow(w, 1.0 - alpha), 1e-5));
  }
  return s;
}

void fake_quantize_acts(const ActScheme& a, float* X, int n, int in) {
  if (!a.quantized) return;
  ActScheme use = a;
  if (a.granularity == ActGranularity::kTensor && a.scale == 0.0f) {
    float lo = 0.0f, hi = 0.0f;
    for (size_t i = 0; i < static_cast<size_t>(n) * in; ++i) {
      lo = std::min(lo, X[i]);
      hi = std::max(hi, X[i]);
    }
    use.scale =
        a.sym ? std::max(std::max(-lo, hi), 1e-8f) / 127.0f : std::max(hi - lo, 1e-8f) / 254.0f;
    use.zero = a.sym ? 0.0f : 0.5f * (lo + hi);
  }
  for (int t = 0; t < n; ++t) {
    float* x = X + static_cast<size_t>(t) * in;
    const int width = use.granularity == ActGranularity::kBlock ? 32 : in;
    for (int c0 = 0; c0 < in; c0 += width) {
      const int w = std::min(width, in - c0);
      float s, m;
      ActScheme row = use;
      if (use.granularity == ActGranularity::kBlock) row.granularity = ActGranularity::kToken;
      act_row_params(row, x + c0, w, &s, &m);
      for (int k = c0; k < c0 + w; ++k) x[k] = s * static_cast<float>(act_code(x[k], s, m)) + m;
    }
  }
}

namespace {

// ‖X Wᵀ − Xq Qᵀ‖² / ‖X Wᵀ‖² for one linear.
double rel_error(const float* X, const float* Xq, int n, int in, const float* W, const float* Q,
                 int out) {
  double num = 0, den = 0;
#pragma omp parallel for reduction(+ : num, den) schedule(static)
  for (int t = 0; t < n; ++t) {
    const float* x = X + static_cast<size_t>(t) * in;
    const float* xq = Xq + static_cast<size_t>(t) * in;
    for (int o = 0; o < out; ++o) {
      const float* w = W + static_cast<size_t>(o) * in;
      const float* q = Q + static_cast<size_t>(o) * in;
      double y = 0, yq = 0;
      for (int k = 0; k < in; ++k) {
        y += double(x[k]) * w[k];
        yq += double(xq[k]) * q[k];
      }
      num += (y - yq) * (y - yq);
      den += y * y;
    }
  }
  return den > 0 ? num / den : num;
}

}  // namespace

SmoothChoice smooth_choose(const std::vector<SmoothLinear>& linears, int in,
                           const std::vector<float>& absmax_x, const float* X, int n,
                           const QuantScheme& wscheme, const ActScheme& ascheme,
                           const SmoothOptions& opt) {
  if (linears.empty() || in <= 0) fail("smoothquant", "no linears to smooth");
  SmoothChoice c;
  if (!opt.auto_alpha()) {
    c.alpha = opt.alpha;
    c.s = smooth_scales(linears, in, absmax_x, opt.alpha);
    return c;
  }
  if (!(opt.alpha_step > 0) || opt.alpha_min > opt.alpha_max || opt.alpha_min < 0 ||
      opt.alpha_max > 1)
    fail("smoothquant", "bad alpha grid [{}, {}] step {}", opt.alpha_min, opt.alpha_max,
         opt.alpha_step);
  if (n <= 0) fail("smoothquant", "automatic alpha needs calibration inputs");
  std::vector<float> grid;
  for (int k = 0;; ++k) {
    const float a = opt.alpha_min + static_cast<float>(k) * opt.alpha_step;
    if (a > opt.alpha_max + 1e-6f) break;
    grid.push_back(std::min(a, opt.alpha_max));
  }
  std::vector<std::vector<double>> err(linears.size(), std::vector<double>(grid.size()));
  std::vector<float> Xs(static_cast<size_t>(n) * in), Ws;
  for (size_t g = 0; g < grid.size(); ++g) {
    const std::vector<float> s = smooth_scales(linears, in, absmax_x, grid[g]);
    for (int t = 0; t < n; ++t)
      for (int k = 0; k < in; ++k)
        Xs[static_cast<size_t>(t) * in + k] = X[static_cast<size_t>(t) * in + k] / s[k];
    fake_quantize_acts(ascheme, Xs.data(), n, in);
    double sum = 0;
    for (size_t i = 0; i < linears.size(); ++i) {
      const SmoothLinear& l = linears[i];
      Ws.assign(l.w, l.w + static_cast<size_t>(l.out) * in);
      for (int r = 0; r < l.out; ++r)
        for (int k = 0; k < in; ++k) Ws[static_cast<size_t>(r) * in + k] *= s[k];
      const std::vector<float> Q = quantize_rtn(Ws.data(), l.out, in, wscheme).dequantize();
      err[i][g] = rel_error(X, Xs.data(), n, in, l.w, Q.data(), l.out);
      sum += err[i][g];
    }
    c.errors_by_alpha.push_back(sum / static_cast<double>(linears.size()));
  }
  for (size_t i = 0; i < linears.size(); ++i) {
    const size_t best =
        static_cast<size_t>(std::min_element(err[i].begin(), err[i].end()) - err[i].begin());
    c.linear_alphas.push_back(grid[best]);
  }
  const auto& la = c.linear_alphas;
  switch (opt.criterion) {
    case AlphaCriterion::kMean: {
      double s = 0;
      for (float a : la) s += a;
      c.alpha = static_cast<float>(s / static_cast<double>(la.size()));
      break;
    }
    case AlphaCriterion::kMin:
      c.alpha = *std::min_element(la.begin(), la.end());
      break;
    case AlphaCriterion::kMax:
      c.alpha = *std::max_element(la.begin(), la.end());
      break;
  }
  c.s = smooth_scales(linears, in, absmax_x, c.alpha);
  return c;
}

}  // namespace lowbit
