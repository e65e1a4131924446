// The vectorized ops against scalar references: exp and softmax, SwiGLU, RMSNorm, the KV cache
// conversions, attention over fp16/bf16 caches, and a whole Transformer with each cache type.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/model/transformer.h"
#include "lowbit/ops/activation.h"
#include "lowbit/ops/attention.h"
#include "lowbit/ops/norm.h"
#include "lowbit/ops/vec_math.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"
#include "tiny_model.h"

namespace lowbit {
namespace {

std::vector<float> random_floats(size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(VecMath, ExpMatchesStdExp) {
  auto x = random_floats(200003, -87.0f, 88.0f, 1);
  const auto small = random_floats(1000, -1.0f, 1.0f, 2);
  x.insert(x.end(), small.begin(), small.end());
  for (float e : {0.0f, -0.0f, 1.0f, -1.0f, 1e-8f, -1e-8f, 0.34657359f, -0.34657359f, 0.6931472f,
                  -87.0f, 88.0f, 88.7f, -87.3f, 10.5f, -10.5f})
    x.push_back(e);
  std::vector<float> y(x.size());
  ops::vexp(x.data(), y.data(), x.size());
  double max_rel = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = std::exp(static_cast<double>(x[i]));
    max_rel = std::max(max_rel, std::abs(y[i] - ref) / ref);
  }
  EXPECT_LE(max_rel, 1e-6);
  EXPECT_LE(max_rel, 3e-7) << "more than a few ulp";  // the polynomial's own bound is ~2 ulp
}

TEST(VecMath, ExpEdgeCases) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = {-inf, -1e30f, -1000.0f, -104.0f, -103.0f, -95.0f,
                          inf,  1e30f,  100.0f,   89.0f,   nan,     0.0f};
  std::vector<float> y(x.size());
  ops::vexp(x.data(), y.data(), x.size());
  EXPECT_EQ(y[0], 0.0f);  // -inf: 0, not NaN
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], 0.0f);
  EXPECT_GE(y[4], 0.0f);
  EXPECT_LT(y[4], 1e-44f);  // subnormal or 0
  EXPECT_NEAR(y[5], std::exp(-95.0f), 1e-45f + 1e-3 * std::exp(-95.0f));
  for (int i = 6; i < 10; ++i) EXPECT_EQ(y[i], inf) << x[i];
  EXPECT_TRUE(std::isnan(y[10]));
  EXPECT_EQ(y[11], 1.0f);
  // In place, every length 0..40 (masked tails).
  for (size_t n = 0; n <= 40; ++n) {
    auto v = random_floats(n, -5.0f, 5.0f, static_cast<unsigned>(n));
    const auto orig = v;
    ops::vexp(v.data(), v.data(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(v[i], std::exp(orig[i]), 1e-6 * std::exp(orig[i]));
  }
}

TEST(VecMath, SoftmaxMatchesDoubleReference) {
  for (size_t n : {1u, 5u, 16u, 17u, 100u, 1031u}) {
    auto x = random_floats(n, -30.0f, 30.0f, static_cast<unsigned>(n) + 10);
    std::vector<double> ref(n);
    double mx = -1e300, sum = 0;
    for (float v : x) mx = std::max(mx, static_cast<double>(v));
    for (size_t i = 0; i < n; ++i) sum += (ref[i] = std::exp(x[i] - mx));
    ops::softmax(x.data(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(x[i], ref[i] / sum, 1e-6 * (ref[i] / sum) + 1e-12);
  }
}

TEST(VecMath, LogSumExpMatchesDoubleReference) {
  for (size_t n : {1u, 7u, 8u, 9u, 16u, 100u, 2048u, 32001u}) {
    const auto x = random_floats(n, -40.0f, 25.0f, static_cast<unsigned>(n) + 20);
    double mx = -1e300, sum = 0;
    for (float v : x) mx = std::max(mx, static_cast<double>(v));
    for (float v : x) sum += std::exp(static_cast<double>(v) - mx);
    EXPECT_NEAR(ops::log_sum_exp(x.data(), n), mx + std::log(sum), 1e-12 * (1 + std::abs(mx))) << n;
  }
  // A row with -inf entries (masked logits) and one finite value.
  std::vector<float> m(20, -std::numeric_limits<float>::infinity());
  m[13] = 3.5f;
  EXPECT_NEAR(ops::log_sum_exp(m.data(), m.size()), 3.5, 1e-15);
}

TEST(VecMath, SwigluMatchesScalarReference) {
  for (size_t n : {1u, 15u, 1003u, 20011u}) {  // the last one runs the parallel path
    auto g = random_floats(n, -20.0f, 20.0f, static_cast<unsigned>(n));
    const auto u = random_floats(n, -3.0f, 3.0f, static_cast<unsigned>(n) + 1);
    g[0] = -200.0f;  // exp(200) overflows: silu → -0
    const auto g0 = g;
    ops::swiglu(g.data(), u.data(), n);
    for (size_t i = 0; i < n; ++i) {
      const double gd = g0[i];
      const double ref = gd / (1.0 + std::exp(-gd)) * u[i];
      EXPECT_NEAR(g[i], ref, 1e-6 * std::abs(ref) + 1e-30) << "n=" << n << " i=" << i;
    }
  }
}

TEST(VecMath, RmsnormMatchesDoubleReference) {
  for (int dim : {1, 7, 16, 33, 4101}) {
    const int rows = 3;
    const auto x = random_floats(static_cast<size_t>(rows) * dim, -4.0f, 4.0f, dim);
    const auto w = random_floats(static_cast<size_t>(dim), 0.5f, 1.5f, dim + 1);
    std::vector<float> y(x.size());
    ops::rmsnorm(x.data(), w.data(), y.data(), rows, dim, 1e-5f);
    for (int r = 0; r < rows; ++r) {
      double ss = 0;
      for (int i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
      const double s = 1.0 / std::sqrt(ss / dim + 1e-5);
      for (int i = 0; i < dim; ++i) {
        const double ref = x[r * dim + i] * s * w[i];
        EXPECT_NEAR(y[r * dim + i], ref, 1e-6 * std::abs(ref) + 1e-30) << dim;
      }
    }
  }
}

// kv_store rounds exactly as the scalar converters in util/half.h (ties, subnormals, inf, NaN).
TEST(KvCache, StoreMatchesScalarConversions) {
  auto x = random_floats(1000, -70000.0f, 70000.0f, 3);
  const auto small = random_floats(500, -1e-4f, 1e-4f, 4);  // fp16 subnormals
  x.insert(x.end(), small.begin(), small.end());
  const float inf = std::numeric_limits<float>::infinity();
  for (float e : {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256,
                  65520.0f, 1e-8f, inf, -inf, std::numeric_limits<float>::quiet_NaN(), 0.0f, -0.0f})
    x.push_back(e);
  std::vector<uint16_t> h(x.size()), b(x.size());
  ops::kv_store(x.data(), h.data(), ops::KvKind::kF16, x.size());
  ops::kv_store(x.data(), b.data(), ops::KvKind::kBF16, x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(h[i], f32_to_f16(x[i])) << x[i];
    EXPECT_EQ(b[i], f32_to_bf16(x[i])) << x[i];
  }
  std::vector<float> f(x.size());
  ops::kv_store(x.data(), f.data(), ops::KvKind::kF32, x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(f[i]));
    } else {
      EXPECT_EQ(f[i], x[i]);
    }
  }
}

struct AttnCase {
  int n, pos0, heads, kv_heads, head_dim;
};

// Double-precision causal GQA attention.
std::vector<double> reference_attention(const std::vector<float>& q, const std::vector<float>& k,
                                        const std::vector<float>& v, const AttnCase& c) {
  const int qs = c.heads * c.head_dim, ks = c.kv_heads * c.head_dim;
  std::vector<double> out(static_cast<size_t>(c.n) * qs, 0.0);
  for (int t = 0; t < c.n; ++t) {
    for (int h = 0; h < c.heads; ++h) {
      const int kh = h / (c.heads / c.kv_heads), len = c.pos0 + t + 1;
      std::vector<double> p(len);
      double mx = -1e300, sum = 0;
      for (int j = 0; j < len; ++j) {
        double s = 0;
        for (int d = 0; d < c.head_dim; ++d)
          s += double(q[t * qs + h * c.head_dim + d]) * k[j * ks + kh * c.head_dim + d];
        p[j] = s / std::sqrt(double(c.head_dim));
        mx = std::max(mx, p[j]);
      }
      for (double& e : p) sum += (e = std::exp(e - mx));
      for (int j = 0; j < len; ++j)
        for (int d = 0; d < c.head_dim; ++d)
          out[t * qs + h * c.head_dim + d] += p[j] / sum * v[j * ks + kh * c.head_dim + d];
    }
  }
  return out;
}

// fp16/bf16 caches against the fp32 path fed the same rounded values, and the fp32 path against a
// double reference: decode (n < 16) and prefill (n ≥ 16), GQA, an odd number of heads, ragged
// head_dim.
TEST(KvCache, HalfAttentionMatchesF32OnRoundedValues) {
  for (AttnCase c : {AttnCase{1, 0, 6, 2, 64}, AttnCase{1, 37, 6, 2, 64}, AttnCase{3, 21, 3, 1, 64},
                     AttnCase{1, 50, 5, 5, 40}, AttnCase{2, 9, 4, 2, 8}, AttnCase{20, 0, 6, 2, 64},
                     AttnCase{20, 13, 3, 1, 64}, AttnCase{17, 5, 5, 5, 40}}) {
    const int max_ctx = c.pos0 + c.n + 3;
    const size_t kv = static_cast<size_t>(max_ctx) * c.kv_heads * c.head_dim;
    const size_t qn = static_cast<size_t>(c.n) * c.heads * c.head_dim;
    const auto q = random_floats(qn, -1.0f, 1.0f, 5);
    const auto k = random_floats(kv, -2.0f, 2.0f, 6);
    const auto v = random_floats(kv, -2.0f, 2.0f, 7);
    for (ops::KvKind kind : {ops::KvKind::kF16, ops::KvKind::kBF16}) {
      std::vector<uint16_t> kh(kv), vh(kv);
      ops::kv_store(k.data(), kh.data(), kind, kv);
      ops::kv_store(v.data(), vh.data(), kind, kv);
      std::vector<float> kr(kv), vr(kv);
      for (size_t i = 0; i < kv; ++i) {
        kr[i] = kind == ops::KvKind::kF16 ? f16_to_f32(kh[i]) : bf16_to_f32(kh[i]);
        vr[i] = kind == ops::KvKind::kF16 ? f16_to_f32(vh[i]) : bf16_to_f32(vh[i]);
      }
      std::vector<float> o32(qn), o16(qn);
      ops::attention(q.data(), kr.data(), vr.data(), o32.data(), c.n, c.pos0, c.heads, c.kv_heads,
                     c.head_dim);
      ops::attention(q.data(), kh.data(), vh.data(), kind, o16.data(), c.n, c.pos0, c.heads,
                     c.kv_heads, c.head_dim);
      const auto ref = reference_attention(q, kr, vr, c);
      for (size_t i = 0; i < qn; ++i) {
        EXPECT_NEAR(o16[i], o32[i], 1e-5 * (1 + std::abs(o32[i])))
            << "n=" << c.n << " pos0=" << c.pos0 << " hd=" << c.head_dim << " i=" << i;
        EXPECT_NEAR(o32[i], ref[i], 1e-5 * (1 + std::abs(ref[i])))
            << "n=" << c.n << " pos0=" << c.pos0 << " hd=" << c.head_dim << " i=" << i;
      }
    }
  }
}

std::vector<int> some_tokens(int n, int vocab) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 5 + 1) % vocab;
  return t;
}

