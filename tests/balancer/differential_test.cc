// tests/balancer/differential_test.cc: round_robin and least_conn (balancer/round_robin.cc,
// balancer/least_conn.cc) against plain reference implementations of their documented
// semantics, pick for pick, over randomised scenarios with a fixed seed.
//
// The production pickers are built for speed (masks read as words, backends parked rather than
// tested, a packed 64-bit key per backend with a pairwise fallback), so their fast paths and
// fallbacks must agree with the semantics on every pick, not just on the small hand-written
// cases of round_robin_test.cc and least_conn_test.cc. The references below are deliberately
// naive: one test() per backend, O(n) per pick, no caching, no fixed-width tricks.
//
// The scenarios cover: pools of 1..300 backends (on and around word boundaries and the
// small-pool cut-off); weights all 1, 1..4, 1..16, 1..26 (an lcm that puts least_conn's exact-key
// limit at reachable counts), 1..256, only the extremes 1 and 256, large primes (an lcm past the
// key range: every loaded pick takes the fallback), mostly 1 with a few large coprime ones (a
// limit of a few requests), and out-of-range weights that the pickers clamp; no backups, some,
// half, all; health masks that flap one backend at a time or all at once, sized to the pool or
// larger or smaller (an index past a mask's size reads as clear); exclude masks empty,
// default-constructed, sized wrong, with a few or many backends; and for least_conn, counts moved
// by this picker's hooks, by "other workers" directly on the shared counters, in bursts and pinned
// on either side of the exact-key limit. Plus long runs with a fixed eligible set, where the
// pickers' internal offsets and credits have time to drift.
//
// ip_hash is not here: its pick is a table lookup with a probe sequence, covered by
// ip_hash_test.cc, and it shares no code with the two algorithms below.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "balancer/load.h"
#include "balancer/picker.h"

namespace torii::balancer {
namespace {

// splitmix64: the same stream on every platform and standard library (std::mt19937_64 is too,
// but its distributions are not), so a failing seed reproduces anywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform enough in 0..n-1 for n far below 2^64.
  uint32_t Below(uint64_t n) { return static_cast<uint32_t>(Next() % n); }
  // True with probability per_mille / 1000.
  bool Chance(uint32_t per_mille) { return Below(1000) < per_mille; }

 private:
  uint64_t state_;
};

// A mask as the references read it: backend i is set when i < bits.size() and bits[i]. Kept
// beside a BackendMask with the same contents, rebuilt only when it changes.
class PlainMask {
 public:
  bool test(uint32_t i) const { return i < bits_.size() && bits_[i] != 0; }
  uint32_t size() const { return static_cast<uint32_t>(bits_.size()); }

  void Resize(uint32_t size) {
    if (size < bits_.size()) {
      set_ -= static_cast<uint32_t>(std::count(bits_.begin() + size, bits_.end(), 1));
    }
    bits_.resize(size, 0);
    dirty_ = true;
  }
  void Set(uint32_t i, bool value) {
    if (i < bits_.size() && (bits_[i] != 0) != value) {
      bits_[i] = value ? 1 : 0;
      set_ += value ? 1 : -1;
      dirty_ = true;
    }
  }
  void Clear() {
    if (set_ != 0) {
      std::fill(bits_.begin(), bits_.end(), 0);
      set_ = 0;
      dirty_ = true;
    }
  }
  // The same contents as a BackendMask of size(), valid until the next change.
  const BackendMask& Mask() {
    if (dirty_) {
      mask_.Reset(size());
      for (uint32_t i = 0; i < size(); ++i) {
        if (bits_[i] != 0) {
          mask_.set(i);
        }
      }
      dirty_ = false;
    }
    return mask_;
  }

 private:
  std::vector<uint8_t> bits_;  // 0 or 1 (not vector<bool>: a debug build crawls through it)
  uint32_t set_ = 0;           // how many bits are set
  BackendMask mask_;
  bool dirty_ = true;
};

uint32_t Clamp(uint32_t weight) { return std::clamp<uint32_t>(weight, 1, 256); }

// ---------------------------------------------------------------------------------------------
// References

// Smooth weighted round robin exactly as nginx's ngx_http_upstream_get_peer: every eligible
// backend's credit grows by its weight, the largest credit wins (the lowest index on a tie) and
// gives back the eligible total. Backups take part only when no primary is eligible.
// The tiers present, ascending: a pick tries each in turn (primaries, then each backup tier).
std::vector<uint8_t> TiersOf(const std::vector<BackendSpec>& specs) {
  std::vector<uint8_t> tiers;
  for (const BackendSpec& s : specs) {
    tiers.push_back(s.tier);
  }
  std::sort(tiers.begin(), tiers.end());
  tiers.erase(std::unique(tiers.begin(), tiers.end()), tiers.end());
  return tiers;
}

class ReferenceRoundRobin {
 public:
  explicit ReferenceRoundRobin(const std::vector<BackendSpec>& specs) : specs_(specs) {
    current_.assign(specs.size(), 0);
  }

