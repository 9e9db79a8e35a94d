// ratelimit/ban_list.cc: BanList (ban_list.h).
#include "ratelimit/ban_list.h"

#include <limits>
#include <mutex>

namespace torii::ratelimit {
namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

uint64_t SatAdd(uint64_t a, uint64_t b) { return a > kNever - b ? kNever : a + b; }

}  // namespace

BanList::BanList(const BanSpec& spec, uint32_t shards) : spec_(spec) {
  if (spec_.ban_after > kMaxBanAfter) {
    spec_.ban_after = kMaxBanAfter;
  }
  if (spec_.max_keys == 0) {
    spec_.max_keys = 1;
  }
  shard_count_ = shards == 0 ? 1 : shards;
  if (shard_count_ > spec_.max_keys) {
    shard_count_ = static_cast<uint32_t>(spec_.max_keys);
  }
  shards_ = std::make_unique<Shard[]>(shard_count_);
  const size_t base = spec_.max_keys / shard_count_;
  const size_t extra = spec_.max_keys % shard_count_;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    shards_[i].table.SetCapacity(base + (i < extra ? 1 : 0));
  }
}

bool BanList::RecordViolation(uint64_t key_hash, uint64_t now_ns) {
  const uint32_t n = spec_.ban_after;
  if (n == 0) {
    return false;
  }
  const uint64_t mixed = detail::Mix64(key_hash);
  Shard& shard = ShardFor(mixed);
  std::lock_guard<detail::SpinLock> hold(shard.lock);
  Entry* entry = shard.table.Find(key_hash, mixed);
  if (entry == nullptr) {
    if (shard.table.full()) {
      Evict(shard, now_ns);
    }
    Entry fresh;
    if (!shard.free.empty()) {
      fresh.record = shard.free.back() + 1;
      shard.free.pop_back();
    } else {
      fresh.record = static_cast<uint32_t>(shard.times.size() / n) + 1;
      shard.times.resize(shard.times.size() + n);  // bounded: records <= shard capacity
    }
    entry = shard.table.Insert(key_hash, mixed, fresh);
    shard.size.store(shard.table.size(), std::memory_order_relaxed);
  } else if (now_ns < entry->banned_until) {
    return false;  // already banned: neither extended nor restarted
  }

  uint64_t* ring = shard.times.data() + static_cast<size_t>(entry->record - 1) * n;
  ring[entry->head] = now_ns;
  entry->head = static_cast<uint16_t>((entry->head + 1) % n);
  if (entry->count < n) {
    ++entry->count;
  }
  if (entry->count == n) {
    const uint64_t oldest = ring[entry->head];  // with a full ring, head is the oldest
    const uint64_t span = now_ns > oldest ? now_ns - oldest : 0;
    if (span <= spec_.window_ns) {
      entry->banned_until = SatAdd(now_ns, spec_.ban_for_ns);
      entry->count = 0;
      entry->head = 0;
      const uint64_t forget = SatAdd(now_ns, spec_.window_ns);
      entry->expires = entry->banned_until > forget ? entry->banned_until : forget;
      bans_started_.fetch_add(1, std::memory_order_release);
      return true;
    }
  }
  // The ring's violations stop mattering once the newest one leaves the window.
  const uint64_t forget = SatAdd(now_ns, spec_.window_ns);
  entry->expires = entry->banned_until > forget ? entry->banned_until : forget;
  return false;
}

bool BanList::IsBanned(uint64_t key_hash, uint64_t now_ns) const {
  if (bans_started_.load(std::memory_order_acquire) == 0) {
    return false;
  }
  return now_ns < BannedUntil(key_hash);
}

uint64_t BanList::BannedUntil(uint64_t key_hash) const {
  const uint64_t mixed = detail::Mix64(key_hash);
  Shard& shard = ShardFor(mixed);
  std::lock_guard<detail::SpinLock> hold(shard.lock);
  const Entry* entry = shard.table.Find(key_hash, mixed);
  return entry != nullptr ? entry->banned_until : 0;
}

void BanList::Evict(Shard& shard, uint64_t now_ns) {
  detail::EvictBatch(
      shard.table, now_ns, [](const Entry& e) { return e.expires; },
      [&shard](const Entry& e) { shard.free.push_back(e.record - 1); });
}

size_t BanList::size() const {
  size_t n = 0;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    n += shards_[i].size.load(std::memory_order_relaxed);
  }
  return n;
}

}  // namespace torii::ratelimit
