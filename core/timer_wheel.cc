// core/timer_wheel.cc: see timer_wheel.h.
#include "core/timer_wheel.h"

#include <algorithm>
#include <bit>

namespace torii::core {

TimerWheel::TimerWheel(uint64_t now_ms)
    : cursor_ms_(now_ms), next_migration_(now_ms + kSlots / 2) {}

void TimerWheel::Link(Entry& e, uint16_t list) {
  e.list_ = list;
  e.prev = nullptr;
  e.next = heads_[list];
  if (e.next != nullptr) {
    e.next->prev = &e;
  }
  heads_[list] = &e;
  if (list != kFar) {
    bitmap_[list / 64] |= uint64_t{1} << (list % 64);
    ++near_size_;
  }
  ++size_;
}

void TimerWheel::Unlink(Entry& e) {
  const uint16_t list = e.list_;
  if (e.prev != nullptr) {
    e.prev->next = e.next;
  } else {
    heads_[list] = e.next;
  }
  if (e.next != nullptr) {
    e.next->prev = e.prev;
  }
  if (list != kFar) {
    if (heads_[list] == nullptr) {
      bitmap_[list / 64] &= ~(uint64_t{1} << (list % 64));
    }
    --near_size_;
  }
  e.prev = nullptr;
  e.next = nullptr;
  e.list_ = kUnlinked;
  --size_;
}

void TimerWheel::File(Entry& e) {
  if (e.deadline_ms < cursor_ms_ + kSlots) {
    // Within one turn: the slot's tick is the deadline (an overdue one goes to the cursor).
    const uint64_t tick = std::max(e.deadline_ms, cursor_ms_);
    Link(e, static_cast<uint16_t>(tick % kSlots));
    return;
  }
  if (heads_[kFar] == nullptr) {
    next_migration_ = cursor_ms_ + kSlots / 2;
  }
  Link(e, kFar);
}

void TimerWheel::Schedule(Entry& e, uint64_t deadline_ms) {
  if (e.linked()) {
    Unlink(e);
  }
  e.deadline_ms = deadline_ms;
  File(e);
}

void TimerWheel::Cancel(Entry& e) {
  if (e.linked()) {
    Unlink(e);
  }
}

void TimerWheel::Migrate() {
  for (Entry* e = heads_[kFar]; e != nullptr;) {
    Entry* following = e->next;
    if (e->deadline_ms < cursor_ms_ + kSlots) {
      Unlink(*e);
      File(*e);
    }
    e = following;
  }
  // What is left is due at cursor + kSlots or later: the next sweep comes well before.
  next_migration_ = cursor_ms_ + kSlots / 2;
}

uint32_t TimerWheel::NextNonEmpty(uint32_t from) const {
  constexpr uint32_t kWords = kSlots / 64;
  const uint32_t first_word = from / 64;
  // The first word is visited twice: once masked to the bits at or after `from`, and once
  // more at the end (unmasked) for the bits before `from`, after wrapping around.
  for (uint32_t i = 0; i <= kWords; ++i) {
    const uint32_t word = (first_word + i) % kWords;
    uint64_t bits = bitmap_[word];
    if (i == 0) {
      bits &= ~uint64_t{0} << (from % 64);
    }
    if (bits != 0) {
      return word * 64 + static_cast<uint32_t>(std::countr_zero(bits));
    }
  }
  return kSlots;
}

TimerWheel::Entry* TimerWheel::PopExpired(uint64_t now_ms) {
  for (;;) {
    if (heads_[kFar] != nullptr && cursor_ms_ >= next_migration_) {
      Migrate();
    }
    // Advance no further than the next sweep, so far entries join the wheel in time.
    const uint64_t limit =
        heads_[kFar] != nullptr ? std::min(now_ms, next_migration_) : now_ms;
    if (near_size_ > 0) {
      const uint32_t cur = static_cast<uint32_t>(cursor_ms_ % kSlots);
      const uint32_t next = NextNonEmpty(cur);
      const uint64_t tick = cursor_ms_ + (next + kSlots - cur) % kSlots;
      if (tick <= limit) {
        // Every entry of a slot is due at its tick (or overdue): hand out the first.
        cursor_ms_ = tick;
        Entry* e = heads_[next];
        Unlink(*e);
        return e;
      }
    }
    if (limit >= now_ms) {
      // Nothing is due up to now. The cursor stays at now (not past it), so an entry armed
      // for now or earlier during this tick is still handed out by the next call.
      cursor_ms_ = std::max(cursor_ms_, now_ms);
      return nullptr;
    }
    cursor_ms_ = limit;  // reached the sweep point: migrate, then go on
  }
}

std::optional<uint64_t> TimerWheel::NextDeadline() const {
  if (size_ == 0) {
    return std::nullopt;
  }
  uint64_t next = ~uint64_t{0};
  if (near_size_ > 0) {
    const uint32_t cur = static_cast<uint32_t>(cursor_ms_ % kSlots);
    next = cursor_ms_ + (NextNonEmpty(cur) + kSlots - cur) % kSlots;
  }
  if (heads_[kFar] != nullptr) {
    next = std::min(next, next_migration_);
  }
  return next;
}

}  // namespace torii::core
