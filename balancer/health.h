// balancer/health.h: the health of a pool's backends, shared by every worker of the process.
//
// One PoolHealth per pool per process. Two kinds of evidence reach it:
//  - active checks (HealthCheck results, from the one checker that app/ runs per process):
//    `fall` consecutive failures take a backend down, `rise` consecutive successes bring it up;
//  - passive observations from live traffic (any worker): `max_fails` failures within
//    `fail_window` eject the backend for a backoff that doubles while it keeps failing
//    (capped at `max_eject`). With active checks configured an ejected backend also needs
//    `rise` passing checks after the backoff to return; without them it returns when the
//    backoff ends.
//
// The hot path (every pick) reads two atomics: version() changes whenever a backend's
// eligibility changes, and Snapshot() says until when its answer holds (the end of the nearest
// ejection). A worker keeps its own BackendMask and refreshes it only when one of the two says
// so (Envoy's per-thread host sets, HAProxy's srv->cur_state read lock-free). Writers take a
// mutex: they are rare (a check result per interval, a failure) and never on a request's path
// unless that request failed.
//
// No I/O and no clock of its own: every call takes `now_ms`, so tests drive time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "balancer/picker.h"

namespace torii::balancer {

struct HealthPolicy {
  bool active = false;  // active checks run (rise/fall apply)
  uint32_t rise = 2;
  uint32_t fall = 3;
  uint32_t max_fails = 3;          // 0 = passive ejection off
  uint64_t fail_window_ms = 10000;  // failures older than this are forgotten
  uint64_t eject_ms = 10000;        // first ejection; doubles per consecutive ejection
  uint64_t max_eject_ms = 300000;

  friend bool operator==(const HealthPolicy&, const HealthPolicy&) = default;
};

// What a report changed, so the caller can log it once.
enum class HealthChange : uint8_t {
  kNone,
  kDown,     // active checks took the backend down
  kUp,       // active checks brought it (back) up
  kEjected,  // passive failures ejected it
};

class PoolHealth {
 public:
  PoolHealth(uint32_t backends, const HealthPolicy& policy);
  PoolHealth(const PoolHealth&) = delete;
  PoolHealth& operator=(const PoolHealth&) = delete;

  uint32_t size() const { return size_; }
  const HealthPolicy& policy() const { return policy_; }

  // Bumped (release) on every eligibility change; read it (acquire) before Snapshot().
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

  // Fills `eligible` with the backends that may take traffic at `now_ms` (up and not ejected)
  // and returns the time until which that answer holds without a version change (the end of
  // the nearest ejection, or UINT64_MAX). When passive ejection would leave no backend at all
  // while some are up, the ejections are ignored (nginx resets its failure counts when every
  // peer is down; Envoy calls it panic mode): a pool whose every backend blipped keeps trying
  // them rather than answering 503 until the backoff ends. Backends that active checks took
  // down stay out.
  uint64_t Snapshot(uint64_t now_ms, BackendMask* eligible) const;

  // The result of one active check of `backend`.
  HealthChange ReportCheck(uint32_t backend, bool ok, uint64_t now_ms);
  // A failure seen on live traffic (connect failed or timed out, reset or closed before a
  // response, response timeout, or a configured status).
  HealthChange ReportFailure(uint32_t backend, uint64_t now_ms);
  // A response that went well: ends the backoff growth of a backend that came back. Lock-free
  // unless the backend has been ejected before.
  void ReportSuccess(uint32_t backend, uint64_t now_ms);

  // Backend `to` takes over the state of backend `from` of `other` (the same address in the
  // pool's previous backend list, after DNS changed the list): up or down, ejection and
  // backoff, streaks and recent failures. `other` must have the same policy. Call before this
  // PoolHealth is shared.
  void Adopt(uint32_t to, const PoolHealth& other, uint32_t from);

  // For logs and status: the active state, the ejection end (0 = not ejected) and how many
  // ejections in a row the current backoff reflects.
  bool up(uint32_t backend) const;
  uint64_t ejected_until(uint32_t backend) const;
  uint32_t ejections(uint32_t backend) const;

 private:
  struct Backend {
    std::atomic<bool> up{true};
    std::atomic<uint64_t> ejected_until{0};
    std::atomic<uint32_t> ejections{0};  // consecutive; reset by a success after returning
    // Under mu_:
    uint32_t ok_streak = 0;
    uint32_t fail_streak = 0;
    std::vector<uint64_t> fail_times;  // ring of the last max_fails failure times
    uint32_t fail_next = 0;
  };

  void Bump() { version_.fetch_add(1, std::memory_order_acq_rel); }

  Backend& at(uint32_t i) const { return backends_[i]; }

  HealthPolicy policy_;
  uint32_t size_;
  std::unique_ptr<Backend[]> backends_;
  std::atomic<uint64_t> version_{1};
  mutable std::mutex mu_;
};

// The per-worker view of a PoolHealth: a mask refreshed only when the shared state says so.
class HealthView {
 public:
  HealthView() = default;
  explicit HealthView(std::shared_ptr<PoolHealth> health);

  // The eligible backends at `now_ms`. O(1) unless something changed.
  const BackendMask& eligible(uint64_t now_ms) {
    if (health_ && (health_->version() != version_ || now_ms >= valid_until_)) {
      Refresh(now_ms);
    }
    return mask_;
  }
  PoolHealth* health() const { return health_.get(); }

 private:
  void Refresh(uint64_t now_ms);

  std::shared_ptr<PoolHealth> health_;
  BackendMask mask_;
  uint64_t version_ = 0;
  uint64_t valid_until_ = 0;
};

}  // namespace torii::balancer
