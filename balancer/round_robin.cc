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
// compare-and-select chain does not serialise the loop. Reading the masks costs two count()s
// and a test() per backend known to be down (see DownSet).
//
// Deliberately left out: nginx's `effective_weight` (a weight lowered after failures and
// recovered slowly). Failures reach torii's pickers through the `healthy` mask instead, so a
// backend is either in or out; slow start for a recovering backend can come later.
#include <bit>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "balancer/picker.h"

namespace torii::balancer {
namespace {

// --- Reading the masks (least_conn.cc has the same helpers) -------------------------------------
//
// BackendMask offers only test(), count() and size(). One test() costs a bounds check, a load
// and a shift by a variable count (~1.3 ns here); 64 test()s at constant bit positions
// (GatherWord) fold to an AND each (~0.5 ns); count() reads a word at a time. So a pick reads a
// mask in full only when it must. Health changes rarely: the backends last seen down are kept
// (DownSet) and re-tested one by one. An empty `exclude` (a first attempt) shows as count() 0.

// Up to this many backends, the plain loop with a test() per backend is the cheapest pick.
constexpr uint32_t kSmallPool = 4;

uint32_t Words(uint32_t n) { return static_cast<uint32_t>((uint64_t{n} + 63) / 64); }

template <uint32_t... K>
[[gnu::always_inline]] inline uint64_t GatherWord(const BackendMask& mask, uint32_t word,
                                                  std::integer_sequence<uint32_t, K...>) {
  return ((uint64_t{mask.test((word << 6) | K)} << K) | ...);
}

// Bits word·64 .. word·64+63 of `mask`, those at and past `n` clear.
uint64_t ReadWord(const BackendMask& mask, uint32_t word, uint32_t n) {
  if (word >= (uint32_t{1} << 26)) {
    __builtin_unreachable();  // indexes are uint32_t, so word·64 + k never wraps
  }
  const uint32_t bits = n - word * 64 < 64 ? n - word * 64 : 64;
  if (bits > 16) {
    const uint64_t all = GatherWord(mask, word, std::make_integer_sequence<uint32_t, 64>{});
    return bits == 64 ? all : all & ((uint64_t{1} << bits) - 1);
  }
  uint64_t out = 0;
  for (uint32_t k = 0; k < bits; ++k) {
    out |= uint64_t{mask.test((word << 6) | k)} << k;
  }
  return out;
}

// The backends that were unhealthy when the health mask was last read in full, as words (bit i
// set: backend i is down) and as a list. Sized once; Read() never allocates.
class DownSet {
 public:
  explicit DownSet(uint32_t n) : n_(n), words_(Words(n), 0) { list_.reserve(n); }

  const std::vector<uint32_t>& list() const { return list_; }
  const uint64_t* words() const { return words_.data(); }

  // True when every backend of the set still tests unhealthy: one test() each. A backend that
  // went down since the last Read() is not noticed here.
  bool StillDown(const BackendMask& healthy) const {
    for (uint32_t i : list_) {
      if (healthy.test(i)) {
        return false;
      }
    }
    return true;
  }

  // Reads backends 0..n-1 of `healthy` and rebuilds the set. Returns true when it changed.
  bool Read(const BackendMask& healthy) {
    bool changed = false;
    list_.clear();
    for (uint32_t w = 0; w < words_.size(); ++w) {
      const uint32_t bits = n_ - w * 64 < 64 ? n_ - w * 64 : 64;
      const uint64_t valid = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
      const uint64_t down = ~ReadWord(healthy, w, n_) & valid;
      changed = changed || down != words_[w];
      words_[w] = down;
      for (uint64_t rest = down; rest != 0; rest &= rest - 1) {
        list_.push_back(w * 64 + static_cast<uint32_t>(std::countr_zero(rest)));
      }
    }
    return changed;
  }

