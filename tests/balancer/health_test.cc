// tests/balancer/health_test.cc: PoolHealth and HealthView, driven by an injected clock, and
// the max_conns slots (BackendSlots).
#include "balancer/health.h"
#include "balancer/slots.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace torii::balancer {
namespace {

std::vector<uint32_t> Members(const BackendMask& m) {
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < m.size(); ++i) {
    if (m.test(i)) {
      out.push_back(i);
    }
  }
  return out;
}

std::vector<uint32_t> Eligible(const PoolHealth& h, uint64_t now) {
  BackendMask m;
  h.Snapshot(now, &m);
  return Members(m);
}

HealthPolicy Active(uint32_t rise, uint32_t fall) {
  HealthPolicy p;
  p.active = true;
  p.rise = rise;
  p.fall = fall;
  return p;
}

TEST(PoolHealthTest, EveryBackendStartsEligible) {
  PoolHealth h(3, HealthPolicy{});
  EXPECT_EQ(Eligible(h, 1000), (std::vector<uint32_t>{0, 1, 2}));
}

TEST(PoolHealthTest, FallConsecutiveFailuresTakeABackendDown) {
  PoolHealth h(2, Active(2, 3));
  EXPECT_EQ(h.ReportCheck(1, false, 100), HealthChange::kNone);
  EXPECT_EQ(h.ReportCheck(1, false, 200), HealthChange::kNone);
  EXPECT_TRUE(h.up(1));
  EXPECT_EQ(h.ReportCheck(1, false, 300), HealthChange::kDown);
  EXPECT_FALSE(h.up(1));
  EXPECT_EQ(Eligible(h, 300), (std::vector<uint32_t>{0}));
  // Further failures report nothing new.
  EXPECT_EQ(h.ReportCheck(1, false, 400), HealthChange::kNone);
}

TEST(PoolHealthTest, ASuccessInBetweenResetsTheFailStreak) {
  PoolHealth h(1, Active(2, 3));
  h.ReportCheck(0, false, 100);
  h.ReportCheck(0, false, 200);
  h.ReportCheck(0, true, 300);
  h.ReportCheck(0, false, 400);
  EXPECT_EQ(h.ReportCheck(0, false, 500), HealthChange::kNone);
  EXPECT_TRUE(h.up(0));
  EXPECT_EQ(h.ReportCheck(0, false, 600), HealthChange::kDown);
}

TEST(PoolHealthTest, RiseConsecutiveSuccessesBringItBack) {
  PoolHealth h(1, Active(3, 1));
  EXPECT_EQ(h.ReportCheck(0, false, 100), HealthChange::kDown);
  EXPECT_EQ(h.ReportCheck(0, true, 200), HealthChange::kNone);
  EXPECT_EQ(h.ReportCheck(0, true, 300), HealthChange::kNone);
  EXPECT_EQ(h.ReportCheck(0, false, 400), HealthChange::kNone);  // streak broken
  EXPECT_EQ(h.ReportCheck(0, true, 500), HealthChange::kNone);
  EXPECT_EQ(h.ReportCheck(0, true, 600), HealthChange::kNone);
  EXPECT_EQ(h.ReportCheck(0, true, 700), HealthChange::kUp);
  EXPECT_TRUE(h.up(0));
}

TEST(PoolHealthTest, VersionChangesExactlyOnEligibilityChanges) {
  PoolHealth h(2, Active(1, 1));
  const uint64_t v0 = h.version();
  h.ReportCheck(0, true, 100);
  EXPECT_EQ(h.version(), v0);
  h.ReportCheck(0, false, 200);
  const uint64_t v1 = h.version();
  EXPECT_NE(v1, v0);
  h.ReportCheck(0, false, 300);
  EXPECT_EQ(h.version(), v1);
  h.ReportCheck(0, true, 400);
  EXPECT_NE(h.version(), v1);
}

HealthPolicy Passive(uint32_t max_fails, uint64_t window, uint64_t eject, uint64_t max_eject) {
  HealthPolicy p;
  p.max_fails = max_fails;
  p.fail_window_ms = window;
  p.eject_ms = eject;
  p.max_eject_ms = max_eject;
  return p;
}

TEST(PoolHealthTest, MaxFailsWithinTheWindowEjects) {
  PoolHealth h(2, Passive(3, 1000, 5000, 60000));
  EXPECT_EQ(h.ReportFailure(0, 10000), HealthChange::kNone);
  EXPECT_EQ(h.ReportFailure(0, 10400), HealthChange::kNone);
  EXPECT_EQ(h.ReportFailure(0, 10900), HealthChange::kEjected);
  EXPECT_EQ(h.ejected_until(0), 15900u);
  EXPECT_EQ(Eligible(h, 10900), (std::vector<uint32_t>{1}));
  EXPECT_EQ(Eligible(h, 15899), (std::vector<uint32_t>{1}));
  // Without active checks the backoff's end brings it back.
  EXPECT_EQ(Eligible(h, 15900), (std::vector<uint32_t>{0, 1}));
}

