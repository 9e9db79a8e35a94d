// base/spin_lock.h: a test-and-test-and-set lock for very short critical sections (a probe, a
// key compare, a few links) in the sharded tables shared by workers (rate limits, bans, the
// cache). A waiter spins with the pause hint and yields after a while, so a preempted holder
// costs no core. Satisfies Lockable (std::lock_guard).
#pragma once

#include <atomic>
#include <thread>

namespace torii::base {

class SpinLock {
 public:
  void lock() {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      int spins = 0;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 128) {
          Pause();
        } else {
          std::this_thread::yield();
          spins = 0;
        }
      }
    }
  }
  bool try_lock() { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  static void Pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
  std::atomic<bool> locked_{false};
};

}  // namespace torii::base
