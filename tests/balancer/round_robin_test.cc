// tests/balancer/round_robin_test.cc: smooth weighted round-robin (balancer/round_robin.cc),
// the name → factory table and BackendMask (balancer/picker.cc). No sockets, no clock: a pick
// depends only on the weights, the masks and the picker's own history.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "balancer/picker.h"
#include "tests/balancer/picker_test_util.h"

namespace torii::balancer {
namespace {

using test::Counts;
using test::Sequence;
using test::Weights;

// ---------------------------------------------------------------------------------------------
// BackendMask

// Sizes on and around word boundaries: set/test/count agree and nothing leaks past size().
TEST(BackendMask, SetTestCountAcrossSizes) {
  for (uint32_t size : {1u, 63u, 64u, 65u, 128u, 256u}) {
    SCOPED_TRACE(size);
    BackendMask mask(size);
    EXPECT_EQ(mask.size(), size);
    EXPECT_EQ(mask.count(), 0u);
    for (uint32_t i = 0; i < size; ++i) {
      EXPECT_FALSE(mask.test(i));
    }
    mask.set(0);
    mask.set(size - 1);
    EXPECT_TRUE(mask.test(0));
    EXPECT_TRUE(mask.test(size - 1));
    EXPECT_EQ(mask.count(), size == 1 ? 1u : 2u);
    mask.set(0, false);
    EXPECT_FALSE(mask.test(0));
    EXPECT_EQ(mask.count(), size == 1 ? 0u : 1u);
    // Out-of-range indexes read as clear.
    EXPECT_FALSE(mask.test(size));
    EXPECT_FALSE(mask.test(size + 64));

    BackendMask full(size, /*all_set=*/true);
    EXPECT_EQ(full.count(), size);
    for (uint32_t i = 0; i < size; ++i) {
      EXPECT_TRUE(full.test(i)) << i;
    }
    EXPECT_FALSE(full.test(size));
    full.set(size - 1, false);
    EXPECT_EQ(full.count(), size - 1);
  }
}

// Every bit of a 256-wide mask is independent of the others.
TEST(BackendMask, BitsAreIndependent) {
  BackendMask mask(256);
  for (uint32_t i = 0; i < 256; i += 3) {
    mask.set(i);
  }
  EXPECT_EQ(mask.count(), 86u);  // 0, 3, ..., 255
  for (uint32_t i = 0; i < 256; ++i) {
    EXPECT_EQ(mask.test(i), i % 3 == 0) << i;
  }
  mask.set(3);  // setting twice is idempotent
  EXPECT_EQ(mask.count(), 86u);
}

// A default mask is empty and holds nothing; copies are independent.
TEST(BackendMask, DefaultAndCopy) {
  BackendMask empty;
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.count(), 0u);
  EXPECT_FALSE(empty.test(0));
  BackendMask a(65);
  a.set(64);
  BackendMask b = a;
  b.set(64, false);
  EXPECT_TRUE(a.test(64));
  EXPECT_FALSE(b.test(64));
}

// ---------------------------------------------------------------------------------------------
// MakePicker

// Every config name builds a picker of the pool's size; unknown names give nullptr.
TEST(MakePicker, NameTable) {
  for (std::string_view name : {"round_robin", "least_conn", "ip_hash"}) {
    std::unique_ptr<Picker> picker = MakePicker(name, Weights({1, 1}));
    ASSERT_NE(picker, nullptr) << name;
    EXPECT_EQ(picker->size(), 2u) << name;
  }
  EXPECT_EQ(MakePicker("", Weights({1})), nullptr);
  EXPECT_EQ(MakePicker("Round_Robin", Weights({1})), nullptr);
  EXPECT_EQ(MakePicker("random", Weights({1}), nullptr), nullptr);
}

// ---------------------------------------------------------------------------------------------
// Round-robin

// Equal weights rotate in order: a b c a b c.
TEST(RoundRobin, EqualWeightsRotate) {
  auto picker = MakeRoundRobin(Weights({1, 1, 1}));
  EXPECT_EQ(picker->size(), 3u);
  EXPECT_EQ(Sequence(*picker, 9, BackendMask(3, true)), "abcabcabc");
}

// Weights 3:2 give exactly 3 of every 5 picks to a, interleaved: never a a a.
TEST(RoundRobin, WeightedIsSmooth) {
  auto picker = MakeRoundRobin(Weights({/*a=*/3, /*b=*/2}));
  const std::string seq = Sequence(*picker, 100, BackendMask(2, true));
  EXPECT_EQ(seq.substr(0, 5), "ababa");
  for (size_t window = 0; window + 5 <= seq.size(); window += 5) {
    const std::string five = seq.substr(window, 5);
    EXPECT_EQ(std::count(five.begin(), five.end(), 'a'), 3) << five;
  }
  EXPECT_EQ(seq.find("aaa"), std::string::npos) << seq;
}

// nginx's reference example: weights 5:1:1 give a a b a c a a.
TEST(RoundRobin, MatchesNginxSequence) {
  auto picker = MakeRoundRobin(Weights({5, 1, 1}));
  EXPECT_EQ(Sequence(*picker, 14, BackendMask(3, true)), "aabacaaaabacaa");
}

// Unhealthy backends are skipped and the others share evenly.
TEST(RoundRobin, UnhealthySkipped) {
  auto picker = MakeRoundRobin(Weights({1, 1, 1, 1}));
  BackendMask healthy(4, true);
  healthy.set(1, false);
  const std::map<uint32_t, int> counts = Counts(*picker, 300, healthy);
  EXPECT_EQ(counts.count(1), 0u);
  EXPECT_EQ(counts.at(0), 100);
  EXPECT_EQ(counts.at(2), 100);
  EXPECT_EQ(counts.at(3), 100);
  EXPECT_EQ(Sequence(*picker, 6, healthy), "acdacd");
}

// Weighted shares among the healthy rest keep their ratio.
TEST(RoundRobin, UnhealthySkippedWeighted) {
  auto picker = MakeRoundRobin(Weights({4, 2, 1}));
  BackendMask healthy(3, true);
  healthy.set(0, false);
  const std::map<uint32_t, int> counts = Counts(*picker, 300, healthy);
  EXPECT_EQ(counts.count(0), 0u);
  EXPECT_EQ(counts.at(1), 200);
  EXPECT_EQ(counts.at(2), 100);
}

// A backend in `exclude` (already tried for this request) is never picked.
TEST(RoundRobin, ExcludeRespected) {
  auto picker = MakeRoundRobin(Weights({1, 1, 1}));
  const BackendMask healthy(3, true);
  BackendMask exclude(3);
  exclude.set(0);
  for (int i = 0; i < 30; ++i) {
    std::optional<uint32_t> pick = picker->Pick(0, healthy, exclude);
    ASSERT_TRUE(pick.has_value());
    EXPECT_NE(*pick, 0u);
  }
  // Excluding everything leaves nothing.
  exclude.set(1);
  exclude.set(2);
  EXPECT_EQ(picker->Pick(0, healthy, exclude), std::nullopt);
}

// The retry pattern: pick, then exclude what was picked, and the next pick differs.
TEST(RoundRobin, RetryAvoidsTriedBackends) {
  auto picker = MakeRoundRobin(Weights({/*weight=*/10, 1, 1}));
  const BackendMask healthy(3, true);
  BackendMask tried(3);
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::optional<uint32_t> pick = picker->Pick(0, healthy, tried);
    ASSERT_TRUE(pick.has_value());
    EXPECT_FALSE(tried.test(*pick));
    tried.set(*pick);
  }
  EXPECT_EQ(tried.count(), 3u);
  EXPECT_EQ(picker->Pick(0, healthy, tried), std::nullopt);
}

