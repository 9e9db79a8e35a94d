// tests/base/log_limit_test.cc: "log at most once a second" (base/log_limit.h).
#include "base/log_limit.h"

#include <gtest/gtest.h>

namespace torii::base {
namespace {

TEST(LogLimitTest, FirstThenOncePerIntervalWithTheCountLeftOut) {
  LogLimit limit;
  uint64_t suppressed = 99;
  EXPECT_TRUE(limit.Allow(0, &suppressed));  // the first one, even at time 0
  EXPECT_EQ(suppressed, 0u);
  EXPECT_FALSE(limit.Allow(10, &suppressed));
  EXPECT_FALSE(limit.Allow(999, &suppressed));
  EXPECT_TRUE(limit.Allow(1000, &suppressed));
  EXPECT_EQ(suppressed, 2u);
  EXPECT_TRUE(limit.Allow(5000, &suppressed));
  EXPECT_EQ(suppressed, 0u);
}

TEST(LogLimitTest, OtherIntervals) {
  LogLimit limit(50);
  uint64_t suppressed = 0;
  EXPECT_TRUE(limit.Allow(100, &suppressed));
  EXPECT_FALSE(limit.Allow(149, &suppressed));
  EXPECT_TRUE(limit.Allow(150, &suppressed));
  EXPECT_EQ(suppressed, 1u);
}

}  // namespace
}  // namespace torii::base
