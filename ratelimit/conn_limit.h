// ratelimit/conn_limit.h: concurrent connections per client key (`max_conns_per_ip`), counted
// across every worker of the process.
//
// Owns: ConnLimiter, a sharded table key → open connections. A key is stored only while it
// holds at least one connection (Release to 0 removes it), so the table's size is the number
// of distinct clients connected right now, bounded by `max_keys`.
//
// When a key's shard is full (every stored key holds a connection: there is nothing idle to
// drop, and dropping a held count would let that client exceed its limit later) TryAcquire
// for a NEW key fails: the caller refuses that connection as over the limit. Keys already
// stored keep working. The bound is per shard (max_keys split evenly over the shards), so with
// uneven hashing a new key can be refused a little before max_keys keys are stored in all.
//
// Concurrency: one SpinLock per shard, no global lock; exact (N threads racing for the last
// connection of a key: exactly one wins). No allocation except when a new key doubles its
// shard's slot array.
//
// Leaves out: the per-listener total (an atomic counter in the caller), what a key is (HashIp)
// and the closing of the refused connection.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "ratelimit/flat_table.h"

namespace torii::ratelimit {

class ConnLimiter {
 public:
  // At most `limit` connections per key (0 refuses every connection), at most `max_keys` keys
  // (0 is taken as 1). `shards` is clamped to 1..max_keys.
  ConnLimiter(uint32_t limit, size_t max_keys, uint32_t shards = 64);
  ConnLimiter(const ConnLimiter&) = delete;
  ConnLimiter& operator=(const ConnLimiter&) = delete;

  // Takes one connection for `key_hash`. False when the key already holds `limit`, or when it
  // holds none and its shard is full of keys that all hold connections.
  bool TryAcquire(uint64_t key_hash);
  // Gives back a connection taken by a successful TryAcquire (exactly once each). A key that
  // drops to 0 is removed. Releasing a key that holds none is ignored.
  void Release(uint64_t key_hash);

  uint32_t Count(uint64_t key_hash) const;  // connections `key_hash` holds now
  size_t size() const;                      // keys holding at least one connection
  uint32_t limit() const { return limit_; }

 private:
  struct Entry {
    uint32_t count = 0;  // 0 = empty slot
    bool occupied() const { return count != 0; }
  };
  struct alignas(64) Shard {
    detail::SpinLock lock;
    detail::FlatTable<Entry> table;
    std::atomic<size_t> size{0};
  };
  Shard& ShardFor(uint64_t mixed) const { return shards_[detail::ShardOf(mixed, shard_count_)]; }

  uint32_t limit_;
  uint32_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace torii::ratelimit
