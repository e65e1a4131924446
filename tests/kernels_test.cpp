// Quantized kernels: every instruction set's table against the scalar reference on random
// weights and activations, ragged shapes included (K not a multiple of the 32-column block, N not
// a multiple of the 16-row tile), and the whole packed matmul against the dequantized fp32 matmul.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "lowbit/formats/act_scheme.h"
#include "lowbit/formats/scheme.h"
#include "lowbit/kernels/cpu_dispatch.h"
#include "lowbit/kernels/packed_matmul.h"
#include "lowbit/kernels/packed_weight.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"
#include "test_util.h"

namespace lowbit {
namespace {

using kernels::Isa;
using kernels::PackedWeight;

struct Case {
  WeightType type;
  int bits;
  int group;  // -1 per channel
  bool sym;
  int out, in;
  bool act_order = false;
  bool f32_scales = false;
};

std::string name_of(const Case& c) {
  return fmt::format("{} g{} {} [{}x{}]{}{}", weight_type_name(c.type, c.bits), c.group,
                     c.sym ? "sym" : "asym", c.out, c.in, c.act_order ? " act-order" : "",
                     c.f32_scales ? " f32-scales" : "");
}

QuantizedWeight random_weight(const Case& c, std::mt19937& rng) {
  QuantizedWeight w;
  w.scheme.type = c.type;
  w.scheme.bits = c.bits;
  w.scheme.group_size = c.group;
  w.scheme.sym = c.sym;
  w.scheme.scale_type = c.f32_scales ? ScaleType::kF32 : ScaleType::kF16;
  w.out = c.out;
  w.in = c.in;
  w.n_groups = groups_per_row(w.scheme, c.in);
  const int maxq = c.type == WeightType::kInt ? (1 << c.bits) - 1 : 15;
  std::uniform_int_distribution<int> code(0, maxq);
  std::uniform_real_distribution<float> sc(0.001f, 0.05f);
  w.q.resize(static_cast<size_t>(c.out) * c.in);
  for (auto& q : w.q) q = static_cast<uint8_t>(code(rng));
  w.params.resize(static_cast<size_t>(c.out) * w.n_groups);
  for (auto& p : w.params) {
    const float s = sc(rng);
    p.scale = c.f32_scales ? s : f16_to_f32(f32_to_f16(s));
    p.zero = c.type != WeightType::kInt ? 0.0f
             : c.sym                    ? static_cast<float>(1 << (c.bits - 1))
                                        : static_cast<float>(code(rng));
  }
  const int gs = c.group > 0 ? c.group : c.in;
  w.g_idx.resize(static_cast<size_t>(c.in));
  if (c.act_order) {
    std::vector<int> perm(static_cast<size_t>(c.in));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int j = 0; j < c.in; ++j)
      w.g_idx[static_cast<size_t>(perm[static_cast<size_t>(j)])] = j / gs;
  } else {
    for (int i = 0; i < c.in; ++i) w.g_idx[static_cast<size_t>(i)] = i / gs;
  }
  w.check("test");
  return w;
}

std::vector<Case> cases() {
  return {
      {WeightType::kInt, 4, 32, true, 64, 256},
      {WeightType::kInt, 4, 32, false, 37, 100},  // ragged K and N
      {WeightType::kInt, 4, 128, false, 48, 384},
      {WeightType::kInt, 4, 128, true, 33, 200},              // last group partial
      {WeightType::kInt, 4, -1, false, 17, 96},               // per channel
      {WeightType::kInt, 4, 32, false, 40, 128, true},        // act-order
      {WeightType::kInt, 4, 64, true, 20, 160, false, true},  // f32 scales
      {WeightType::kInt, 8, -1, true, 50, 256},               // W8 per channel
      {WeightType::kInt, 8, 32, false, 19, 70},
      {WeightType::kInt, 3, 32, false, 16, 64},
      {WeightType::kInt, 2, 64, false, 31, 128},
      {WeightType::kNF4, 4, 32, false, 24, 96},
      {WeightType::kFP4, 4, 64, false, 9, 130},
      {WeightType::kInt, 4, 128, false, 309, 256},  // 20 tiles: 8/4/2-tile decode passes
      {WeightType::kInt, 8, -1, true, 300, 64},
  };
}

std::vector<float> random_acts(int m, int k, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m) * k);
  for (auto& v : x) v = nd(rng);
  if (!x.empty()) x[x.size() / 2] = 12.0f;  // an outlier
  return x;
}

