// The ops the GPT-2 / OPT / Bloom / Falcon / GPT-NeoX / GPT-J / Phi families need, each tested
// three ways: the vectorized op against its scalar reference (ops::ref), and both against the
// mathematical definition evaluated in double (long double where cancellation matters):
// LayerNorm, the activations (SiLU, GELU erf, GELU tanh, ReLU; plain and gated), partial and
// interleaved RoPE, ALiBi slopes and attention with ALiBi biases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/ops/activation.h"
#include "lowbit/ops/attention.h"
#include "lowbit/ops/norm.h"
#include "lowbit/ops/rope.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"

namespace lowbit {
namespace {

using ops::Activation;

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> random_floats(size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

// torch.nn.LayerNorm in long double: biased variance, eps inside the square root.
std::vector<double> layernorm_definition(const std::vector<float>& x, const float* w,
                                         const float* b, int rows, int dim, float eps) {
  std::vector<double> y(x.size());
  for (int r = 0; r < rows; ++r) {
    const float* xr = x.data() + static_cast<size_t>(r) * dim;
    long double mean = 0, var = 0;
    for (int i = 0; i < dim; ++i) mean += xr[i];
    mean /= dim;
    for (int i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= dim;
    const long double rstd = 1.0L / std::sqrt(var + static_cast<long double>(eps));
    for (int i = 0; i < dim; ++i) {
      long double v = (xr[i] - mean) * rstd;
      if (w) v *= w[i];
      if (b) v += b[i];
      y[static_cast<size_t>(r) * dim + i] = static_cast<double>(v);
    }
  }
  return y;
}

TEST(OpsLayerNorm, MatchesReferenceAndDefinition) {
  double max_rel_def = 0;
  for (int dim : {1, 7, 16, 33, 768, 4101}) {
    const int rows = 3;
    // A large common offset: the mean must be taken without losing the small deviations.
    auto x = random_floats(static_cast<size_t>(rows) * dim, -4.0f, 4.0f, dim);
    for (size_t i = 0; i < x.size(); i += 2) x[i] += 300.0f;
    const auto w = random_floats(static_cast<size_t>(dim), 0.5f, 1.5f, dim + 1);
    const auto b = random_floats(static_cast<size_t>(dim), -1.0f, 1.0f, dim + 2);
    for (int variant = 0; variant < 4; ++variant) {
      const float* wp = variant & 1 ? w.data() : nullptr;
      const float* bp = variant & 2 ? b.data() : nullptr;
      std::vector<float> y(x.size()), yr(x.size());
      ops::layernorm(x.data(), wp, bp, y.data(), rows, dim, 1e-5f);
      ops::ref::layernorm(x.data(), wp, bp, yr.data(), rows, dim, 1e-5f);
      const auto d = layernorm_definition(x, wp, bp, rows, dim, 1e-5f);
      for (size_t i = 0; i < x.size(); ++i) {
        // Computed in double and rounded once: within one ulp of the definition and of the
        // reference.
        const double tol = 1.2e-7 * std::abs(d[i]) + 1e-12;
        ASSERT_NEAR(y[i], d[i], tol) << "dim=" << dim << " variant=" << variant << " i=" << i;
        ASSERT_NEAR(y[i], yr[i], 1.2e-7 * std::abs(yr[i]) + 1e-12) << dim;
        if (d[i] != 0) max_rel_def = std::max(max_rel_def, std::abs(y[i] - d[i]) / std::abs(d[i]));
      }
      // In place gives the same.
      std::vector<float> inplace = x;
      ops::layernorm(inplace.data(), wp, bp, inplace.data(), rows, dim, 1e-5f);
      EXPECT_EQ(inplace, y);
    }
  }
  EXPECT_LE(max_rel_def, 1.2e-7);
}

// Rows of huge finite values normalize like the same row at scale 1 (a float sum of squares would
// overflow to inf and give zeros or NaN); a constant row gives the bias; Inf/NaN give NaN.
TEST(OpsLayerNorm, LargeValuesConstantRowsAndNonFinite) {
  const int dim = 37;
  const auto base = random_floats(dim, -4.0f, 4.0f, 11);
  const auto w = random_floats(dim, 0.5f, 1.5f, 12);
  const auto b = random_floats(dim, -1.0f, 1.0f, 13);
  std::vector<float> y1(dim);
  ops::layernorm(base.data(), w.data(), b.data(), y1.data(), 1, dim, 1e-5f);
  for (float scale : {1e19f, 1e30f, 3e37f}) {
    std::vector<float> x(dim);
    for (int i = 0; i < dim; ++i) x[i] = base[i] * scale;
    std::vector<float> y(dim);
    ops::layernorm(x.data(), w.data(), b.data(), y.data(), 1, dim, 1e-5f);
    const auto d = layernorm_definition(x, w.data(), b.data(), 1, dim, 1e-5f);
    for (int i = 0; i < dim; ++i) {
      ASSERT_TRUE(std::isfinite(y[i])) << scale;
      EXPECT_NEAR(y[i], d[i], 1.2e-7 * std::abs(d[i]) + 1e-12) << scale;
      EXPECT_NEAR(y[i], y1[i], 1e-5 * (1 + std::abs(y1[i]))) << scale;  // eps vanishes
    }
  }
  // FLT_MAX and -FLT_MAX in one row: the deviations are finite in double.
  std::vector<float> x(dim, 0.0f);
  x[0] = FLT_MAX;
  x[1] = -FLT_MAX;
  std::vector<float> y(dim);
  ops::layernorm(x.data(), nullptr, nullptr, y.data(), 1, dim, 1e-5f);
  EXPECT_NEAR(y[0], std::sqrt(dim / 2.0), 1e-5);
  EXPECT_NEAR(y[1], -std::sqrt(dim / 2.0), 1e-5);
  EXPECT_EQ(y[2], 0.0f);
  // A constant row: (x − mean) = 0, y = bias.
  std::vector<float> c(dim, 5.5f);
  ops::layernorm(c.data(), w.data(), b.data(), y.data(), 1, dim, 1e-5f);
  for (int i = 0; i < dim; ++i) EXPECT_EQ(y[i], b[i]);
  // Non-finite rows are NaN, the other rows untouched.
  std::vector<float> two(2 * static_cast<size_t>(dim));
  std::copy(base.begin(), base.end(), two.begin());
  std::copy(base.begin(), base.end(), two.begin() + dim);
  for (float bad : {kInf, -kInf, kNaN}) {
    two[dim + 3] = bad;
    std::vector<float> out(two.size());
    ops::layernorm(two.data(), w.data(), b.data(), out.data(), 2, dim, 1e-5f);
    for (int i = 0; i < dim; ++i) {
      EXPECT_EQ(out[i], y1[i]);
      EXPECT_TRUE(std::isnan(out[dim + i])) << bad;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Activations

// The definitions in long double. GELU-erf: x/2 · (1 + erf(x/√2)) = x/2 · erfc(−x/√2), GELU-tanh:
// x/2 · (1 + tanh(u)) = x / (1 + exp(−2u)); the second forms are the same functions without the
// cancellation of 1 + (−1 + tiny) for negative x (DefinitionsAgreeWithTheirTextbookForms checks
// the identities).
long double definition(Activation a, long double x) {
  switch (a) {
    case Activation::kSilu:
      return x / (1 + std::exp(-x));
    case Activation::kGeluErf:
      return x / 2 * std::erfc(-x / std::sqrt(2.0L));
    case Activation::kGeluTanh: {
      const long double u = std::sqrt(2 / std::acos(-1.0L)) * (x + 0.044715L * x * x * x);
      return x / (1 + std::exp(-2 * u));
    }
    case Activation::kRelu:
      return x > 0 ? x : 0;
  }
  return 0;
}

long double textbook(Activation a, long double x) {
  switch (a) {
    case Activation::kGeluErf:
      return x / 2 * (1 + std::erf(x / std::sqrt(2.0L)));
    case Activation::kGeluTanh:
      return x / 2 * (1 + std::tanh(std::sqrt(2 / std::acos(-1.0L)) * (x + 0.044715L * x * x * x)));
    default:
      return definition(a, x);
  }
}

constexpr Activation kAllActs[] = {Activation::kSilu, Activation::kGeluErf, Activation::kGeluTanh,
                                   Activation::kRelu};

TEST(OpsActivation, DefinitionsAgreeWithTheirTextbookForms) {
  for (Activation a : {Activation::kGeluErf, Activation::kGeluTanh}) {
    for (int i = -3000; i <= 3000; ++i) {
      const long double x = i / 1000.0L;
      EXPECT_NEAR(static_cast<double>(definition(a, x)), static_cast<double>(textbook(a, x)), 1e-15)
          << ops::activation_name(a) << " x=" << static_cast<double>(x);
    }
  }
}

// A dense sweep of [-20, 20] (step 2^-12), every power of two of both signs with a few
// mantissas (the whole float range), and the tails near the GELUs' and SiLU's underflow.
std::vector<float> sweep_inputs() {
  std::vector<float> x;
  for (int i = -20 * 4096; i <= 20 * 4096; ++i) x.push_back(static_cast<float>(i) / 4096.0f);
  for (int e = -149; e <= 127; ++e) {
    for (float m : {1.0f, 1.3f, 1.7f, 1.9999999f}) {
      const float v = std::ldexp(m, e);
      if (std::isfinite(v)) {
        x.push_back(v);
        x.push_back(-v);
      }
    }
  }
  const auto tail = random_floats(20000, -120.0f, -20.0f, 21);
  x.insert(x.end(), tail.begin(), tail.end());
  for (float e : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-45f, -1e-45f, 1e30f, -1e30f, FLT_MAX, -FLT_MAX})
    x.push_back(e);
  return x;
}

struct ActError {
  double max_rel = 0;  // over |definition| ≥ 1e-30
  double max_abs = 0;  // over |definition| < 1e-30
};

ActError activation_error(Activation a, const std::vector<float>& x, const std::vector<float>& y) {
  ActError e;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(definition(a, x[i]));
    const double err = std::abs(static_cast<double>(y[i]) - d);
    if (std::abs(d) >= 1e-30) {
      e.max_rel = std::max(e.max_rel, err / std::abs(d));
    } else {
      e.max_abs = std::max(e.max_abs, err);
    }
  }
  return e;
}

// The vectorized activations against the definition over the whole float range: within 2e-7
// relative wherever the result is a normal float well above 0 (the GELUs and ReLU are rounded
// once from double: 0.5 ulp; SiLU keeps SwiGLU's fp32 kernel), and 1e-30 absolute below.
TEST(OpsActivation, MatchesDefinitionOverTheFloatRange) {
  const auto x = sweep_inputs();
  for (Activation a : kAllActs) {
    std::vector<float> y = x;
    ops::activate(a, y.data(), y.size());
    const ActError e = activation_error(a, x, y);
    const double rel_bound = a == Activation::kSilu ? 2e-7 : 6.5e-8;
    EXPECT_LE(e.max_rel, rel_bound) << ops::activation_name(a);
    EXPECT_LE(e.max_abs, 1e-30) << ops::activation_name(a);
    // The scalar reference is rounded once from double: half an ulp.
    std::vector<float> r = x;
    ops::ref::activate(a, r.data(), r.size());
    const ActError er = activation_error(a, x, r);
    EXPECT_LE(er.max_rel, 6.5e-8) << ops::activation_name(a);
    EXPECT_LE(er.max_abs, 1e-30) << ops::activation_name(a);
    // Vector against reference: one ulp apart at most (SiLU: three).
    const double ulps = a == Activation::kSilu ? 3 : 1;
    for (size_t i = 0; i < x.size(); ++i) {
      const double ulp = std::max(std::abs(double(r[i])) * FLT_EPSILON, 1e-45);
      ASSERT_LE(std::abs(double(y[i]) - r[i]), ulps * ulp + 1e-30)
          << ops::activation_name(a) << " x=" << x[i] << " vec=" << y[i] << " ref=" << r[i];
    }
  }
}

TEST(OpsActivation, InfinitiesNaNAndLimits) {
  for (Activation a : kAllActs) {
    for (bool vec : {true, false}) {
      std::vector<float> x = {kInf, -kInf, kNaN, -kNaN, FLT_MAX, -FLT_MAX, 1e30f, -1e30f, 0.0f};
      if (vec) {
        ops::activate(a, x.data(), x.size());
      } else {
        ops::ref::activate(a, x.data(), x.size());
      }
      const char* name = ops::activation_name(a);
      EXPECT_EQ(x[0], kInf) << name;
      EXPECT_EQ(x[1], 0.0f) << name;  // ±0
      EXPECT_TRUE(std::isnan(x[2])) << name;
      EXPECT_TRUE(std::isnan(x[3])) << name;
      EXPECT_EQ(x[4], FLT_MAX) << name;
      EXPECT_EQ(x[5], 0.0f) << name;
      EXPECT_EQ(x[6], 1e30f) << name;
      EXPECT_EQ(x[7], 0.0f) << name;
      EXPECT_EQ(x[8], 0.0f) << name;
    }
  }
}

// Every length 0..40 (masked tails, nothing written past n) and a long array (the parallel path)
// against the scalar reference.
TEST(OpsActivation, TailsAndParallelPath) {
  for (Activation a : kAllActs) {
    for (size_t n : {0u, 1u, 5u, 15u, 16u, 17u, 31u, 33u, 40u, 1025u, 100003u}) {
      auto x = random_floats(n + 8, -8.0f, 8.0f, static_cast<unsigned>(n) + 3);
      auto r = x;
      ops::activate(a, x.data(), n);
      ops::ref::activate(a, r.data(), n);
      for (size_t i = 0; i < n; ++i)
        ASSERT_NEAR(x[i], r[i], 3 * FLT_EPSILON * std::abs(r[i]) + 1e-37)
            << ops::activation_name(a) << " n=" << n << " i=" << i;
      for (size_t i = n; i < n + 8; ++i) ASSERT_EQ(x[i], r[i]) << "wrote past n";
    }
  }
}

// gate = act(gate) · up: against act(g)·u in long double, against the reference, and SwiGLU is
// exactly gated(kSilu).
TEST(OpsActivation, GatedMatchesReferenceAndDefinition) {
  for (size_t n : {1u, 15u, 1003u, 20011u}) {
    const auto g0 = random_floats(n, -20.0f, 20.0f, static_cast<unsigned>(n));
    const auto u = random_floats(n, -3.0f, 3.0f, static_cast<unsigned>(n) + 1);
    for (Activation a : kAllActs) {
      auto g = g0, r = g0;
      ops::gated(a, g.data(), u.data(), n);
      ops::ref::gated(a, r.data(), u.data(), n);
      for (size_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(definition(a, g0[i]) * u[i]);
        const double rel = a == Activation::kSilu ? 3e-7 : 6.5e-8;
        ASSERT_NEAR(g[i], d, rel * std::abs(d) + 1e-37)
            << ops::activation_name(a) << " g=" << g0[i] << " u=" << u[i];
        ASSERT_NEAR(r[i], d, 6.5e-8 * std::abs(d) + 1e-37) << ops::activation_name(a);
      }
    }
    auto s = g0, t = g0;
    ops::swiglu(s.data(), u.data(), n);
    ops::gated(Activation::kSilu, t.data(), u.data(), n);
    EXPECT_EQ(s, t);
  }
}

TEST(OpsActivation, ParseHuggingFaceNames) {
  EXPECT_EQ(ops::parse_activation("c", "silu"), Activation::kSilu);
  EXPECT_EQ(ops::parse_activation("c", "swish"), Activation::kSilu);
  EXPECT_EQ(ops::parse_activation("c", "gelu"), Activation::kGeluErf);
  EXPECT_EQ(ops::parse_activation("c", "gelu_python"), Activation::kGeluErf);
  EXPECT_EQ(ops::parse_activation("c", "gelu_new"), Activation::kGeluTanh);
  EXPECT_EQ(ops::parse_activation("c", "gelu_pytorch_tanh"), Activation::kGeluTanh);
  EXPECT_EQ(ops::parse_activation("c", "gelu_fast"), Activation::kGeluTanh);
  EXPECT_EQ(ops::parse_activation("c", "gelu_accurate"), Activation::kGeluTanh);
  EXPECT_EQ(ops::parse_activation("c", "relu"), Activation::kRelu);
  for (Activation a : kAllActs) EXPECT_EQ(ops::parse_activation("c", ops::activation_name(a)), a);
  // Not the same functions: clipped, sigmoid-approximated, squared, capped, leaky, other case.
  for (const char* bad : {"gelu_10", "quick_gelu", "relu2", "relu6", "leaky_relu", "mish", "tanh",
                          "linear", "GELU", "", "silu "}) {
    EXPECT_THROW(ops::parse_activation("c", bad), Error) << bad;
  }
  try {
    ops::parse_activation("m/config.json", "quick_gelu");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "m/config.json: unsupported activation 'quick_gelu'");
  }
}

// ---------------------------------------------------------------------------------------------
// RoPE

// Naive rotation in double of the fp32 angle pos·inv_freq[i] (Hugging Face's angle): pair i is
// (i, i + rot/2) or (2i, 2i + 1); elements from rot on pass through.
std::vector<double> rope_definition(const std::vector<float>& x, int heads, int head_dim, int rot,
                                    bool interleaved, int pos, const std::vector<float>& inv) {
  std::vector<double> y(x.begin(), x.end());
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < rot / 2; ++i) {
      const double angle = static_cast<float>(pos) * inv[i];
      const int i0 = h * head_dim + (interleaved ? 2 * i : i);
      const int i1 = h * head_dim + (interleaved ? 2 * i + 1 : i + rot / 2);
      const double a = x[i0], b = x[i1];
      y[i0] = a * std::cos(angle) - b * std::sin(angle);
      y[i1] = b * std::cos(angle) + a * std::sin(angle);
    }
  }
  return y;
}

TEST(OpsRope, InvFreqOverRopeDims) {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 10000.0f;
  const auto full = ops::rope_inv_freq(c);
  ASSERT_EQ(full.size(), 32u);
  c.rope_dims = 64;
  EXPECT_EQ(ops::rope_inv_freq(c), full);  // rope_dims = head_dim is the default
  c.rope_dims = 16;                        // GPT-NeoX rotary_pct 0.25
  const auto part = ops::rope_inv_freq(c);
  ASSERT_EQ(part.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    // 1 / theta^(2i/16) with the exponent and the power in fp32, as Hugging Face.
    const float expo = static_cast<float>(2 * i) / 16.0f;
    EXPECT_EQ(part[i], 1.0f / std::pow(10000.0f, expo)) << i;
    EXPECT_NEAR(part[i], std::pow(10000.0, -2.0 * i / 16), 2e-7 * part[i]) << i;
  }
  // llama3 scaling applies over the partial frequencies too.
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0f;
  c.rope_scaling.original_max_position_embeddings = 64;
  const auto scaled = ops::rope_inv_freq(c);
  ASSERT_EQ(scaled.size(), 8u);
  EXPECT_EQ(scaled[0], part[0]);         // short wavelength: kept
  EXPECT_EQ(scaled[7], part[7] / 8.0f);  // long wavelength: divided
}

struct RopeCase {
  int heads, head_dim, rot;
  bool interleaved;
};

// Partial and interleaved rotations against the double definition and the scalar reference, the
// pass-through elements untouched, every position kind (0, small, large).
TEST(OpsRope, PartialAndInterleavedMatchDefinition) {
  const RopeCase cases[] = {
      {4, 64, 16, false},                             // GPT-NeoX (rotary_pct 0.25)
      {3, 80, 32, false},                             // Phi-2 (partial_rotary_factor 0.4)
      {2, 256, 64, true},                             // GPT-J (rotary_dim 64)
      {5, 64, 64, true},                              // whole head, interleaved (ChatGLM-style)
      {2, 128, 128, false},                           // whole head, rotate-half
      {1, 40, 24, true},                              // ragged: 12 pairs, a masked tail
      {2, 1024, 1024, true}, {1, 1024, 1024, false},  // the largest head_dim
      {1, 2048, 2048, true}, {1, 2048, 1536, false},  // beyond it: heap scratch
  };
  double max_err = 0;
  for (const RopeCase& c : cases) {
    ModelConfig cfg;
    cfg.head_dim = c.head_dim;
    cfg.rope_dims = c.rot;
    cfg.rope_theta = 10000.0f;
    const auto inv = ops::rope_inv_freq(cfg);
    ASSERT_EQ(inv.size(), static_cast<size_t>(c.rot / 2));
    for (int pos : {0, 1, 7, 1000, 65535}) {
      const auto x0 = random_floats(static_cast<size_t>(c.heads) * c.head_dim, -3.0f, 3.0f,
                                    static_cast<unsigned>(pos + c.head_dim));
      auto x = x0, r = x0;
      ops::rope(x.data(), c.heads, c.head_dim, c.rot, c.interleaved, pos, inv.data());
      ops::ref::rope(r.data(), c.heads, c.head_dim, c.rot, c.interleaved, pos, inv.data());
      const auto d = rope_definition(x0, c.heads, c.head_dim, c.rot, c.interleaved, pos, inv);
      for (int h = 0; h < c.heads; ++h) {
        for (int i = 0; i < c.head_dim; ++i) {
          const size_t k = static_cast<size_t>(h) * c.head_dim + i;
          if (i >= c.rot) {
            ASSERT_EQ(x[k], x0[k]) << "pass-through element changed";
            continue;
          }
          // The fp32 cos/sin (≤ 1 ulp each) and two products and a sum in fp32.
          ASSERT_NEAR(x[k], d[k], 3e-7 * 3.0 * 2) << c.head_dim << "/" << c.rot << " pos=" << pos;
          ASSERT_NEAR(x[k], r[k], 2.5e-7 * 3.0) << c.head_dim << "/" << c.rot << " pos=" << pos;
          max_err = std::max(max_err, std::abs(x[k] - d[k]));
        }
      }
    }
  }
  EXPECT_LT(max_err, 1e-6);
}

// rope() before this change: cos/sin rows, then a[i]·cos − b[i]·sin over the whole head.
void old_rope(float* x, int n_heads, int head_dim, int pos, const float* inv_freq) {
  const int half = head_dim / 2;
  std::vector<float> cs(half), sn(half);
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    cs[i] = std::cos(angle);
    sn[i] = std::sin(angle);
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim;
#pragma omp simd
    for (int i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cs[i] - b * sn[i];
      v[i + half] = b * cs[i] + a * sn[i];
    }
  }
}

TEST(OpsRope, WholeHeadRotateHalfEqualsOldRope) {
  for (int head_dim : {8, 64, 128, 1024}) {
    ModelConfig cfg;
    cfg.head_dim = head_dim;
    cfg.rope_theta = 500000.0f;
    const auto inv = ops::rope_inv_freq(cfg);
    for (int pos : {0, 3, 4097}) {
      const auto x0 = random_floats(6 * static_cast<size_t>(head_dim), -2.0f, 2.0f, pos + 5);
      auto a = x0, b = x0, c = x0;
      ops::rope(a.data(), 6, head_dim, pos, inv.data());
      ops::rope(b.data(), 6, head_dim, head_dim, false, pos, inv.data());
      old_rope(c.data(), 6, head_dim, pos, inv.data());
      EXPECT_EQ(a, b);
      EXPECT_EQ(a, c);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ALiBi

// transformers' build_alibi_tensor, transcribed: fp32 bases, fp32 powers.
std::vector<float> hf_alibi_slopes(int n) {
  const int closest = 1 << static_cast<int>(std::floor(std::log2(n)));
  const float base = static_cast<float>(std::pow(2.0, -std::pow(2.0, -(std::log2(closest) - 3))));
  std::vector<float> s;
  for (int p = 1; p <= closest; ++p) s.push_back(static_cast<float>(std::pow(double(base), p)));
  if (closest != n) {
    const float extra =
        static_cast<float>(std::pow(2.0, -std::pow(2.0, -(std::log2(2 * closest) - 3))));
    const int remaining = std::min(closest, n - closest);
    for (int p = 1; p < 1 + 2 * remaining; p += 2)
      s.push_back(static_cast<float>(std::pow(double(extra), p)));
  }
  return s;
}

TEST(OpsAlibi, SlopesMatchTransformers) {
  // Bloom with 4 heads: 1/4, 1/16, 1/64, 1/256 (the ALiBi paper's geometric sequence 2^(-8h/n)).
  EXPECT_EQ(ops::alibi_slopes(4), (std::vector<float>{0.25f, 0.0625f, 0.015625f, 0.00390625f}));
  // 8 heads: 2^-1 ... 2^-8.
  std::vector<float> eight;
  for (int h = 1; h <= 8; ++h) eight.push_back(std::ldexp(1.0f, -h));
  EXPECT_EQ(ops::alibi_slopes(8), eight);
  // 12 heads: the 8 above, then the next power of two's (16 heads: base 2^-0.5) odd powers
  // 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
  const auto twelve = ops::alibi_slopes(12);
  ASSERT_EQ(twelve.size(), 12u);
  for (int h = 0; h < 8; ++h) EXPECT_EQ(twelve[h], eight[h]);
  const float odd[] = {0.70710677f, 0.35355338f, 0.17677669f, 0.088388346f};
  for (int h = 0; h < 4; ++h) EXPECT_NEAR(twelve[8 + h], odd[h], 2e-7 * odd[h]) << h;
  EXPECT_EQ(twelve, hf_alibi_slopes(12));
  // 30 heads: 16 of base 2^-0.5, then 14 odd powers of base 2^-0.25.
  const auto thirty = ops::alibi_slopes(30);
  ASSERT_EQ(thirty.size(), 30u);
  EXPECT_EQ(thirty, hf_alibi_slopes(30));
  for (int h = 0; h < 16; ++h)
    EXPECT_NEAR(thirty[h], std::pow(2.0, -0.5 * (h + 1)), 2e-6 * thirty[h]);
  for (int k = 0; k < 14; ++k)
    EXPECT_NEAR(thirty[16 + k], std::pow(2.0, -0.25 * (2 * k + 1)), 2e-6 * thirty[16 + k]);
  // Small and other counts.
  EXPECT_EQ(ops::alibi_slopes(1), (std::vector<float>{0.00390625f}));
  EXPECT_EQ(ops::alibi_slopes(3), (std::vector<float>{0.0625f, 0.00390625f, 0.25f}));
  for (int n : {2, 5, 6, 7, 16, 20, 32, 40, 64, 71, 112})
    EXPECT_EQ(ops::alibi_slopes(n), hf_alibi_slopes(n)) << n;
}

struct AttnCase {
  int n, pos0, heads, kv_heads, head_dim;
};

// Double-precision causal attention with Bloom's bias: score(t, j) = q·k/√d + slope · j (absolute
// key position, as transformers adds it), softmax over j ≤ pos0 + t.
std::vector<double> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, const AttnCase& c,
                                    const float* slopes) {
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
        p[j] = s / std::sqrt(double(c.head_dim)) + (slopes ? double(slopes[h]) * j : 0.0);
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

// Attention with ALiBi against the double definition and the scalar reference: decode (n < 16,
// the vector kernels) and prefill (n ≥ 16, the BLAS path), MHA, GQA and MQA, every cache type.
TEST(OpsAttention, AlibiMatchesNaiveForEveryPathAndCacheType) {
  const AttnCase cases[] = {
      {1, 0, 4, 4, 64},    {1, 40, 12, 12, 64}, {3, 21, 8, 2, 64},  {2, 33, 6, 1, 40},
      {5, 17, 12, 4, 24},  {16, 0, 4, 4, 64},   {20, 13, 8, 2, 64}, {17, 5, 6, 1, 40},
      {37, 20, 12, 3, 32}, {24, 0, 30, 30, 16},
  };
  for (const AttnCase& c : cases) {
    const int max_ctx = c.pos0 + c.n + 3;
    const size_t kv = static_cast<size_t>(max_ctx) * c.kv_heads * c.head_dim;
    const size_t qn = static_cast<size_t>(c.n) * c.heads * c.head_dim;
    const auto q = random_floats(qn, -1.0f, 1.0f, 5 + c.n);
    const auto k = random_floats(kv, -2.0f, 2.0f, 6 + c.n);
    const auto v = random_floats(kv, -2.0f, 2.0f, 7 + c.n);
    auto slopes = ops::alibi_slopes(c.heads);
    slopes[0] = 2.0f;  // one steep head: the bias dominates the scores
    for (ops::KvKind kind : {ops::KvKind::kF32, ops::KvKind::kF16, ops::KvKind::kBF16}) {
      // The cache in its type, and the values it holds as fp32 for the definition.
      std::vector<uint16_t> kh(kv), vh(kv);
      std::vector<float> kr = k, vr = v;
      const void* kc = k.data();
      const void* vc = v.data();
      if (kind != ops::KvKind::kF32) {
        ops::kv_store(k.data(), kh.data(), kind, kv);
        ops::kv_store(v.data(), vh.data(), kind, kv);
        for (size_t i = 0; i < kv; ++i) {
          kr[i] = kind == ops::KvKind::kF16 ? f16_to_f32(kh[i]) : bf16_to_f32(kh[i]);
          vr[i] = kind == ops::KvKind::kF16 ? f16_to_f32(vh[i]) : bf16_to_f32(vh[i]);
        }
        kc = kh.data();
        vc = vh.data();
      }
      std::vector<float> out(qn), ref(qn), plain(qn), plain_null(qn);
      ops::attention(q.data(), kc, vc, kind, out.data(), c.n, c.pos0, c.heads, c.kv_heads,
                     c.head_dim, slopes.data());
      ops::ref::attention(q.data(), kc, vc, kind, ref.data(), c.n, c.pos0, c.heads, c.kv_heads,
                          c.head_dim, slopes.data());
      const auto def = naive_attention(q, kr, vr, c, slopes.data());
      const auto def_plain = naive_attention(q, kr, vr, c, nullptr);
      double diff_from_plain = 0;
      for (size_t i = 0; i < qn; ++i) {
        ASSERT_NEAR(out[i], def[i], 1e-5 * (1 + std::abs(def[i])))
            << "n=" << c.n << " pos0=" << c.pos0 << " kv_heads=" << c.kv_heads << " i=" << i;
        ASSERT_NEAR(ref[i], def[i], 1e-5 * (1 + std::abs(def[i]))) << "reference, n=" << c.n;
        ASSERT_NEAR(out[i], ref[i], 1e-5 * (1 + std::abs(ref[i]))) << "n=" << c.n;
        diff_from_plain = std::max(diff_from_plain, std::abs(def[i] - def_plain[i]));
      }
      if (c.pos0 + c.n > 1) {
        EXPECT_GT(diff_from_plain, 1e-2) << "the biases changed nothing";
      }
      // Null slopes: the attention without ALiBi, bit for bit the call without the argument.
      ops::attention(q.data(), kc, vc, kind, plain.data(), c.n, c.pos0, c.heads, c.kv_heads,
                     c.head_dim);
      ops::attention(q.data(), kc, vc, kind, plain_null.data(), c.n, c.pos0, c.heads, c.kv_heads,
                     c.head_dim, nullptr);
      EXPECT_EQ(plain, plain_null);
      for (size_t i = 0; i < qn; ++i)
        ASSERT_NEAR(plain[i], def_plain[i], 1e-5 * (1 + std::abs(def_plain[i]))) << c.n;
      if (kind == ops::KvKind::kF32) {  // the fp32 overload
        std::vector<float> o32(qn);
        ops::attention(q.data(), k.data(), v.data(), o32.data(), c.n, c.pos0, c.heads, c.kv_heads,
                       c.head_dim, slopes.data());
        EXPECT_EQ(o32, out);
      }
    }
  }
}

// Zero slopes are no bias; prefill then decode with ALiBi equals one prefill of everything (the
// relative bias depends only on j − position, so a query sees the same scores either way).
TEST(OpsAttention, AlibiPrefillThenDecodeEqualsOnePrefill) {
  const int heads = 6, kv_heads = 2, hd = 32, total = 24;
  const size_t qs = static_cast<size_t>(heads) * hd, ks = static_cast<size_t>(kv_heads) * hd;
  const auto q = random_floats(total * qs, -1.0f, 1.0f, 31);
  const auto k = random_floats(total * ks, -2.0f, 2.0f, 32);
  const auto v = random_floats(total * ks, -2.0f, 2.0f, 33);
  const auto slopes = ops::alibi_slopes(heads);
  std::vector<float> all(total * qs), step(total * qs);
  ops::attention(q.data(), k.data(), v.data(), all.data(), total, 0, heads, kv_heads, hd,
                 slopes.data());
  ops::attention(q.data(), k.data(), v.data(), step.data(), 17, 0, heads, kv_heads, hd,
                 slopes.data());
  for (int t = 17; t < total; ++t)
    ops::attention(q.data() + t * qs, k.data(), v.data(), step.data() + t * qs, 1, t, heads,
                   kv_heads, hd, slopes.data());
  for (size_t i = 0; i < all.size(); ++i)
    ASSERT_NEAR(step[i], all[i], 1e-5 * (1 + std::abs(all[i])));
  const std::vector<float> zeros(heads, 0.0f);
  std::vector<float> zero_bias(total * qs), none(total * qs);
  ops::attention(q.data(), k.data(), v.data(), zero_bias.data(), total, 0, heads, kv_heads, hd,
                 zeros.data());
  ops::attention(q.data(), k.data(), v.data(), none.data(), total, 0, heads, kv_heads, hd);
  EXPECT_EQ(zero_bias, none);
}

}  // namespace
}  // namespace lowbit