  std::optional<uint32_t> Pick(const PlainMask& healthy, const PlainMask& exclude) {
    for (uint8_t tier : TiersOf(specs_)) {
      int64_t total = 0;
      std::optional<uint32_t> best;
      for (uint32_t i = 0; i < specs_.size(); ++i) {
        if (specs_[i].tier != tier || !healthy.test(i) || exclude.test(i)) {
          continue;
        }
        const int64_t weight = Clamp(specs_[i].weight);
        current_[i] += weight;
        total += weight;
        if (!best || current_[i] > current_[*best]) {
          best = i;
        }
      }
      if (best) {
        current_[*best] -= total;
        return best;
      }
    }
    return std::nullopt;
  }

 private:
  std::vector<BackendSpec> specs_;
  std::vector<int64_t> current_;
};

// Weighted least connections as least_conn.cc's header documents it, in the textbook form of
// stride scheduling: the eligible backend with the lowest active/weight (compared exactly, by
// cross-multiplying); among those tied, the lowest effective pass, max(pass, vtime); among
// those, the first in the rotation that starts at one past the previous winner. The winner's
// pass becomes its effective pass plus kStrideUnit / weight, and vtime its effective pass.
// Backups take part only when no primary is eligible.
class ReferenceLeastConn {
 public:
  static constexpr uint64_t kStrideUnit = uint64_t{1} << 20;

  ReferenceLeastConn(const std::vector<BackendSpec>& specs, const LoadCounters& load)
      : specs_(specs), load_(load), pass_(specs.size(), 0) {}

  std::optional<uint32_t> Pick(const PlainMask& healthy, const PlainMask& exclude) {
    const auto n = static_cast<uint32_t>(specs_.size());
    const uint32_t start = cursor_ < n ? cursor_ : 0;
    for (uint8_t tier : TiersOf(specs_)) {
      std::optional<uint32_t> best;
      uint64_t best_active = 0;
      uint64_t best_weight = 1;
      uint64_t best_pass = 0;
      for (uint32_t step = 0; step < n; ++step) {
        const uint32_t i = (start + step) % n;
        if (specs_[i].tier != tier || !healthy.test(i) || exclude.test(i)) {
          continue;
        }
        const uint64_t active = load_.Get(i);
        const uint64_t weight = Clamp(specs_[i].weight);
        const uint64_t pass = std::max(pass_[i], vtime_);  // the effective pass
        // Strictly better (a full tie keeps the earlier one in the rotation): a lower
        // active/weight, compared by cross-multiplying, then a lower effective pass.
        const uint64_t mine = active * best_weight;
        const uint64_t theirs = best_active * weight;
        if (!best || mine < theirs || (mine == theirs && pass < best_pass)) {
          best = i;
          best_active = active;
          best_weight = weight;
          best_pass = pass;
        }
      }
      if (best) {
        vtime_ = best_pass;
        pass_[*best] = best_pass + kStrideUnit / best_weight;
        cursor_ = *best + 1;
        return best;
      }
    }
    return std::nullopt;
  }

