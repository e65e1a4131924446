// Weight formats: fp8/fp4 bit encodings, the NF4 codebook, fit_group / quantize_value /
// dequantize_value for every weight type × scale type, and QuantizedWeight::dequantize.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/formats/group_quant.h"
#include "lowbit/formats/minifloat.h"
#include "lowbit/formats/scheme.h"
#include "lowbit/util/error.h"

namespace lowbit {
namespace {

TEST(QuantFormat, Fp8E4M3KnownValues) {
  EXPECT_EQ(f32_to_fp8_e4m3(0.0f), 0x00);
  EXPECT_EQ(f32_to_fp8_e4m3(-0.0f), 0x80);
  EXPECT_EQ(f32_to_fp8_e4m3(1.0f), 0x38);
  EXPECT_EQ(f32_to_fp8_e4m3(-1.0f), 0xB8);
  EXPECT_EQ(f32_to_fp8_e4m3(448.0f), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(-448.0f), 0xFE);
  EXPECT_EQ(f32_to_fp8_e4m3(1e6f), 0x7E);  // saturates, never the NaN code 0x7F
  EXPECT_EQ(f32_to_fp8_e4m3(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(1.0f, -9)), 0x01);  // smallest subnormal
  EXPECT_EQ(f32_to_fp8_e4m3(-std::ldexp(1.0f, -9)), 0x81);
  EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00);  // tie -> even (0)
  EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(3.0f, -10)), 0x02);  // 1.5 ulp tie -> even (2)
  EXPECT_EQ(f32_to_fp8_e4m3(1.0625f), 0x38);                // tie between 1 and 1.125
  EXPECT_EQ(f32_to_fp8_e4m3(1.1875f), 0x3A);                // tie -> 1.25 (even)
  EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(1.0f, -6)), 0x08);   // smallest normal
  EXPECT_FLOAT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_FLOAT_EQ(fp8_e4m3_to_f32(0x7E), 448.0f);
  EXPECT_FLOAT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7F)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0xFF)));
}

TEST(QuantFormat, Fp8E5M2KnownValues) {
  EXPECT_EQ(f32_to_fp8_e5m2(0.0f), 0x00);
  EXPECT_EQ(f32_to_fp8_e5m2(1.0f), 0x3C);
  EXPECT_EQ(f32_to_fp8_e5m2(-2.0f), 0xC0);
  EXPECT_EQ(f32_to_fp8_e5m2(57344.0f), 0x7B);
  EXPECT_EQ(f32_to_fp8_e5m2(1e9f), 0x7B);  // saturates, never infinity
  EXPECT_EQ(f32_to_fp8_e5m2(std::ldexp(1.0f, -16)), 0x01);
  EXPECT_EQ(f32_to_fp8_e5m2(std::ldexp(1.0f, -17)), 0x00);  // tie -> even (0)
  EXPECT_FLOAT_EQ(fp8_e5m2_to_f32(0x7B), 57344.0f);
  EXPECT_TRUE(std::isinf(fp8_e5m2_to_f32(0x7C)));
  EXPECT_TRUE(std::isnan(fp8_e5m2_to_f32(0x7D)));
}

TEST(QuantFormat, Fp8EveryFiniteCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    const auto code = static_cast<uint8_t>(c);
    const float a = fp8_e4m3_to_f32(code);
    if (std::isfinite(a)) {
      EXPECT_EQ(f32_to_fp8_e4m3(a), code) << c;
    }
    const float b = fp8_e5m2_to_f32(code);
    if (std::isfinite(b)) {
      EXPECT_EQ(f32_to_fp8_e5m2(b), code) << c;
    }
  }
}

