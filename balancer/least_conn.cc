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
// carries a virtual time `pass` that advances by kStrideUnit / weight when it wins a tie, and
// the tied backend with the lowest pass wins (a weight-3 backend wins 3 of every 4 ties against
// a weight-1 one). Equal passes fall back to a rotating cursor, so equal weights rotate
// a b c a b c instead of restarting at backend 0.
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
// - The masks are hardly read. Only the winner's state changes, so the best backend of a scan
//   that ignores `exclude` and health changes since the last full read of the mask is also the
//   best eligible one, unless it is itself excluded or down: two test()s. The backends last
//   seen down (DownSet) are re-tested one by one and parked (their key raised past every other)
//   for the scan.
// - LoadCounters keeps the counts packed (load.h): 64 backends are 4 cache lines, not 64.
//
// Deliberately left out: slow start for a recovering backend (HAProxy `slowstart`), and any
// attempt to make the counts exact under races (two workers may read the same snapshot and pick
// the same backend; the next picks see it). Each worker's tie-breaking state is its own.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

#include "balancer/load.h"
#include "balancer/picker.h"

namespace torii::balancer {
namespace {

// --- Reading the masks (round_robin.cc has the same helpers) ------------------------------------
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

// ----------------------------------------------------------------------------------------------

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
        scale_(n_, 0),
        offset_(n_, 0),
        parked_(n_, 0),
        stride_(n_),
        weight_(n_),
        primary_(Words(n_), 0),
        backup_(Words(n_), 0),
        down_(n_),
        eligible_(Words(n_), 0),
        chosen_(Words(n_), 0) {
    uint64_t lcm = 1;
    for (uint32_t i = 0; i < n_; ++i) {
      const BackendSpec& spec = backends[i];
      // The loader enforces 1..256; clamp anyway so a bad caller cannot divide by zero.
      const uint32_t weight = std::clamp<uint32_t>(spec.weight, 1, 256);
      weight_[i] = weight;
      stride_[i] = static_cast<int32_t>(kStrideUnit / weight);
      (spec.backup ? backup_ : primary_)[i / 64] |= uint64_t{1} << (i % 64);
      has_backups_ = has_backups_ || spec.backup;
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
    Repark();
  }

  // Primaries first; backups only when no primary is eligible. O(n), no allocation; one relaxed
  // atomic load per backend. Returns nullopt, touching no state, when nothing is eligible.
  std::optional<uint32_t> Pick(uint64_t /*key_hash*/, const BackendMask& healthy,
                               const BackendMask& exclude) override {
    if (n_ == 0) {
      return std::nullopt;
    }
    if (n_ <= kSmallPool) {
      auto eligible = [&](uint32_t i) { return healthy.test(i) && !exclude.test(i); };
      if (std::optional<uint32_t> primary = PickExact(/*backup=*/false, eligible)) {
        return Commit(*primary);
      }
      if (std::optional<uint32_t> backup = PickExact(/*backup=*/true, eligible)) {
        return Commit(*backup);
      }
      return std::nullopt;
    }
    if (!down_.StillDown(healthy) && down_.Read(healthy)) {
      Repark();  // a backend came back
    }
    // The scan parks the down set and the backups. Its winner is the best eligible primary
    // unless it went down since (then read the mask and scan again: the winner is healthy) or is
    // excluded (a retry: the general path below).
    for (int scan = 0; scan < 2; ++scan) {
      const Best best = parked_any_ ? Scan</*kPark=*/true>() : Scan</*kPark=*/false>();
      if (best.key >= kParked || best.active_or > active_limit_) {
        break;  // no primary is up, or the keys were not exact
      }
      if (!healthy.test(best.index)) {
        if (down_.Read(healthy)) {
          Repark();
        }
        continue;
      }
      if (exclude.test(best.index)) {
        break;
      }
      return Commit(best.index);
    }
    // The general path: both masks read in full.
    for (uint32_t w = 0; w < Words(n_); ++w) {
      eligible_[w] = ReadWord(healthy, w, n_) & ~ReadWord(exclude, w, n_);
    }
    for (bool backup : {false, true}) {
      uint64_t any = 0;
      for (uint32_t w = 0; w < Words(n_); ++w) {
        chosen_[w] = (backup ? backup_ : primary_)[w] & eligible_[w];
        any |= chosen_[w];
      }
      if (any != 0) {
        return Commit(ScanAmong(backup, chosen_.data()));
      }
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

  // Parks the down set and the backups: what a scan leaves out unless told otherwise.
  void Repark() {
    parked_any_ = false;
    for (uint32_t i = 0; i < n_; ++i) {
      const bool out = ((down_.words()[i / 64] | backup_[i / 64]) >> (i % 64)) & 1;
      parked_[i] = out ? kParked : 0;
      parked_any_ = parked_any_ || out;
    }
  }

  // The best of the backends set in `words` (at least one, all of class `backup`), parking all
  // the others for the scan.
  uint32_t ScanAmong(bool backup, const uint64_t* words) {
    for (uint32_t i = 0; i < n_; ++i) {
      parked_[i] = ((words[i / 64] >> (i % 64)) & 1) != 0 ? 0 : kParked;
    }
    const Best best = Scan</*kPark=*/true>();
    Repark();
    if (best.active_or <= active_limit_) {
      return best.index;
    }
    return *PickExact(backup,
                      [words](uint32_t i) { return ((words[i / 64] >> (i % 64)) & 1) != 0; });
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
  // pools: one pass in the rotation from the cursor over the backends of class `backup` for
  // which eligible(i) holds, comparing active/weight by cross-multiplying in 64 bits, then
  // offset; a full tie keeps the earlier one. nullopt when there is none.
  template <class Eligible>
  std::optional<uint32_t> PickExact(bool backup, Eligible eligible) const {
    uint32_t best = UINT32_MAX;
    uint64_t best_active = 0;
    int32_t best_offset = 0;
    uint32_t i = cursor_ < n_ ? cursor_ : 0;
    for (uint32_t step = 0; step < n_; ++step, i = (i + 1 == n_ ? 0 : i + 1)) {
      if (((backup_[i / 64] >> (i % 64)) & 1) != uint64_t{backup} || !eligible(i)) {
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
    if (best == UINT32_MAX) {
      return std::nullopt;
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
  bool has_backups_ = false;
  bool parked_any_ = false;    // some backend is parked (down or a backup)
  uint64_t active_limit_ = 0;  // the scan key is exact while every count is <= this
  uint32_t cursor_ = 0;        // where the next scan starts: one past the last winner
  // What the scan reads, contiguous: (L / weight) << kOffsetBits; how far each backend's pass is
  // ahead of the virtual time (0..kStrideUnit); kParked for a backend the scan leaves out.
  std::vector<uint64_t> scale_;
  std::vector<int32_t> offset_;
  std::vector<uint64_t> parked_;
  // Read for the winner, and by the general comparison.
  std::vector<int32_t> stride_;    // kStrideUnit / weight
  std::vector<uint32_t> weight_;   // 1..256
  std::vector<uint64_t> primary_;  // bit i: backend i is a primary
  std::vector<uint64_t> backup_;   // bit i: backend i is a backup
  DownSet down_;                   // unhealthy at the last full read of the mask
  // Per-pick scratch, sized once so that Pick() never allocates.
  std::vector<uint64_t> eligible_;  // healthy and not excluded, as words
  std::vector<uint64_t> chosen_;    // eligible_ within the class being picked from
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