 private:
  std::vector<BackendSpec> specs_;
  const LoadCounters& load_;
  std::vector<uint64_t> pass_;
  uint64_t vtime_ = 0;
  uint32_t cursor_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Scenarios

enum class Algo { kRoundRobin, kLeastConn };

struct Totals {
  uint64_t scenarios = 0;
  uint64_t picks = 0;
  uint64_t nullopt_picks = 0;
  uint64_t excluded_picks = 0;  // picks made with a non-empty exclude mask
  uint64_t backup_picks = 0;    // picks that went to a backup
  uint64_t loaded_picks = 0;    // least_conn picks with some count past the exact-key limit
};

// Pool sizes: around the small-pool cut-off (4) and word boundaries, up to 300.
constexpr uint32_t kSizes[] = {1,  2,  3,   4,   5,   6,   7,   8,   31,  63,  64,  65,
                               66, 96, 127, 128, 129, 191, 192, 193, 255, 256, 257, 300};

uint32_t DrawWeight(Rng& rng, int mode) {
  static constexpr uint32_t kPrimes[] = {251, 241, 239, 233, 229, 227, 223, 211, 199, 197};
  switch (mode) {
    case 0:
      return 1;
    case 1:
      return 1 + rng.Below(4);
    case 2:
      return 1 + rng.Below(16);
    case 3:
      return 1 + rng.Below(26);
    case 4:
      return 1 + rng.Below(256);
    case 5:
      return rng.Below(2) != 0 ? 1 : 256;
    case 6:
      return kPrimes[rng.Below(std::size(kPrimes))];
    case 7: {
      // Mostly 1, with weights whose lcm (about 2^37 when all appear) leaves least_conn's exact
      // keys room for a count of only 18 on a weight-1 backend.
      static constexpr uint32_t kSkewed[] = {1, 1, 1, 1, 1, 256, 255, 253, 247, 29};
      return kSkewed[rng.Below(std::size(kSkewed))];
    }
    default:
      // Out of range on both sides (the pickers clamp to 1..256), mixed with valid ones.
      switch (rng.Below(4)) {
        case 0:
          return 0;
        case 1:
          return 257 + rng.Below(100000);
        default:
          return 1 + rng.Below(256);
      }
  }
}

// least_conn's scan key is exact while active · lcm(weights) / weight < 2^41 (least_conn.cc);
// the largest count that keeps every key exact, or 0 when the lcm is already past that range.
// Used only to aim counts at both sides of the boundary; the references do not depend on it.
uint64_t ExactKeyLimit(const std::vector<BackendSpec>& specs) {
  constexpr uint64_t kRange = uint64_t{1} << 41;
  uint64_t lcm = 1;
  for (const BackendSpec& spec : specs) {
    lcm = std::lcm(lcm, uint64_t{Clamp(spec.weight)});
    if (lcm >= kRange) {
      return 0;
    }
  }
  return (kRange - 1) / lcm;
}

// Moves backend i's shared count to `target` as another worker would, one request at a time.
void SetCount(LoadCounters& load, uint32_t i, uint64_t target) {
  while (load.Get(i) < target) {
    load.Add(i);
  }
  while (load.Get(i) > target) {
    load.Sub(i);
  }
}

struct ScenarioSpec {
  uint64_t seed;
  Algo algo;
  bool long_run;  // many picks, small fixed eligible set, no flapping
};

// Runs one scenario and returns false (with a failure recorded) at the first pick that differs.
bool RunScenario(const ScenarioSpec& scenario, Totals& totals) {
  Rng rng(scenario.seed);
  const bool lc = scenario.algo == Algo::kLeastConn;
  static constexpr uint32_t kLongRunSizes[] = {2, 3, 5, 8, 17, 65};
  const uint32_t n = scenario.long_run ? kLongRunSizes[rng.Below(std::size(kLongRunSizes))]
                                       : kSizes[rng.Below(std::size(kSizes))];
  const int weight_mode = static_cast<int>(rng.Below(9));
  const int backup_mode = static_cast<int>(rng.Below(5));
  std::vector<BackendSpec> specs;
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t tier = 0;
    switch (backup_mode) {
      case 1:
        tier = rng.Chance(100) ? 1 : 0;
        break;
      case 2:
        tier = rng.Chance(500) ? 1 : 0;
        break;
      case 3:
        tier = 1;
        break;
      case 4:
        tier = static_cast<uint8_t>(rng.Below(4) * 3);  // tiers 0, 3, 6, 9 (SRV priorities)
        break;
      default:
        break;  // 0: none
    }
    specs.push_back(BackendSpec{DrawWeight(rng, weight_mode), tier, rng.Next()});
  }

  auto load = std::make_shared<LoadCounters>(n);
  std::unique_ptr<Picker> picker = lc ? MakeLeastConn(specs, load) : MakeRoundRobin(specs);
  ReferenceRoundRobin reference_rr(specs);
  ReferenceLeastConn reference_lc(specs, *load);
  const uint64_t exact_limit = lc ? ExactKeyLimit(specs) : 0;

