// balancer/slots.h: per-backend request slots for `max_conns`, shared by every worker.
//
// HAProxy's `maxconn` on a server: at most `limit` requests in flight to a backend, counted
// across the whole process. TryAcquire() is a CAS loop, so the limit is exact under
// concurrency: two workers can never both take the last slot. One cache line per backend, so
// workers using different backends never contend.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "balancer/hand_over.h"

namespace torii::balancer {

class BackendSlots {
 public:
  explicit BackendSlots(uint32_t size) : size_(size), slots_(std::make_unique<Slot[]>(size)) {}
  BackendSlots(const BackendSlots&) = delete;
  BackendSlots& operator=(const BackendSlots&) = delete;

  uint32_t size() const { return size_; }

  // Takes a slot of backend `i` if fewer than `limit` are taken. False when full (or `i` is
  // out of range).
  bool TryAcquire(uint32_t i, uint32_t limit) {
    if (i >= size_) {
      return false;
    }
    if (BackendSlots* next = successor_.Find(&i)) {
      return next->TryAcquire(i, limit);
    }
    std::atomic<uint32_t>& used = slots_[i].used;
    uint32_t current = used.load(std::memory_order_relaxed);
    while (current < limit) {
      if (used.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Gives a slot back; saturates at 0 so an unmatched release cannot wrap the count.
  void Release(uint32_t i) {
    if (i >= size_) {
      return;
    }
    if (BackendSlots* next = successor_.Find(&i)) {
      next->Release(i);
      return;
    }
    std::atomic<uint32_t>& used = slots_[i].used;
    uint32_t current = used.load(std::memory_order_relaxed);
    while (current != 0 && !used.compare_exchange_weak(current, current - 1,
                                                       std::memory_order_acq_rel,
                                                       std::memory_order_relaxed)) {
    }
  }

  uint32_t InUse(uint32_t i) const {
    if (i >= size_) {
      return 0;
    }
    if (const BackendSlots* next = successor_.Find(&i)) {
      return next->InUse(i);
    }
    return slots_[i].used.load(std::memory_order_relaxed);
  }

  // As LoadCounters::HandOver: `next` (a new backend list's slots, not in use yet) holds the
  // slots of every backend that stays (map[i]: its index there, or kGone), those taken under
  // the old list included, and is given them back when those requests end. Once per object.
  void HandOver(std::shared_ptr<BackendSlots> next, std::vector<uint32_t> map) {
    if (successor_.set()) {
      return;
    }
    for (uint32_t i = 0; i < size_ && i < map.size(); ++i) {
      if (map[i] != kGone && map[i] < next->size_) {
        next->slots_[map[i]].used.fetch_add(slots_[i].used.load(std::memory_order_relaxed),
                                            std::memory_order_relaxed);
      }
    }
    successor_.Set(std::move(next), std::move(map));
  }

 private:
  struct alignas(64) Slot {
    std::atomic<uint32_t> used{0};
  };
  uint32_t size_;
  std::unique_ptr<Slot[]> slots_;
  Successor<BackendSlots> successor_;
};

}  // namespace torii::balancer
