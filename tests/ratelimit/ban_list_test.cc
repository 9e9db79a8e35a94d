// tests/ratelimit/ban_list_test.cc: BanList (ratelimit/ban_list.h): ban after N violations
// within a sliding window, unban after ban_for, the bound on keys, concurrency.
#include "ratelimit/ban_list.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace torii::ratelimit {
namespace {

constexpr uint64_t kSec = 1000000000;
constexpr uint64_t kT0 = 1000 * kSec;

BanSpec Spec(uint32_t after, uint64_t window_s, uint64_t ban_s, size_t max_keys = 1000) {
  BanSpec s;
  s.ban_after = after;
  s.window_ns = window_s * kSec;
  s.ban_for_ns = ban_s * kSec;
  s.max_keys = max_keys;
  return s;
}

// The 3rd violation within 10 s starts a 60 s ban (reported once); it ends on time.
TEST(BanListTest, BansAfterNViolationsWithinTheWindow) {
  BanList b(Spec(3, 10, 60));
  EXPECT_FALSE(b.RecordViolation(1, kT0));
  EXPECT_FALSE(b.RecordViolation(1, kT0 + 1 * kSec));
  EXPECT_FALSE(b.IsBanned(1, kT0 + 1 * kSec));
  EXPECT_TRUE(b.RecordViolation(1, kT0 + 2 * kSec));
  EXPECT_TRUE(b.IsBanned(1, kT0 + 2 * kSec));
  EXPECT_EQ(b.BannedUntil(1), kT0 + 62 * kSec);
  EXPECT_TRUE(b.IsBanned(1, kT0 + 62 * kSec - 1));
  EXPECT_FALSE(b.IsBanned(1, kT0 + 62 * kSec));
  EXPECT_FALSE(b.IsBanned(2, kT0 + 2 * kSec));  // other keys unaffected
  EXPECT_EQ(b.BannedUntil(2), 0u);
}

// Violations while banned neither extend nor restart the ban, nor count toward the next one.
TEST(BanListTest, ViolationsDuringABanAreIgnored) {
  BanList b(Spec(2, 10, 60));
  b.RecordViolation(1, kT0);
  ASSERT_TRUE(b.RecordViolation(1, kT0));
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(b.RecordViolation(1, kT0 + 30 * kSec));
  }
  EXPECT_EQ(b.BannedUntil(1), kT0 + 60 * kSec);
  // After the ban, ban_after fresh violations are needed again.
  EXPECT_FALSE(b.RecordViolation(1, kT0 + 61 * kSec));
  EXPECT_FALSE(b.IsBanned(1, kT0 + 61 * kSec));
  EXPECT_TRUE(b.RecordViolation(1, kT0 + 62 * kSec));
  EXPECT_EQ(b.BannedUntil(1), kT0 + 122 * kSec);
}

// Violations spread wider than the window never ban.
TEST(BanListTest, SpreadOutViolationsDoNotBan) {
  BanList b(Spec(3, 10, 60));
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(b.RecordViolation(1, kT0 + i * 6 * kSec)) << i;  // any 3 span 12 s
  }
  EXPECT_FALSE(b.IsBanned(1, kT0 + 600 * kSec));
}

// The window slides: 0, 9, 11, 12 s bans at 12 (9, 11, 12 span 3 s), which a window fixed at
// the first violation would miss; the window is inclusive (0, 5, 10 bans).
TEST(BanListTest, WindowSlidesAndIsInclusive) {
  BanList b(Spec(3, 10, 60));
  EXPECT_FALSE(b.RecordViolation(1, kT0));
  EXPECT_FALSE(b.RecordViolation(1, kT0 + 9 * kSec));
  EXPECT_FALSE(b.RecordViolation(1, kT0 + 11 * kSec));  // 0..11 spans 11 s
  EXPECT_TRUE(b.RecordViolation(1, kT0 + 12 * kSec));

  EXPECT_FALSE(b.RecordViolation(2, kT0));
  EXPECT_FALSE(b.RecordViolation(2, kT0 + 5 * kSec));
  EXPECT_TRUE(b.RecordViolation(2, kT0 + 10 * kSec));
}

