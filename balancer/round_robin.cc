// balancer/round_robin.cc: smooth weighted round-robin, nginx's algorithm
// (ngx_http_upstream_get_peer in ngx_http_upstream_round_robin.c).
//
// Each pick: every eligible backend's `current` grows by its weight; the backend with the
// largest `current` wins and gives back the total weight of the eligible set. Over any window of
// sum(weights) picks each backend is chosen exactly `weight` times, and the choices are spread
// out (weights 5:1:1 give a a b a c a a, not a a a a a b c).
//
// Cost (bench/pick_bench.cc): a pick is O(backends) by nature, since every eligible credit
// moves, so the constant is what matters. The pick runs one loop over two contiguous arrays
// (credits, weights) with no test and no data-dependent branch: the backends that take no part
// (down, excluded, or of the other class) are parked for the round, their credit set so that it
// cannot win, and restored after it. The maximum is kept in four independent lanes so that the
// compare-and-select chain does not serialise the loop. The masks are read a word at a time
// (mask_scan.h): 64 backends cost one word of each, and a backend is visited only to park it.
//
// Deliberately left out: nginx's `effective_weight` (a weight lowered after failures and
// recovered slowly). Failures reach torii's pickers through the `healthy` mask instead, so a
// backend is either in or out; slow start for a recovering backend can come later.
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "balancer/mask_scan.h"
#include "balancer/picker.h"

namespace torii::balancer {
namespace {

using mask_scan::ForEachClear;
using mask_scan::WordCount;

// Up to this many backends, a plain loop over the eligible ones is the cheapest round.
constexpr uint32_t kSmallPool = 4;

class RoundRobin final : public Picker {
 public:
  explicit RoundRobin(std::vector<BackendSpec> backends)
      : n_(static_cast<uint32_t>(backends.size())),
        classes_(mask_scan::SplitByClass(backends)),
        weight_(n_),
        current_(n_, 0),
        chosen_(WordCount(n_), 0),
        parked_(n_, 0) {
    for (uint32_t i = 0; i < n_; ++i) {
      const BackendSpec& spec = backends[i];
      // The loader enforces 1..256; clamp anyway so a bad caller cannot starve or overflow.
      const uint32_t weight = spec.weight < 1 ? 1 : (spec.weight > 256 ? 256 : spec.weight);
      weight_[i] = weight;
      total_weight_ += weight;
    }
  }

  // Primaries first; each backup tier only when no lower tier is eligible. One round over the
  // backends, no allocation. Returns nullopt, touching no state, when nothing is eligible.
  std::optional<uint32_t> Pick(uint64_t /*key_hash*/, const BackendMask& healthy,
                               const BackendMask& exclude) override {
    if (n_ <= kSmallPool) {
      if (n_ == 0) {
        return std::nullopt;
      }
      const uint64_t eligible = healthy.word(0) & ~exclude.word(0);
      for (const std::vector<uint64_t>& cls : classes_.tiers) {
        if ((cls[0] & eligible) != 0) {
          return RoundSmall(cls[0] & eligible);
        }
      }
      return std::nullopt;
    }
    for (const std::vector<uint64_t>& cls : classes_.tiers) {
      if (mask_scan::Eligible(cls, healthy, exclude, chosen_)) {
        return RoundAmong(chosen_.data());
      }
    }
    return std::nullopt;
  }

  uint32_t size() const override { return n_; }

 private:
  // A credit no backend reaches (see Round), with room below it for a weight.
  static constexpr int64_t kOut = std::numeric_limits<int64_t>::min() / 2;

  // Round() over the backends set in `words` only (at least one). The others are parked for the
  // round: their credit is set so that Round's addition lands on kOut, which never wins, and is
  // put back afterwards. O(words + backends left out) on top of Round, which tests nothing.
  uint32_t RoundAmong(const uint64_t* words) {
    int64_t total = total_weight_;
    uint32_t parked = 0;
    ForEachClear(words, n_, [&](uint32_t i) {
      parked_[parked++] = current_[i];
      current_[i] = kOut - weight_[i];
      total -= weight_[i];
    });
    const uint32_t best = Round(total);
    parked = 0;
    ForEachClear(words, n_, [&](uint32_t i) { current_[i] = parked_[parked++]; });
    return best;
  }

