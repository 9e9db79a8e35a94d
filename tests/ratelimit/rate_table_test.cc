// tests/ratelimit/rate_table_test.cc: ParseRate and RateTable (ratelimit/rate_table.h): GCRA
// decisions under an injected clock, delay mode, the memory bound under floods, exactness
// under concurrency, and no allocation on the steady path.
#include "ratelimit/rate_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <new>
#include <thread>
#include <vector>

// Counts every (non-aligned) operator new in this test binary, so a test can assert that a
// code path allocates nothing. Forwarding to malloc/free keeps the sanitizers' bookkeeping.
namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace torii::ratelimit {
namespace {

constexpr uint64_t kMs = 1000000;
constexpr uint64_t kSec = 1000 * kMs;
constexpr uint64_t kT0 = 1000 * kSec;  // an arbitrary monotonic "now" to start from
constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

LimitSpec Spec(uint64_t per_second, uint32_t burst, bool delay = false, size_t max_keys = 1000) {
  LimitSpec s;
  s.rate = Rate{per_second, kSec};
  s.burst = burst;
  s.delay_mode = delay;
  s.max_keys = max_keys;
  return s;
}

// Good rates in each unit; count bounds.
TEST(ParseRateTest, AcceptsCountPerUnit) {
  EXPECT_EQ(ParseRate("100/s"), (Rate{100, kSec}));
  EXPECT_EQ(ParseRate("6000/m"), (Rate{6000, 60 * kSec}));
  EXPECT_EQ(ParseRate("10/h"), (Rate{10, 3600 * kSec}));
  EXPECT_EQ(ParseRate("1/d"), (Rate{1, 86400 * kSec}));
  EXPECT_EQ(ParseRate("1/s"), (Rate{1, kSec}));
  EXPECT_EQ(ParseRate("1000000000/s"), (Rate{1000000000, kSec}));
}

// Zero, overflow, signs, spaces, unknown or missing units are refused.
TEST(ParseRateTest, RefusesBadRates) {
  for (std::string_view bad :
       {"",      "/s",    "100",   "100/",   "0/s",    "1000000001/s", "99999999999/s",
        "-1/s",  "+1/s",  "10/x",  "10/S",   "10/sec", "10/ms",        " 10/s",
        "10/s ", "10 /s", "1e3/s", "10.5/s", "10//s",  "10/s/s"}) {
    EXPECT_FALSE(ParseRate(bad).has_value()) << "'" << bad << "'";
  }
}

// T = period / count; tau = burst * T.
TEST(RateTableTest, IntervalAndTolerance) {
  RateTable t(Spec(10, 5));
  EXPECT_EQ(t.interval_ns(), 100 * kMs);
  EXPECT_EQ(t.tolerance_ns(), 500 * kMs);
  RateTable odd(Spec(7, 0));
  EXPECT_EQ(odd.interval_ns(), 142857142u);  // rounded down
}

// Rate 10/s, burst 5: a fresh key makes 6 requests at once; the 7th waits 100 ms.
TEST(RateTableTest, BurstPlusOneAtOnceThenRetryAfterOneInterval) {
  RateTable t(Spec(10, 5));
  for (uint32_t i = 0; i < 6; ++i) {
    Decision d = t.Check(/*key=*/1, kT0);
    EXPECT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.delay_ns, 0u);
    EXPECT_EQ(d.remaining, 5 - i) << i;
    EXPECT_EQ(d.reset_ns, (i + 1) * 100 * kMs) << i;
  }
  Decision d = t.Check(1, kT0);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_ns, 100 * kMs);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_EQ(d.reset_ns, 600 * kMs);
  // A rejected request costs nothing: asking again later gives a shorter wait.
  d = t.Check(1, kT0 + 30 * kMs);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_ns, 70 * kMs);
}

