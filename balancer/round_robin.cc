// balancer/round_robin.cc: smooth weighted round-robin, nginx's algorithm
// (ngx_http_upstream_get_peer in ngx_http_upstream_round_robin.c).
//
// Each pick: every eligible backend's `current` grows by its weight; the backend with the
// largest `current` wins and gives back the total weight of the eligible set. Over any window of
// sum(weights) picks each backend is chosen exactly `weight` times, and the choices are spread
// out (weights 5:1:1 give a a b a c a a, not a a a a a b c).
//
// Deliberately left out: nginx's `effective_weight` (a weight lowered after failures and
// recovered slowly). Failures reach torii's pickers through the `healthy` mask instead, so a
// backend is either in or out; slow start for a recovering backend can come later.
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "balancer/picker.h"

namespace torii::balancer {
namespace {

class RoundRobin final : public Picker {
 public:
  explicit RoundRobin(std::vector<BackendSpec> backends) {
    backends_.reserve(backends.size());
    for (const BackendSpec& spec : backends) {
      // The loader enforces 1..256; clamp anyway so a bad caller cannot starve or overflow.
      const uint32_t weight = spec.weight < 1 ? 1 : (spec.weight > 256 ? 256 : spec.weight);
      backends_.push_back(Backend{static_cast<int64_t>(weight), 0, spec.backup});
    }
  }

  // Primaries first; backups only when no primary is eligible. Two passes at most, each O(n),
  // no allocation.
  std::optional<uint32_t> Pick(uint64_t /*key_hash*/, const BackendMask& healthy,
                               const BackendMask& exclude) override {
    if (std::optional<uint32_t> primary = PickAmong(/*backup=*/false, healthy, exclude)) {
      return primary;
    }
    return PickAmong(/*backup=*/true, healthy, exclude);
  }

  uint32_t size() const override { return static_cast<uint32_t>(backends_.size()); }

 private:
  struct Backend {
    int64_t weight;
    // Smooth-WRR credit. Each pick adds the eligible total and takes it back, so the credits
    // of all backends always sum to zero and stay within a few total weights of it (weights
    // are at most 256): int64 cannot overflow. A backend that leaves the eligible set keeps its
    // credit and resumes from it when it rejoins, as nginx does.
    int64_t current;
    bool backup;
  };

  // One smooth-WRR round over the backends with `backup` == `backup` that are healthy and not
  // excluded. Returns nullopt, touching no state, when none is.
  std::optional<uint32_t> PickAmong(bool backup, const BackendMask& healthy,
                                    const BackendMask& exclude) {
    int64_t total = 0;
    Backend* best = nullptr;
    uint32_t best_index = 0;
    const uint32_t n = size();
    for (uint32_t i = 0; i < n; ++i) {
      Backend& b = backends_[i];
      if (b.backup != backup || !healthy.test(i) || exclude.test(i)) {
        continue;
      }
      b.current += b.weight;
      total += b.weight;
      // Strictly greater: ties go to the lowest index, which makes sequences deterministic.
      if (best == nullptr || b.current > best->current) {
        best = &b;
        best_index = i;
      }
    }
    if (best == nullptr) {
      return std::nullopt;
    }
    best->current -= total;
    return best_index;
  }

  std::vector<Backend> backends_;
};

}  // namespace

std::unique_ptr<Picker> MakeRoundRobin(std::vector<BackendSpec> backends) {
  return std::make_unique<RoundRobin>(std::move(backends));
}

}  // namespace torii::balancer
