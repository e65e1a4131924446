// RoPE frequencies, plain and with Llama-3.1 scaling, and the rotate-half rotation.
#include "lowbit/ops/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace lowbit {
namespace {

ModelConfig llama31_like() {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0f;
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0f;
  c.rope_scaling.low_freq_factor = 1.0f;
  c.rope_scaling.high_freq_factor = 4.0f;
  c.rope_scaling.original_max_position_embeddings = 8192;
  return c;
}

TEST(Rope, PlainFrequenciesAreThetaPowers) {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 10000.0f;
  const auto f = ops::rope_inv_freq(c);
  ASSERT_EQ(f.size(), 32u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_NEAR(f[16], 1.0 / 100.0, 1e-7);  // 10000^(-32/64)
  EXPECT_NEAR(f[31], std::pow(10000.0, -62.0 / 64), 1e-9);
}

TEST(Rope, Llama3ScalingKeepsHighDividesLowAndBlendsBetween) {
  ModelConfig plain = llama31_like();
  plain.rope_scaling.type = "";
  const auto base = ops::rope_inv_freq(plain);
  const auto scaled = ops::rope_inv_freq(llama31_like());
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    const double wavelen = 2 * std::numbers::pi / base[i];
    if (wavelen < 8192.0 / 4) {  // short wavelengths: unchanged
      EXPECT_FLOAT_EQ(scaled[i], base[i]);
      ++kept;
    } else if (wavelen > 8192.0 / 1) {  // long wavelengths: divided by the factor
      EXPECT_FLOAT_EQ(scaled[i], base[i] / 8.0f);
      ++divided;
    } else {  // in between: strictly between the two
      EXPECT_LT(scaled[i], base[i]);
      EXPECT_GT(scaled[i], base[i] / 8.0f);
      ++blended;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

TEST(Rope, RotatesHalvesByPositionAngle) {
  const float inv[2] = {1.0f, 0.5f};
  float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};  // pairs (x0, x2) and (x1, x3)
  ops::rope(x, 1, 4, 3, inv);
  EXPECT_NEAR(x[0], 1 * std::cos(3.0) - 3 * std::sin(3.0), 1e-5);
  EXPECT_NEAR(x[2], 3 * std::cos(3.0) + 1 * std::sin(3.0), 1e-5);
  EXPECT_NEAR(x[1], 2 * std::cos(1.5) - 4 * std::sin(1.5), 1e-5);
  EXPECT_NEAR(x[3], 4 * std::cos(1.5) + 2 * std::sin(1.5), 1e-5);
}

}  // namespace
}  // namespace lowbit
