// tests/balancer/least_conn_test.cc: weighted least-connections (balancer/least_conn.cc) and the
// shared LoadCounters it reads (balancer/load.h). No sockets, no clock: load is set through the
// counters or the picker's OnRequestStart()/OnRequestEnd() hooks, as the proxy would.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "balancer/load.h"
#include "balancer/picker.h"
#include "tests/balancer/picker_test_util.h"

namespace torii::balancer {
namespace {

using test::Counts;
using test::Sequence;
using test::Weights;

// Counters for `specs` with backend i holding `active[i]` requests.
std::shared_ptr<LoadCounters> Loaded(std::initializer_list<uint32_t> active) {
  auto load = std::make_shared<LoadCounters>(static_cast<uint32_t>(active.size()));
  uint32_t i = 0;
  for (uint32_t n : active) {
    for (uint32_t k = 0; k < n; ++k) {
      load->Add(i);
    }
    ++i;
  }
  return load;
}

// ---------------------------------------------------------------------------------------------
// LoadCounters

// Add/Sub/Get count per backend, independently.
TEST(LoadCounters, CountsPerBackend) {
  LoadCounters load(3);
  EXPECT_EQ(load.size(), 3u);
  load.Add(0);
  load.Add(2);
  load.Add(2);
  EXPECT_EQ(load.Get(0), 1u);
  EXPECT_EQ(load.Get(1), 0u);
  EXPECT_EQ(load.Get(2), 2u);
  load.Sub(2);
  EXPECT_EQ(load.Get(2), 1u);
  EXPECT_EQ(load.Get(3), 0u);  // out of range reads as idle
}

// Sub saturates at 0: an unmatched end never wraps the count to 4 billion.
TEST(LoadCounters, SubNeverWrapsBelowZero) {
  LoadCounters load(2);
  load.Sub(0);
  EXPECT_EQ(load.Get(0), 0u);
  load.Add(0);
  load.Sub(0);
  load.Sub(0);
  load.Sub(0);
  EXPECT_EQ(load.Get(0), 0u);
  load.Add(0);
  EXPECT_EQ(load.Get(0), 1u);
  EXPECT_EQ(load.Get(1), 0u);
}

// Concurrent Add/Sub from several threads (workers) on the same backends lose no update.
TEST(LoadCounters, ConcurrentUpdatesAreExact) {
  LoadCounters load(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&load] {
      for (int i = 0; i < 20000; ++i) {
        load.Add(i % 4);
        load.Add((i + 1) % 4);
        load.Sub(i % 4);
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(load.Get(i), 20000u) << i;  // 4 threads × 5000 net Adds per backend
  }
}

// ---------------------------------------------------------------------------------------------
// Least connections

// The backend with the fewest active requests wins.
TEST(LeastConn, PicksLeastLoaded) {
  auto load = Loaded({3, 1, 2});
  auto picker = MakeLeastConn(Weights({1, 1, 1}), load);
  ASSERT_NE(picker, nullptr);
  EXPECT_EQ(picker->size(), 3u);
  EXPECT_EQ(Sequence(*picker, 3, BackendMask(3, true)), "bbb");
  load->Sub(0);
  load->Sub(0);
  load->Sub(0);
  EXPECT_EQ(Sequence(*picker, 2, BackendMask(3, true)), "aa");
}

// Load is relative to weight: a weight-2 backend with 2 active ties a weight-1 with 1 (and the
// tie splits 2:1 by weight), while weight-2 with 3 active loses to weight-1 with 1.
TEST(LeastConn, LoadIsRelativeToWeight) {
  auto tie = MakeLeastConn(Weights({/*weight=*/2, 1, 1}), Loaded({2, 1, 2}));
  const std::map<uint32_t, int> counts = Counts(*tie, 30, BackendMask(3, true));
  EXPECT_EQ(counts.count(2), 0u);
  EXPECT_EQ(counts.at(0), 20);
  EXPECT_EQ(counts.at(1), 10);

  auto heavier = MakeLeastConn(Weights({/*weight=*/2, 1}), Loaded({3, 1}));
  EXPECT_EQ(Sequence(*heavier, 4, BackendMask(2, true)), "bbbb");
  // And weight-4 with 3 active (0.75) beats weight-1 with 1.
  auto lighter = MakeLeastConn(Weights({/*weight=*/4, 1}), Loaded({3, 1}));
  EXPECT_EQ(Sequence(*lighter, 4, BackendMask(2, true)), "aaaa");
}

// With all loads equal, successive picks rotate through every backend, not always backend 0.
TEST(LeastConn, TiesRotate) {
  auto picker = MakeLeastConn(Weights({1, 1, 1, 1}), nullptr);
  EXPECT_EQ(Sequence(*picker, 8, BackendMask(4, true)), "abcdabcd");
  // Equal non-zero loads rotate the same way.
  auto busy = MakeLeastConn(Weights({1, 1, 1}), Loaded({5, 5, 5}));
  EXPECT_EQ(Sequence(*busy, 6, BackendMask(3, true)), "abcabc");
}

// An idle pool still honours weights: tied at 0, weights 3:1 share picks 3:1, interleaved.
TEST(LeastConn, IdleTiesFollowWeights) {
  auto picker = MakeLeastConn(Weights({/*weight=*/3, 1}), nullptr);
  const std::string seq = Sequence(*picker, 400, BackendMask(2, true));
  EXPECT_EQ(std::count(seq.begin(), seq.end(), 'a'), 300);
  EXPECT_EQ(seq.find("aaaa"), std::string::npos) << seq;
}

// OnRequestStart/OnRequestEnd drive the shared counters: with every pick started, load spreads
// evenly, and ending requests frees their backend again.
TEST(LeastConn, HooksCountRequests) {
  auto load = std::make_shared<LoadCounters>(3);
  auto picker = MakeLeastConn(Weights({1, 1, 1}), load);
  const BackendMask all(3, true);
  for (int i = 0; i < 9; ++i) {
    std::optional<uint32_t> pick = picker->Pick(0, all, BackendMask());
    ASSERT_TRUE(pick.has_value());
    picker->OnRequestStart(*pick);
  }
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(load->Get(i), 3u) << i;
  }
  picker->OnRequestEnd(1);
  picker->OnRequestEnd(1);
  EXPECT_EQ(load->Get(1), 1u);
  EXPECT_EQ(Sequence(*picker, 2, all), "bb");
  // Ending more than were started saturates at 0.
  for (int i = 0; i < 5; ++i) {
    picker->OnRequestEnd(2);
  }
  EXPECT_EQ(load->Get(2), 0u);
}

// Two pickers (two workers) sharing one LoadCounters see each other's load.
TEST(LeastConn, PickersSharingCountersSeeEachOthersLoad) {
  auto load = std::make_shared<LoadCounters>(2);
  auto worker1 = MakeLeastConn(Weights({1, 1}), load);
  auto worker2 = MakePicker("least_conn", Weights({1, 1}), load);
  ASSERT_NE(worker2, nullptr);
  const BackendMask all(2, true);
  // Worker 1 sends two long requests to backend 0: worker 2 now avoids it.
  worker1->OnRequestStart(0);
  worker1->OnRequestStart(0);
  EXPECT_EQ(Sequence(*worker2, 3, all), "bbb");
  // Worker 2 loads backend 1 with three: worker 1 goes back to 0.
  for (int i = 0; i < 3; ++i) {
    worker2->OnRequestStart(1);
  }
  EXPECT_EQ(Sequence(*worker1, 3, all), "aaa");
  // A request started on one worker and ended on the counters by another is still counted once.
  worker1->OnRequestEnd(1);
  worker1->OnRequestEnd(1);
  EXPECT_EQ(load->Get(1), 1u);
  EXPECT_EQ(Sequence(*worker2, 2, all), "bb");
}

// Private counters (nullptr) are not shared: another picker's load is invisible.
TEST(LeastConn, NullCountersArePrivate) {
  auto a = MakeLeastConn(Weights({1, 1}), nullptr);
  auto b = MakePicker("least_conn", Weights({1, 1}));
  ASSERT_NE(b, nullptr);
  a->OnRequestStart(0);
  a->OnRequestStart(0);
  EXPECT_EQ(Sequence(*a, 1, BackendMask(2, true)), "b");
  EXPECT_EQ(Sequence(*b, 1, BackendMask(2, true)), "a");
}

// Counters sized for another pool are a wiring bug: the factories refuse them.
TEST(LeastConn, WrongSizeCountersRefused) {
  auto load = std::make_shared<LoadCounters>(2);
  EXPECT_EQ(MakeLeastConn(Weights({1, 1, 1}), load), nullptr);
  EXPECT_EQ(MakePicker("least_conn", Weights({1}), load), nullptr);
  EXPECT_NE(MakeLeastConn(Weights({1, 1}), load), nullptr);
}

// Unhealthy and excluded backends are skipped even when they are the least loaded.
TEST(LeastConn, UnhealthyAndExcludedSkipped) {
  auto picker = MakeLeastConn(Weights({1, 1, 1, 1}), Loaded({0, 1, 2, 3}));
  BackendMask healthy(4, true);
  healthy.set(0, false);
  EXPECT_EQ(Sequence(*picker, 3, healthy), "bbb");
  BackendMask exclude(4);
  exclude.set(1);
  EXPECT_EQ(Sequence(*picker, 3, healthy, exclude), "ccc");
  // The retry pattern: each attempt excludes what it tried and lands somewhere new.
  BackendMask tried(4);
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::optional<uint32_t> pick = picker->Pick(0, BackendMask(4, true), tried);
    ASSERT_TRUE(pick.has_value());
    EXPECT_EQ(*pick, static_cast<uint32_t>(attempt));  // least loaded first
    tried.set(*pick);
  }
  EXPECT_EQ(picker->Pick(0, BackendMask(4, true), tried), std::nullopt);
}

// Backups serve only when no primary is eligible, however loaded the primaries are.
TEST(LeastConn, BackupsOnlyWhenPrimariesOut) {
  std::vector<BackendSpec> specs = {
      {/*weight=*/1, /*backup=*/false},
      {/*weight=*/1, /*backup=*/false},
      {/*weight=*/1, /*backup=*/true},
      {/*weight=*/1, /*backup=*/true},
  };
  auto picker = MakeLeastConn(specs, Loaded({50, 60, 0, 1}));
  BackendMask healthy(4, true);
  EXPECT_EQ(Sequence(*picker, 3, healthy), "aaa");
  healthy.set(0, false);
  EXPECT_EQ(Sequence(*picker, 3, healthy), "bbb");
  BackendMask exclude(4);
  exclude.set(1);
  EXPECT_EQ(Sequence(*picker, 3, healthy, exclude), "ccc");  // the least loaded backup
  healthy.set(1, false);
  healthy.set(2, false);
  EXPECT_EQ(Sequence(*picker, 2, healthy), "dd");
  healthy.set(0, true);
  EXPECT_EQ(Sequence(*picker, 2, healthy), "aa");
}

// Nothing eligible (all unhealthy, all excluded, empty pool) gives nullopt, never a loop.
TEST(LeastConn, NothingEligible) {
  auto picker = MakeLeastConn(Weights({1, 2, 3}), nullptr);
  EXPECT_EQ(picker->Pick(0, BackendMask(3), BackendMask()), std::nullopt);
  EXPECT_EQ(picker->Pick(0, BackendMask(), BackendMask()), std::nullopt);
  EXPECT_EQ(picker->Pick(0, BackendMask(3, true), BackendMask(3, true)), std::nullopt);
  auto empty = MakeLeastConn({}, nullptr);
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_EQ(empty->Pick(0, BackendMask(), BackendMask()), std::nullopt);
}

// A backend that sat out (down) does not win every tie until it has caught up: it rejoins the
// rotation with its normal share.
TEST(LeastConn, RecoveredBackendGetsNoBurst) {
  auto picker = MakeLeastConn(Weights({1, 1, 1}), nullptr);
  BackendMask healthy(3, true);
  healthy.set(2, false);
  EXPECT_EQ(Sequence(*picker, 100, healthy).find('c'), std::string::npos);
  healthy.set(2, true);
  const std::string seq = Sequence(*picker, 30, healthy);
  EXPECT_EQ(std::count(seq.begin(), seq.end(), 'c'), 10) << seq;
  EXPECT_EQ(seq.find("cc"), std::string::npos) << seq;
}

// One backend: always it while eligible.
TEST(LeastConn, SingleBackend) {
  auto picker = MakeLeastConn(Weights({/*weight=*/7}), Loaded({9}));
  EXPECT_EQ(Sequence(*picker, 3, BackendMask(1, true)), "aaa");
  EXPECT_EQ(picker->Pick(0, BackendMask(1), BackendMask()), std::nullopt);
}

// 256 backends: the single idle one among busy ones is found, across mask words.
TEST(LeastConn, ManyBackends) {
  auto load = std::make_shared<LoadCounters>(256);
  for (uint32_t i = 0; i < 256; ++i) {
    load->Add(i);
  }
  auto picker = MakeLeastConn(std::vector<BackendSpec>(256), load);
  const BackendMask all(256, true);
  load->Sub(200);
  EXPECT_EQ(picker->Pick(0, all, BackendMask()), 200u);
  load->Add(200);
  // All tied again: 256 picks visit every backend once.
  const std::map<uint32_t, int> counts = Counts(*picker, 256, all);
  EXPECT_EQ(counts.size(), 256u);
}

// The count at which least_conn.cc's packed 64-bit key stops being exact: weights whose lcm L
// is about 2^36.8 leave a weight-1 backend room for 18 requests (18 · L < 2^41 <= 19 · L). At
// 18 the fast scan decides, at 19 the pairwise comparison must; either way the one healthy
// primary is picked, never a down backend whose parked key the overflowing one would exceed.
TEST(LeastConn, ExactKeyLimitBoundary) {
  for (uint32_t active : {17u, 18u, 19u, 20u, 1000u}) {
    SCOPED_TRACE(active);
    auto load = std::make_shared<LoadCounters>(6);
    auto picker = MakeLeastConn(Weights({1, 256, 255, 253, 247, 29}), load);
    for (uint32_t k = 0; k < active; ++k) {
      load->Add(0);
    }
    BackendMask healthy(6);
    healthy.set(0);
    EXPECT_EQ(Sequence(*picker, 3, healthy), "aaa");
    // The same with the others up but excluded (a retry).
    BackendMask others(6, /*all_set=*/true);
    others.set(0, false);
    EXPECT_EQ(Sequence(*picker, 3, BackendMask(6, true), others), "aaa");
  }
}

// Random loads, weights and health never break the invariants: a pick is eligible, is a
// primary whenever one is eligible, and has the lowest active/weight of its class.
TEST(LeastConn, RandomStateStaysCorrect) {
  constexpr uint32_t kN = 70;
  std::vector<BackendSpec> specs;
  for (uint32_t i = 0; i < kN; ++i) {
    specs.push_back(BackendSpec{1 + (i * 37) % 256,
                                static_cast<uint8_t>(i % 7 == 0 ? 1 + i % 3 : 0)});  // 3 tiers
  }
  auto load = std::make_shared<LoadCounters>(kN);
  auto picker = MakeLeastConn(specs, load);
  uint64_t state = 12345;
  auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  BackendMask healthy(kN, true);
  for (int round = 0; round < 20000; ++round) {
    healthy.set(next() % kN, next() % 3 != 0);
    if (next() % 2 == 0) {
      load->Add(next() % kN);
    } else {
      load->Sub(next() % kN);
    }
    BackendMask exclude(kN);
    exclude.set(next() % kN);
    std::optional<uint32_t> pick = picker->Pick(0, healthy, exclude);
    uint8_t lowest = 255;  // the lowest tier with an eligible backend: the pick's
    bool any = false;
    for (uint32_t i = 0; i < kN; ++i) {
      if (healthy.test(i) && !exclude.test(i)) {
        any = true;
        lowest = std::min(lowest, specs[i].tier);
      }
    }
    ASSERT_EQ(pick.has_value(), any);
    if (!pick) {
      continue;
    }
    ASSERT_TRUE(healthy.test(*pick));
    ASSERT_FALSE(exclude.test(*pick));
    ASSERT_EQ(specs[*pick].tier, lowest);
    for (uint32_t i = 0; i < kN; ++i) {
      if (healthy.test(i) && !exclude.test(i) && specs[i].tier == specs[*pick].tier) {
        ASSERT_LE(uint64_t{load->Get(*pick)} * specs[i].weight,
                  uint64_t{load->Get(i)} * specs[*pick].weight)
            << *pick << " vs " << i;
      }
    }
  }
}

}  // namespace
}  // namespace torii::balancer