// Whole model: fp16/bf16 caches give logits close to fp32, and prefill-then-decode equals one
// prefill of everything with the same cache type.
void expect_kv_type_close(KvType kv, double rel_tol, const test::TinyModelOptions& opt) {
  auto w = test::make_tiny_model(opt);
  const int n = 24, vocab = w->cfg.vocab_size;
  const auto toks = some_tokens(n, vocab);
  Transformer f32(w, 32), half(w, 32, TransformerOptions{kv});
  EXPECT_EQ(half.kv_type(), kv);
  const float* a = f32.forward(toks.data(), n, true);
  const std::vector<float> ref(a, a + static_cast<size_t>(n) * vocab);
  const float* b = half.forward(toks.data(), n, true);
  const std::vector<float> all(b, b + static_cast<size_t>(n) * vocab);
  double max_abs = 0, max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_abs = std::max(max_abs, std::abs(double(ref[i])));
    max_diff = std::max(max_diff, std::abs(double(all[i]) - ref[i]));
  }
  EXPECT_GT(max_diff, 0.0) << "the cache type made no difference";
  EXPECT_LT(max_diff, rel_tol * max_abs);
  // 17 tokens of prefill (the GEMM path) then one token at a time (the decode path).
  half.reset();
  half.forward(toks.data(), 17);
  for (int t = 17; t < n; ++t) {
    const float* s = half.forward(&toks[t], 1);
    for (int j = 0; j < vocab; ++j)
      EXPECT_NEAR(s[j], all[static_cast<size_t>(t) * vocab + j], 1e-4 * (1 + max_abs)) << "t=" << t;
  }
}

TEST(KvCache, TransformerF16CloseToF32) {
  expect_kv_type_close(KvType::kF16, 2e-2, {});
  test::TinyModelOptions o;  // head_dim 64, 6 heads over 2 kv heads
  o.dim = 384;
  o.heads = 6;
  o.kv_heads = 2;
  o.seed = 3;
  expect_kv_type_close(KvType::kF16, 2e-2, o);
}

TEST(KvCache, TransformerBf16CloseToF32) {
  expect_kv_type_close(KvType::kBF16, 1e-1, {});
  test::TinyModelOptions o;
  o.dim = 384;
  o.heads = 6;
  o.kv_heads = 2;
  o.seed = 3;
  expect_kv_type_close(KvType::kBF16, 1e-1, o);
}

TEST(KvCache, ParseKvType) {
  EXPECT_EQ(parse_kv_type("opt", "f32"), KvType::kF32);
  EXPECT_EQ(parse_kv_type("opt", "f16"), KvType::kF16);
  EXPECT_EQ(parse_kv_type("opt", "bf16"), KvType::kBF16);
  EXPECT_THROW(parse_kv_type("opt", "f8"), Error);
  try {
    parse_kv_type("--kv-type", "f8");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--kv-type: "), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lowbit
