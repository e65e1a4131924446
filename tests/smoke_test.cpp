#include <gtest/gtest.h>

#include "lowbit/util/half.h"

TEST(Half, Bf16RoundTrip) {
  EXPECT_EQ(lowbit::bf16_to_f32(lowbit::f32_to_bf16(1.5f)), 1.5f);
  EXPECT_EQ(lowbit::f16_to_f32(lowbit::f32_to_f16(-2.25f)), -2.25f);
}