// The quota comes back at the rate: one request per 100 ms, and all of it after 600 ms.
TEST(RateTableTest, RefillsAtTheRate) {
  RateTable t(Spec(10, 5));
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(t.Check(1, kT0).allowed);
  }
  EXPECT_FALSE(t.Check(1, kT0 + 99 * kMs).allowed);
  Decision d = t.Check(1, kT0 + 100 * kMs);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_FALSE(t.Check(1, kT0 + 100 * kMs).allowed);

  // 250 ms later: two more fit (2.5 intervals refilled), the third waits 50 ms.
  const uint64_t t1 = kT0 + 350 * kMs;
  EXPECT_TRUE(t.Check(1, t1).allowed);
  EXPECT_TRUE(t.Check(1, t1).allowed);
  d = t.Check(1, t1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_ns, 50 * kMs);

  // Once reset_ns has passed the key is as good as new: burst + 1 again.
  const uint64_t t2 = t1 + 2 * kSec;
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(t.Check(1, t2).allowed) << i;
  }
  EXPECT_FALSE(t.Check(1, t2).allowed);
}

// A client sending exactly at the rate is never limited, even with burst 0.
TEST(RateTableTest, SteadyRateIsNeverLimited) {
  RateTable t(Spec(10, 0));
  for (int i = 0; i < 1000; ++i) {
    Decision d = t.Check(1, kT0 + i * 100 * kMs);
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 0u);
    EXPECT_EQ(d.reset_ns, 100 * kMs);
  }
  // ...but one request faster than the rate is.
  Decision d = t.Check(1, kT0 + 999 * 100 * kMs + 50 * kMs);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_ns, 50 * kMs);
}

// Over many seconds of hammering, the allowed count is burst + rate * elapsed, exactly.
TEST(RateTableTest, LongRunAllowsBurstPlusRateTimesTime) {
  RateTable t(Spec(100, 20));
  int allowed = 0;
  for (uint64_t now = kT0; now <= kT0 + 10 * kSec; now += kMs) {  // 10001 ms, 1 req/ms
    allowed += t.Check(1, now).allowed ? 1 : 0;
  }
  EXPECT_EQ(allowed, 21 + 100 * 10);
}

// Two keys are limited independently.
TEST(RateTableTest, KeysAreIndependent) {
  RateTable t(Spec(10, 2));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(t.Check(/*key=*/1, kT0).allowed);
  }
  EXPECT_FALSE(t.Check(1, kT0).allowed);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(t.Check(/*key=*/2, kT0).allowed) << i;
  }
  EXPECT_FALSE(t.Check(2, kT0).allowed);
  EXPECT_EQ(t.size(), 2u);
}

// cost > 1 consumes that many intervals; a cost above burst + 1 can never pass; cost 0 asks.
TEST(RateTableTest, CostWeighsRequests) {
  RateTable t(Spec(10, 5));
  EXPECT_TRUE(t.Check(1, kT0, /*cost=*/3).allowed);
  Decision d = t.Check(1, kT0, 3);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 0u);
  d = t.Check(1, kT0, 3);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_ns, 300 * kMs);

  d = t.Check(2, kT0, /*cost=*/7);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_ns, kNever);

  d = t.Check(3, kT0, /*cost=*/0);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 6u);
  EXPECT_EQ(d.reset_ns, 0u);
  EXPECT_EQ(t.size(), 1u);  // key 2 (rejected) and key 3 (cost 0) are not stored
}

// A caller whose clock reads a little behind another's sees the state as of its own now.
TEST(RateTableTest, SlightlyOlderNowIsHandled) {
  RateTable t(Spec(10, 0));
  EXPECT_TRUE(t.Check(1, kT0).allowed);
  Decision d = t.Check(1, kT0 - 5 * kMs);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_ns, 105 * kMs);
}

