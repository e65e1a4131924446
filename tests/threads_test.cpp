// The thread rule for busy machines (util/threads.h): fewer threads when other programs hold
// cores, back to all of them when they stop. Speed under contention itself is measured by
// scripts/contention_bench.sh (docs/PERFORMANCE.md), not here.
#include "lowbit/util/threads.h"

#include <gtest/gtest.h>

namespace lowbit {
namespace {

TEST(Threads, RuleLeavesBusyCoresToOthers) {
  // 2 cores, both asked for.
  EXPECT_EQ(threads_for_load(2, 2, 0.0), 2);  // idle
  EXPECT_EQ(threads_for_load(2, 2, 0.2), 2);  // light background noise
  EXPECT_EQ(threads_for_load(2, 2, 0.5), 1);  // a hog sharing a core with one of ours
  EXPECT_EQ(threads_for_load(2, 2, 1.0), 1);  // a hog on its own core
  EXPECT_EQ(threads_for_load(2, 2, 2.0), 1);  // never fewer than one
  // Never more than asked, whatever is free.
  EXPECT_EQ(threads_for_load(2, 1, 0.0), 1);
  EXPECT_EQ(threads_for_load(16, 8, 0.0), 8);
  // Larger machines: each core others hold (beyond a third of it) is left to them.
  EXPECT_EQ(threads_for_load(16, 16, 4.2), 12);
  EXPECT_EQ(threads_for_load(16, 16, 3.3), 13);
}

TEST(Threads, AskedCountIsAnUpperBound) {
  set_num_threads(1);
  adapt_threads();
  EXPECT_EQ(num_threads(), 1);
  set_num_threads(0);  // all cores: at least one, at most the machine's
  adapt_threads();
  EXPECT_GE(num_threads(), 1);
}

}  // namespace
}  // namespace lowbit