  // One smooth-WRR round over every backend, `total` being the weight of those taking part.
  // Smooth-WRR credit: each pick adds the eligible total and takes it back, so the credits of
  // all backends always sum to zero and stay within a few total weights of it (weights are at
  // most 256): int64 cannot overflow, and no real credit comes near kOut. A backend that leaves
  // the eligible set keeps its credit and resumes from it when it rejoins, as nginx does.
  //
  // Strictly greater: ties go to the lowest index, which makes sequences deterministic. The
  // maximum is tracked in four lanes (each keeps its first maximum; they are merged by value,
  // then index) with selects rather than branches, since the running maximum changes often and
  // unpredictably; plain variables rather than arrays, and out of line, so that they stay in
  // registers.
  [[gnu::noinline]] uint32_t Round(int64_t total) {
    int64_t* const current = current_.data();
    const int64_t* const weight = weight_.data();
    auto step = [&](uint32_t i, int64_t& lane_value, uint32_t& lane_index) {
      const int64_t value = current[i] + weight[i];
      current[i] = value;
      const bool better = value > lane_value;
      lane_index = better ? i : lane_index;
      lane_value = better ? value : lane_value;
    };
    constexpr int64_t kNone = std::numeric_limits<int64_t>::min();
    int64_t value0 = kNone;
    int64_t value1 = kNone;
    int64_t value2 = kNone;
    int64_t value3 = kNone;
    uint32_t index0 = 0;
    uint32_t index1 = 0;
    uint32_t index2 = 0;
    uint32_t index3 = 0;
    uint32_t i = 0;
    for (; n_ - i >= 4; i += 4) {
      step(i, value0, index0);
      step(i + 1, value1, index1);
      step(i + 2, value2, index2);
      step(i + 3, value3, index3);
    }
    if (i < n_) {
      step(i++, value0, index0);
    }
    if (i < n_) {
      step(i++, value1, index1);
    }
    if (i < n_) {
      step(i, value2, index2);
    }
    uint32_t best = index0;
    int64_t best_value = value0;
    auto merge = [&](int64_t value, uint32_t index) {
      if (value > best_value || (value == best_value && index < best)) {
        best_value = value;
        best = index;
      }
    };
    merge(value1, index1);
    merge(value2, index2);
    merge(value3, index3);
    current[best] -= total;
    return best;
  }

  // The round for a pool of a few backends (n_ <= kSmallPool, so one word), over those set in
  // `eligible` (at least one): the plain loop, cheapest at this size.
  uint32_t RoundSmall(uint64_t eligible) {
    int64_t total = 0;
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < n_; ++i) {
      if (((eligible >> i) & 1) == 0) {
        continue;
      }
      current_[i] += weight_[i];
      total += weight_[i];
      if (best == UINT32_MAX || current_[i] > current_[best]) {
        best = i;
      }
    }
    current_[best] -= total;
    return best;
  }

  uint32_t n_;
  mask_scan::Classes classes_;  // primaries and backup tiers, as words
  int64_t total_weight_ = 0;    // of every backend: the total when all are eligible
  // What every round reads (and current_ is what it writes), each contiguous.
  std::vector<int64_t> weight_;   // 1..256
  std::vector<int64_t> current_;  // smooth-WRR credit
  // Per-pick scratch, sized once so that Pick() never allocates.
  std::vector<uint64_t> chosen_;  // the eligible backends of the class being picked from
  std::vector<int64_t> parked_;   // credits of the backends left out of this round
};

}  // namespace

std::unique_ptr<Picker> MakeRoundRobin(std::vector<BackendSpec> backends) {
  return std::make_unique<RoundRobin>(std::move(backends));
}

}  // namespace torii::balancer
