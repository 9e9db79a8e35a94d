// balancer/least_conn.cc: weighted least-connections (nginx ngx_http_upstream_least_conn_module,
// HAProxy fwlc), counted across workers.
//
// A pick takes the eligible backend with the lowest active/weight, where `active` is the
// backend's in-flight requests summed over every worker (LoadCounters, load.h). Ratios are
// compared exactly, without division or rounding. Load here means requests, not connections: an
// idle pooled upstream connection costs the backend nothing.
//
// Ties are common (a lightly loaded pool has every count at 0), so how they break matters: always
// taking the first backend would send all sequential traffic to backend 0 and ignore weights.
// nginx breaks ties with weighted round-robin among the tied backends; this does the same with
// stride scheduling, which needs one pass and touches only the winner's state: each backend
// carries a virtual time `pass` that advances by kStrideUnit / weight each time it is picked, and
// the tied backend with the lowest pass wins (a weight-3 backend wins 3 of every 4 ties against
// a weight-1 one). A pass that fell behind the virtual time (the pass of the last winner) counts
// as level with it (see Commit). Equal passes fall back to a rotating cursor, the first in index
// order from one past the previous winner, so equal weights rotate a b c a b c instead of
// restarting at backend 0.
//
// Cost (bench/pick_bench.cc). A pick is O(backends): other workers move the counts between
// picks, so every one is read. What keeps the constant small:
// - One 64-bit key per backend orders (active/weight, pass) exactly: active · (L/weight) · 2^21
//   + offset, where L is the lcm of the pool's weights (so active·L/weight is an integer and
//   ties stay ties) and offset < 2^21 is how far the pass is ahead of the virtual time (Commit).
//   The scan is then a load, a multiply, an add and a minimum per backend, with no branch on
//   the data, over contiguous arrays. The key is exact while active·L/weight < 2^41, which any
//   pool whose weights have a small lcm (all weights <= 16, say) meets up to millions of
//   requests per backend; beyond it a pick takes the general comparison (PickExact), which
//   cross-multiplies pairs.
// - The masks are read a word at a time (mask_scan.h). The scan leaves out (parks: a key
//   raised past every other) the backends that are not healthy primaries, kept in a per-backend
//   array that is rewritten only where health changed since the previous pick. Exclusions are
//   not parked: the scan's winner is tested once, and only a retry whose best backend is
//   excluded takes the general path, which parks everything but the eligible backends.
// - LoadCounters keeps the counts packed (load.h): 64 backends are 4 cache lines, not 64.
//
// Deliberately left out: slow start for a recovering backend (HAProxy `slowstart`), and any
// attempt to make the counts exact under races (two workers may read the same snapshot and pick
// the same backend; the next picks see it). Each worker's tie-breaking state is its own.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

#include "balancer/load.h"
#include "balancer/mask_scan.h"
#include "balancer/picker.h"

namespace torii::balancer {
namespace {

using mask_scan::ForEachSet;
using mask_scan::Test;
using mask_scan::WordCount;

// Up to this many backends, the general comparison (PickExact) is the cheapest pick.
constexpr uint32_t kSmallPool = 4;

// Virtual time a weight-1 backend's pass advances per tie won; a weight-w one advances by
// kStrideUnit / w. 2^20 keeps the rounding error below 1/4096 for weights up to 256.
constexpr uint32_t kStrideUnit = uint32_t{1} << 20;
// A scan key is active · (L/weight) · 2^kOffsetBits + offset (at most kStrideUnit). It orders
// backends as (active/weight, pass) exactly while active · (L/weight) < 2^kRatioBits: keys are
// then below 2^62, and a backend parked by adding kParked sorts after every other one.
constexpr uint32_t kOffsetBits = 21;
constexpr uint32_t kRatioBits = 41;
constexpr uint64_t kParked = uint64_t{1} << 62;

class LeastConn final : public Picker {
 public:
  LeastConn(std::vector<BackendSpec> backends, std::shared_ptr<LoadCounters> load)
      : load_(std::move(load)),
        n_(static_cast<uint32_t>(backends.size())),
        classes_(mask_scan::SplitByClass(backends)),
        scale_(n_, 0),
        offset_(n_, 0),
        parked_(n_, 0),
        stride_(n_),
        weight_(n_),
        open_(WordCount(n_), 0),
        chosen_(WordCount(n_), 0) {
    uint64_t lcm = 1;
    for (uint32_t i = 0; i < n_; ++i) {
      // The loader enforces 1..256; clamp anyway so a bad caller cannot divide by zero.
      const uint32_t weight = std::clamp<uint32_t>(backends[i].weight, 1, 256);
      weight_[i] = weight;
      stride_[i] = static_cast<int32_t>(kStrideUnit / weight);
      if (lcm < (uint64_t{1} << kRatioBits)) {
        lcm = std::lcm(lcm, uint64_t{weight});  // < 2^49: no overflow
      }
    }
    if (lcm < (uint64_t{1} << kRatioBits)) {
      for (uint32_t i = 0; i < n_; ++i) {
        scale_[i] = (lcm / weight_[i]) << kOffsetBits;
      }
      active_limit_ = ((uint64_t{1} << kRatioBits) - 1) / lcm;
    }
    // Otherwise scale_ stays 0 and active_limit_ 0: the scan key is exact only while every
    // count is 0 (all tied on the ratio), and any load takes the general comparison.

    // Nothing is parked yet: open every backend, then leave the backups out.
    for (uint32_t w = 0; w < WordCount(n_); ++w) {
      open_[w] = mask_scan::ValidBits(n_, w);
    }
    Open([&](uint32_t w) { return classes_.tiers[0][w]; });
  }