std::vector<Isa> simd_isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (kernels::isa_available(isa)) v.push_back(isa);
  }
  return v;
}

TEST(PackedWeight, DequantizesExactlyAsTheStoredWeight) {
  std::mt19937 rng(1);
  for (const Case& c : cases()) {
    SCOPED_TRACE(name_of(c));
    const QuantizedWeight w = random_weight(c, rng);
    std::string why;
    ASSERT_TRUE(kernels::can_pack(w, &why)) << why;
    const PackedWeight p = kernels::pack_quantized(w);
    EXPECT_EQ(p.dequantize(), w.dequantize());
    EXPECT_EQ(p.scales_f16, !c.f32_scales);
    EXPECT_EQ(p.perm.empty(), !c.act_order);
    EXPECT_EQ(p.k_pad % 32, 0);
  }
}

TEST(PackedWeight, RefusesWhatTheKernelsCannotRun) {
  std::mt19937 rng(2);
  std::string why;
  QuantizedWeight w = random_weight({WeightType::kInt, 4, 32, false, 16, 96}, rng);
  w.scheme.group_size = 48;  // not a multiple of 32
  w.n_groups = 2;
  w.params.resize(32);
  for (int i = 0; i < 96; ++i) w.g_idx[static_cast<size_t>(i)] = i / 48;
  EXPECT_FALSE(kernels::can_pack(w, &why));
  EXPECT_NE(why.find("multiple of 32"), std::string::npos) << why;
  QuantizedWeight f8 = random_weight({WeightType::kInt, 4, 32, false, 16, 64}, rng);
  f8.scheme.type = WeightType::kFP8E4M3;
  f8.scheme.bits = 8;
  EXPECT_FALSE(kernels::can_pack(f8, &why));
  EXPECT_NE(why.find("fp8"), std::string::npos) << why;
}

TEST(Kernels, QuantizeInt8MatchesReference) {
  std::mt19937 rng(3);
  const int m = 5, k = 256;
  std::vector<float> x = random_acts(m, k, rng);
  x[7] = 0.0f;
  for (int i = 32; i < 64; ++i) x[static_cast<size_t>(i)] = 0.0f;  // an all-zero block
  const int nb = k / 32;
  std::vector<int8_t> q0(x.size()), q1(x.size());
  std::vector<float> d0(m * nb), d1(m * nb), s0(m * nb), s1(m * nb);
  kernels::reference_kernels().quantize_int8(x.data(), k, q0.data(), d0.data(), s0.data(), 0, m);
  for (Isa isa : simd_isas()) {
    SCOPED_TRACE(kernels::isa_name(isa));
    kernels::kernels_for(isa).quantize_int8(x.data(), k, q1.data(), d1.data(), s1.data(), 0, m);
    EXPECT_EQ(q0, q1);
    EXPECT_EQ(d0, d1);
    EXPECT_EQ(s0, s1);
  }
  // Round trip within half a step.
  for (int t = 0; t < m; ++t) {
    for (int i = 0; i < k; ++i) {
      const size_t at = static_cast<size_t>(t) * k + i;
      EXPECT_NEAR(d0[static_cast<size_t>(t) * nb + i / 32] * q0[at], x[at],
                  0.5001 * d0[static_cast<size_t>(t) * nb + i / 32] + 1e-7);
    }
  }
}

