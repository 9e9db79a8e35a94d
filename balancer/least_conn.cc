// balancer/least_conn.cc: weighted least-connections (nginx ngx_http_upstream_least_conn_module,
// HAProxy fwlc), counted across workers.
//
// A pick takes the eligible backend with the lowest active/weight, where `active` is the
// backend's in-flight requests summed over every worker (LoadCounters, load.h). Ratios are
// compared by cross-multiplying (active_i * weight_j < active_j * weight_i) in 64 bits, so there
// is no division and no rounding. Load here means requests, not connections: an idle pooled
// upstream connection costs the backend nothing.
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
// Deliberately left out: slow start for a recovering backend (HAProxy `slowstart`), and any
// attempt to make the counts exact under races (two workers may read the same snapshot and pick
// the same backend; the next picks see it). Each worker's tie-breaking state is its own.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "balancer/load.h"
#include "balancer/picker.h"

namespace torii::balancer {
namespace {

// Virtual time a weight-1 backend's pass advances per tie won; a weight-w one advances by
// kStrideUnit / w. 2^20 keeps the rounding error below 1/4096 for weights up to 256, and a
// 64-bit pass cannot overflow before 2^44 picks (over five years at 100k picks/s per worker).
constexpr uint64_t kStrideUnit = uint64_t{1} << 20;

class LeastConn final : public Picker {
 public:
  LeastConn(std::vector<BackendSpec> backends, std::shared_ptr<LoadCounters> load)
      : load_(std::move(load)) {
    backends_.reserve(backends.size());
    for (const BackendSpec& spec : backends) {
      // The loader enforces 1..256; clamp anyway so a bad caller cannot divide by zero.
      const uint32_t weight = std::clamp<uint32_t>(spec.weight, 1, 256);
      backends_.push_back(Backend{weight, kStrideUnit / weight, 0, spec.backup});
    }
  }

  // One pass over the backends, starting at the rotating cursor, tracking the best primary and
  // the best backup at once; backups win only when no primary is eligible. O(n), no allocation,
  // one relaxed atomic load per eligible backend. Returns nullopt, touching no state, when
  // nothing is eligible.
  std::optional<uint32_t> Pick(uint64_t /*key_hash*/, const BackendMask& healthy,
                               const BackendMask& exclude) override {
    const uint32_t n = size();
    Candidate best[2];  // [0]: primaries, [1]: backups
    uint32_t i = cursor_ < n ? cursor_ : 0;
    for (uint32_t step = 0; step < n; ++step, i = (i + 1 == n ? 0 : i + 1)) {
      if (!healthy.test(i) || exclude.test(i)) {
        continue;
      }
      const Backend& b = backends_[i];
      const Candidate candidate{i, load_->Get(i), b.weight, std::max(b.pass, vtime_)};
      Candidate& current = best[b.backup ? 1 : 0];
      if (!current.valid() || candidate.Beats(current)) {
        current = candidate;
      }
    }
    const Candidate& winner = best[0].valid() ? best[0] : best[1];
    if (!winner.valid()) {
      return std::nullopt;
    }
    // The winner's effective pass (its own, or the virtual time if it fell behind while it was
    // loaded or down) moves on by its stride. Clamping to vtime_ stops a backend that sat out
    // from winning every tie until it has caught up.
    Backend& b = backends_[winner.index];
    b.pass = winner.pass + b.stride;
    vtime_ = std::max(vtime_, winner.pass);
    cursor_ = winner.index + 1;
    return winner.index;
  }

  void OnRequestStart(uint32_t backend) override { load_->Add(backend); }
  void OnRequestEnd(uint32_t backend) override { load_->Sub(backend); }

  uint32_t size() const override { return static_cast<uint32_t>(backends_.size()); }

 private:
  struct Backend {
    uint32_t weight;  // 1..256
    uint64_t stride;  // kStrideUnit / weight
    uint64_t pass;    // virtual time of this backend's next tie win
    bool backup;
  };

  // A backend as seen by one pick: its load snapshot and its effective pass.
  struct Candidate {
    static constexpr uint32_t kNone = UINT32_MAX;
    uint32_t index = kNone;
    uint32_t active = 0;
    uint32_t weight = 1;
    uint64_t pass = 0;

    bool valid() const { return index != kNone; }

    // True when this backend should be preferred to `other`: lower active/weight, then (a tie)
    // lower pass. A full tie keeps `other`, which came first in the rotation from the cursor.
    bool Beats(const Candidate& other) const {
      const uint64_t mine = uint64_t{active} * other.weight;
      const uint64_t theirs = uint64_t{other.active} * weight;
      if (mine != theirs) {
        return mine < theirs;
      }
      return pass < other.pass;
    }
  };

  std::shared_ptr<LoadCounters> load_;  // shared with the pool's other pickers; never null
  std::vector<Backend> backends_;
  uint64_t vtime_ = 0;   // the largest effective pass that has won a pick
  uint32_t cursor_ = 0;  // where the next scan starts: one past the last winner
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