TEST(QuantFormat, Fp4E2M1Table) {
  const float expected[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(fp4_e2m1_to_f32(static_cast<uint8_t>(c)), expected[c]);
    EXPECT_EQ(fp4_e2m1_to_f32(static_cast<uint8_t>(c | 8)), -expected[c]);
    EXPECT_EQ(f32_to_fp4_e2m1(expected[c]), c);
  }
  EXPECT_EQ(f32_to_fp4_e2m1(5.0f), 6);   // tie between 4 (0b110) and 6 (0b111) -> even
  EXPECT_EQ(f32_to_fp4_e2m1(2.5f), 4);   // tie between 2 and 3 -> 2
  EXPECT_EQ(f32_to_fp4_e2m1(0.25f), 0);  // tie between 0 and 0.5 -> 0
  EXPECT_EQ(f32_to_fp4_e2m1(7.0f), 7);   // saturates
  EXPECT_EQ(f32_to_fp4_e2m1(-100.0f), 15);
}

TEST(QuantFormat, Nf4Codebook) {
  EXPECT_EQ(kNF4Codebook[0], -1.0f);
  EXPECT_EQ(kNF4Codebook[7], 0.0f);
  EXPECT_EQ(kNF4Codebook[15], 1.0f);
  EXPECT_FLOAT_EQ(kNF4Codebook[1], -0.6961928009986877f);
  EXPECT_FLOAT_EQ(kNF4Codebook[8], 0.07958029955625534f);
  EXPECT_FLOAT_EQ(kNF4Codebook[14], 0.7229568362236023f);
  QuantScheme s;
  s.type = WeightType::kNF4;
  s.sym = true;
  const GroupParams p{2.0f, 0.0f};
  for (int c = 0; c < 16; ++c) {
    if (c > 0) {
      EXPECT_LT(kNF4Codebook[c - 1], kNF4Codebook[c]);
    }
    EXPECT_EQ(quantize_value(s, p, 2.0f * kNF4Codebook[c]), c);
    EXPECT_EQ(dequantize_value(s, p, static_cast<uint8_t>(c)), 2.0f * kNF4Codebook[c]);
  }
  EXPECT_EQ(quantize_value(s, p, 5.0f), 15);  // beyond absmax: clamps
  EXPECT_EQ(quantize_value(s, p, -5.0f), 0);
}

struct Case {
  WeightType type;
  int bits;
  bool sym, clip;
};

std::vector<QuantScheme> all_schemes() {
  const Case cases[] = {
      {WeightType::kInt, 2, false, false},    {WeightType::kInt, 3, false, false},
      {WeightType::kInt, 4, false, false},    {WeightType::kInt, 8, false, false},
      {WeightType::kInt, 2, true, false},     {WeightType::kInt, 3, true, false},
      {WeightType::kInt, 4, true, false},     {WeightType::kInt, 8, true, false},
      {WeightType::kInt, 4, true, true},      {WeightType::kInt, 8, true, true},
      {WeightType::kNF4, 4, true, false},     {WeightType::kFP4, 4, true, false},
      {WeightType::kFP8E4M3, 8, true, false}, {WeightType::kFP8E5M2, 8, true, false},
  };
  std::vector<QuantScheme> out;
  for (const Case& c : cases) {
    for (ScaleType st : {ScaleType::kF32, ScaleType::kF16, ScaleType::kBF16, ScaleType::kFP8E4M3}) {
      QuantScheme s;
      s.type = c.type;
      s.bits = c.bits;
      s.sym = c.sym;
      s.int4_clip = c.clip;
      s.scale_type = st;
      s.group_size = 37;
      out.push_back(s);
    }
  }
  return out;
}

// Largest code of the scheme (inclusive) and whether a code is a valid one.
bool code_valid(const QuantScheme& s, uint8_t q) {
  switch (s.type) {
    case WeightType::kInt:
      return q >= (s.sym && s.int4_clip ? 1 : 0) && q <= int_maxq(s);
    case WeightType::kNF4:
    case WeightType::kFP4:
      return q < 16;
    case WeightType::kFP8E4M3:
      return std::isfinite(fp8_e4m3_to_f32(q));
    case WeightType::kFP8E5M2:
      return std::isfinite(fp8_e5m2_to_f32(q));
    case WeightType::kGgml:  // codes live in the blocks (tests/ggml_blocks_test.cpp)
      return false;
  }
  return false;
}

