// core/counter.h: a statistic written by one thread and read by any (metrics).
//
// Each worker owns its counters; the admin endpoint sums them across workers when it is asked
// (per-worker counters, summed when read: nothing shared on the request path). A
// relaxed atomic load + store compiles to plain moves on x86-64 (no lock prefix, no shared
// cache line with other workers), yet a reader on another thread sees a recent value without
// a data race. Only the owning thread may write.
#pragma once

#include <atomic>
#include <cstdint>

namespace torii::core {

class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Add(uint64_t n) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void operator++(int) { Add(1); }
  void operator+=(uint64_t n) { Add(n); }
  // For gauges (a value the owner sets, such as live connections).
  void Set(uint64_t n) { v_.store(n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

}  // namespace torii::core