 private:
  uint32_t n_;
  std::vector<uint64_t> words_;
  std::vector<uint32_t> list_;
};

// Calls f(i) for each i < n whose bit in `words` is clear, in ascending order.
template <class F>
void ForEachClear(const uint64_t* words, uint32_t n, F f) {
  for (uint32_t w = 0; w < Words(n); ++w) {
    uint64_t clear = ~words[w];
    if (n - w * 64 < 64) {
      clear &= (uint64_t{1} << (n - w * 64)) - 1;
    }
    for (; clear != 0; clear &= clear - 1) {
      f(w * 64 + static_cast<uint32_t>(std::countr_zero(clear)));
    }
  }
}

// ----------------------------------------------------------------------------------------------

class RoundRobin final : public Picker {
 public:
  explicit RoundRobin(std::vector<BackendSpec> backends)
      : n_(static_cast<uint32_t>(backends.size())),
        weight_(n_),
        current_(n_, 0),
        primary_(Words(n_), 0),
        backup_(Words(n_), 0),
        down_(n_),
        eligible_(Words(n_), 0),
        chosen_(Words(n_), 0),
        parked_(n_, 0) {
    for (uint32_t i = 0; i < n_; ++i) {
      const BackendSpec& spec = backends[i];
      // The loader enforces 1..256; clamp anyway so a bad caller cannot starve or overflow.
      const uint32_t weight = spec.weight < 1 ? 1 : (spec.weight > 256 ? 256 : spec.weight);
      weight_[i] = weight;
      total_weight_ += weight;
      (spec.backup ? backup_ : primary_)[i / 64] |= uint64_t{1} << (i % 64);
      has_backups_ = has_backups_ || spec.backup;
    }
  }

  // Primaries first; backups only when no primary is eligible. One pass over the backends, no
  // allocation. Returns nullopt, touching no state, when nothing is eligible.
  std::optional<uint32_t> Pick(uint64_t /*key_hash*/, const BackendMask& healthy,
                               const BackendMask& exclude) override {
    if (n_ == 0) {
      return std::nullopt;
    }
    if (n_ <= kSmallPool) {
      if (std::optional<uint32_t> primary = RoundSmall(/*backup=*/false, healthy, exclude)) {
        return primary;
      }
      return RoundSmall(/*backup=*/true, healthy, exclude);
    }
    // The down set is exact when each of its backends still tests down and count() finds all
    // the others up; otherwise (a health change) read the mask in full.
    if (healthy.size() != n_ || !down_.StillDown(healthy) ||
        healthy.count() != n_ - down_.list().size()) {
      down_.Read(healthy);
    }
    const bool none_excluded = exclude.size() == 0 || exclude.count() == 0;
    if (down_.list().empty() && none_excluded && !has_backups_) {
      return Round(total_weight_);
    }
    for (uint32_t w = 0; w < Words(n_); ++w) {
      eligible_[w] = ~down_.words()[w];
      if (!none_excluded) {
        eligible_[w] &= ~ReadWord(exclude, w, n_);
      }
    }
    // Restrict to the primaries; if none is eligible, to the backups.
    for (const std::vector<uint64_t>* cls : {&primary_, &backup_}) {
      uint64_t any = 0;
      for (uint32_t w = 0; w < Words(n_); ++w) {
        chosen_[w] = (*cls)[w] & eligible_[w];
        any |= chosen_[w];
      }
      if (any != 0) {
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

  // The round for a pool of a few backends, over those of class `backup` that are healthy and
  // not excluded: the plain loop with a test() per backend, cheapest at this size. Returns
  // nullopt, touching no state, when none is eligible.
  std::optional<uint32_t> RoundSmall(bool backup, const BackendMask& healthy,
                                     const BackendMask& exclude) {
    int64_t total = 0;
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < n_; ++i) {
      if (((backup_[0] >> i) & 1) != uint64_t{backup} || !healthy.test(i) || exclude.test(i)) {
        continue;
      }
      current_[i] += weight_[i];
      total += weight_[i];
      if (best == UINT32_MAX || current_[i] > current_[best]) {
        best = i;
      }
    }
    if (best == UINT32_MAX) {
      return std::nullopt;
    }
    current_[best] -= total;
    return best;
  }

  uint32_t n_;
  bool has_backups_ = false;
  int64_t total_weight_ = 0;  // of every backend: the total when all are eligible
  // What every round reads (and current_ is what it writes), each contiguous.
  std::vector<int64_t> weight_;    // 1..256
  std::vector<int64_t> current_;   // smooth-WRR credit
  std::vector<uint64_t> primary_;  // bit i: backend i is a primary
  std::vector<uint64_t> backup_;   // bit i: backend i is a backup
  DownSet down_;                   // unhealthy at the last full read of the mask
  // Per-pick scratch, sized once so that Pick() never allocates.
  std::vector<uint64_t> eligible_;  // healthy and not excluded, as words
  std::vector<uint64_t> chosen_;    // eligible_ within the class being picked from
  std::vector<int64_t> parked_;     // credits of the backends left out of this round
};

}  // namespace

std::unique_ptr<Picker> MakeRoundRobin(std::vector<BackendSpec> backends) {
  return std::make_unique<RoundRobin>(std::move(backends));
}

}  // namespace torii::balancer