// Every SIMD table's int8 and fp32 GEMMs against the reference, for 1..6 activation rows.
TEST(Kernels, SimdGemmsMatchReference) {
  std::mt19937 rng(4);
  const auto& ref = kernels::reference_kernels();
  for (const Case& c : cases()) {
    const PackedWeight p = kernels::pack_quantized(random_weight(c, rng));
    for (int m : {1, 2, 3, 4, 6}) {
      SCOPED_TRACE(fmt::format("{} m={}", name_of(c), m));
      const std::vector<float> x = random_acts(m, p.k_pad, rng);
      const int nb = p.n_blocks();
      std::vector<int8_t> q(x.size());
      std::vector<float> d(static_cast<size_t>(m) * nb), ds(d.size());
      ref.quantize_int8(x.data(), p.k_pad, q.data(), d.data(), ds.data(), 0, m);
      std::vector<float> gsum(static_cast<size_t>(m) * p.n_groups, 0.0f);
      for (int t = 0; t < m; ++t) {
        for (int k = 0; k < p.k_pad; ++k) {
          gsum[static_cast<size_t>(t) * p.n_groups + k / p.group] +=
              x[static_cast<size_t>(t) * p.k_pad + k];
        }
      }
      const kernels::Int8Acts ia{m, p.k_pad, q.data(), d.data(), ds.data()};
      const kernels::F32Acts fa{m, p.k_pad, x.data(), gsum.data()};
      const int tiles = p.n_tiles;
      std::vector<float> want_i(static_cast<size_t>(m) * p.out), want_f(want_i.size());
      if (p.kind != kernels::PackedKind::kLut4)
        ref.gemm_int8(p, ia, want_i.data(), p.out, 0, tiles);
      ref.gemm_f32(p, fa, want_f.data(), p.out, 0, tiles);
      for (Isa isa : simd_isas()) {
        SCOPED_TRACE(kernels::isa_name(isa));
        const auto& kt = kernels::kernels_for(isa);
        std::vector<float> got(want_i.size(), -1.0f);
        if (p.kind != kernels::PackedKind::kLut4) {
          // Two calls over split tile ranges, as the threads do.
          kt.gemm_int8(p, ia, got.data(), p.out, 0, tiles / 2);
          kt.gemm_int8(p, ia, got.data(), p.out, tiles / 2, tiles);
          EXPECT_LT(test::max_rel_err(got, want_i), 1e-5);
        }
        std::fill(got.begin(), got.end(), -1.0f);
        kt.gemm_f32(p, fa, got.data(), p.out, 0, tiles);
        EXPECT_LT(test::max_rel_err(got, want_f), 1e-5);
      }
    }
  }
}

TEST(Kernels, Bf16GemvMatchesReference) {
  std::mt19937 rng(5);
  for (auto [out, in] : {std::pair{37, 100}, std::pair{64, 256}, std::pair{5, 7}}) {
    SCOPED_TRACE(fmt::format("[{}x{}]", out, in));
    const std::vector<float> w = random_acts(out, in, rng);
    const PackedWeight p = kernels::pack_bf16(w.data(), out, in);
    const std::vector<float> x = random_acts(1, in, rng);
    std::vector<float> want(static_cast<size_t>(out)), got(want.size());
    kernels::reference_kernels().gemv_bf16(p, x.data(), want.data(), 0, out);
    // Reference against the dequantized matrix in double.
    const std::vector<float> deq = p.dequantize();
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int k = 0; k < in; ++k)
        s += static_cast<double>(deq[static_cast<size_t>(o) * in + k]) * x[static_cast<size_t>(k)];
      EXPECT_NEAR(want[static_cast<size_t>(o)], s, 1e-4 * (1 + std::fabs(s)));
    }
    for (Isa isa : simd_isas()) {
      kernels::kernels_for(isa).gemv_bf16(p, x.data(), got.data(), 0, out);
      EXPECT_LT(test::max_rel_err(got, want), 1e-5) << kernels::isa_name(isa);
    }
  }
}

