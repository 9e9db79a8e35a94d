// tests/core/timer_wheel_test.cc: the hashed timer wheel (core/timer_wheel.cc) with an injected
// clock. No sockets and no real time: every "now" is a number the test chooses, so expiry is
// checked to the millisecond, including deadlines several wheel turns away.
#include "core/timer_wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <vector>

namespace torii::core {
namespace {

using Entry = TimerWheel::Entry;

constexpr uint64_t kStart = 1'000'000;  // an arbitrary, non-zero, non-aligned epoch
constexpr uint64_t kTurn = TimerWheel::kSlots;

// Pops everything due at `now`; returns the owners in the order they came out.
std::vector<uint32_t> Drain(TimerWheel& wheel, uint64_t now) {
  std::vector<uint32_t> owners;
  while (Entry* e = wheel.PopExpired(now)) {
    owners.push_back(e->owner);
    EXPECT_FALSE(e->linked()) << "a popped entry must be unlinked";
    if (owners.size() > 1'000'000) {
      ADD_FAILURE() << "PopExpired never returned nullptr";
      break;
    }
  }
  return owners;
}

Entry MakeEntry(uint32_t owner) {
  Entry e;
  e.owner = owner;
  return e;
}

// A fresh wheel has nothing armed: size 0, no deadline, nothing to pop.
TEST(TimerWheelTest, EmptyWheelHasNoDeadline) {
  TimerWheel wheel(kStart);
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
  EXPECT_EQ(wheel.PopExpired(kStart + 100'000), nullptr);
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
}

// An armed entry is not handed out before its deadline, and is handed out exactly once at it.
TEST(TimerWheelTest, ScheduledEntryPopsOnlyWhenDue) {
  TimerWheel wheel(kStart);
  Entry e = MakeEntry(7);
  wheel.Schedule(e, kStart + 50);
  EXPECT_TRUE(e.linked());
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_EQ(wheel.PopExpired(kStart), nullptr);
  EXPECT_EQ(wheel.PopExpired(kStart + 49), nullptr);
  EXPECT_EQ(wheel.PopExpired(kStart + 50), &e);
  EXPECT_FALSE(e.linked());
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.PopExpired(kStart + 50), nullptr);
  EXPECT_EQ(wheel.PopExpired(kStart + 10'000), nullptr);
}

// Cancel disarms an entry (it never fires) and is harmless on an entry that is not armed.
TEST(TimerWheelTest, CancelDisarms) {
  TimerWheel wheel(kStart);
  Entry a = MakeEntry(1);
  Entry b = MakeEntry(2);
  wheel.Schedule(a, kStart + 10);
  wheel.Schedule(b, kStart + 10);
  wheel.Cancel(a);
  EXPECT_FALSE(a.linked());
  EXPECT_EQ(wheel.size(), 1u);
  wheel.Cancel(a);  // twice: no-op
  Entry never = MakeEntry(3);
  wheel.Cancel(never);  // never armed: no-op
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_EQ(Drain(wheel, kStart + 100), std::vector<uint32_t>{2});
  wheel.Cancel(b);  // already popped: no-op
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
}

// Cancelling entries in the middle, head and tail of one slot's list keeps the others intact.
TEST(TimerWheelTest, CancelWithinOneSlotKeepsNeighbours) {
  TimerWheel wheel(kStart);
  std::vector<Entry> entries(5);
  for (uint32_t i = 0; i < entries.size(); ++i) {
    entries[i].owner = i;
    wheel.Schedule(entries[i], kStart + 20);  // all in one slot
  }
  wheel.Cancel(entries[2]);  // middle
  wheel.Cancel(entries[4]);  // head (last linked is first in the slot)
  wheel.Cancel(entries[0]);  // tail
  EXPECT_EQ(wheel.size(), 2u);
  std::vector<uint32_t> fired = Drain(wheel, kStart + 20);
  std::sort(fired.begin(), fired.end());
  EXPECT_EQ(fired, (std::vector<uint32_t>{1, 3}));
}

// Re-scheduling moves an armed entry (earlier or later) without duplicating it.
TEST(TimerWheelTest, RescheduleMovesEntry) {
  TimerWheel wheel(kStart);
  Entry e = MakeEntry(9);
  wheel.Schedule(e, kStart + 100);
  wheel.Schedule(e, kStart + 300);  // later
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_EQ(Drain(wheel, kStart + 299), std::vector<uint32_t>{});
  wheel.Schedule(e, kStart + 350);  // later again, while the wheel has moved on
  EXPECT_EQ(Drain(wheel, kStart + 349), std::vector<uint32_t>{});
  EXPECT_EQ(Drain(wheel, kStart + 350), std::vector<uint32_t>{9});

  wheel.Schedule(e, kStart + 1000);
  wheel.Schedule(e, kStart + 400);  // earlier
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_EQ(Drain(wheel, kStart + 400), std::vector<uint32_t>{9});
  EXPECT_EQ(Drain(wheel, kStart + 2000), std::vector<uint32_t>{});

  // Re-arming a popped entry works like a fresh Schedule.
  wheel.Schedule(e, kStart + 2500);
  EXPECT_EQ(Drain(wheel, kStart + 2499), std::vector<uint32_t>{});
  EXPECT_EQ(Drain(wheel, kStart + 2500), std::vector<uint32_t>{9});
}

// Entries in different slots come out in deadline order as time advances one tick at a time.
TEST(TimerWheelTest, ExpiryOrderAcrossSlots) {
  TimerWheel wheel(kStart);
  const uint64_t offsets[] = {900, 5, 300, 1, 4000, 77, 2048, 299};
  std::vector<Entry> entries(std::size(offsets));
  for (uint32_t i = 0; i < entries.size(); ++i) {
    entries[i].owner = i;
    wheel.Schedule(entries[i], kStart + offsets[i]);
  }
  std::vector<uint64_t> fired_at;
  for (uint64_t now = kStart; now <= kStart + 4100; ++now) {
    for (uint32_t owner : Drain(wheel, now)) {
      EXPECT_EQ(kStart + offsets[owner], now) << "owner " << owner;
      fired_at.push_back(offsets[owner]);
    }
  }
  ASSERT_EQ(fired_at.size(), entries.size());
  EXPECT_TRUE(std::is_sorted(fired_at.begin(), fired_at.end()));
}

// One big jump in time hands out everything that became due, each entry once, none early.
TEST(TimerWheelTest, BigJumpPopsAllDueWithinOneTurn) {
  TimerWheel wheel(kStart);
  std::vector<Entry> entries(10);
  for (uint32_t i = 0; i < entries.size(); ++i) {
    entries[i].owner = i;
    wheel.Schedule(entries[i], kStart + 100 * (i + 1));  // 100..1000
  }
  std::vector<uint32_t> fired = Drain(wheel, kStart + 550);
  std::sort(fired.begin(), fired.end());
  EXPECT_EQ(fired, (std::vector<uint32_t>{0, 1, 2, 3, 4}));
  fired = Drain(wheel, kStart + 1000);
  std::sort(fired.begin(), fired.end());
  EXPECT_EQ(fired, (std::vector<uint32_t>{5, 6, 7, 8, 9}));
}

// Deadlines beyond one wheel turn (10 s, 60 s) are not handed out when the wheel passes their
// slot early, only at their deadline; stepping one tick at a time through every turn.
TEST(TimerWheelTest, DeadlinesBeyondOneTurnFireOnTimeNotEarly) {
  TimerWheel wheel(kStart);
  Entry ten = MakeEntry(10);
  Entry sixty = MakeEntry(60);
  Entry near = MakeEntry(1);  // shares its slot with `ten` (same deadline mod kSlots)
  wheel.Schedule(ten, kStart + 10'000);
  wheel.Schedule(sixty, kStart + 60'000);
  wheel.Schedule(near, kStart + 10'000 - 2 * kTurn);
  std::vector<std::pair<uint32_t, uint64_t>> fired;
  for (uint64_t now = kStart; now <= kStart + 61'000; ++now) {
    for (uint32_t owner : Drain(wheel, now)) {
      fired.emplace_back(owner, now);
    }
  }
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_EQ(fired[0], std::make_pair(1u, kStart + 10'000 - 2 * kTurn));
  EXPECT_EQ(fired[1], std::make_pair(10u, kStart + 10'000));
  EXPECT_EQ(fired[2], std::make_pair(60u, kStart + 60'000));
}

// The same far deadlines checked with coarse, irregular steps (a loop that slept): never early,
// and due at the first pop whose time reaches the deadline.
TEST(TimerWheelTest, DeadlinesBeyondOneTurnWithCoarseSteps) {
  TimerWheel wheel(kStart);
  Entry ten = MakeEntry(10);
  Entry sixty = MakeEntry(60);
  wheel.Schedule(ten, kStart + 10'000);
  wheel.Schedule(sixty, kStart + 60'000);
  const uint64_t steps[] = {1, 4095, 4096, 1500, 3000, 7, 4097, 9000, 333, 12000, 8000, 9999};
  uint64_t now = kStart;
  std::vector<std::pair<uint32_t, uint64_t>> fired;
  for (int round = 0; now < kStart + 70'000; ++round) {
    now += steps[round % std::size(steps)];
    for (uint32_t owner : Drain(wheel, now)) {
      fired.emplace_back(owner, now);
    }
  }
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0].first, 10u);
  EXPECT_GE(fired[0].second, kStart + 10'000);
  EXPECT_EQ(fired[1].first, 60u);
  EXPECT_GE(fired[1].second, kStart + 60'000);
  // Due at the first pop at or after the deadline: the pop before it was still early.
  uint64_t t = kStart;
  uint64_t first_at_or_after_10s = 0;
  uint64_t first_at_or_after_60s = 0;
  for (int round = 0; t < kStart + 70'000; ++round) {
    t += steps[round % std::size(steps)];
    if (first_at_or_after_10s == 0 && t >= kStart + 10'000) {
      first_at_or_after_10s = t;
    }
    if (first_at_or_after_60s == 0 && t >= kStart + 60'000) {
      first_at_or_after_60s = t;
    }
  }
  EXPECT_EQ(fired[0].second, first_at_or_after_10s);
  EXPECT_EQ(fired[1].second, first_at_or_after_60s);
}

// A deadline in the past on a fresh wheel fires on the next pop.
TEST(TimerWheelTest, PastDeadlineFiresOnNextPop) {
  TimerWheel wheel(kStart);
  Entry e = MakeEntry(5);
  wheel.Schedule(e, kStart - 500);
  EXPECT_EQ(wheel.PopExpired(kStart), &e);
  EXPECT_EQ(wheel.size(), 0u);
}

// A deadline in the past (or equal to now), armed after the wheel was drained at `now`, is
// handed out by the next PopExpired(now): PopExpired returns every entry whose deadline <= now.
TEST(TimerWheelTest, PastDeadlineAfterDrainFiresOnNextPopAtSameTime) {
  TimerWheel wheel(kStart);
  Entry other = MakeEntry(1);
  wheel.Schedule(other, kStart + 5000);  // keeps the wheel non-empty
  const uint64_t now = kStart + 200;
  EXPECT_EQ(Drain(wheel, now), std::vector<uint32_t>{});
  Entry past = MakeEntry(2);
  wheel.Schedule(past, now - 50);
  Entry due_now = MakeEntry(3);
  wheel.Schedule(due_now, now);
  std::vector<uint32_t> fired = Drain(wheel, now);
  std::sort(fired.begin(), fired.end());
  EXPECT_EQ(fired, (std::vector<uint32_t>{2, 3}))
      << "entries whose deadline <= now were not handed out at now";
  // Whatever happened above, they must come out no later than the next tick.
  fired = Drain(wheel, now + 1);
  EXPECT_EQ(wheel.size(), 1u);
}

// NextDeadline is nullopt when empty and otherwise never later than the earliest armed
// deadline (it may be earlier: the caller wakes and PopExpired re-checks).
TEST(TimerWheelTest, NextDeadlineNeverLaterThanEarliest) {
  TimerWheel wheel(kStart);
  Entry a = MakeEntry(1);
  Entry b = MakeEntry(2);
  Entry c = MakeEntry(3);
  wheel.Schedule(a, kStart + 10'000);  // beyond one turn
  ASSERT_TRUE(wheel.NextDeadline().has_value());
  EXPECT_LE(*wheel.NextDeadline(), kStart + 10'000);
  wheel.Schedule(b, kStart + 30);
  EXPECT_LE(*wheel.NextDeadline(), kStart + 30);
  wheel.Schedule(c, kStart + 31);
  EXPECT_LE(*wheel.NextDeadline(), kStart + 30);
  wheel.Cancel(b);
  EXPECT_LE(*wheel.NextDeadline(), kStart + 31);
  EXPECT_EQ(Drain(wheel, kStart + 31), std::vector<uint32_t>{3});
  ASSERT_TRUE(wheel.NextDeadline().has_value());
  EXPECT_LE(*wheel.NextDeadline(), kStart + 10'000);
  EXPECT_EQ(Drain(wheel, kStart + 10'000), std::vector<uint32_t>{1});
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
}

// Sleeping until NextDeadline() and popping there fires a far entry at its deadline within a
// bounded number of wake-ups (the loop is never asked to sleep forever or to spin).
TEST(TimerWheelTest, SleepingUntilNextDeadlineReachesFarEntries) {
  TimerWheel wheel(kStart);
  Entry e = MakeEntry(4);
  wheel.Schedule(e, kStart + 60'000);
  uint64_t now = kStart;
  int wakeups = 0;
  bool fired = false;
  while (!fired && wakeups < 1000) {
    std::optional<uint64_t> next = wheel.NextDeadline();
    ASSERT_TRUE(next.has_value());
    ASSERT_LE(*next, kStart + 60'000);
    now = std::max(now, *next);
    ++wakeups;
    if (Entry* popped = wheel.PopExpired(now)) {
      EXPECT_EQ(popped, &e);
      EXPECT_EQ(now, kStart + 60'000);
      fired = true;
    }
  }
  EXPECT_TRUE(fired);
  EXPECT_LT(wakeups, 100) << "one wake-up per wheel turn at most is expected";
}

// 10k random timers (some in the past, some several turns away, some re-armed or cancelled)
// with a clock advancing in random steps: each live timer fires exactly once, never before its
// deadline, and no later than the first pop at or after it; NextDeadline is never late.
TEST(TimerWheelTest, RandomTimersFireExactlyOnceNeverEarly) {
  std::mt19937_64 rng(/*seed=*/0x70121);
  constexpr uint32_t kCount = 10'000;
  uint64_t now = kStart;
  TimerWheel wheel(now);
  std::vector<std::unique_ptr<Entry>> entries;
  std::vector<uint64_t> deadline(kCount, 0);  // requested deadline of the live arming
  std::vector<bool> armed(kCount, false);
  std::vector<int> fire_count(kCount, 0);
  std::vector<bool> cancelled(kCount, false);
  // The first pop time at which a timer must have fired: its deadline, or (for a deadline
  // already past when it was armed after a drain at `drained`) the next tick. The same-tick
  // case is pinned by PastDeadlineAfterDrainFiresOnNextPopAtSameTime.
  std::vector<uint64_t> due(kCount, 0);
  uint64_t drained = kStart - 1;
  for (uint32_t i = 0; i < kCount; ++i) {
    entries.push_back(std::make_unique<Entry>());
    entries.back()->owner = i;
  }
  auto random_deadline = [&]() -> uint64_t {
    switch (rng() % 8) {
      case 0:
        return now - std::min<uint64_t>(now - kStart + 1, rng() % 100);  // past
      case 1:
        return now + rng() % 5;  // very soon
      case 2:
        return now + 4000 + rng() % 200;  // around a turn
      case 3:
        return now + rng() % 70'000;  // many turns
      default:
        return now + rng() % 3000;
    }
  };
  uint32_t next_to_arm = 0;
  uint32_t live = 0;
  while (next_to_arm < kCount || live > 0) {
    // Arm a random batch of new timers.
    const uint32_t batch = static_cast<uint32_t>(rng() % 64);
    for (uint32_t k = 0; k < batch && next_to_arm < kCount; ++k, ++next_to_arm) {
      const uint32_t i = next_to_arm;
      deadline[i] = random_deadline();
      due[i] = std::max(deadline[i], drained + 1);
      wheel.Schedule(*entries[i], deadline[i]);
      armed[i] = true;
      ++live;
    }
    // Re-arm or cancel a few armed ones.
    for (int k = 0; k < 4 && next_to_arm > 0; ++k) {
      const uint32_t i = static_cast<uint32_t>(rng() % next_to_arm);
      if (!armed[i]) {
        continue;
      }
      if (rng() % 4 == 0) {
        wheel.Cancel(*entries[i]);
        armed[i] = false;
        cancelled[i] = true;
        --live;
      } else {
        deadline[i] = random_deadline();
        due[i] = std::max(deadline[i], drained + 1);
        wheel.Schedule(*entries[i], deadline[i]);
      }
    }
    ASSERT_EQ(wheel.size(), live);
    // NextDeadline never later than the earliest live deadline.
    if (live > 0) {
      uint64_t earliest = ~uint64_t{0};
      for (uint32_t i = 0; i < next_to_arm; ++i) {
        if (armed[i]) {
          earliest = std::min(earliest, deadline[i]);
        }
      }
      const std::optional<uint64_t> next = wheel.NextDeadline();
      ASSERT_TRUE(next.has_value());
      // A past deadline may be reported as "now-ish": what matters is not sleeping past it.
      ASSERT_LE(*next, std::max(earliest, now + 1)) << "NextDeadline later than an armed timer";
    } else {
      ASSERT_EQ(wheel.NextDeadline(), std::nullopt);
    }
    // Advance time by a random step (sometimes large, sometimes zero).
    const uint64_t r = rng() % 16;
    now += r == 0 ? 0 : (r < 12 ? rng() % 20 : (r < 15 ? rng() % 2000 : rng() % 9000));
    while (Entry* e = wheel.PopExpired(now)) {
      const uint32_t i = e->owner;
      ASSERT_TRUE(armed[i]) << "timer " << i << " fired while not armed";
      ASSERT_LE(deadline[i], now) << "timer " << i << " fired early";
      armed[i] = false;
      ++fire_count[i];
      --live;
    }
    drained = now;
    // Nothing due is left behind.
    for (uint32_t i = 0; i < next_to_arm; ++i) {
      if (armed[i]) {
        ASSERT_GT(due[i], now) << "timer " << i << " due at " << deadline[i]
                               << " not handed out at " << now;
      }
    }
  }
  for (uint32_t i = 0; i < kCount; ++i) {
    if (!cancelled[i]) {
      EXPECT_EQ(fire_count[i], 1) << "timer " << i;
    } else {
      EXPECT_LE(fire_count[i], 1) << "timer " << i;
    }
  }
  EXPECT_EQ(wheel.size(), 0u);
}

}  // namespace
}  // namespace torii::core