TEST(QuantFormat, EveryTypeAndScaleQuantizesWithinBounds) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (const QuantScheme& s : all_schemes()) {
    SCOPED_TRACE(scheme_name(s));
    validate_scheme("test", s);
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> w(37);
      for (float& x : w) x = normal(rng) + (trial % 3 == 0 ? 0.03f : 0.0f);
      const GroupParams p = fit_group(s, w.data(), static_cast<int>(w.size()));
      ASSERT_TRUE(std::isfinite(p.scale) && p.scale > 0);
      EXPECT_EQ(round_scale(s.scale_type, p.scale), p.scale);  // stored exactly
      if (s.type != WeightType::kInt) {  // rounded up: the largest |w| never saturates
        float amax = 0;
        for (float x : w) amax = std::max(amax, std::fabs(x));
        EXPECT_LE(amax / p.scale, code_max(s.type) * (1 + 1e-6f));
      }
      if (s.type == WeightType::kInt) {
        EXPECT_EQ(p.zero, std::floor(p.zero));
        EXPECT_GE(p.zero, 0);
        EXPECT_LE(p.zero, int_maxq(s));
        if (s.sym) {
          EXPECT_EQ(p.zero, 1 << (s.bits - 1));
        }
      }
      for (float x : w) {
        const uint8_t q = quantize_value(s, p, x);
        ASSERT_TRUE(code_valid(s, q)) << int(q);
        const float d = dequantize_value(s, p, q);
        if (s.type == WeightType::kInt) {
          const float lo = dequantize_value(s, p, s.sym && s.int4_clip ? 1 : 0);
          const float hi = dequantize_value(s, p, static_cast<uint8_t>(int_maxq(s)));
          if (x >= lo && x <= hi) {
            EXPECT_LE(std::fabs(x - d), p.scale * 0.5f * (1 + 1e-5f)) << x;
          } else {
            EXPECT_EQ(d, x < lo ? lo : hi);  // clamped to the range end
          }
          // The scale is rounded up, so the fitted range covers the whole group.
          EXPECT_LE(std::fabs(x - d), p.scale * 0.5f * (1 + 1e-5f)) << x;
        } else {
          // Nearest code: no other valid code dequantizes closer to x (after saturation).
          const int n_codes = s.bits == 4 ? 16 : 256;
          for (int c = 0; c < n_codes; ++c) {
            const auto cc = static_cast<uint8_t>(c);
            if (!code_valid(s, cc)) continue;
            ASSERT_LE(std::fabs(x - d), std::fabs(x - dequantize_value(s, p, cc)) * (1 + 1e-6f))
                << "x " << x << " code " << int(q) << " beaten by " << c;
          }
        }
      }
    }
  }
}

TEST(QuantFormat, AllZeroAndConstantGroups) {
  for (const QuantScheme& s : all_schemes()) {
    SCOPED_TRACE(scheme_name(s));
    const std::vector<float> zeros(16, 0.0f);
    GroupParams p = fit_group(s, zeros.data(), 16);
    ASSERT_TRUE(std::isfinite(p.scale) && p.scale > 0);
    EXPECT_EQ(dequantize_value(s, p, quantize_value(s, p, 0.0f)), 0.0f);
    for (float c : {0.3f, -0.3f}) {
      const std::vector<float> constant(16, c);
      p = fit_group(s, constant.data(), 16);
      ASSERT_TRUE(std::isfinite(p.scale) && p.scale > 0);
      const float d = dequantize_value(s, p, quantize_value(s, p, c));
      const float tol = s.scale_type == ScaleType::kFP8E4M3 ? 0.07f : 0.01f;
      if (s.type == WeightType::kInt && s.sym && !s.int4_clip) {
        // Fullrange sym: +amax sits half a step above the top code (GPTQ's convention).
        EXPECT_NEAR(d, c, p.scale * 0.5f + tol * 0.3f);
      } else {
        EXPECT_NEAR(d, c, tol * 0.3f);
      }
    }
  }
}