// The whole driver (column order, padding, activation preparation, threads, BLAS chunks) against
// x · dequantized(W)ᵀ in double, for every instruction set and activation mode.
TEST(Kernels, PackedMatmulMatchesDequantizedMatmul) {
  std::mt19937 rng(6);
  const Isa saved = kernels::active_isa();
  std::vector<Isa> isas = simd_isas();
  isas.push_back(Isa::kScalar);
  for (const Case& c : cases()) {
    const QuantizedWeight qw = random_weight(c, rng);
    const PackedWeight p = kernels::pack_quantized(qw);
    const std::vector<float> deq = qw.dequantize();
    for (int m : {1, 3, 9}) {
      const std::vector<float> x = random_acts(m, c.in, rng);
      std::vector<float> want(static_cast<size_t>(m) * c.out);
      for (int t = 0; t < m; ++t) {
        for (int o = 0; o < c.out; ++o) {
          double s = 0;
          for (int k = 0; k < c.in; ++k) {
            s += static_cast<double>(x[static_cast<size_t>(t) * c.in + k]) *
                 deq[static_cast<size_t>(o) * c.in + k];
          }
          want[static_cast<size_t>(t) * c.out + o] = static_cast<float>(s);
        }
      }
      for (Isa isa : isas) {
        kernels::set_isa(isa);
        for (auto mode : {kernels::ActMode::kF32, kernels::ActMode::kInt8}) {
          SCOPED_TRACE(fmt::format("{} m={} {} {}", name_of(c), m, kernels::isa_name(isa),
                                   kernels::act_mode_name(mode)));
          std::vector<float> got(want.size(), -1.0f);
          kernels::packed_matmul(p, got.data(), x.data(), m, mode);
          const bool int8 = mode == kernels::ActMode::kInt8 && c.type == WeightType::kInt;
          // int8 activations carry a relative error of about 1/254 per element.
          EXPECT_LT(test::max_rel_err(got, want), int8 ? 3e-2 : 1e-5);
        }
      }
    }
  }
  kernels::set_isa(saved);
}

// Per-token and static per-tensor activation schemes (sym and asym) through the whole driver on
// every instruction set, against x̂ · dequantized(W)ᵀ in double, where x̂ = s·q + m is the
// activation as formats/act_scheme.h defines it (so the only difference is summation order).
TEST(Kernels, ActSchemesMatchFakeQuantizedReference) {
  std::mt19937 rng(8);
  const Isa saved = kernels::active_isa();
  std::vector<Isa> isas = simd_isas();
  isas.push_back(Isa::kScalar);
  std::vector<ActScheme> schemes;
  for (bool sym : {true, false}) {
    ActScheme tok;
    tok.quantized = true;
    tok.granularity = ActGranularity::kToken;
    tok.sym = sym;
    schemes.push_back(tok);
    ActScheme ten = tok;
    ten.granularity = ActGranularity::kTensor;
    ten.scale = 0.05f;
    ten.zero = sym ? 0.0f : 0.7f;
    schemes.push_back(ten);
  }
  for (const Case& c : cases()) {
    if (c.type != WeightType::kInt) continue;
    const QuantizedWeight qw = random_weight(c, rng);
    const std::vector<float> deq = qw.dequantize();
    for (const ActScheme& a : schemes) {
      PackedWeight p = kernels::pack_quantized(qw);
      kernels::set_act_scheme(p, a, "test");
      for (int m : {1, 5}) {
        std::vector<float> x = random_acts(m, c.in, rng);
        for (float& v : x) v += a.sym ? 0.0f : 1.5f;  // an offset the asym schemes should use
        std::vector<float> want(static_cast<size_t>(m) * c.out);
        for (int t = 0; t < m; ++t) {
          const float* xr = x.data() + static_cast<size_t>(t) * c.in;
          float sc, mid;
          act_row_params(a, xr, c.in, &sc, &mid);
          for (int o = 0; o < c.out; ++o) {
            double sum = 0;
            for (int k = 0; k < c.in; ++k) {
              const double xh = static_cast<double>(sc) * act_code(xr[k], sc, mid) + mid;
              sum += xh * deq[static_cast<size_t>(o) * c.in + k];
            }
            want[static_cast<size_t>(t) * c.out + o] = static_cast<float>(sum);
          }
        }
        for (Isa isa : isas) {
          kernels::set_isa(isa);
          SCOPED_TRACE(fmt::format("{} {} m={} {}", name_of(c), act_scheme_name(a), m,
                                   kernels::isa_name(isa)));
          std::vector<float> got(want.size(), -1.0f);
          // The weight's own scheme wins over the call's mode.
          kernels::packed_matmul(p, got.data(), x.data(), m, kernels::ActMode::kF32);
          EXPECT_LT(test::max_rel_err(got, want), 2e-5);
        }
      }
    }
  }
  kernels::set_isa(saved);
  // Float activations as a scheme: the exact fp32 path.
  const QuantizedWeight qw = random_weight({WeightType::kInt, 8, -1, true, 32, 64}, rng);
  PackedWeight p = kernels::pack_quantized(qw);
  kernels::set_act_scheme(p, ActScheme{}, "test");
  const std::vector<float> x = random_acts(2, 64, rng);
  std::vector<float> f32(64), got(64);
  kernels::packed_matmul(p, got.data(), x.data(), 2, kernels::ActMode::kInt8);
  PackedWeight plain = kernels::pack_quantized(qw);
  kernels::packed_matmul(plain, f32.data(), x.data(), 2, kernels::ActMode::kF32);
  EXPECT_EQ(got, f32);
  // Schemes the kernels cannot run are errors naming the linear.
  PackedWeight nf4 =
      kernels::pack_quantized(random_weight({WeightType::kNF4, 4, 32, false, 16, 64}, rng));
  EXPECT_THROW(kernels::set_act_scheme(nf4, schemes[0], "lin"), Error);
  ActScheme bad = schemes[1];
  bad.scale = 0.0f;
  EXPECT_THROW(kernels::set_act_scheme(plain, bad, "lin"), Error);
}