  // Down probability in per mille; health flips re-draw a backend with it.
  static constexpr uint32_t kDown[] = {0, 0, 50, 100, 500, 900};
  const uint32_t down = kDown[rng.Below(scenario.long_run ? 4 : std::size(kDown))];
  PlainMask healthy;
  healthy.Resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    healthy.Set(i, !rng.Chance(down));
  }
  PlainMask exclude;
  exclude.Resize(n);
  const BackendMask default_mask;
  // Requests this picker committed and has not ended yet (least_conn).
  std::vector<uint32_t> in_flight;
  const size_t max_in_flight = scenario.long_run ? 1 + rng.Below(2 * n) : 1 + n / 2;

  // Picks: the cost of a pick grows with the pool, so large pools get fewer (about 20000
  // backend visits per scenario, which keeps the test near a second per algorithm under
  // ASan+UBSan in a debug build).
  const uint32_t steps = scenario.long_run ? 25000 : std::clamp<uint32_t>(20000 / n, 100, 1000);
  for (uint32_t step = 0; step < steps; ++step) {
    if (!scenario.long_run) {
      // Health flaps: one backend, the whole mask, or the mask's size.
      if (rng.Chance(60)) {
        healthy.Set(rng.Below(n), !rng.Chance(down));
      }
      if (rng.Chance(15)) {
        for (uint32_t i = 0; i < n; ++i) {
          healthy.Set(i, !rng.Chance(down));
        }
      }
      if (rng.Chance(15)) {
        // Smaller (the tail reads as down) or larger (bits past the pool are ignored).
        static constexpr int kDelta[] = {-1, -5, -64, 1, 3, 64};
        const int64_t size = int64_t{n} + kDelta[rng.Below(std::size(kDelta))];
        healthy.Resize(static_cast<uint32_t>(std::max<int64_t>(size, 0)));
        for (uint32_t i = n; i < healthy.size(); ++i) {
          healthy.Set(i, rng.Below(2) != 0);
        }
      }
      if (rng.Chance(50) && healthy.size() != n) {
        healthy.Resize(n);
        for (uint32_t i = 0; i < n; ++i) {
          healthy.Set(i, !rng.Chance(down));
        }
      }
    }

    // Exclusions (a retry): usually none; otherwise a few backends or many, in a mask that may
    // be sized differently from the pool.
    bool use_default_exclude = false;
    exclude.Clear();
    if (!scenario.long_run && rng.Chance(200)) {
      static constexpr int kSizeDelta[] = {0, 0, 0, 0, -1, -40, 2, 70};
      const int64_t size = int64_t{n} + kSizeDelta[rng.Below(std::size(kSizeDelta))];
      exclude.Resize(static_cast<uint32_t>(std::max<int64_t>(size, 0)));
      exclude.Clear();
      const uint32_t k = rng.Chance(500) ? 1 + rng.Below(3) : 1 + rng.Below(exclude.size() + 1);
      for (uint32_t j = 0; j < k && exclude.size() > 0; ++j) {
        exclude.Set(rng.Below(exclude.size()), true);
      }
      ++totals.excluded_picks;
    } else if (rng.Chance(100)) {
      use_default_exclude = true;
    } else if (exclude.size() != n && rng.Chance(500)) {
      exclude.Resize(n);
    }
    // With a default-constructed exclude the reference reads nothing excluded either.
    if (use_default_exclude) {
      exclude.Resize(0);
    }

    // Other workers' load on the shared counters (least_conn).
    if (lc && !scenario.long_run) {
      if (rng.Chance(300)) {
        load->Add(rng.Below(n));
      }
      if (rng.Chance(300)) {
        load->Sub(rng.Below(n));
      }
      if (rng.Chance(20)) {
        // A burst on one backend.
        static constexpr uint32_t kBurst[] = {10, 100, 1000, 5000};
        const uint32_t i = rng.Below(n);
        SetCount(*load, i, load->Get(i) + kBurst[rng.Below(std::size(kBurst))]);
      }
      if (rng.Chance(20)) {
        // Drains one backend.
        SetCount(*load, rng.Below(n), 0);
      }
      if (exact_limit != 0 && exact_limit < 20000 && rng.Chance(30)) {
        // Pins a backend on either side of the exact-key limit.
        const uint64_t target = exact_limit - 1 + rng.Below(4);
        SetCount(*load, rng.Below(n), target);
      }
      if (exact_limit != 0 && exact_limit < 100 && rng.Chance(20)) {
        // Pins every backend there: the keys of the eligible ones may all be out of range
        // while the parked ones' are not.
        for (uint32_t i = 0; i < n; ++i) {
          SetCount(*load, i, exact_limit - 1 + rng.Below(4));
        }
      }
    }

    const BackendMask& exclude_mask = use_default_exclude ? default_mask : exclude.Mask();
    const uint64_t key = rng.Next();
    const std::optional<uint32_t> got = picker->Pick(key, healthy.Mask(), exclude_mask);
    const std::optional<uint32_t> want =
        lc ? reference_lc.Pick(healthy, exclude) : reference_rr.Pick(healthy, exclude);
    ++totals.picks;
    if (got != want) {
      ADD_FAILURE() << (lc ? "least_conn" : "round_robin") << " seed=" << scenario.seed
                    << " long_run=" << scenario.long_run << " n=" << n
                    << " weight_mode=" << weight_mode << " backup_mode=" << backup_mode
                    << " step=" << step << ": picked " << (got ? std::to_string(*got) : "none")
                    << ", reference " << (want ? std::to_string(*want) : "none");
      return false;
    }
    if (!got) {
      ++totals.nullopt_picks;
      continue;
    }
    if (specs[*got].tier > 0) {
      ++totals.backup_picks;
    }
    if (lc) {
      bool past_limit = false;
      for (const std::atomic<uint32_t>& active : load->counts()) {
        past_limit = past_limit || active.load(std::memory_order_relaxed) > exact_limit;
      }
      totals.loaded_picks += past_limit ? 1 : 0;
      // Most picks are committed; requests end in random order.
      if (!rng.Chance(100)) {
        picker->OnRequestStart(*got);
        in_flight.push_back(*got);
      }
      while (in_flight.size() > max_in_flight || (!in_flight.empty() && rng.Chance(300))) {
        const size_t k = rng.Below(in_flight.size());
        picker->OnRequestEnd(in_flight[k]);
        in_flight[k] = in_flight.back();
        in_flight.pop_back();
      }
    }
  }
  ++totals.scenarios;
  return true;
}

