// ratelimit/conn_limit.cc: ConnLimiter (conn_limit.h).
#include "ratelimit/conn_limit.h"

#include <mutex>

namespace torii::ratelimit {

ConnLimiter::ConnLimiter(uint32_t limit, size_t max_keys, uint32_t shards) : limit_(limit) {
  if (max_keys == 0) {
    max_keys = 1;
  }
  shard_count_ = shards == 0 ? 1 : shards;
  if (shard_count_ > max_keys) {
    shard_count_ = static_cast<uint32_t>(max_keys);
  }
  shards_ = std::make_unique<Shard[]>(shard_count_);
  const size_t base = max_keys / shard_count_;
  const size_t extra = max_keys % shard_count_;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    shards_[i].table.SetCapacity(base + (i < extra ? 1 : 0));
  }
}

bool ConnLimiter::TryAcquire(uint64_t key_hash) {
  if (limit_ == 0) {
    return false;
  }
  const uint64_t mixed = detail::Mix64(key_hash);
  Shard& shard = ShardFor(mixed);
  std::lock_guard<detail::SpinLock> hold(shard.lock);
  Entry* entry = shard.table.Find(key_hash, mixed);
  if (entry != nullptr) {
    if (entry->count >= limit_) {
      return false;
    }
    ++entry->count;
    return true;
  }
  if (shard.table.full()) {
    return false;  // every key here holds a connection: nothing may be dropped
  }
  shard.table.Insert(key_hash, mixed, Entry{1});
  shard.size.store(shard.table.size(), std::memory_order_relaxed);
  return true;
}

void ConnLimiter::Release(uint64_t key_hash) {
  const uint64_t mixed = detail::Mix64(key_hash);
  Shard& shard = ShardFor(mixed);
  std::lock_guard<detail::SpinLock> hold(shard.lock);
  Entry* entry = shard.table.Find(key_hash, mixed);
  if (entry == nullptr) {
    return;
  }
  if (--entry->count == 0) {
    shard.table.Erase(entry);
    shard.size.store(shard.table.size(), std::memory_order_relaxed);
  }
}

uint32_t ConnLimiter::Count(uint64_t key_hash) const {
  const uint64_t mixed = detail::Mix64(key_hash);
  Shard& shard = ShardFor(mixed);
  std::lock_guard<detail::SpinLock> hold(shard.lock);
  const Entry* entry = shard.table.Find(key_hash, mixed);
  return entry != nullptr ? entry->count : 0;
}

size_t ConnLimiter::size() const {
  size_t n = 0;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    n += shards_[i].size.load(std::memory_order_relaxed);
  }
  return n;
}

}  // namespace torii::ratelimit
