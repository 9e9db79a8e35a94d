// core/timer_wheel.h: one timer structure per worker (no kernel timeout per connection per
// byte).
//
// A hashed wheel of kSlots one-millisecond slots with intrusive entries (h2o's h2o_timer_t):
// an Entry lives inside the object it times (a connection), so arming, re-arming and
// cancelling allocate nothing and are O(1). The wheel holds only deadlines within one turn of
// the cursor, so every entry of a slot is due at that slot's tick and NextDeadline() is exact
// to the millisecond: 10k idle connections with 60 s timers never cause an early wakeup.
// Deadlines further away wait in an unsorted far list that is swept into the wheel every half
// turn (an O(far) scan every ~2 s). A bitmap of non-empty slots lets NextDeadline() and
// PopExpired() skip empty stretches.
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
    bool linked() const { return list_ != kUnlinked; }

   private:
    friend class TimerWheel;
    uint16_t list_ = kUnlinked;  // slot index, kFar, or kUnlinked
  };

  explicit TimerWheel(uint64_t now_ms);
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Arms (or re-arms) `e` to expire at `deadline_ms`. A deadline in the past fires on the
  // next PopExpired(). `e` must stay alive until it fires or is cancelled.
  void Schedule(Entry& e, uint64_t deadline_ms);
  // Disarms `e`; harmless if it is not armed.
  void Cancel(Entry& e);

  // Unlinks and returns one entry whose deadline is <= now_ms, or nullptr when none is left.
  // Call repeatedly; entries are handed out at most once per Schedule(), never early.
  Entry* PopExpired(uint64_t now_ms);

  // A time at or before the earliest armed deadline (exact for deadlines within one turn),
  // or nullopt when nothing is armed.
  std::optional<uint64_t> NextDeadline() const;
  uint32_t size() const { return size_; }

 private:
  static constexpr uint16_t kFar = kSlots;
  static constexpr uint16_t kUnlinked = 0xFFFF;

  void Link(Entry& e, uint16_t list);
  void Unlink(Entry& e);
  void File(Entry& e);  // into the wheel or the far list, by its deadline
  void Migrate();       // far entries now within one turn → wheel
  // Next non-empty slot index at or after `from` (wrapping), or kSlots when all are empty.
  uint32_t NextNonEmpty(uint32_t from) const;

  std::array<Entry*, kSlots + 1> heads_{};  // kSlots wheel slots, then the far list
  std::array<uint64_t, kSlots / 64> bitmap_{};
  uint64_t cursor_ms_;        // every slot strictly before this tick has been drained
  uint64_t next_migration_;   // sweep the far list when the cursor reaches this
  uint32_t size_ = 0;
  uint32_t near_size_ = 0;
};

}  // namespace torii::core
