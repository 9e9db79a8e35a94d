// ratelimit/flat_table.h: the building blocks of the sharded key tables (internal).
//
// Owns: SpinLock, the per-shard lock, and FlatTable<V>, a bounded open-addressing map from a
// 64-bit key to a small trivially copyable value. Linear probing, backward-shift deletion (no
// tombstones, so a table churned by a flood never degrades), power-of-two slot counts that
// grow by doubling from nothing up to the smallest size that holds `capacity` entries at a
// load of 3/4, and never beyond. Nothing is allocated by Find() or by updating a value in
// place; Insert() allocates only when it doubles the slot array.
//
// Also owns EvictBatch(), the eviction policy the tables share: expired entries first, then
// the live ones closest to expiry, in batches.
//
// Leaves out: locking (the owner holds its shard's SpinLock around every call), what "expired"
// means for a value (the owner says) and hashing (the owner passes detail::Mix64(key), and the
// table recomputes it when it moves entries).
//
// V must be trivially copyable, and a value-initialised V{} must be "empty":
// `V::occupied()` is false for it and true for every value the owner stores.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <type_traits>

#include "base/spin_lock.h"
#include "ratelimit/hash.h"

namespace torii::ratelimit::detail {

using SpinLock = base::SpinLock;  // base/spin_lock.h

template <class V>
class FlatTable {
  static_assert(std::is_trivially_copyable_v<V>);

 public:
  struct Slot {
    uint64_t key;
    V value;
  };

  // Holds at most `capacity` entries (at least 1).
  explicit FlatTable(size_t capacity = 1) { SetCapacity(capacity); }
  FlatTable(const FlatTable&) = delete;
  FlatTable& operator=(const FlatTable&) = delete;

  // Sets the bound (at least 1). Only on an empty table that has never grown (construction
  // time: arrays of shards are built first, then each gets its share).
  void SetCapacity(size_t capacity) {
    capacity_ = capacity == 0 ? 1 : capacity;
    max_slots_ = 4;
    while (max_slots_ / 4 * 3 < capacity_) {
      max_slots_ *= 2;
    }
  }

  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool full() const { return size_ >= capacity_; }
  // Memory held, for tests and metrics.
  size_t slot_count() const { return slots_count_; }
  // EraseIf() calls so far (a changing salt for EvictBatch).
  uint64_t sweeps() const { return sweeps_; }

  // The value stored under `key` (whose mix is `mixed`), or nullptr. The pointer stays valid
  // until the next Insert() or Erase*() on this table.
  V* Find(uint64_t key, uint64_t mixed) {
    if (slots_count_ == 0) {
      return nullptr;
    }
    const size_t mask = slots_count_ - 1;
    for (size_t i = mixed & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (!s.value.occupied()) {
        return nullptr;
      }
      if (s.key == key) {
        return &s.value;
      }
    }
  }
  const V* Find(uint64_t key, uint64_t mixed) const {
    return const_cast<FlatTable*>(this)->Find(key, mixed);
  }

  // Stores `value` (occupied) under `key`, which must be absent, in a table that is not
  // full(). Returns where it went (valid until the next Insert() or Erase*()).
  V* Insert(uint64_t key, uint64_t mixed, const V& value) {
    if ((size_ + 1) > slots_count_ / 4 * 3) {
      Grow();
    }
    const size_t mask = slots_count_ - 1;
    size_t i = mixed & mask;
    while (slots_[i].value.occupied()) {
      i = (i + 1) & mask;
    }
    slots_[i].key = key;
    slots_[i].value = value;
    ++size_;
    return &slots_[i].value;
  }

  // Erases the entry whose value `value` points at (from Find() or Insert()).
  void Erase(V* value) {
    Slot* slot = reinterpret_cast<Slot*>(reinterpret_cast<char*>(value) - offsetof(Slot, value));
    EraseAt(static_cast<size_t>(slot - slots_.get()));
  }

  // Calls `pred(key, value)` on every entry (an entry may be visited twice when the sweep
  // moves it; the predicate must not turn from false to true for an entry it has seen) and
  // erases, at once, each entry for which it returns true; `pred` sees every erased entry
  // exactly once, so it may release what the entry owns. Returns how many were erased.
  // O(slot_count()). Each sweep starts at a different pseudo-random slot, so a predicate that
  // stops after a budget does not always favour the entries at the start of the array.
  template <class Pred>
  size_t EraseIf(Pred pred) {
    if (slots_count_ == 0) {
      return 0;
    }
    const size_t mask = slots_count_ - 1;
    size_t erased = 0;
    size_t i = Mix64(++sweeps_) & mask;
    for (size_t step = 0; step < slots_count_;) {
      Slot& s = slots_[i];
      if (s.value.occupied() && pred(s.key, s.value)) {
        EraseAt(i);  // may pull a later entry into slot i: look at i again
        ++erased;
      } else {
        i = (i + 1) & mask;
        ++step;
      }
    }
    return erased;
  }

  // Writes `score(value)` of up to `max` entries taken at evenly spaced slots (every slot when
  // slot_count() <= max) into `out`; returns how many. Slot positions come from the mixed key,
  // so an even spread of slots is a fair sample of the entries. O(max).
  template <class Score>
  size_t Sample(Score score, uint64_t* out, size_t max) const {
    if (slots_count_ == 0 || max == 0) {
      return 0;
    }
    const size_t stride = slots_count_ > max ? slots_count_ / max : 1;
    size_t n = 0;
    for (size_t i = 0; i < slots_count_ && n < max; i += stride) {
      if (slots_[i].value.occupied()) {
        out[n++] = score(slots_[i].value);
      }
    }
    return n;
  }