TEST(QuantFormat, IntConventions) {
  const std::vector<float> w = {-7.5f, 1.0f, 3.75f, 0.0f};
  QuantScheme s;
  s.bits = 4;
  s.scale_type = ScaleType::kF32;
  s.sym = false;  // GPTQ asym: scale = (max - min) / 15, zero = round(-min / scale)
  GroupParams p = fit_group(s, w.data(), 4);
  EXPECT_EQ(p.scale, 0.75f);
  EXPECT_EQ(p.zero, 10.0f);
  EXPECT_EQ(quantize_value(s, p, 3.75f), 15);
  EXPECT_EQ(quantize_value(s, p, -7.5f), 0);
  EXPECT_EQ(dequantize_value(s, p, 10), 0.0f);
  s.sym = true;  // fullrange: scale = 2 * amax / 15, zero = 8
  p = fit_group(s, w.data(), 4);
  EXPECT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.zero, 8.0f);
  EXPECT_EQ(quantize_value(s, p, -7.5f), 0);  // -7.5 rounds to even -8
  EXPECT_EQ(quantize_value(s, p, 7.5f), 15);  // 7.5 -> 8 -> clamped to 15
  EXPECT_EQ(quantize_value(s, p, 2.5f), 10);  // 2.5 rounds to even 2
  s.int4_clip = true;                         // clip: scale = amax / 7, codes 1..15
  p = fit_group(s, w.data(), 4);
  EXPECT_FLOAT_EQ(p.scale, 7.5f / 7);
  EXPECT_EQ(quantize_value(s, p, -7.5f), 1);
  EXPECT_EQ(quantize_value(s, p, -50.0f), 1);
  EXPECT_EQ(quantize_value(s, p, 7.5f), 15);
  EXPECT_FLOAT_EQ(dequantize_value(s, p, 1), -7.5f);
  // clip shrinks the fitted range.
  s.int4_clip = false;
  s.sym = false;
  EXPECT_EQ(fit_group(s, w.data(), 4, 0.5f).scale, 0.375f);
}

TEST(QuantFormat, ScaleRounding) {
  EXPECT_EQ(round_scale(ScaleType::kF16, 0.1f), 0.0999755859375f);
  EXPECT_EQ(round_scale(ScaleType::kBF16, 0.1f), 0.10009765625f);
  EXPECT_EQ(round_scale(ScaleType::kFP8E4M3, 0.1f), 0.1015625f);
  EXPECT_EQ(round_scale(ScaleType::kFP8E4M3, 1e-9f), std::ldexp(1.0f, -9));  // never 0
  EXPECT_EQ(round_scale(ScaleType::kF16, 1e-12f), std::ldexp(1.0f, -24));
  EXPECT_EQ(round_scale(ScaleType::kFP8E4M3, 1e4f), 448.0f);
  EXPECT_EQ(round_scale(ScaleType::kF32, 0.1f), 0.1f);
  EXPECT_EQ(round_scale_up(ScaleType::kFP8E4M3, 0.1f), 0.1015625f);  // nearest is already up
  EXPECT_EQ(round_scale_up(ScaleType::kFP8E4M3, 0.099f), 0.1015625f);
  EXPECT_EQ(round_scale_up(ScaleType::kF16, 0.1f), 0.10003662109375f);
  EXPECT_EQ(round_scale_up(ScaleType::kBF16, 0.1f), 0.10009765625f);
  EXPECT_EQ(round_scale_up(ScaleType::kFP8E4M3, 1e4f), 448.0f);
}