// Delay mode: burst + 1 admitted at once, spaced at 1/rate; beyond the burst rejected.
TEST(RateTableTest, DelayModeSpacesRequestsAtTheRate) {
  RateTable t(Spec(10, 3, /*delay=*/true));
  for (uint32_t i = 0; i < 4; ++i) {
    Decision d = t.Check(1, kT0);
    EXPECT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.delay_ns, i * 100 * kMs) << i;
    EXPECT_EQ(d.remaining, 3 - i) << i;
  }
  Decision d = t.Check(1, kT0);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.delay_ns, 0u);
  EXPECT_EQ(d.retry_after_ns, 100 * kMs);

  // 100 ms on, one request has left the queue: one more fits, at the back of it.
  d = t.Check(1, kT0 + 100 * kMs);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.delay_ns, 300 * kMs);
  EXPECT_FALSE(t.Check(1, kT0 + 100 * kMs).allowed);

  // A request arriving 50 ms into an interval waits out the rest of its slot.
  RateTable u(Spec(10, 3, /*delay=*/true));
  EXPECT_EQ(u.Check(1, kT0).delay_ns, 0u);
  d = u.Check(1, kT0 + 50 * kMs);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.delay_ns, 50 * kMs);
  // Spread out at the rate, nothing is delayed.
  for (int i = 1; i < 20; ++i) {
    EXPECT_EQ(u.Check(1, kT0 + 100 * kMs + i * 100 * kMs).delay_ns, 0u) << i;
  }
}

// Delay mode with burst 0: no queue; over the rate is rejected, at the rate is immediate.
TEST(RateTableTest, DelayModeWithoutBurstOnlyRejects) {
  RateTable t(Spec(10, 0, /*delay=*/true));
  Decision d = t.Check(1, kT0);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.delay_ns, 0u);
  EXPECT_FALSE(t.Check(1, kT0 + 10 * kMs).allowed);
  d = t.Check(1, kT0 + 100 * kMs);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.delay_ns, 0u);
}

// A flood of 1M distinct keys never holds more than max_keys, whether the keys stay active
// (same now) or go idle (time moving).
TEST(RateTableTest, FloodOfDistinctKeysStaysBounded) {
  RateTable active(Spec(1, 5, false, /*max_keys=*/1000));
  RateTable idle(Spec(1000, 5, false, /*max_keys=*/1000));
  for (uint64_t k = 0; k < 1000000; ++k) {
    ASSERT_TRUE(active.Check(k * 0x9e3779b97f4a7c15ull, kT0).allowed);
    ASSERT_TRUE(idle.Check(k, kT0 + k * kMs / 10).allowed);
    if (k % 65536 == 0) {
      ASSERT_LE(active.size(), 1000u);
      ASSERT_LE(idle.size(), 1000u);
    }
  }
  EXPECT_LE(active.size(), 1000u);
  EXPECT_GE(active.size(), 900u);  // the table is used, not emptied
  EXPECT_LE(idle.size(), 1000u);
}

// A flood cannot buy an exhausted client a fresh quota: the evicted keys are the flood's own
// (closest to idle), never the most indebted one.
TEST(RateTableTest, FloodDoesNotEvictAnExhaustedKey) {
  RateTable t(Spec(10, 5, false, /*max_keys=*/256));
  const uint64_t victim = 0xabcdef;
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(t.Check(victim, kT0).allowed);
  }
  for (uint64_t k = 1; k <= 100000; ++k) {
    t.Check(k, kT0);
  }
  EXPECT_LE(t.size(), 256u);
  EXPECT_FALSE(t.Check(victim, kT0).allowed);
}

// In a full table idle keys go first; with none idle, the one closest to idle goes.
TEST(RateTableTest, EvictsIdleKeysFirstThenTheClosestToIdle) {
  // One shard, room for 3 keys; rate 1/s, burst 5.
  RateTable t(Spec(1, 5, false, /*max_keys=*/3), /*shards=*/1);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(t.Check(/*key=*/'A', kT0).allowed);  // TAT = T0 + 6 s: active a long time
  }
  ASSERT_TRUE(t.Check('B', kT0).allowed);              // TAT = T0 + 1 s
  ASSERT_TRUE(t.Check('C', kT0 + 500 * kMs).allowed);  // TAT = T0 + 1.5 s
  EXPECT_EQ(t.size(), 3u);
  // At T0 + 2 s, B and C are idle: both swept when D arrives, A kept.
  ASSERT_TRUE(t.Check('D', kT0 + 2 * kSec).allowed);
  EXPECT_EQ(t.size(), 2u);
  Decision a = t.Check('A', kT0 + 2 * kSec);
  EXPECT_TRUE(a.allowed);  // 2 s of refill
  EXPECT_EQ(a.remaining, 1u);

  // Now A (TAT T0+7 s), D (T0+3 s), E (T0+3 s): all active. F evicts D or E, never A.
  ASSERT_TRUE(t.Check('E', kT0 + 2 * kSec).allowed);
  ASSERT_TRUE(t.Check('F', kT0 + 2 * kSec).allowed);
  EXPECT_EQ(t.size(), 3u);
  a = t.Check('A', kT0 + 2 * kSec, /*cost=*/0);
  EXPECT_EQ(a.remaining, 1u);  // A's state survived
}