  // The occupied entry minimising `score(value)`, or nullptr when empty. O(slot_count()).
  template <class Score>
  V* MinBy(Score score) {
    V* best = nullptr;
    uint64_t best_score = 0;
    for (size_t i = 0; i < slots_count_; ++i) {
      Slot& s = slots_[i];
      if (s.value.occupied()) {
        const uint64_t sc = score(s.value);
        if (best == nullptr || sc < best_score) {
          best = &s.value;
          best_score = sc;
        }
      }
    }
    return best;
  }

 private:
  void Grow() {
    const size_t n = slots_count_ == 0 ? (max_slots_ < 16 ? max_slots_ : 16) : slots_count_ * 2;
    std::unique_ptr<Slot[]> old = std::move(slots_);
    const size_t old_count = slots_count_;
    slots_ = std::make_unique<Slot[]>(n);  // value-initialised: every slot empty
    slots_count_ = n;
    const size_t mask = n - 1;
    for (size_t j = 0; j < old_count; ++j) {
      if (old[j].value.occupied()) {
        size_t i = Mix64(old[j].key) & mask;
        while (slots_[i].value.occupied()) {
          i = (i + 1) & mask;
        }
        slots_[i] = old[j];
      }
    }
  }

  // Backward-shift deletion (Knuth 6.4 Algorithm R): every later entry of the cluster that
  // may sit closer to its home slot moves into the hole, so probes never need tombstones.
  void EraseAt(size_t hole) {
    const size_t mask = slots_count_ - 1;
    size_t j = hole;
    for (;;) {
      j = (j + 1) & mask;
      Slot& s = slots_[j];
      if (!s.value.occupied()) {
        break;
      }
      const size_t home = Mix64(s.key) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        slots_[hole] = s;
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --size_;
  }

  size_t capacity_ = 1;
  size_t max_slots_ = 4;
  size_t size_ = 0;
  size_t slots_count_ = 0;
  uint64_t sweeps_ = 0;  // EraseIf calls: seeds where each sweep starts
  std::unique_ptr<Slot[]> slots_;
};

// Makes room in a full `table` whose entries each carry a time after which they are the same
// as no entry (`expires(value)`: a GCRA TAT, a ban's end). Erases every expired entry
// (expires <= now). If a sample of the slots says those are fewer than an eighth of the
// capacity, it also erases about capacity/8 live entries, those closest to expiry: a
// threshold is taken from the sample, entries below it go, and entries exactly at it (ties are
// common: a flood of new keys within one clock tick all carry the same TAT) go with the
// probability that fills the batch, decided by a salted hash of the key. Deciding ties by
// position instead (the first ones a sweep meets) would empty one stretch of the array
// while another fills up, and linear probing would then walk ever longer clusters.
// The batch is what makes a flood cheap: one sweep of the slots (plus a 128-slot sample)
// pays for about the next capacity/8 inserts, instead of a sweep per insert. `on_erase(value)`
// sees each erased entry once (to release what it owns). Returns how many were erased: at
// least one when the table is not empty.
template <class V, class Expires, class OnErase>
size_t EvictBatch(FlatTable<V>& table, uint64_t now, Expires expires, OnErase on_erase) {
  constexpr size_t kSample = 128;
  uint64_t sample[kSample];
  const size_t n = table.Sample(expires, sample, kSample);
  if (n == 0) {
    return 0;
  }
  const size_t size = table.size();
  const size_t target = table.capacity() / 8 > 0 ? table.capacity() / 8 : 1;
  // The sampled expiry below which about `target` of the table's entries lie.
  size_t k = (n * target + size - 1) / size;
  k = k == 0 ? 1 : (k > n ? n : k);
  std::nth_element(sample, sample + (k - 1), sample + n);
  const uint64_t threshold = sample[k - 1] > now ? sample[k - 1] : now;
  // Scale the sample's counts to the table: entries strictly below the threshold all go; the
  // rest of the batch is drawn from those exactly at it.
  size_t below = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    below += sample[i] < threshold ? 1 : 0;
    at += sample[i] == threshold ? 1 : 0;
  }
  const uint64_t want_at = below * size / n < target ? target - below * size / n : 0;
  const uint64_t expect_at = at * size / n > 0 ? at * size / n : 1;
  const uint64_t cut =
      want_at >= expect_at
          ? ~uint64_t{0}
          : static_cast<uint64_t>((static_cast<unsigned __int128>(want_at) << 64) / expect_at);
  const uint64_t salt = Mix64(table.sweeps() + 0x9e3779b97f4a7c15ull);
  size_t live_budget = target;
  size_t erased = table.EraseIf([&](uint64_t key, const V& v) {
    const uint64_t e = expires(v);
    if (e <= now) {
      on_erase(v);
      return true;
    }
    if (live_budget > 0 && (e < threshold || (e == threshold && Mix64(key ^ salt) <= cut))) {
      --live_budget;
      on_erase(v);
      return true;
    }
    return false;
  });
  if (erased == 0) {
    // The draw took nothing (possible, if unlikely): fall back to the single closest entry.
    if (V* closest = table.MinBy(expires)) {
      on_erase(*closest);
      table.Erase(closest);
      erased = 1;
    }
  }
  return erased;
}

}  // namespace torii::ratelimit::detail