TEST(Kernels, MultiWeightsShareOneCall) {
  std::mt19937 rng(7);
  const PackedWeight a =
      kernels::pack_quantized(random_weight({WeightType::kInt, 4, 32, false, 48, 128}, rng));
  const PackedWeight b =
      kernels::pack_quantized(random_weight({WeightType::kInt, 4, 32, false, 40, 128, true}, rng));
  const std::vector<float> wf = random_acts(24, 128, rng);
  const PackedWeight c = kernels::pack_bf16(wf.data(), 24, 128);
  for (int m : {1, 5}) {
    const std::vector<float> x = random_acts(m, 128, rng);
    std::vector<float> ya(static_cast<size_t>(m) * 48), yb(static_cast<size_t>(m) * 40),
        yc(static_cast<size_t>(m) * 24);
    const PackedWeight* ws[] = {&a, &b, &c};
    float* ys[] = {ya.data(), yb.data(), yc.data()};
    kernels::packed_matmul(ws, ys, 3, x.data(), m);
    std::vector<float> ra(ya.size()), rb(yb.size()), rc(yc.size());
    kernels::packed_matmul(a, ra.data(), x.data(), m);
    kernels::packed_matmul(b, rb.data(), x.data(), m);
    kernels::packed_matmul(c, rc.data(), x.data(), m);
    EXPECT_EQ(ya, ra);
    EXPECT_EQ(yb, rb);
    EXPECT_LT(test::max_rel_err(yc, rc), 1e-6);
  }
}

TEST(Kernels, BadModeAndIsaNamesAreErrors) {
  EXPECT_THROW(kernels::parse_act_mode("--act", "int4"), Error);
  EXPECT_THROW(kernels::parse_isa("LOWBIT_ISA", "sse"), Error);
  EXPECT_EQ(kernels::parse_isa("x", "avx2"), Isa::kAvx2);
}