  // Primaries first; each backup tier only when no lower tier is eligible. O(n), no allocation;
  // one relaxed atomic load per backend. Returns nullopt, touching no state, when nothing is
  // eligible.
  std::optional<uint32_t> Pick(uint64_t /*key_hash*/, const BackendMask& healthy,
                               const BackendMask& exclude) override {
    bool scan_exact = n_ > kSmallPool;
    if (scan_exact) {
      // The scan over the healthy primaries, ignoring `exclude`: its winner is the pick unless
      // it is excluded (a retry), there is none (no primary is up), or the keys were not exact.
      const uint64_t* const primary = classes_.tiers[0].data();
      Open([&](uint32_t w) { return primary[w] & healthy.word(w); });
      const Best best = parked_any_ ? Scan</*kPark=*/true>() : Scan</*kPark=*/false>();
      scan_exact = best.active_or <= active_limit_;
      if (scan_exact && best.key < kParked && !exclude.test(best.index)) {
        return Commit(best.index);
      }
    }
    // The general path: the eligible backends of each class in turn, all others parked. The scan
    // again when its keys were exact a moment ago (they may not be any more: other workers move
    // the counts), else the pairwise comparison. Exact keys are below kParked, so the winner is
    // one of the eligible backends.
    for (const std::vector<uint64_t>& cls : classes_.tiers) {
      if (!mask_scan::Eligible(cls, healthy, exclude, chosen_)) {
        continue;
      }
      if (scan_exact) {
        Open([&](uint32_t w) { return chosen_[w]; });
        const Best best = Scan</*kPark=*/true>();
        if (best.active_or <= active_limit_) {
          return Commit(best.index);
        }
      }
      return Commit(PickExact(chosen_.data()));
    }
    return std::nullopt;
  }

  void OnRequestStart(uint32_t backend) override { load_->Add(backend); }
  void OnRequestEnd(uint32_t backend) override { load_->Sub(backend); }

  uint32_t size() const override { return n_; }

 private:
  // The lowest scan key and its backend; active_or is the OR of every count read (an upper bound
  // on the largest, to check the keys were exact).
  struct Best {
    uint64_t key;
    uint32_t index;
    uint32_t active_or;
  };

  // Makes the backends set in words(0) .. words(WordCount(n_) - 1) (no bit past n_) the ones a
  // scan considers, parking the others. parked_[i] is rewritten only where the set differs from
  // open_, the previous one, so an unchanged set (the usual case: health changes rarely) costs
  // one pass over the words.
  template <class Words>
  void Open(Words words) {
    bool changed = false;
    for (uint32_t w = 0; w < WordCount(n_); ++w) {
      const uint64_t want = words(w);
      const uint64_t diff = want ^ open_[w];
      if (diff == 0) {
        continue;
      }
      changed = true;
      open_[w] = want;
      ForEachSet(&diff, 1,
                 [&](uint32_t k) { parked_[w * 64 + k] = ((want >> k) & 1) != 0 ? 0 : kParked; });
    }
    if (changed) {
      parked_any_ = false;
      for (uint32_t w = 0; w < WordCount(n_); ++w) {
        parked_any_ = parked_any_ || open_[w] != mask_scan::ValidBits(n_, w);
      }
    }
  }

  // The backend with the lowest key (see kOffsetBits; plus parked_ when kParked), the first in
  // the rotation from the cursor on a full tie: [cursor, n) then [0, cursor), each scanned in
  // index order, so within either part the lowest index wins a tie and the first part wins
  // against the second. The keys are exact when the returned active_or <= active_limit_.
  template <bool kPark>
  Best Scan() const {
    const uint32_t cursor = cursor_ < n_ ? cursor_ : 0;
    const Best first = ScanRange<kPark>(cursor, n_);
    const Best second = ScanRange<kPark>(0, cursor);
    Best best = second.key < first.key ? second : first;
    best.active_or = first.active_or | second.active_or;
    return best;
  }