TEST(PoolHealthTest, FailuresSpreadWiderThanTheWindowDoNotEject) {
  PoolHealth h(2, Passive(3, 1000, 5000, 60000));
  for (uint64_t t = 0; t < 20; ++t) {
    EXPECT_EQ(h.ReportFailure(0, 10000 + t * 600), HealthChange::kNone) << t;
  }
  EXPECT_EQ(Eligible(h, 30000), (std::vector<uint32_t>{0, 1}));
}

TEST(PoolHealthTest, BackoffDoublesWhileItKeepsFailingAndIsCapped) {
  PoolHealth h(2, Passive(1, 1000, 1000, 5000));
  uint64_t now = 1000;
  const uint64_t expected[] = {1000, 2000, 4000, 5000, 5000};
  for (uint64_t backoff : expected) {
    ASSERT_EQ(h.ReportFailure(0, now), HealthChange::kEjected);
    EXPECT_EQ(h.ejected_until(0) - now, backoff);
    // Reports while ejected (late requests) change nothing.
    EXPECT_EQ(h.ReportFailure(0, now + 1), HealthChange::kNone);
    now = h.ejected_until(0);
  }
  // A success after it returned resets the backoff.
  h.ReportSuccess(0, now);
  EXPECT_EQ(h.ejections(0), 0u);
  ASSERT_EQ(h.ReportFailure(0, now), HealthChange::kEjected);
  EXPECT_EQ(h.ejected_until(0) - now, 1000u);
}

TEST(PoolHealthTest, ALateSuccessDuringTheEjectionDoesNotResetTheBackoff) {
  PoolHealth h(2, Passive(1, 1000, 1000, 60000));
  ASSERT_EQ(h.ReportFailure(0, 1000), HealthChange::kEjected);
  h.ReportSuccess(0, 1500);
  EXPECT_EQ(h.ejections(0), 1u);
}

TEST(PoolHealthTest, MaxFailsZeroTurnsPassiveEjectionOff) {
  PoolHealth h(1, Passive(0, 1000, 1000, 1000));
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(h.ReportFailure(0, 1000 + i), HealthChange::kNone);
  }
  EXPECT_EQ(Eligible(h, 2000), (std::vector<uint32_t>{0}));
}

TEST(PoolHealthTest, EveryBackendEjectedMeansPanicNotRefusal) {
  PoolHealth h(2, Passive(1, 1000, 5000, 60000));
  h.ReportFailure(0, 1000);
  EXPECT_EQ(Eligible(h, 1000), (std::vector<uint32_t>{1}));
  h.ReportFailure(1, 1000);
  EXPECT_EQ(Eligible(h, 1000), (std::vector<uint32_t>{0, 1}));
}

TEST(PoolHealthTest, ActiveDownBackendsStayOutEvenInPanic) {
  PoolHealth h(2, Active(1, 1));
  h.ReportCheck(0, false, 100);
  h.ReportCheck(1, false, 100);
  EXPECT_TRUE(Eligible(h, 100).empty());
}

TEST(PoolHealthTest, WithActiveChecksAnEjectedBackendNeedsRiseChecksAfterTheBackoff) {
  HealthPolicy p = Active(2, 3);
  p.max_fails = 1;
  p.eject_ms = 5000;
  PoolHealth h(2, p);
  ASSERT_EQ(h.ReportFailure(0, 1000), HealthChange::kEjected);
  EXPECT_FALSE(h.up(0));
  // Passing checks during the backoff do not bring it back early...
  EXPECT_EQ(h.ReportCheck(0, true, 2000), HealthChange::kNone);
  EXPECT_EQ(h.ReportCheck(0, true, 3000), HealthChange::kNone);
  EXPECT_EQ(Eligible(h, 6000), (std::vector<uint32_t>{1}));
  // ...the first one after it does (the streak already holds `rise`).
  EXPECT_EQ(h.ReportCheck(0, true, 6000), HealthChange::kUp);
  EXPECT_EQ(Eligible(h, 6000), (std::vector<uint32_t>{0, 1}));
}

TEST(PoolHealthTest, OutOfRangeBackendsAreIgnored) {
  PoolHealth h(1, Active(1, 1));
  EXPECT_EQ(h.ReportCheck(5, false, 1), HealthChange::kNone);
  EXPECT_EQ(h.ReportFailure(5, 1), HealthChange::kNone);
  h.ReportSuccess(5, 1);
  EXPECT_FALSE(h.up(5));
  EXPECT_EQ(Eligible(h, 1), (std::vector<uint32_t>{0}));
}

