// Quantization algorithms on single synthetic layers: RTN (+ clip search), Hessian accumulation,
// GPTQ, AWQ (scale search, clip search, folding).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lowbit/formats/group_quant.h"
#include "lowbit/quant/algo/awq.h"
#include "lowbit/quant/algo/gptq.h"
#include "lowbit/quant/algo/hessian.h"
#include "lowbit/quant/algo/rtn.h"
#include "lowbit/util/error.h"

namespace lowbit {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Correlated activations X [tokens, in] = Z · M with a random mixing M and uneven channel scales.
std::vector<float> correlated_x(int tokens, int in, uint32_t seed) {
  const std::vector<float> Z = randn(size_t(tokens) * in, seed);
  std::vector<float> M = randn(size_t(in) * in, seed + 1, 1.0f / std::sqrt(float(in)));
  for (int i = 0; i < in; ++i) M[size_t(i) * in + i] += 1.0f;
  std::vector<float> X(size_t(tokens) * in, 0.0f);
  for (int t = 0; t < tokens; ++t)
    for (int k = 0; k < in; ++k) {
      const float z = Z[size_t(t) * in + k];
      for (int i = 0; i < in; ++i) X[size_t(t) * in + i] += z * M[size_t(k) * in + i];
    }
  for (int t = 0; t < tokens; ++t)
    for (int i = 0; i < in; ++i) X[size_t(t) * in + i] *= 0.5f + float(i % 7) / 4;
  return X;
}

std::vector<float> hessian_of(const std::vector<float>& X, int in) {
  HessianAccumulator acc(in);
  acc.add(X.data(), int(X.size() / in));
  return acc.hessian();
}

// tr((W − Q) H (W − Q)ᵀ) in double.
double tr_error(const std::vector<float>& W, const QuantizedWeight& qw,
                const std::vector<float>& H) {
  const std::vector<float> Q = qw.dequantize();
  const int in = qw.in;
  double total = 0;
  std::vector<double> e(in);
  for (int r = 0; r < qw.out; ++r) {
    for (int i = 0; i < in; ++i) e[i] = double(W[size_t(r) * in + i]) - Q[size_t(r) * in + i];
    for (int i = 0; i < in; ++i) {
      double he = 0;
      for (int j = 0; j < in; ++j) he += double(H[size_t(i) * in + j]) * e[j];
      total += e[i] * he;
    }
  }
  return total;
}

QuantScheme int_scheme(int bits, int group, bool sym) {
  QuantScheme s;
  s.bits = bits;
  s.group_size = group;
  s.sym = sym;
  s.scale_type = ScaleType::kF32;
  return s;
}

void expect_same(const QuantizedWeight& a, const QuantizedWeight& b) {
  ASSERT_EQ(a.n_groups, b.n_groups);
  EXPECT_EQ(a.q, b.q);
  EXPECT_EQ(a.g_idx, b.g_idx);
  ASSERT_EQ(a.params.size(), b.params.size());
  for (size_t k = 0; k < a.params.size(); ++k) {
    EXPECT_EQ(a.params[k].scale, b.params[k].scale) << k;
    EXPECT_EQ(a.params[k].zero, b.params[k].zero) << k;
  }
}

TEST(Hessian, RunningAverageEquals2OverNXtX) {
  const int in = 24, tokens = 100;
  const std::vector<float> X = randn(size_t(tokens) * in, 7);
  HessianAccumulator acc(in);
  acc.add(X.data(), 30);
  acc.add(X.data() + 30 * in, 1);
  acc.add(X.data() + 31 * in, 69);
  EXPECT_EQ(acc.n_rows, tokens);
  const std::vector<float> H = acc.hessian();
  for (int i = 0; i < in; ++i)
    for (int j = 0; j < in; ++j) {
      double ref = 0;
      for (int t = 0; t < tokens; ++t) ref += double(X[size_t(t) * in + i]) * X[size_t(t) * in + j];
      ref *= 2.0 / tokens;
      EXPECT_NEAR(H[size_t(i) * in + j], ref, 1e-4) << i << "," << j;
    }
  const std::vector<float> imp = hessian_importance(acc);
  EXPECT_FLOAT_EQ(imp[3], 0.5f * H[3 * in + 3]);
}

TEST(Rtn, GroupsAreFittedIndependently) {
  const int out = 3, in = 80;
  const std::vector<float> W = randn(size_t(out) * in, 1);
  const QuantScheme s = int_scheme(4, 32, false);
  const QuantizedWeight qw = quantize_rtn(W.data(), out, in, s);
  ASSERT_EQ(qw.n_groups, 3);  // 32 + 32 + 16 columns
  EXPECT_EQ(qw.g_idx[31], 0);
  EXPECT_EQ(qw.g_idx[79], 2);
  const GroupParams p = fit_group(s, &W[1 * in + 64], 16);
  EXPECT_EQ(qw.params[1 * 3 + 2].scale, p.scale);
  EXPECT_EQ(qw.q[1 * in + 70], quantize_value(s, p, W[1 * in + 70]));
}

TEST(Rtn, ClipSearchNeverIncreasesWeightedError) {
  const int out = 16, in = 256;
  std::vector<float> W = randn(size_t(out) * in, 2);
  for (int r = 0; r < out; ++r) W[size_t(r) * in + (r * 37) % in] *= 8;  // outliers
  std::vector<float> imp = randn(in, 3);
  for (float& v : imp) v = v * v + 0.01f;
  for (const QuantScheme& s :
       {int_scheme(4, 32, false), int_scheme(3, 128, true), int_scheme(4, -1, true)}) {
    RtnOptions opt;
    opt.importance = imp.data();
    const QuantizedWeight plain = quantize_rtn(W.data(), out, in, s);
    opt.clip_grid = 20;
    const QuantizedWeight clipped = quantize_rtn(W.data(), out, in, s, opt);
    const int gs = group_columns(s, in);
    double e_plain = 0, e_clip = 0;
    for (int r = 0; r < out; ++r)
      for (int g = 0; g < plain.n_groups; ++g) {
        const float* w = &W[size_t(r) * in + g * gs];
        const double a = group_error(s, plain.params[r * plain.n_groups + g], w, &imp[g * gs], gs);
        const double b =
            group_error(s, clipped.params[r * plain.n_groups + g], w, &imp[g * gs], gs);
        EXPECT_LE(b, a);
        e_plain += a, e_clip += b;
      }
    EXPECT_LT(e_clip, e_plain) << scheme_name(s);  // outliers: clipping helps somewhere
  }
}

TEST(Gptq, IdentityHessianEqualsRtn) {
  const int out = 8, in = 192;
  const std::vector<float> W = randn(size_t(out) * in, 4);
  std::vector<float> H(size_t(in) * in, 0.0f);
  for (int i = 0; i < in; ++i) H[size_t(i) * in + i] = 1.0f;
  for (const QuantScheme& s : {int_scheme(4, 32, false), int_scheme(4, 128, true),
                               int_scheme(3, -1, false), int_scheme(8, 64, true)}) {
    for (int mode = 0; mode < 3; ++mode) {
      GptqOptions opt;
      opt.act_order = mode > 0;
      opt.static_groups = mode == 2;
      opt.block_size = 48;
      expect_same(quantize_gptq(W.data(), out, in, H, s, opt), quantize_rtn(W.data(), out, in, s));
    }
  }
}

TEST(Gptq, LowersHessianErrorVersusRtn) {
  const int out = 32, in = 256, tokens = 1024;
  const std::vector<float> W = randn(size_t(out) * in, 5, 0.05f);
  const std::vector<float> H = hessian_of(correlated_x(tokens, in, 6), in);
  for (const QuantScheme& s :
       {int_scheme(4, 32, false), int_scheme(4, 128, false), int_scheme(4, -1, false),
        int_scheme(3, 128, false), int_scheme(4, 32, true), int_scheme(4, 128, true),
        int_scheme(4, -1, true), int_scheme(3, 128, true)}) {
    const double rtn = tr_error(W, quantize_rtn(W.data(), out, in, s), H);
    for (int mode = 0; mode < 3; ++mode) {
      GptqOptions opt;
      opt.act_order = mode > 0;
      opt.static_groups = mode == 2;
      GptqStats st;
      const QuantizedWeight qw = quantize_gptq(W.data(), out, in, H, s, opt, &st);
      const double gptq = tr_error(W, qw, H);
      EXPECT_LT(gptq, 0.8 * rtn) << scheme_name(s) << " mode " << mode;
      EXPECT_GT(st.error, 0);
      EXPECT_TRUE(std::isfinite(st.error));
      std::printf("  %-26s %-12s tr-error rtn %.4f gptq %.4f (%.0f%%)\n", scheme_name(s).c_str(),
                  mode == 0   ? ""
                  : mode == 1 ? "act-order"
                              : "act+static",
                  rtn, gptq, 100 * gptq / rtn);
    }
  }
}

// The OBQ form of GPTQ without the Cholesky trick, in double: quantize column j, spread its
// error with the current inverse Hessian, then remove j from the inverse (Gaussian elimination).
std::vector<float> gptq_reference(std::vector<float> W, int out, int in,
                                  const std::vector<float>& H, const QuantScheme& s) {
  std::vector<double> A(size_t(in) * in);
  double mean_diag = 0;
  for (int i = 0; i < in; ++i) mean_diag += H[size_t(i) * in + i] / in;
  for (size_t k = 0; k < A.size(); ++k) A[k] = H[k];
  for (int i = 0; i < in; ++i) A[size_t(i) * in + i] += 0.01 * mean_diag;
  std::vector<double> Hinv(size_t(in) * in, 0.0);  // Gauss-Jordan inverse
  for (int i = 0; i < in; ++i) Hinv[size_t(i) * in + i] = 1;
  for (int c = 0; c < in; ++c) {
    const double piv = A[size_t(c) * in + c];
    for (int k = 0; k < in; ++k) A[size_t(c) * in + k] /= piv, Hinv[size_t(c) * in + k] /= piv;
    for (int r = 0; r < in; ++r) {
      if (r == c) continue;
      const double f = A[size_t(r) * in + c];
      for (int k = 0; k < in; ++k) {
        A[size_t(r) * in + k] -= f * A[size_t(c) * in + k];
        Hinv[size_t(r) * in + k] -= f * Hinv[size_t(c) * in + k];
      }
    }
  }
  std::vector<float> Q(W.size());
  const int gs = group_columns(s, in);
  std::vector<GroupParams> p(out);
  for (int j = 0; j < in; ++j) {
    const double d = Hinv[size_t(j) * in + j];
    for (int r = 0; r < out; ++r) {
      float* w = &W[size_t(r) * in];
      if (j % gs == 0) p[r] = fit_group(s, w + j, std::min(gs, in - j));
      Q[size_t(r) * in + j] = dequantize_value(s, p[r], quantize_value(s, p[r], w[j]));
      const double e = (w[j] - Q[size_t(r) * in + j]) / d;
      for (int k = j + 1; k < in; ++k) w[k] -= float(e * Hinv[size_t(j) * in + k]);
    }
    for (int a = j + 1; a < in; ++a)
      for (int b = j + 1; b < in; ++b)
        Hinv[size_t(a) * in + b] -= Hinv[size_t(a) * in + j] * Hinv[size_t(j) * in + b] / d;
  }
  return Q;
}

TEST(Gptq, MatchesTheInverseHessianFormulation) {
  const int out = 16, in = 48;
  const std::vector<float> W = randn(size_t(out) * in, 30);
  const std::vector<float> H = hessian_of(correlated_x(200, in, 31), in);
  const QuantScheme s = int_scheme(4, 16, false);
  GptqOptions opt;
  opt.block_size = 20;
  const std::vector<float> got = quantize_gptq(W.data(), out, in, H, s, opt).dequantize();
  const std::vector<float> want = gptq_reference(W, out, in, H, s);
  int same = 0;
  for (size_t k = 0; k < got.size(); ++k) same += std::fabs(got[k] - want[k]) < 1e-4f;
  EXPECT_GE(same, int(0.99 * got.size())) << got.size();  // float vs double: rare near-ties
}

TEST(Gptq, ActOrderGroupIndexIsAValidGrouping) {
  const int out = 4, in = 128, gs = 32;
  const std::vector<float> W = randn(size_t(out) * in, 8);
  const std::vector<float> H = hessian_of(correlated_x(256, in, 9), in);
  GptqOptions opt;
  opt.act_order = true;
  const QuantizedWeight qw = quantize_gptq(W.data(), out, in, H, int_scheme(4, gs, false), opt);
  std::vector<int> count(qw.n_groups, 0);
  bool monotone = true;
  for (int c = 0; c < in; ++c) {
    ASSERT_GE(qw.g_idx[c], 0);
    ASSERT_LT(qw.g_idx[c], qw.n_groups);
    ++count[qw.g_idx[c]];
    if (c > 0 && qw.g_idx[c] < qw.g_idx[c - 1]) monotone = false;
  }
  for (int n : count) EXPECT_EQ(n, gs);
  EXPECT_FALSE(monotone);  // the permutation really reordered columns
  // The column with the largest diag(H) is quantized first: it is in group 0.
  int top = 0;
  for (int c = 1; c < in; ++c)
    if (H[size_t(c) * in + c] > H[size_t(top) * in + top]) top = c;
  EXPECT_EQ(qw.g_idx[top], 0);

  opt.static_groups = true;
  const QuantizedWeight st = quantize_gptq(W.data(), out, in, H, int_scheme(4, gs, false), opt);
  for (int c = 0; c < in; ++c) EXPECT_EQ(st.g_idx[c], c / gs);
  // Static groups: the params are those of RTN on the original W.
  const QuantizedWeight rtn = quantize_rtn(W.data(), out, in, int_scheme(4, gs, false));
  for (size_t k = 0; k < st.params.size(); ++k) EXPECT_EQ(st.params[k].scale, rtn.params[k].scale);
}

TEST(Gptq, BlockSizeDoesNotChangeTheResult) {
  const int out = 16, in = 160;
  const std::vector<float> W = randn(size_t(out) * in, 10);
  const std::vector<float> H = hessian_of(correlated_x(512, in, 11), in);
  const QuantScheme s = int_scheme(4, 32, false);
  GptqOptions a, b;
  a.block_size = 1;   // no lazy batching: the paper's plain algorithm
  b.block_size = 48;  // blocks cut groups: ended early so groups see all updates
  const double ea = tr_error(W, quantize_gptq(W.data(), out, in, H, s, a), H);
  const double eb = tr_error(W, quantize_gptq(W.data(), out, in, H, s, b), H);
  EXPECT_NEAR(ea, eb, 1e-3 * ea);
}

TEST(Gptq, DeadColumnsAreQuantizedToZero) {
  const int out = 8, in = 64, tokens = 200;
  const std::vector<float> W = randn(size_t(out) * in, 12);
  std::vector<float> X = correlated_x(tokens, in, 13);
  for (int t = 0; t < tokens; ++t) X[size_t(t) * in + 5] = X[size_t(t) * in + 40] = 0.0f;
  const std::vector<float> H = hessian_of(X, in);
  for (bool act_order : {false, true}) {
    GptqOptions opt;
    opt.act_order = act_order;
    GptqStats st;
    const QuantizedWeight qw =
        quantize_gptq(W.data(), out, in, H, int_scheme(4, 16, true), opt, &st);
    EXPECT_EQ(st.dead_columns, 2);
    EXPECT_TRUE(std::isfinite(st.error));
    const std::vector<float> Q = qw.dequantize();
    for (float v : Q) ASSERT_TRUE(std::isfinite(v));
    for (int r = 0; r < out; ++r) {
      EXPECT_EQ(Q[size_t(r) * in + 5], 0.0f);
      EXPECT_EQ(Q[size_t(r) * in + 40], 0.0f);
    }
  }
}

TEST(Gptq, RejectsBadInput) {
  const std::vector<float> W(4 * 8, 1.0f);
  EXPECT_THROW(quantize_gptq(W.data(), 4, 8, std::vector<float>(63), int_scheme(4, 8, false)),
               Error);
  std::vector<float> H(64, 0.0f);  // indefinite: -1 on the diagonal
  for (int i = 0; i < 8; ++i) H[i * 8 + i] = -1.0f;
  EXPECT_THROW(quantize_gptq(W.data(), 4, 8, H, int_scheme(4, 8, false)), Error);
}

// X [tokens, in] with a few outlier channels, as in LLM activations.
std::vector<float> outlier_x(int tokens, int in, uint32_t seed) {
  std::vector<float> X = randn(size_t(tokens) * in, seed);
  for (int t = 0; t < tokens; ++t)
    for (int c : {3, 17, 50}) X[size_t(t) * in + c] *= 30.0f;
  return X;
}

TEST(Awq, AlphaZeroEqualsRtn) {
  const int out = 12, in = 64, tokens = 128;
  const std::vector<float> W = randn(size_t(out) * in, 14);
  const std::vector<float> X = outlier_x(tokens, in, 15);
  const QuantScheme s = int_scheme(4, 32, false);
  AwqOptions opt;
  opt.n_grid = 1;
  const AwqScales sc = awq_search_scales({{W.data(), out}}, in, X.data(), tokens, s, opt);
  EXPECT_EQ(sc.alpha, 0.0f);
  EXPECT_EQ(sc.error, sc.error_alpha0);
  std::vector<float> ws = W;
  scale_input_channels(ws.data(), out, in, sc.s.data());
  expect_same(quantize_rtn(ws.data(), out, in, s), quantize_rtn(W.data(), out, in, s));
}

TEST(Awq, ScaleSearchLowersOutputErrorOnOutlierChannels) {
  const int in = 64, tokens = 256;
  const std::vector<float> Wq = randn(size_t(24) * in, 16), Wk = randn(size_t(8) * in, 17);
  const std::vector<float> X = outlier_x(tokens, in, 18);
  const AwqScales sc = awq_search_scales({{Wq.data(), 24}, {Wk.data(), 8}}, in, X.data(), tokens,
                                         int_scheme(4, 32, false));
  EXPECT_GT(sc.alpha, 0.0f);
  EXPECT_LT(sc.error, 0.9 * sc.error_alpha0);
  EXPECT_GT(sc.s[17], sc.s[18]);  // the outlier channel is scaled up
  std::printf("  AWQ alpha %.2f: output MSE %.5f vs RTN %.5f\n", sc.alpha, sc.error,
              sc.error_alpha0);
}

TEST(Awq, ClipSearchLowersGroupOutputError) {
  const int out = 16, in = 96, tokens = 256;
  std::vector<float> W = randn(size_t(out) * in, 19);
  for (int r = 0; r < out; ++r) W[size_t(r) * in + (r * 13) % in] *= 6;
  const std::vector<float> X = outlier_x(tokens, in, 20);
  const QuantScheme s = int_scheme(3, 32, true);
  const std::vector<float> ratios = awq_search_clip(W.data(), out, in, X.data(), tokens, s);
  ASSERT_EQ(ratios.size(), size_t(out) * 3);
  for (float r : ratios) EXPECT_TRUE(r <= 1.0f && r >= 0.55f - 1e-6f);
  RtnOptions opt;
  opt.clip_ratios = ratios.data();
  const std::vector<float> Qc = quantize_rtn(W.data(), out, in, s, opt).dequantize();
  const std::vector<float> Qp = quantize_rtn(W.data(), out, in, s).dequantize();
  // Σ over rows, groups and tokens of (x_g · (w_g − q_g))²: what the search minimizes.
  auto group_output_error = [&](const std::vector<float>& Q) {
    double e = 0;
    for (int r = 0; r < out; ++r)
      for (int g = 0; g < 3; ++g)
        for (int t = 0; t < tokens; ++t) {
          double y = 0;
          for (int i = g * 32; i < g * 32 + 32; ++i)
            y += double(X[size_t(t) * in + i]) * (W[size_t(r) * in + i] - Q[size_t(r) * in + i]);
          e += y * y;
        }
    return e;
  };
  EXPECT_LT(group_output_error(Qc), group_output_error(Qp));
}

// RMSNorm-like: y = (x ⊙ g) Wᵀ.
std::vector<float> norm_linear(const std::vector<float>& x, const std::vector<float>& g,
                               const std::vector<float>& W, int out, int in) {
  std::vector<float> y(out, 0.0f);
  for (int r = 0; r < out; ++r)
    for (int i = 0; i < in; ++i) y[r] += x[i] * g[i] * W[size_t(r) * in + i];
  return y;
}

TEST(Awq, FoldingKeepsTheFloatOutput) {
  const int in = 16, out = 8, prev_in = 12;
  const std::vector<float> x = randn(prev_in, 21);
  std::vector<float> s = randn(in, 22);
  for (float& v : s) v = 0.25f + std::fabs(v);
  // norm → linear
  std::vector<float> g = randn(in, 23), b = randn(in, 24), W = randn(size_t(out) * in, 25);
  std::vector<float> x16 = randn(in, 26);
  const std::vector<float> y0 = norm_linear(x16, g, W, out, in);
  fold_scales_into_norm(g.data(), b.data(), in, s.data());
  scale_input_channels(W.data(), out, in, s.data());
  const std::vector<float> y1 = norm_linear(x16, g, W, out, in);
  for (int r = 0; r < out; ++r) EXPECT_NEAR(y1[r], y0[r], 1e-4f * (1 + std::fabs(y0[r])));
  // linear (up_proj: P [in, prev_in]) → linear (down_proj: W [out, in])
  std::vector<float> P = randn(size_t(in) * prev_in, 27), W2 = randn(size_t(out) * in, 28);
  auto chain = [&] {
    std::vector<float> h(in, 0.0f), y(out, 0.0f);
    for (int i = 0; i < in; ++i)
      for (int k = 0; k < prev_in; ++k) h[i] += P[size_t(i) * prev_in + k] * x[k];
    for (int r = 0; r < out; ++r)
      for (int i = 0; i < in; ++i) y[r] += W2[size_t(r) * in + i] * h[i];
    return y;
  };
  const std::vector<float> z0 = chain();
  ASSERT_TRUE(fold_scales_into_linear(P.data(), nullptr, in, prev_in, s.data(), in));
  scale_input_channels(W2.data(), out, in, s.data());
  const std::vector<float> z1 = chain();
  for (int r = 0; r < out; ++r) EXPECT_NEAR(z1[r], z0[r], 1e-4f * (1 + std::fabs(z0[r])));
  // GQA v_proj [4, prev_in] → o_proj [out, 16]: shapes differ, nothing folded.
  std::vector<float> V = randn(size_t(4) * prev_in, 29);
  const std::vector<float> V0 = V;
  EXPECT_FALSE(fold_scales_into_linear(V.data(), nullptr, 4, prev_in, s.data(), in));
  EXPECT_EQ(V, V0);
}

}  // namespace
}  // namespace lowbit