// Backups serve only when every primary is down or excluded, and stop when one returns.
TEST(RoundRobin, BackupsOnlyWhenPrimariesUnavailable) {
  std::vector<BackendSpec> specs = {
      {/*weight=*/1, /*backup=*/false},
      {/*weight=*/1, /*backup=*/false},
      {/*weight=*/1, /*backup=*/true},
      {/*weight=*/1, /*backup=*/true},
  };
  auto picker = MakeRoundRobin(specs);
  BackendMask healthy(4, true);
  EXPECT_EQ(Sequence(*picker, 6, healthy), "ababab");

  // One primary down: the other takes everything, backups stay idle.
  healthy.set(0, false);
  EXPECT_EQ(Sequence(*picker, 4, healthy), "bbbb");

  // Last primary excluded (tried already): backups, rotating.
  BackendMask exclude(4);
  exclude.set(1);
  EXPECT_EQ(Sequence(*picker, 4, healthy, exclude), "cdcd");

  // Both primaries down: backups.
  healthy.set(1, false);
  EXPECT_EQ(Sequence(*picker, 4, healthy), "cdcd");

  // One backup down too: the other backup.
  healthy.set(2, false);
  EXPECT_EQ(Sequence(*picker, 3, healthy), "ddd");

  // A primary returns: backups stop at once.
  healthy.set(0, true);
  EXPECT_EQ(Sequence(*picker, 3, healthy), "aaa");
}

