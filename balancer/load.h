// balancer/load.h: per-backend active-request counts shared by every worker of a pool.
//
// least_conn compares backends by load, and a backend's load is the sum over all workers (each
// worker has its own Picker, but they all send to the same backends). So the counts live here,
// in one object per pool that the caller creates once and hands (std::shared_ptr) to every
// worker's picker. Each count is a relaxed atomic, and a pick reads a snapshot that may be a few
// requests stale, which is inherent to any lock-free least-connections (HAProxy and nginx accept
// the same).
//
// The counts are packed, 16 to a cache line, not padded one to a line. Every pick on every
// worker reads every count, so each line is shared by all the workers' caches whatever the
// layout, and any write (a request starting or ending) has to invalidate it elsewhere: padding
// would not save that traffic, it would only make each pick read 16 times as many lines (64
// backends: 4 lines instead of 64; 1024: 4 KiB instead of 64 KiB, more than L1 holds).
//
// An address change (DNS, an edit) builds new counters for the new backend list: HandOver()
// makes the new ones the count of every address that stays, including its requests still in
// flight under the old list (hand_over.h).
//
// Deliberately left out: counting connections rather than requests (torii pools upstream
// connections, so an idle pooled connection is no load), and any decay or slow start.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "balancer/hand_over.h"

namespace torii::balancer {

class LoadCounters {
 public:
  // `size` backends, every count 0. Sized once: a membership change builds a new pool (and new
  // counters), as it builds a new Picker.
  explicit LoadCounters(uint32_t size)
      : size_(size), active_(std::make_unique<std::atomic<uint32_t>[]>(size)) {}

  LoadCounters(const LoadCounters&) = delete;
  LoadCounters& operator=(const LoadCounters&) = delete;

  uint32_t size() const { return size_; }

  // One more active request on backend `i`. An index outside 0..size-1 is a caller bug:
  // asserted in debug builds, ignored in release so that it can never write out of bounds.
  void Add(uint32_t i) {
    assert(i < size_);
    if (i >= size_) {
      return;
    }
    if (LoadCounters* next = successor_.Find(&i)) {
      next->Add(i);
      return;
    }
    active_[i].fetch_add(1, std::memory_order_relaxed);
  }

  // One request fewer on backend `i`, saturating at 0: an unmatched Sub (a bookkeeping bug) must
  // not wrap the count to 4 billion and starve the backend for good. Out-of-range `i` as Add().
  void Sub(uint32_t i) {
    assert(i < size_);
    if (i >= size_) {
      return;
    }
    if (LoadCounters* next = successor_.Find(&i)) {
      next->Sub(i);
      return;
    }
    std::atomic<uint32_t>& active = active_[i];
    uint32_t current = active.load(std::memory_order_relaxed);
    // A CAS loop rather than fetch_sub: fetch_sub followed by a repair would let other workers
    // see the wrapped value in between.
    while (current != 0 &&
           !active.compare_exchange_weak(current, current - 1, std::memory_order_relaxed)) {
    }
  }

  // Active requests on backend `i` summed over all workers; 0 for an index outside 0..size-1.
  // A relaxed read: it orders nothing else, and a pick only needs a recent value.
  uint32_t Get(uint32_t i) const {
    if (i >= size_) {
      return 0;
    }
    return active_[i].load(std::memory_order_relaxed);
  }

  // All the counts, for a picker that reads every one of them per pick (read each with a
  // relaxed load, as Get() does): no bounds check per backend.
  std::span<const std::atomic<uint32_t>> counts() const { return {active_.get(), size_}; }

  // `next` (a new backend list's counters, not in use yet) counts from here on for every
  // backend that stays: map[i] is backend i's index there, or kGone. Its counts start at ours,
  // and our Add/Sub of a backend that stays are made there, so the requests in flight under
  // the old list end on the count the new one reads. Once per object.
  void HandOver(std::shared_ptr<LoadCounters> next, std::vector<uint32_t> map) {
    if (successor_.set()) {
      return;
    }
    for (uint32_t i = 0; i < size_ && i < map.size(); ++i) {
      if (map[i] != kGone && map[i] < next->size_) {
        next->active_[map[i]].fetch_add(Get(i), std::memory_order_relaxed);
      }
    }
    successor_.Set(std::move(next), std::move(map));
  }

 private:
  uint32_t size_;
  std::unique_ptr<std::atomic<uint32_t>[]> active_;  // packed: see the top of this file
  Successor<LoadCounters> successor_;
};

}  // namespace torii::balancer