TEST(HealthViewTest, RefreshesOnAChangeAndWhenAnEjectionEnds) {
  auto h = std::make_shared<PoolHealth>(3, Passive(1, 1000, 2000, 60000));
  HealthView view(h);
  EXPECT_EQ(Members(view.eligible(1000)), (std::vector<uint32_t>{0, 1, 2}));
  h->ReportFailure(2, 1000);
  EXPECT_EQ(Members(view.eligible(1001)), (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(Members(view.eligible(2999)), (std::vector<uint32_t>{0, 1}));
  // No version change when the backoff ends: the view's deadline catches it.
  EXPECT_EQ(Members(view.eligible(3000)), (std::vector<uint32_t>{0, 1, 2}));
}

TEST(HealthViewTest, ConcurrentReportersAndReadersAgree) {
  // Workers read while a checker and passive reporters write; the final state is seen by all.
  auto h = std::make_shared<PoolHealth>(8, Active(1, 1));
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, h] {
      HealthView view(h);
      while (!stop.load()) {
        const BackendMask& m = view.eligible(1);
        ASSERT_EQ(m.size(), 8u);
      }
    });
  }
  std::thread writer([&] {
    for (int i = 0; i < 20000; ++i) {
      h->ReportCheck(static_cast<uint32_t>(i % 8), (i / 8) % 2 == 0, 1);
    }
  });
  writer.join();
  for (uint32_t b = 0; b < 8; ++b) {
    h->ReportCheck(b, b % 2 == 0, 1);
  }
  stop = true;
  for (auto& t : readers) {
    t.join();
  }
  HealthView view(h);
  EXPECT_EQ(Members(view.eligible(1)), (std::vector<uint32_t>{0, 2, 4, 6}));
}

}  // namespace
}  // namespace torii::balancer

namespace torii::balancer {
namespace {

TEST(BackendSlotsTest, LimitIsExactAndReleaseSaturates) {
  BackendSlots slots(2);
  EXPECT_TRUE(slots.TryAcquire(0, 2));
  EXPECT_TRUE(slots.TryAcquire(0, 2));
  EXPECT_FALSE(slots.TryAcquire(0, 2));
  EXPECT_TRUE(slots.TryAcquire(1, 2));
  EXPECT_EQ(slots.InUse(0), 2u);
  slots.Release(0);
  EXPECT_TRUE(slots.TryAcquire(0, 2));
  slots.Release(1);
  slots.Release(1);  // unmatched: stays at 0
  EXPECT_EQ(slots.InUse(1), 0u);
  EXPECT_FALSE(slots.TryAcquire(7, 2));
  slots.Release(7);
}

TEST(BackendSlotsTest, ConcurrentAcquirersNeverExceedTheLimit) {
  BackendSlots slots(1);
  constexpr uint32_t kLimit = 5;
  std::atomic<uint32_t> held{0};
  std::atomic<uint32_t> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (slots.TryAcquire(0, kLimit)) {
          const uint32_t now = held.fetch_add(1) + 1;
          uint32_t p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          held.fetch_sub(1);
          slots.Release(0);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_LE(peak.load(), kLimit);
  EXPECT_EQ(slots.InUse(0), 0u);
}

// After DNS changed a pool's list, an address that stays keeps its state in the new PoolHealth:
// down stays down until `rise` passes, an ejection keeps its end and backoff.
TEST(PoolHealthTest, AdoptCarriesABackendsStateToANewList) {
  HealthPolicy policy = Active(3, 1);
  policy.max_fails = 1;
  PoolHealth old(3, policy);
  EXPECT_EQ(old.ReportCheck(1, false, 100), HealthChange::kDown);
  EXPECT_EQ(old.ReportCheck(1, true, 200), HealthChange::kNone);  // 1 of 3 passes
  EXPECT_EQ(old.ReportFailure(2, 300), HealthChange::kEjected);
  const uint64_t until = old.ejected_until(2);
  PoolHealth next(3, policy);  // new order: old 2, a new address, old 1
  next.Adopt(0, old, 2);
  next.Adopt(2, old, 1);
  EXPECT_EQ(next.ejected_until(0), until);
  EXPECT_EQ(next.ejections(0), 1u);
  EXPECT_FALSE(next.up(2));
  EXPECT_TRUE(next.up(1));  // new: no history
  EXPECT_EQ(Eligible(next, 400), (std::vector<uint32_t>{1}));
  EXPECT_EQ(next.ReportCheck(2, true, 500), HealthChange::kNone);  // 2 of 3: the streak moved
  EXPECT_EQ(next.ReportCheck(2, true, 600), HealthChange::kUp);
  next.Adopt(7, old, 0);  // out of range: ignored
  next.Adopt(0, old, 9);
}

}  // namespace
}  // namespace torii::balancer