// ban_after 0 turns bans off (nothing stored); ban_after 1 bans on the first violation;
// values above kMaxBanAfter are capped.
TEST(BanListTest, BanAfterEdges) {
  BanList off(Spec(0, 10, 60));
  EXPECT_FALSE(off.RecordViolation(1, kT0));
  EXPECT_FALSE(off.IsBanned(1, kT0));
  EXPECT_EQ(off.size(), 0u);

  BanList one(Spec(1, 10, 60));
  EXPECT_TRUE(one.RecordViolation(1, kT0));
  EXPECT_TRUE(one.IsBanned(1, kT0 + kSec));

  BanList capped(Spec(1000, 10, 60));
  EXPECT_EQ(capped.spec().ban_after, BanList::kMaxBanAfter);
  for (uint32_t i = 0; i + 1 < BanList::kMaxBanAfter; ++i) {
    ASSERT_FALSE(capped.RecordViolation(1, kT0));
  }
  EXPECT_TRUE(capped.RecordViolation(1, kT0));
}

// Two keys count their violations independently.
TEST(BanListTest, KeysAreIndependent) {
  BanList b(Spec(2, 10, 60));
  EXPECT_FALSE(b.RecordViolation(1, kT0));
  EXPECT_FALSE(b.RecordViolation(2, kT0));
  EXPECT_TRUE(b.RecordViolation(1, kT0));
  EXPECT_FALSE(b.IsBanned(2, kT0));
  EXPECT_TRUE(b.RecordViolation(2, kT0));
}

// A flood of 200k distinct violators stays within max_keys, and does not push out a ban in force
// (the violators expire sooner, so they are evicted first).
TEST(BanListTest, FloodStaysBoundedAndKeepsBans) {
  BanList b(Spec(3, 10, 600, /*max_keys=*/1000));
  const uint64_t banned = 0x5eed;
  b.RecordViolation(banned, kT0);
  b.RecordViolation(banned, kT0);
  ASSERT_TRUE(b.RecordViolation(banned, kT0));
  for (uint64_t k = 1; k <= 200000; ++k) {
    b.RecordViolation(k * 0x9e3779b97f4a7c15ull, kT0 + (k % 1000) * 1000);
    if (k % 65536 == 0) {
      ASSERT_LE(b.size(), 1000u);
    }
  }
  EXPECT_LE(b.size(), 1000u);
  EXPECT_TRUE(b.IsBanned(banned, kT0 + 10 * kSec));
}

// Expired keys (ban over, violations out of the window) are dropped before anything else.
TEST(BanListTest, ExpiredKeysGoFirst) {
  BanList b(Spec(2, 10, 60, /*max_keys=*/2), /*shards=*/1);
  b.RecordViolation(1, kT0);
  ASSERT_TRUE(b.RecordViolation(1, kT0));  // banned until T0 + 60 s
  b.RecordViolation(2, kT0);               // expires at T0 + 10 s
  EXPECT_EQ(b.size(), 2u);
  b.RecordViolation(3, kT0 + 20 * kSec);  // 2 has expired: it goes, the ban stays
  EXPECT_EQ(b.size(), 2u);
  EXPECT_TRUE(b.IsBanned(1, kT0 + 20 * kSec));
  // Full of live keys: the one expiring soonest (3, at T0 + 30 s) goes, not the ban.
  b.RecordViolation(4, kT0 + 20 * kSec);
  EXPECT_TRUE(b.IsBanned(1, kT0 + 20 * kSec));
  EXPECT_EQ(b.size(), 2u);
  // 4 kept its violation: one more bans it.
  EXPECT_TRUE(b.RecordViolation(4, kT0 + 21 * kSec));
}

// Many threads reporting one key at once: exactly one of them is told the ban started.
TEST(BanListTest, OneBanStartUnderConcurrency) {
  BanList b(Spec(5, 10, 60));
  std::atomic<int> starts{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 1000; ++j) {
        if (b.RecordViolation(9, kT0)) {
          starts.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(starts.load(), 1);
  EXPECT_TRUE(b.IsBanned(9, kT0));
}

}  // namespace
}  // namespace torii::ratelimit