TEST(QuantFormat, ParsePrintValidate) {
  int bits = 0;
  EXPECT_EQ(parse_weight_type("t", "int3", &bits), WeightType::kInt);
  EXPECT_EQ(bits, 3);
  EXPECT_EQ(parse_weight_type("t", "nf4", &bits), WeightType::kNF4);
  EXPECT_EQ(parse_weight_type("t", "fp8_e5m2", &bits), WeightType::kFP8E5M2);
  EXPECT_EQ(bits, 8);
  EXPECT_THROW(parse_weight_type("t", "int5", &bits), Error);
  EXPECT_EQ(parse_scale_type("t", "bf16"), ScaleType::kBF16);
  EXPECT_EQ(parse_scale_type("t", "fp8_e4m3"), ScaleType::kFP8E4M3);
  EXPECT_THROW(parse_scale_type("t", "f64"), Error);
  QuantScheme s;
  EXPECT_EQ(scheme_name(s), "int4 g128 asym f16-scales");
  s.sym = true;
  s.int4_clip = true;
  s.group_size = -1;
  EXPECT_EQ(scheme_name(s), "int4 per-channel sym-clip f16-scales");
  validate_scheme("t", s);
  s.bits = 5;
  EXPECT_THROW(validate_scheme("t", s), Error);
  s.bits = 4;
  s.group_size = 0;
  EXPECT_THROW(validate_scheme("t", s), Error);
  s.group_size = 32;
  s.sym = false;
  EXPECT_THROW(validate_scheme("t", s), Error);  // clip needs sym
  s.type = WeightType::kNF4;
  s.bits = 8;
  EXPECT_THROW(validate_scheme("t", s), Error);
  EXPECT_EQ(groups_per_row(s, 172), 6);  // 5 full groups of 32 and a ragged one of 12
  s.group_size = -1;
  EXPECT_EQ(groups_per_row(s, 172), 1);
}

TEST(QuantFormat, DequantizeFollowsPermutedGroupIndex) {
  QuantizedWeight w;
  w.scheme.bits = 4;
  w.scheme.group_size = 2;
  w.scheme.scale_type = ScaleType::kF32;
  w.out = 2;
  w.in = 4;
  w.n_groups = 2;
  w.q = {1, 2, 3, 4, 5, 6, 7, 8};
  w.params = {{1.0f, 0.0f}, {10.0f, 1.0f}, {0.5f, 2.0f}, {2.0f, 3.0f}};
  w.g_idx = {1, 0, 1, 0};  // act-order: columns 0 and 2 belong to group 1
  const std::vector<float> d = w.dequantize();
  const std::vector<float> expected = {10.0f * (1 - 1), 1.0f * 2,       10.0f * (3 - 1),
                                       1.0f * 4,        2.0f * (5 - 3), 0.5f * (6 - 2),
                                       2.0f * (7 - 3),  0.5f * (8 - 2)};
  EXPECT_EQ(d, expected);
  w.g_idx[3] = 2;
  EXPECT_THROW(w.dequantize(), Error);
  w.g_idx[3] = 0;
  w.q[0] = 16;  // does not fit 4 bits
  EXPECT_THROW(w.check("t"), Error);
}

// GPTQ checkpoint format v1 stores zero − 1: with zero_from_one a group whose zero would round to
// 0 (all weights ≥ −scale/2, e.g. next to an outlier) gets zero 1 and still covers its range.
TEST(QuantFormat, ZeroFromOneKeepsZeroPointsStorableInGptqV1) {
  for (int bits : {2, 3, 4, 8}) {
    QuantScheme s;
    s.bits = bits;
    s.group_size = 8;
    const float w[8] = {-0.01f, 0.0f, 0.5f, 1.0f, 2.0f, 3.0f, 7.0f, 10.0f};
    const GroupParams plain = fit_group(s, w, 8);
    EXPECT_EQ(plain.zero, 0.0f) << bits;  // the case v1 cannot store
    s.zero_from_one = true;
    const GroupParams p = fit_group(s, w, 8);
    EXPECT_EQ(p.zero, 1.0f) << bits;
    for (float x : w) {
      const float back = dequantize_value(s, p, quantize_value(s, p, x));
      EXPECT_LE(std::fabs(back - x), p.scale / 2 * 1.0001f) << bits << " " << x;
    }
    // Groups whose zero is already >= 1 are unchanged.
    const float sym[4] = {-3.0f, -1.0f, 1.0f, 3.0f};
    const GroupParams a = fit_group(s, sym, 4);
    s.zero_from_one = false;
    const GroupParams b = fit_group(s, sym, 4);
    EXPECT_EQ(a.scale, b.scale);
    EXPECT_EQ(a.zero, b.zero);
  }
}

}  // namespace
}  // namespace lowbit