// Backup tiers (SRV priorities): each serves only when every lower tier is unavailable, in
// order, small pools and large (the word-by-word path) alike; a pool of backups only starts at
// its lowest tier.
TEST(RoundRobin, BackupTiersServeInOrder) {
  for (uint32_t pad : {0u, 70u}) {  // 70 more primaries, all down: more than one mask word
    std::vector<BackendSpec> specs = {{1, 0}, {1, 2}, {1, 5}, {1, 5}};
    for (uint32_t i = 0; i < pad; ++i) {
      specs.push_back({1, 0});
    }
    const auto n = static_cast<uint32_t>(specs.size());
    auto picker = MakeRoundRobin(specs);
    BackendMask healthy(n, true);
    for (uint32_t i = 4; i < n; ++i) {
      healthy.set(i, false);
    }
    EXPECT_EQ(Sequence(*picker, 2, healthy), "aa") << pad;
    healthy.set(0, false);
    EXPECT_EQ(Sequence(*picker, 2, healthy), "bb") << pad;  // tier 2 before tier 5
    healthy.set(1, false);
    EXPECT_EQ(Sequence(*picker, 4, healthy), "cdcd") << pad;
    healthy.set(1, true);
    EXPECT_EQ(Sequence(*picker, 2, healthy), "bb") << pad;
  }
  auto backups_only = MakeRoundRobin({{1, 3}, {1, 7}});
  BackendMask both(2, true);
  EXPECT_EQ(Sequence(*backups_only, 2, both), "aa");
}

// Nothing eligible (all unhealthy, empty pool, empty mask) gives nullopt, never a loop.
TEST(RoundRobin, NothingEligible) {
  auto picker = MakeRoundRobin(Weights({1, 2, 3}));
  EXPECT_EQ(picker->Pick(0, BackendMask(3), BackendMask()), std::nullopt);
  EXPECT_EQ(picker->Pick(0, BackendMask(), BackendMask()), std::nullopt);
  auto empty = MakeRoundRobin({});
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_EQ(empty->Pick(0, BackendMask(), BackendMask()), std::nullopt);
  // A nullopt pick leaves no trace: the rotation resumes where it was.
  auto rr = MakeRoundRobin(Weights({1, 1}));
  const BackendMask all(2, true);
  EXPECT_EQ(Sequence(*rr, 1, all), "a");
  EXPECT_EQ(Sequence(*rr, 2, BackendMask(2)), "--");
  EXPECT_EQ(Sequence(*rr, 3, all), "bab");
}

// A backend that comes back healthy rejoins the rotation with its full share.
TEST(RoundRobin, RecoveredBackendRejoins) {
  auto picker = MakeRoundRobin(Weights({1, 1, 1}));
  BackendMask healthy(3, true);
  healthy.set(2, false);
  EXPECT_EQ(Sequence(*picker, 4, healthy), "abab");
  healthy.set(2, true);
  const std::map<uint32_t, int> counts = Counts(*picker, 300, healthy);
  EXPECT_EQ(counts.at(0), 100);
  EXPECT_EQ(counts.at(1), 100);
  EXPECT_EQ(counts.at(2), 100);
}