  // The lowest key over [lo, hi) and its lowest index (index UINT32_MAX and key UINT64_MAX when
  // the range is empty). Two lanes, each keeping its first minimum, merged by key then index;
  // plain variables rather than arrays, and out of line, so that they stay in registers. No
  // branch on the data: the running minimum changes unpredictably.
  template <bool kPark>
  [[gnu::noinline]] Best ScanRange(uint32_t lo, uint32_t hi) const {
    const std::atomic<uint32_t>* const counts = load_->counts().data();  // n_ of them
    const uint64_t* const scale = scale_.data();
    const int32_t* const offset = offset_.data();
    const uint64_t* const parked = parked_.data();
    uint32_t active_or = 0;
    auto step = [&](uint32_t i, uint64_t& lane_key, uint32_t& lane_index) {
      const uint32_t active = counts[i].load(std::memory_order_relaxed);
      active_or |= active;
      uint64_t key = active * scale[i] + static_cast<uint32_t>(offset[i]);
      if constexpr (kPark) {
        key += parked[i];
      }
      const bool better = key < lane_key;
      lane_index = better ? i : lane_index;
      lane_key = better ? key : lane_key;
    };
    uint64_t key0 = UINT64_MAX;
    uint64_t key1 = UINT64_MAX;
    uint32_t index0 = UINT32_MAX;
    uint32_t index1 = UINT32_MAX;
    uint32_t i = lo;
    for (; hi - i >= 2; i += 2) {
      step(i, key0, index0);
      step(i + 1, key1, index1);
    }
    if (i < hi) {
      step(i, key0, index0);
    }
    const bool second = key1 < key0 || (key1 == key0 && index1 < index0);
    return Best{second ? key1 : key0, second ? index1 : index0, active_or};
  }

  // The general comparison, for counts or weights beyond the scan key's range, and for small
  // pools: one pass in the rotation from the cursor over the backends set in `words` (at least
  // one), comparing active/weight by cross-multiplying in 64 bits, then offset; a full tie keeps
  // the earlier one.
  uint32_t PickExact(const uint64_t* words) const {
    uint32_t best = UINT32_MAX;
    uint64_t best_active = 0;
    int32_t best_offset = 0;
    uint32_t i = cursor_ < n_ ? cursor_ : 0;
    for (uint32_t step = 0; step < n_; ++step, i = (i + 1 == n_ ? 0 : i + 1)) {
      if (!Test(words, i)) {
        continue;
      }
      const uint64_t active = load_->Get(i);
      if (best != UINT32_MAX) {
        const uint64_t mine = active * weight_[best];
        const uint64_t theirs = best_active * weight_[i];
        if (mine > theirs || (mine == theirs && offset_[i] >= best_offset)) {
          continue;
        }
      }
      best = i;
      best_active = active;
      best_offset = offset_[i];
    }
    return best;
  }

  // Stride scheduling without absolute clocks. The textbook form keeps a pass per backend and a
  // virtual time (the effective pass of the last winner), and compares effective passes,
  // max(pass, vtime). Here offset_[i] = max(pass - vtime, 0), all that a comparison needs: the
  // winner's effective pass becomes the new virtual time, so every offset drops by the winner's
  // (not below 0: a backend that fell behind, loaded or down, counts as level with the virtual
  // time, which stops it from winning every tie until it has caught up), and the winner moves on
  // by its stride. Offsets stay within 0..kStrideUnit and no clock can wrap. The update is one
  // pass that the compiler vectorises.
  uint32_t Commit(uint32_t index) {
    const int32_t advance = offset_[index];
    if (advance != 0) {
      for (int32_t& offset : offset_) {
        const int32_t next = offset - advance;
        offset = next > 0 ? next : 0;
      }
    }
    offset_[index] = stride_[index];
    cursor_ = index + 1;
    return index;
  }

  std::shared_ptr<LoadCounters> load_;  // shared with the pool's other pickers; never null
  uint32_t n_;
  mask_scan::Classes classes_;  // primaries and backup tiers, as words
  bool parked_any_ = false;     // some backend is parked (open_ is not every backend)
  uint64_t active_limit_ = 0;   // the scan key is exact while every count is <= this
  uint32_t cursor_ = 0;         // where the next scan starts: one past the last winner
  // What the scan reads, contiguous: (L / weight) << kOffsetBits; how far each backend's pass is
  // ahead of the virtual time (0..kStrideUnit); kParked for a backend the scan leaves out.
  std::vector<uint64_t> scale_;
  std::vector<int32_t> offset_;
  std::vector<uint64_t> parked_;
  // Read for the winner, and by the general comparison.
  std::vector<int32_t> stride_;   // kStrideUnit / weight
  std::vector<uint32_t> weight_;  // 1..256
  std::vector<uint64_t> open_;    // bit i: parked_[i] is 0 (the scan considers backend i)
  // Per-pick scratch, sized once so that Pick() never allocates.
  std::vector<uint64_t> chosen_;  // the backends to scan or compare, as words
};

}  // namespace

std::unique_ptr<Picker> MakeLeastConn(std::vector<BackendSpec> backends,
                                      std::shared_ptr<LoadCounters> load) {
  const auto n = static_cast<uint32_t>(backends.size());
  if (load == nullptr) {
    load = std::make_shared<LoadCounters>(n);
  } else if (load->size() != n) {
    return nullptr;
  }
  return std::make_unique<LeastConn>(std::move(backends), std::move(load));
}

}  // namespace torii::balancer