// Prints what a run covered, so a change that silently skips a path shows in the log.
void Report(const char* name, const Totals& totals) {
  std::printf(
      "[ %s ] %llu scenarios, %llu picks (%llu none, %llu with exclusions, %llu to a "
      "backup, %llu with a count past least_conn's exact-key limit)\n",
      name, static_cast<unsigned long long>(totals.scenarios),
      static_cast<unsigned long long>(totals.picks),
      static_cast<unsigned long long>(totals.nullopt_picks),
      static_cast<unsigned long long>(totals.excluded_picks),
      static_cast<unsigned long long>(totals.backup_picks),
      static_cast<unsigned long long>(totals.loaded_picks));
}

constexpr uint64_t kScenarios = 250;
constexpr uint64_t kLongRuns = 3;

// round_robin picks exactly what nginx's smooth WRR picks, scenario after scenario.
TEST(Differential, RoundRobinMatchesReference) {
  Totals totals;
  for (uint64_t seed = 1; seed <= kScenarios; ++seed) {
    if (!RunScenario({seed, Algo::kRoundRobin, /*long_run=*/false}, totals)) {
      return;
    }
  }
  for (uint64_t seed = 1; seed <= kLongRuns; ++seed) {
    if (!RunScenario({1000000 + seed, Algo::kRoundRobin, /*long_run=*/true}, totals)) {
      return;
    }
  }
  Report("round_robin", totals);
  EXPECT_GT(totals.excluded_picks, 0u);
  EXPECT_GT(totals.backup_picks, 0u);
  EXPECT_GT(totals.nullopt_picks, 0u);
}

// least_conn picks what the documented (ratio, effective pass, rotation) order picks, whether
// the fast scan or the pairwise fallback decides.
TEST(Differential, LeastConnMatchesReference) {
  Totals totals;
  for (uint64_t seed = 1; seed <= kScenarios; ++seed) {
    if (!RunScenario({seed, Algo::kLeastConn, /*long_run=*/false}, totals)) {
      return;
    }
  }
  for (uint64_t seed = 1; seed <= kLongRuns; ++seed) {
    if (!RunScenario({2000000 + seed, Algo::kLeastConn, /*long_run=*/true}, totals)) {
      return;
    }
  }
  Report("least_conn", totals);
  EXPECT_GT(totals.excluded_picks, 0u);
  EXPECT_GT(totals.backup_picks, 0u);
  EXPECT_GT(totals.nullopt_picks, 0u);
  EXPECT_GT(totals.loaded_picks, 0u);
}

}  // namespace
}  // namespace torii::balancer