// One backend: always it (or nullopt when it is down).
TEST(RoundRobin, SingleBackend) {
  auto picker = MakeRoundRobin(Weights({/*weight=*/7}));
  EXPECT_EQ(Sequence(*picker, 5, BackendMask(1, true)), "aaaaa");
  EXPECT_EQ(picker->Pick(0, BackendMask(1), BackendMask()), std::nullopt);
  BackendMask exclude(1);
  exclude.set(0);
  EXPECT_EQ(picker->Pick(0, BackendMask(1, true), exclude), std::nullopt);
}

// 256 backends with weights 1..256: every full cycle (sum of the weights) gives each backend
// exactly its weight; with equal weights the rotation runs in order across mask words.
TEST(RoundRobin, ManyBackends) {
  std::vector<BackendSpec> specs;
  int total = 0;
  for (uint32_t w = 1; w <= 256; ++w) {
    specs.push_back(BackendSpec{w, false});
    total += static_cast<int>(w);
  }
  auto picker = MakeRoundRobin(specs);
  EXPECT_EQ(picker->size(), 256u);
  BackendMask healthy(256, true);
  for (int cycle = 0; cycle < 2; ++cycle) {
    const std::map<uint32_t, int> counts = Counts(*picker, total, healthy);
    ASSERT_EQ(counts.size(), 256u);
    for (const auto& [index, count] : counts) {
      EXPECT_EQ(count, static_cast<int>(index) + 1) << index;
    }
  }
  // With equal weights, 256 picks hit each backend once, in order, even across word boundaries.
  auto equal = MakeRoundRobin(std::vector<BackendSpec>(256));
  for (uint32_t i = 0; i < 512; ++i) {
    EXPECT_EQ(equal->Pick(0, healthy, BackendMask()), i % 256);
  }
  // Only the last backend of the last word healthy.
  BackendMask one(256);
  one.set(255);
  EXPECT_EQ(equal->Pick(0, one, BackendMask()), 255u);
}

// The hash key plays no part in round-robin.
TEST(RoundRobin, IgnoresKeyHash) {
  auto a = MakeRoundRobin(Weights({2, 1}));
  auto b = MakeRoundRobin(Weights({2, 1}));
  const BackendMask all(2, true);
  for (uint64_t i = 0; i < 30; ++i) {
    EXPECT_EQ(a->Pick(i * 0x9e3779b97f4a7c15ull, all, BackendMask()),
              b->Pick(0, all, BackendMask()));
  }
}

// Random health flaps never break the invariant: a pick is always eligible, and nullopt only
// when nothing is.
TEST(RoundRobin, FlappingHealthStaysCorrect) {
  std::vector<BackendSpec> specs;
  for (uint32_t i = 0; i < 70; ++i) {
    specs.push_back(BackendSpec{1 + (i * 37) % 256,
                                static_cast<uint8_t>(i % 7 == 0 ? 1 + i % 3 : 0)});  // 3 tiers
  }
  auto picker = MakeRoundRobin(specs);
  uint64_t state = 12345;
  auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  BackendMask healthy(70, true);
  for (int round = 0; round < 20000; ++round) {
    healthy.set(next() % 70, next() % 3 != 0);
    BackendMask exclude(70);
    exclude.set(next() % 70);
    std::optional<uint32_t> pick = picker->Pick(0, healthy, exclude);
    uint8_t lowest = 255;  // the lowest tier with an eligible backend: the pick's
    bool any = false;
    for (uint32_t i = 0; i < 70; ++i) {
      if (healthy.test(i) && !exclude.test(i)) {
        any = true;
        lowest = std::min(lowest, specs[i].tier);
      }
    }
    ASSERT_EQ(pick.has_value(), any);
    if (pick) {
      ASSERT_TRUE(healthy.test(*pick));
      ASSERT_FALSE(exclude.test(*pick));
      ASSERT_EQ(specs[*pick].tier, lowest);
    }
  }
}

}  // namespace
}  // namespace torii::balancer
