// core/timer_wheel.cc: see timer_wheel.h.
#include "core/timer_wheel.h"

#include <bit>

namespace torii::core {

TimerWheel::TimerWheel(uint64_t now_ms) : cursor_ms_(now_ms) {}

void TimerWheel::Link(Entry& e, uint32_t slot) {
  Head& h = slots_[slot];
  e.prev = &sentinel_;  // first in its slot; real predecessor found through the slot index
  e.next = h.first;
  if (h.first != nullptr) {
    h.first->prev = &e;
  }
  h.first = &e;
  bitmap_[slot / 64] |= (uint64_t{1} << (slot % 64));
  ++size_;
}

void TimerWheel::Unlink(Entry& e) {
  const uint32_t slot = static_cast<uint32_t>(e.deadline_ms % kSlots);
  if (e.prev == &sentinel_) {
    slots_[slot].first = e.next;
  } else {
    e.prev->next = e.next;
  }
  if (e.next != nullptr) {
    e.next->prev = e.prev;
  }
  if (slots_[slot].first == nullptr) {
    bitmap_[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  }
  e.prev = nullptr;
  e.next = nullptr;
  --size_;
}

void TimerWheel::Schedule(Entry& e, uint64_t deadline_ms) {
  if (e.linked()) {
    Unlink(e);
  }
  // Never file behind the cursor: a past deadline goes into the current slot and fires on the
  // next Advance().
  e.deadline_ms = deadline_ms < cursor_ms_ ? cursor_ms_ : deadline_ms;
  Link(e, static_cast<uint32_t>(e.deadline_ms % kSlots));
}

void TimerWheel::Cancel(Entry& e) {
  if (e.linked()) {
    Unlink(e);
  }
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
  while (size_ > 0 && cursor_ms_ <= now_ms) {
    const uint32_t cur = static_cast<uint32_t>(cursor_ms_ % kSlots);
    const uint32_t next = NextNonEmpty(cur);
    const uint64_t distance = (next + kSlots - cur) % kSlots;
    if (cursor_ms_ + distance > now_ms) {
      cursor_ms_ = now_ms + 1;
      // Keep the cursor's slot aligned: slots between were empty.
      return nullptr;
    }
    cursor_ms_ += distance;
    Head& h = slots_[next];
    for (Entry* e = h.first; e != nullptr;) {
      Entry* following = e->next;
      if (e->deadline_ms <= now_ms) {
        Unlink(*e);
        return e;
      }
      e = following;
    }
    // Everything left in this slot belongs to a later turn of the wheel.
    ++cursor_ms_;
  }
  if (size_ == 0 && cursor_ms_ <= now_ms) {
    cursor_ms_ = now_ms + 1;
  }
  return nullptr;
}

std::optional<uint64_t> TimerWheel::NextDeadline() const {
  if (size_ == 0) {
    return std::nullopt;
  }
  const uint32_t cur = static_cast<uint32_t>(cursor_ms_ % kSlots);
  const uint32_t next = NextNonEmpty(cur);
  const uint64_t distance = (next + kSlots - cur) % kSlots;
  // Entries of a later turn may sit there: the caller wakes early and PopExpired re-checks.
  uint64_t earliest = ~uint64_t{0};
  for (const Entry* e = slots_[next].first; e != nullptr; e = e->next) {
    earliest = e->deadline_ms < earliest ? e->deadline_ms : earliest;
  }
  const uint64_t slot_tick = cursor_ms_ + distance;
  return earliest < slot_tick + kSlots ? (earliest > slot_tick ? earliest : slot_tick) : slot_tick;
}

}  // namespace torii::core
