// tests/ratelimit/conn_limit_test.cc: ConnLimiter (ratelimit/conn_limit.h): the per-key limit,
// release, the bound on keys, and exactness across threads.
#include "ratelimit/conn_limit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace torii::ratelimit {
namespace {

// A key holds at most `limit`; releasing one lets the next in.
TEST(ConnLimiterTest, LimitsEachKey) {
  ConnLimiter c(/*limit=*/2, /*max_keys=*/100);
  EXPECT_TRUE(c.TryAcquire(7));
  EXPECT_TRUE(c.TryAcquire(7));
  EXPECT_FALSE(c.TryAcquire(7));
  EXPECT_EQ(c.Count(7), 2u);
  EXPECT_TRUE(c.TryAcquire(8));  // another key is independent
  c.Release(7);
  EXPECT_EQ(c.Count(7), 1u);
  EXPECT_TRUE(c.TryAcquire(7));
  EXPECT_FALSE(c.TryAcquire(7));
}

// A key that drops to 0 connections is removed; stray releases are ignored.
TEST(ConnLimiterTest, KeysAtZeroAreRemoved) {
  ConnLimiter c(3, 100);
  EXPECT_EQ(c.size(), 0u);
  ASSERT_TRUE(c.TryAcquire(1));
  ASSERT_TRUE(c.TryAcquire(1));
  ASSERT_TRUE(c.TryAcquire(2));
  EXPECT_EQ(c.size(), 2u);
  c.Release(1);
  EXPECT_EQ(c.size(), 2u);
  c.Release(1);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.Count(1), 0u);
  c.Release(1);  // unmatched: ignored, no wrap
  c.Release(99);
  EXPECT_EQ(c.Count(1), 0u);
  EXPECT_EQ(c.size(), 1u);
  c.Release(2);
  EXPECT_EQ(c.size(), 0u);
}

// limit 0 refuses every connection.
TEST(ConnLimiterTest, LimitZeroRefusesAll) {
  ConnLimiter c(0, 100);
  EXPECT_FALSE(c.TryAcquire(1));
  EXPECT_EQ(c.size(), 0u);
}

// Full of keys that all hold connections: a NEW key is refused, known keys keep working, and
// a key leaving makes room again.
TEST(ConnLimiterTest, FullTableRefusesNewKeysOnly) {
  ConnLimiter c(/*limit=*/2, /*max_keys=*/8, /*shards=*/1);
  for (uint64_t k = 0; k < 8; ++k) {
    ASSERT_TRUE(c.TryAcquire(k));
  }
  EXPECT_FALSE(c.TryAcquire(100));
  EXPECT_TRUE(c.TryAcquire(3));  // second connection of a stored key
  EXPECT_EQ(c.size(), 8u);
  c.Release(5);
  EXPECT_TRUE(c.TryAcquire(100));
  EXPECT_EQ(c.size(), 8u);
}

// A flood of distinct keys never stores more than max_keys and never admits more keys.
TEST(ConnLimiterTest, FloodStaysBounded) {
  ConnLimiter c(1, /*max_keys=*/1000);
  size_t admitted = 0;
  for (uint64_t k = 0; k < 200000; ++k) {
    admitted += c.TryAcquire(k * 0x9e3779b97f4a7c15ull) ? 1 : 0;
  }
  EXPECT_LE(c.size(), 1000u);
  EXPECT_EQ(admitted, c.size());
  EXPECT_GE(admitted, 900u);
}

// Threads racing on one key: exactly `limit` acquisitions win.
TEST(ConnLimiterTest, ExactUnderConcurrency) {
  ConnLimiter c(/*limit=*/10, 100);
  std::atomic<int> won{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 1000; ++j) {
        if (c.TryAcquire(5)) {
          won.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(won.load(), 10);
  EXPECT_EQ(c.Count(5), 10u);
}

// Acquire/release churn from many threads: the limit is never exceeded and everything
// returns to empty.
TEST(ConnLimiterTest, ChurnNeverExceedsTheLimit) {
  ConnLimiter c(/*limit=*/3, 64);
  std::atomic<int> held[4] = {};
  std::atomic<int> over{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 5000; ++j) {
        const uint64_t key = static_cast<uint64_t>((i + j) % 4);
        if (c.TryAcquire(key)) {
          if (held[key].fetch_add(1) + 1 > 3) {
            over.fetch_add(1);
          }
          held[key].fetch_sub(1);
          c.Release(key);
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(over.load(), 0);
  EXPECT_EQ(c.size(), 0u);
}

}  // namespace
}  // namespace torii::ratelimit
