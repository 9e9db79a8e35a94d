// balancer/health.cc: see health.h.
#include "balancer/health.h"

#include <algorithm>
#include <limits>

namespace torii::balancer {

PoolHealth::PoolHealth(uint32_t backends, const HealthPolicy& policy)
    : policy_(policy), size_(backends), backends_(std::make_unique<Backend[]>(backends)) {
  policy_.rise = std::max<uint32_t>(policy_.rise, 1);
  policy_.fall = std::max<uint32_t>(policy_.fall, 1);
  policy_.eject_ms = std::max<uint64_t>(policy_.eject_ms, 1);
  policy_.max_eject_ms = std::max(policy_.max_eject_ms, policy_.eject_ms);
  for (uint32_t i = 0; i < size_; ++i) {
    backends_[i].fail_times.assign(policy_.max_fails, 0);
  }
}

void PoolHealth::Adopt(uint32_t to, const PoolHealth& other, uint32_t from) {
  if (to >= size_ || from >= other.size_) {
    return;
  }
  std::scoped_lock lock(mu_, other.mu_);
  Backend& b = backends_[to];
  const Backend& o = other.backends_[from];
  b.up.store(o.up.load(std::memory_order_acquire), std::memory_order_release);
  b.ejected_until.store(o.ejected_until.load(std::memory_order_acquire), std::memory_order_release);
  b.ejections.store(o.ejections.load(std::memory_order_acquire), std::memory_order_release);
  b.ok_streak = o.ok_streak;
  b.fail_streak = o.fail_streak;
  if (o.fail_times.size() == b.fail_times.size()) {
    b.fail_times = o.fail_times;
    b.fail_next = o.fail_next;
  }
  Bump();
}

uint64_t PoolHealth::Snapshot(uint64_t now_ms, BackendMask* eligible) const {
  eligible->Reset(size_);
  uint64_t valid_until = std::numeric_limits<uint64_t>::max();
  uint32_t up = 0;
  uint32_t count = 0;
  for (uint32_t i = 0; i < size_; ++i) {
    const Backend& b = backends_[i];
    if (!b.up.load(std::memory_order_acquire)) {
      continue;
    }
    ++up;
    const uint64_t until = b.ejected_until.load(std::memory_order_acquire);
    if (until > now_ms) {
      valid_until = std::min(valid_until, until);
      continue;
    }
    eligible->set(i);
    ++count;
  }
  if (count == 0 && up > 0) {
    // Panic: every up backend is ejected. Try them all rather than refuse everything.
    for (uint32_t i = 0; i < size_; ++i) {
      if (backends_[i].up.load(std::memory_order_acquire)) {
        eligible->set(i);
      }
    }
  }
  return valid_until;
}

HealthChange PoolHealth::ReportCheck(uint32_t backend, bool ok, uint64_t now_ms) {
  if (backend >= size_) {
    return HealthChange::kNone;
  }
  std::lock_guard lock(mu_);
  Backend& b = at(backend);
  const bool up = b.up.load(std::memory_order_relaxed);
  if (ok) {
    b.fail_streak = 0;
    b.ok_streak = std::min(b.ok_streak + 1, policy_.rise);
    // An ejected backend needs its backoff to end as well as `rise` passing checks.
    if (!up && b.ok_streak >= policy_.rise &&
        b.ejected_until.load(std::memory_order_relaxed) <= now_ms) {
      b.ejected_until.store(0, std::memory_order_relaxed);
      b.up.store(true, std::memory_order_release);
      Bump();
      return HealthChange::kUp;
    }
    return HealthChange::kNone;
  }
  b.ok_streak = 0;
  b.fail_streak = std::min(b.fail_streak + 1, policy_.fall);
  if (up && b.fail_streak >= policy_.fall) {
    b.up.store(false, std::memory_order_release);
    Bump();
    return HealthChange::kDown;
  }
  return HealthChange::kNone;
}

HealthChange PoolHealth::ReportFailure(uint32_t backend, uint64_t now_ms) {
  if (backend >= size_ || policy_.max_fails == 0) {
    return HealthChange::kNone;
  }
  std::lock_guard lock(mu_);
  Backend& b = at(backend);
  if (b.ejected_until.load(std::memory_order_relaxed) > now_ms ||
      !b.up.load(std::memory_order_relaxed)) {
    return HealthChange::kNone;  // already out: requests still in flight report late
  }
  // A ring of the last max_fails failure times: the backend is ejected when the oldest of
  // them is still inside the window.
  b.fail_times[b.fail_next] = now_ms;
  b.fail_next = (b.fail_next + 1) % policy_.max_fails;
  const uint64_t oldest = b.fail_times[b.fail_next];
  if (oldest == 0 || now_ms - oldest >= policy_.fail_window_ms) {
    return HealthChange::kNone;
  }
  std::fill(b.fail_times.begin(), b.fail_times.end(), 0);
  const uint32_t n = b.ejections.load(std::memory_order_relaxed);
  const uint32_t shift = std::min<uint32_t>(n, 20);
  const uint64_t backoff = std::min(policy_.eject_ms << shift, policy_.max_eject_ms);
  b.ejections.store(n + 1, std::memory_order_relaxed);
  b.ejected_until.store(now_ms + backoff, std::memory_order_release);
  if (policy_.active) {
    // Back only through the checks: `rise` passes once the backoff is over.
    b.ok_streak = 0;
    b.up.store(false, std::memory_order_release);
  }
  Bump();
  return HealthChange::kEjected;
}

void PoolHealth::ReportSuccess(uint32_t backend, uint64_t now_ms) {
  if (backend >= size_ || at(backend).ejections.load(std::memory_order_relaxed) == 0) {
    return;
  }
  std::lock_guard lock(mu_);
  Backend& b = at(backend);
  // A late answer from before the ejection ended proves nothing about the backend now.
  if (b.up.load(std::memory_order_relaxed) &&
      b.ejected_until.load(std::memory_order_relaxed) <= now_ms) {
    b.ejections.store(0, std::memory_order_relaxed);
  }
}

bool PoolHealth::up(uint32_t backend) const {
  return backend < size_ && at(backend).up.load(std::memory_order_acquire);
}

uint64_t PoolHealth::ejected_until(uint32_t backend) const {
  return backend < size_ ? at(backend).ejected_until.load(std::memory_order_acquire) : 0;
}

uint32_t PoolHealth::ejections(uint32_t backend) const {
  return backend < size_ ? at(backend).ejections.load(std::memory_order_relaxed) : 0;
}

HealthView::HealthView(std::shared_ptr<PoolHealth> health) : health_(std::move(health)) {}

void HealthView::Refresh(uint64_t now_ms) {
  version_ = health_->version();
  valid_until_ = health_->Snapshot(now_ms, &mask_);
}

}  // namespace torii::balancer
