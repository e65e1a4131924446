// Rotations (quant/algo/rotation.h): the randomized Hadamard (power-of-two sizes) and the random
// orthogonal fallback are orthogonal and seeded; rotating the rows of a matrix and the outputs of
// a writer compose to the identity; and `quantize --algo none --rotate r1` leaves the function of
// every family the suite has unchanged (logits to fp32 rounding), tied embeddings untied; an
// unknown rotation is a one-line error.
#include "lowbit/quant/algo/rotation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "lowbit/ops/hadamard.h"
#include "lowbit/quant/quantize_model.h"
#include "lowbit/util/error.h"
#include "test_util.h"

namespace lowbit {
namespace {

using test::TempDir;

// Q as a dense matrix: the identity's rows rotated.
std::vector<float> dense(const Rotation& r) {
  std::vector<float> q(static_cast<size_t>(r.d) * r.d, 0.0f);
  for (int i = 0; i < r.d; ++i) q[static_cast<size_t>(i) * r.d + i] = 1.0f;
  rotate_rows(r, q.data(), r.d);
  return q;
}

double max_dev_from_identity(const std::vector<float>& q, int d) {
  double dev = 0;
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) {
      double s = 0;
      for (int k = 0; k < d; ++k) s += double(q[size_t(i) * d + k]) * q[size_t(j) * d + k];
      dev = std::max(dev, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  return dev;
}

TEST(Rotation, HadamardAndFallbackAreOrthogonalAndSeeded) {
  for (int d : {1, 2, 64, 256, 96, 100}) {
    SCOPED_TRACE(d);
    const Rotation r = make_rotation(d, 7);
    EXPECT_EQ(r.hadamard, (d & (d - 1)) == 0);
    const std::vector<float> q = dense(r);
    EXPECT_LT(max_dev_from_identity(q, d), 1e-5);
    if (r.hadamard && d > 1) {
      // Every entry ±1/√d: a Hadamard matrix spreads each channel over all of them.
      double worst = 0;
      for (float v : q)
        worst = std::max(worst, std::fabs(std::fabs(v) - 1.0 / std::sqrt(double(d))));
      EXPECT_LT(worst, 1e-6);
    }
    EXPECT_EQ(dense(make_rotation(d, 7)), q);
    if (d > 2) {
      EXPECT_NE(dense(make_rotation(d, 8)), q);
    }
  }
  EXPECT_THROW(make_rotation(0, 1), Error);
}

// The online transform of R4 is orthogonal for every size: Sylvester, Paley ⊗ Sylvester, and the
// block-diagonal fallback; its kind is reported.
TEST(Rotation, OnlineHadamardPlansAreOrthogonal) {
  struct Want {
    int n;
    const char* kind;
  };
  for (const Want& w :
       {Want{256, "hadamard 256"}, Want{352, "paley 44 x 8"}, Want{768, "paley 12 x 64"},
        Want{5632, "paley 44 x 128"}, Want{11008, "block-diagonal 43 x 256"},
        Want{96, "paley 12 x 8"}, Want{40, "paley 20 x 2"}}) {
    SCOPED_TRACE(w.n);
    const ops::HadamardPlan h = ops::hadamard_plan(w.n);
    EXPECT_EQ(h.kind(), w.kind);
    if (w.n > 1000) continue;  // the dense check is n^3
    std::vector<float> q(static_cast<size_t>(w.n) * w.n, 0.0f);
    for (int i = 0; i < w.n; ++i) q[static_cast<size_t>(i) * w.n + i] = 1.0f;
    ops::hadamard_rows(h, q.data(), w.n);
    EXPECT_LT(max_dev_from_identity(q, w.n), 1e-5);
    if (h.kronecker || h.m == 1) {
      double worst = 0;  // a true Hadamard: every entry ±1/√n
      for (float v : q)
        worst = std::max(worst, std::fabs(std::fabs(v) - 1.0 / std::sqrt(double(w.n))));
      EXPECT_LT(worst, 1e-6);
    }
  }
}

// y = x Wᵀ is unchanged when the input is rotated (x Q) and the weight's rows too (W Q); a writer's
// output rotated (Qᵀ W) gives the rotated output (y Q).
TEST(Rotation, ReaderAndWriterFoldingKeepProducts) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (int d : {64, 48}) {
    const Rotation r = make_rotation(d, 1);
    const int n = 5, out = 7;
    std::vector<float> x(size_t(n) * d), w(size_t(out) * d), wo(size_t(d) * out),
        a(size_t(n) * out);
    for (auto* v : {&x, &w, &wo, &a})
      for (float& e : *v) e = nd(rng);
    auto matmul_t = [](const std::vector<float>& A, const std::vector<float>& B, int m, int k,
                       int nn) {
      std::vector<float> C(size_t(m) * nn, 0.0f);  // A [m,k] · B[nn,k]ᵀ
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < nn; ++j)
          for (int t = 0; t < k; ++t)
            C[size_t(i) * nn + j] += A[size_t(i) * k + t] * B[size_t(j) * k + t];
      return C;
    };
    const std::vector<float> y = matmul_t(x, w, n, d, out);
    std::vector<float> xr = x, wr = w;
    rotate_rows(r, xr.data(), n);
    rotate_rows(r, wr.data(), out);
    EXPECT_LT(test::max_rel_err(matmul_t(xr, wr, n, d, out), y), 1e-4);
    std::vector<float> h = matmul_t(a, wo, n, out, d);  // writer: [n, d]
    rotate_rows(r, h.data(), n);
    std::vector<float> wor = wo;
    rotate_output_rows(r, wor.data(), out);
    EXPECT_LT(test::max_rel_err(matmul_t(a, wor, n, out, d), h), 1e-4);
  }
}

// Logits of `model` and of its transformed copy (--algo none with `o`'s transformations) agree to
// fp32 rounding; returns the loaded copy for further checks.
LoadedModel expect_same_function(const std::string& model, QuantizeOptions o, const TempDir& dir) {
  o.algo = QuantAlgo::kNone;
  o.calibrate = o.smooth.has_value();  // only SmoothQuant needs calibration data
  const std::string out = dir / "r";
  quantize_model(model, out, o);
  const LoadedModel a = load_model(model);
  LoadedModel b = load_model(out);
  std::vector<int> toks(48);
  const size_t vocab = static_cast<size_t>(a.weights->cfg.vocab_size);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int>((i * 29 + 3) % vocab);
  Transformer ta(a.weights, 48), tb(b.weights, 48);
  const size_t n = size_t(48) * vocab;
  const float* la = ta.forward(toks.data(), 48, true);
  const std::vector<float> ref(la, la + n);
  const float* lb = tb.forward(toks.data(), 48, true);
  double max_abs = 0, max_diff = 0;
  for (size_t i = 0; i < n; ++i) {
    max_abs = std::max(max_abs, std::fabs(double(ref[i])));
    max_diff = std::max(max_diff, std::fabs(double(ref[i]) - lb[i]));
  }
  EXPECT_LT(max_diff, 1e-4 * max_abs) << max_diff << " of " << max_abs;
  return b;
}

TEST(Rotation, R1AndR4KeepTheFunction) {
  // RMSNorm families, and LayerNorm families whose stream r1 makes mean-free (their norms become
  // RMSNorms with a rotated bias; Bloom's embedding norm is baked into the table).
  for (const char* m : {"stories260K-hf", "babyllama-105-hf", "llama-256",
                        "stories260K/stories260K.bin", "gpt2-tiny", "opt-tiny", "bloom-tiny",
                        "falcon-tiny", "gptneox-tiny", "gptj-tiny", "phi-tiny"}) {
    SCOPED_TRACE(m);
    LOWBIT_SHARED_OR_SKIP(model, std::string("models/") + m);
    for (bool r4 : {false, true}) {
      SCOPED_TRACE(r4 ? "r1,r2,r4" : "r1");
      TempDir dir("rot");
      QuantizeOptions o;
      o.rotate = QuantizeOptions::Rotate{};
      o.rotate->seed = 5;
      o.rotate->r4 = r4;
      o.rotate->r2 = r4;
      const LoadedModel b = expect_same_function(model, o, dir);
      EXPECT_FALSE(b.weights->cfg.tied_embeddings);
      EXPECT_EQ(b.weights->cfg.norm, NormKind::kRms);
      EXPECT_FALSE(b.weights->cfg.embed_norm);
      EXPECT_EQ(b.weights->cfg.hadamard_down, r4);
      // The rotated stream has no preferred channel: the final norm's gain is all ones now.
      for (int i = 0; i < b.weights->cfg.dim; ++i) ASSERT_EQ(b.weights->final_norm.w[i], 1.0f);
    }
  }
  // Composed with SmoothQuant (smoothing between R1 and R4) and with outlier injection: still the
  // same function.
  {
    LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
    TempDir dir("rot_sq");
    QuantizeOptions o;
    o.rotate = QuantizeOptions::Rotate{};
    o.rotate->r4 = true;
    o.recipe = Recipe{test::int_scheme(8, -1, true), {}};
    ActScheme act;
    act.quantized = true;
    o.act = act;
    o.smooth = SmoothOptions{};
    o.outliers = QuantizeOptions::Outliers{};
    o.calib.text = "tinystories";
    o.calib.nsamples = 2;
    o.calib.seqlen = 64;
    expect_same_function(model, o, dir);
  }
  // R4 alone needs no RMSNorm: every family with a down projection.
  for (const char* m : {"gpt2-tiny", "opt-tiny", "falcon-tiny", "phi-tiny"}) {
    SCOPED_TRACE(m);
    LOWBIT_SHARED_OR_SKIP(model, std::string("models/") + m);
    TempDir dir("rot4");
    QuantizeOptions o;
    o.rotate = QuantizeOptions::Rotate{};
    o.rotate->r1 = false;
    o.rotate->r4 = true;
    EXPECT_TRUE(expect_same_function(model, o, dir).weights->cfg.hadamard_down);
  }
  LOWBIT_SHARED_OR_SKIP(gpt2, "models/gpt2-tiny");
  TempDir dir("rot_ln");
  const test::CliResult r2 = test::run_cli("quantize --model " + gpt2 + " --out " + (dir / "r") +
                                           " --algo none --rotate r3");
  EXPECT_EQ(r2.rc, 2);
  EXPECT_NE(r2.out.find("expected a list of r1, r2, r4"), std::string::npos) << r2.out;
}

}  // namespace
}  // namespace lowbit
