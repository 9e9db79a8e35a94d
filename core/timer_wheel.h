// core/timer_wheel.h: one timer structure per worker (DESIGN.md: no kernel timeout per
// connection per byte).
//
// A hashed wheel of kSlots one-millisecond slots with intrusive entries (h2o's h2o_timer_t):
// an Entry lives inside the object it times (a connection), so arming, re-arming and
// cancelling allocate nothing and are O(1). Deadlines further away than one turn of the wheel
// sit in the slot of (deadline mod kSlots) and are re-filed when the wheel passes them early.
// A bitmap of non-empty slots lets NextDeadline() and Advance() skip empty stretches.
//
// Entries carry plain data (a kind and a 32-bit owner id), not callbacks: the worker decides
// what an expiry means, so no pointer to code or to a freed object is kept here.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

namespace torii::core {

class TimerWheel {
 public:
  static constexpr uint32_t kSlots = 4096;  // ~4 s per turn at 1 ms per slot

  struct Entry {
    uint64_t deadline_ms = 0;
    Entry* prev = nullptr;
    Entry* next = nullptr;
    uint32_t owner = 0;  // e.g. a connection slot
    uint8_t kind = 0;    // what the owner should do on expiry
    bool linked() const { return prev != nullptr; }
  };

  explicit TimerWheel(uint64_t now_ms);
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Arms (or re-arms) `e` to expire at `deadline_ms`. A deadline in the past fires on the
  // next Advance(). `e` must stay alive until it fires or is cancelled.
  void Schedule(Entry& e, uint64_t deadline_ms);
  // Disarms `e`; harmless if it is not armed.
  void Cancel(Entry& e);

  // Unlinks and returns one entry whose deadline is <= now_ms, or nullptr when none is left.
  // Call repeatedly; entries are handed out at most once per Schedule().
  Entry* PopExpired(uint64_t now_ms);

  // Earliest tick at which something may expire, or nullopt when nothing is armed.
  std::optional<uint64_t> NextDeadline() const;
  uint32_t size() const { return size_; }

 private:
  struct Head {
    Entry* first = nullptr;
  };
  void Link(Entry& e, uint32_t slot);
  void Unlink(Entry& e);
  // Next non-empty slot index at or after `from` (wrapping), or kSlots when all are empty.
  uint32_t NextNonEmpty(uint32_t from) const;

  std::array<Head, kSlots> slots_{};
  std::array<uint64_t, kSlots / 64> bitmap_{};
  uint64_t cursor_ms_;  // every slot strictly before this tick has been drained
  uint32_t size_ = 0;
  // A sentinel so that `prev != nullptr` means linked for first-in-slot entries too.
  Entry sentinel_;
};

}  // namespace torii::core