// N threads hammering one key at one fixed now: exactly burst + 1 pass, whatever the races.
TEST(RateTableTest, ExactUnderConcurrency) {
  for (uint32_t burst : {0u, 5u, 99u}) {
    RateTable t(Spec(10, burst));
    std::atomic<int> allowed{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&] {
        while (!go.load()) {
        }
        for (int j = 0; j < 2000; ++j) {
          if (t.Check(42, kT0).allowed) {
            allowed.fetch_add(1);
          }
        }
      });
    }
    go.store(true);
    for (std::thread& th : threads) {
      th.join();
    }
    EXPECT_EQ(allowed.load(), static_cast<int>(burst) + 1) << burst;
  }
}

// Several keys, several threads, time moving: each key still gets exactly burst + rate*time.
TEST(RateTableTest, ExactUnderConcurrencyAcrossKeysAndTime) {
  RateTable t(Spec(100, 10));
  constexpr int kKeys = 4;
  std::atomic<int> allowed[kKeys] = {};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      // Each thread walks the same 1-second timeline (1 ms steps) over every key.
      for (uint64_t ms = 0; ms <= 1000; ++ms) {
        for (int k = 0; k < kKeys; ++k) {
          if (t.Check(static_cast<uint64_t>(k), kT0 + ms * kMs).allowed) {
            allowed[k].fetch_add(1);
          }
        }
      }
    });
  }
  for (std::thread& th : threads) {
    th.join();
  }
  // Threads' clocks interleave, so a slightly older `now` may be refused where the newer one
  // would pass, but never more than burst + 1 + rate * elapsed pass.
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_LE(allowed[k].load(), 11 + 100) << k;
    EXPECT_GE(allowed[k].load(), 100) << k;
  }
}

// Check() on a key already stored allocates nothing (nor on a rejection).
TEST(RateTableTest, CheckOnAnExistingKeyDoesNotAllocate) {
  RateTable t(Spec(1000, 10));
  const uint64_t at_start = g_allocations.load();
  for (uint64_t k = 0; k < 100; ++k) {
    t.Check(k, kT0);
  }
  const uint64_t before = g_allocations.load();
  EXPECT_GT(before, at_start);  // new keys grew the slot arrays: the counter is live
  int allowed = 0;
  for (uint64_t i = 0; i < 100000; ++i) {
    allowed += t.Check(i % 100, kT0 + i * 1000).allowed ? 1 : 0;
  }
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_GT(allowed, 0);
}

// Degenerate specs are clamped, not undefined: max_keys 0 holds one key, shards <= keys.
TEST(RateTableTest, DegenerateSpecsAreClamped) {
  LimitSpec s = Spec(10, 0, false, /*max_keys=*/0);
  RateTable t(s, /*shards=*/64);
  EXPECT_EQ(t.shard_count(), 1u);
  EXPECT_TRUE(t.Check(1, kT0).allowed);
  EXPECT_TRUE(t.Check(2, kT0).allowed);
  EXPECT_EQ(t.size(), 1u);

  LimitSpec zero;
  zero.rate = Rate{0, 0};
  RateTable z(zero, 0);
  EXPECT_EQ(z.interval_ns(), 1u);
  EXPECT_TRUE(z.Check(1, kT0).allowed);

  // Huge burst with a long interval saturates instead of wrapping.
  LimitSpec big;
  big.rate = Rate{1, 86400 * kSec};
  big.burst = std::numeric_limits<uint32_t>::max();
  RateTable b(big);
  Decision d = b.Check(1, kT0);
  EXPECT_TRUE(d.allowed);
  EXPECT_GT(d.remaining, 1000u);
  EXPECT_EQ(d.reset_ns, 86400 * kSec);
}

}  // namespace
}  // namespace torii::ratelimit