// The bf16 dot-product GEMM (AVX512-BF16 where the CPU has it) against the scalar reference on
// shapes with every kind of tail (rows of A and B not multiples of the micro-kernel, k not a
// multiple of 32), with and without accumulation, and against fp64 sums of the same bf16 values.
TEST(Kernels, Bf16GemmMatchesReference) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const kernels::Bf16GemmFn simd = kernels::kernels_for(Isa::kAvx512).gemm_bf16;
  if (simd == nullptr) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  for (auto [m, n, k] : {std::tuple{1, 13, 70}, std::tuple{5, 7, 32}, std::tuple{9, 20, 100},
                         std::tuple{64, 30, 257}, std::tuple{3, 1, 1}, std::tuple{130, 6, 64}}) {
    SCOPED_TRACE(fmt::format("m={} n={} k={}", m, n, k));
    std::vector<uint16_t> a(static_cast<size_t>(m) * k), b(static_cast<size_t>(n) * k);
    for (auto& v : a) v = f32_to_bf16(u(rng));
    for (auto& v : b) v = f32_to_bf16(u(rng));
    std::vector<float> want(static_cast<size_t>(m) * n), got(want.size());
    kernels::reference_kernels().gemm_bf16(m, n, k, a.data(), k, b.data(), k, want.data(), n,
                                           false);
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int kk = 0; kk < k; ++kk) {
          s += static_cast<double>(bf16_to_f32(a[static_cast<size_t>(i) * k + kk])) *
               bf16_to_f32(b[static_cast<size_t>(j) * k + kk]);
        }
        EXPECT_NEAR(want[static_cast<size_t>(i) * n + j], s, 1e-4 * (1 + std::fabs(s)));
      }
    }
    simd(m, n, k, a.data(), k, b.data(), k, got.data(), n, false);
    EXPECT_LT(test::max_rel_err(got, want), 1e-5);
    // Accumulating adds onto what is there.
    std::vector<float> twice = got;
    simd(m, n, k, a.data(), k, b.data(), k, twice.data(), n, true);
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(twice[i], 2 * got[i], 1e-5 * (1 + std::fabs(got[i])));
  }
}

// bf16 weights through the whole driver: on the bf16 dot product the activations are rounded to
// bf16 first (as llama.cpp does), so the product equals the fp64 sum over bf16(x); without it
// (other instruction sets) over x itself.
TEST(Kernels, PackedMatmulOfBf16Weights) {
  std::mt19937 rng(12);
  const Isa saved = kernels::active_isa();
  std::vector<Isa> isas = simd_isas();
  isas.push_back(Isa::kScalar);
  for (auto [out, in] : {std::pair{37, 100}, std::pair{64, 256}}) {
    const std::vector<float> w = random_acts(out, in, rng);
    const PackedWeight p = kernels::pack_bf16(w.data(), out, in);
    const std::vector<float> deq = p.dequantize();
    for (int m : {1, 3, 9}) {
      const std::vector<float> x = random_acts(m, in, rng);
      for (Isa isa : isas) {
        kernels::set_isa(isa);
        const bool dot = kernels::active_kernels().gemm_bf16 != nullptr;
        SCOPED_TRACE(
            fmt::format("[{}x{}] m={} {} dot={}", out, in, m, kernels::isa_name(isa), dot));
        std::vector<float> want(static_cast<size_t>(m) * out), got(want.size());
        for (int t = 0; t < m; ++t) {
          for (int o = 0; o < out; ++o) {
            double s = 0;
            for (int k = 0; k < in; ++k) {
              float xv = x[static_cast<size_t>(t) * in + k];
              if (dot) xv = bf16_to_f32(f32_to_bf16(xv));
              s += static_cast<double>(xv) * deq[static_cast<size_t>(o) * in + k];
            }
            want[static_cast<size_t>(t) * out + o] = static_cast<float>(s);
          }
        }
        kernels::packed_matmul(p, got.data(), x.data(), m, kernels::ActMode::kAuto);
        EXPECT_LT(test::max_rel_err(got, want), 1e-5);
      }
    }
  }
  kernels::set_isa(saved);
}

}  // namespace
}  // namespace lowbit
