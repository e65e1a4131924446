// The forward pass against an independent, deliberately naive reference (double precision,
// token by token, textbook formulas), and prefill/decode consistency.
#include "lowbit/model/transformer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "lowbit/util/error.h"
#include "tiny_model.h"

namespace lowbit {
namespace {

// Naive reference: recomputes everything for the whole sequence, returns logits of every position.
std::vector<std::vector<double>> reference_logits(const ModelWeights& w,
                                                  const std::vector<int>& toks) {
  const ModelConfig& c = w.cfg;
  const int n = static_cast<int>(toks.size()), D = c.dim, hd = c.head_dim;
  auto matvec = [](const Linear& l, const std::vector<double>& x) {
    std::vector<double> y(static_cast<size_t>(l.out));
    for (int o = 0; o < l.out; ++o) {
      double s = l.bias ? l.bias[o] : 0.0;
      for (int i = 0; i < l.in; ++i) s += static_cast<double>(l.w[o * l.in + i]) * x[i];
      y[o] = s;
    }
    return y;
  };
  auto norm = [&](const std::vector<double>& x, const float* g) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double r = 1.0 / std::sqrt(ss / D + c.norm_eps);
    std::vector<double> y(x.size());
    for (int i = 0; i < D; ++i) y[i] = x[i] * r * g[i];
    return y;
  };
  auto rope = [&](std::vector<double>& v, int heads, int pos) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < hd / 2; ++i) {
        const double f = std::pow(static_cast<double>(c.rope_theta), -2.0 * i / hd);
        const double a = v[h * hd + i], b = v[h * hd + i + hd / 2];
        v[h * hd + i] = a * std::cos(pos * f) - b * std::sin(pos * f);
        v[h * hd + i + hd / 2] = b * std::cos(pos * f) + a * std::sin(pos * f);
      }
    }
  };
  std::vector<std::vector<double>> x(n, std::vector<double>(D));
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < D; ++i) x[t][i] = w.tok_embeddings[toks[t] * D + i];
  for (const LayerWeights& L : w.layers) {
    std::vector<std::vector<double>> q(n), k(n), v(n);
    for (int t = 0; t < n; ++t) {
      auto xn = norm(x[t], L.attn_norm.w);
      q[t] = matvec(L.wq, xn);
      k[t] = matvec(L.wk, xn);
      v[t] = matvec(L.wv, xn);
      rope(q[t], c.n_heads, t);
      rope(k[t], c.n_kv_heads, t);
    }
    for (int t = 0; t < n; ++t) {
      std::vector<double> att(static_cast<size_t>(c.n_heads * hd), 0.0);
      for (int h = 0; h < c.n_heads; ++h) {
        const int kvh = h / (c.n_heads / c.n_kv_heads);
        std::vector<double> p(t + 1);
        double mx = -1e300, sum = 0;
        for (int j = 0; j <= t; ++j) {
          double s = 0;
          for (int d = 0; d < hd; ++d) s += q[t][h * hd + d] * k[j][kvh * hd + d];
          p[j] = s / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, p[j]);
        }
        for (double& e : p) sum += (e = std::exp(e - mx));
        for (int j = 0; j <= t; ++j)
          for (int d = 0; d < hd; ++d) att[h * hd + d] += p[j] / sum * v[j][kvh * hd + d];
      }
      auto o = matvec(L.wo, att);
      for (int i = 0; i < D; ++i) x[t][i] += o[i];
      auto xn = norm(x[t], L.ffn_norm.w);
      auto g = matvec(L.w_gate, xn), u = matvec(L.w_up, xn);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      auto d = matvec(L.w_down, g);
      for (int i = 0; i < D; ++i) x[t][i] += d[i];
    }
  }
  std::vector<std::vector<double>> logits(n);
  for (int t = 0; t < n; ++t) logits[t] = matvec(w.lm_head, norm(x[t], w.final_norm.w));
  return logits;
}

std::vector<int> some_tokens(int n, int vocab) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 7 + 3) % vocab;
  return t;
}

void expect_matches_reference(const test::TinyModelOptions& opt) {
  auto w = test::make_tiny_model(opt);
  const auto toks = some_tokens(20, opt.vocab);
  const auto ref = reference_logits(*w, toks);
  Transformer tf(w, 32);
  const float* all = tf.forward(toks.data(), static_cast<int>(toks.size()), true);
  double max_err = 0;
  for (size_t t = 0; t < toks.size(); ++t)
    for (int v = 0; v < opt.vocab; ++v)
      max_err = std::max(max_err, std::abs(all[t * opt.vocab + v] - ref[t][v]));
  EXPECT_LT(max_err, 1e-4);
}

TEST(Transformer, MatchesNaiveReferenceGqa) { expect_matches_reference({}); }

TEST(Transformer, MatchesNaiveReferenceQkvBiasTiedMha) {
  test::TinyModelOptions o;
  o.qkv_bias = true;
  o.tied = true;
  o.kv_heads = 4;
  o.seed = 7;
  expect_matches_reference(o);
}

TEST(Transformer, PrefillEqualsTokenByTokenDecode) {
  auto w = test::make_tiny_model();
  const auto toks = some_tokens(17, w->cfg.vocab_size);
  Transformer batch(w, 32), step(w, 32);
  const float* b = batch.forward(toks.data(), 17, true);
  std::vector<float> bcopy(b, b + 17 * w->cfg.vocab_size);
  for (int t = 0; t < 17; ++t) {
    const float* s = step.forward(&toks[t], 1);
    for (int v = 0; v < w->cfg.vocab_size; ++v)
      EXPECT_NEAR(s[v], bcopy[t * w->cfg.vocab_size + v], 1e-4) << "t=" << t << " v=" << v;
  }
  // Last-row-only logits equal the last row of all logits.
  batch.reset();
  const float* last = batch.forward(toks.data(), 17, false);
  for (int v = 0; v < w->cfg.vocab_size; ++v)
    EXPECT_NEAR(last[v], bcopy[16 * w->cfg.vocab_size + v], 1e-5);
}

TEST(Transformer, RejectsBadInput) {
  auto w = test::make_tiny_model();
  EXPECT_THROW(Transformer(w, w->cfg.max_seq_len + 1), Error);
  Transformer tf(w, 8);
  int bad = w->cfg.vocab_size;
  EXPECT_THROW(tf.forward(&bad, 1), Error);
  const auto toks = some_tokens(9, w->cfg.vocab_size);
  EXPECT_THROW(tf.forward(toks.data(), 9), Error);  // longer than the context
}

}  // namespace
}  // namespace lowbit
