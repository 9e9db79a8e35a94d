// ratelimit/ban_list.h: automatic bans (the "block malicious IPs" job, fail2ban's
// maxretry/findtime/bantime inside the proxy).
//
// Owns: BanSpec and BanList, a sharded table key → recent violations and ban end. A violation
// is whatever the caller decides (a request its rate limit rejected). A key that records
// `ban_after` violations within `window_ns` (the newest minus the oldest of them <= window_ns;
// a sliding window, exact: the last ban_after violation times are kept per key) is banned
// for `ban_for_ns` from that violation. While banned, further violations are ignored: they
// neither extend nor restart the ban (the caller refuses a banned key before it can violate
// anything). When a ban starts the key's violations are forgotten, so after it ends the key
// needs ban_after fresh violations to be banned again.
//
// Bounded memory: at most max_keys keys, split over the shards. A key expires when its ban
// has ended and its newest violation is older than the window: its state is then the same as
// none. A new key arriving in a full shard sweeps it once (detail::EvictBatch, as for
// RateTable): every expired key goes and, when those are fewer than an eighth of the shard, up
// to an eighth of the live keys, those expiring soonest (violators whose window is nearly
// over, bans about to end) — so a flood of one-off violators evicts its own kind before a ban
// in force. ban_after is capped at kMaxBanAfter so a key's memory is bounded too
// (max_keys * ban_after * 8 bytes of violation times at most, allocated as keys arrive).
//
// Concurrency: one SpinLock per shard, no global lock. IsBanned() on a list that has never
// banned anyone reads one atomic and takes no lock.
//
// Leaves out: what a violation is, what a key is, logging (RecordViolation says when a ban
// starts so the caller logs it once) and the 403.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ratelimit/flat_table.h"

namespace torii::ratelimit {

struct BanSpec {
  uint32_t ban_after = 0;   // violations that ban; 0 = bans off; capped at kMaxBanAfter
  uint64_t window_ns = 0;   // ... within this long
  uint64_t ban_for_ns = 0;  // ban length
  size_t max_keys = 100000;

  friend bool operator==(const BanSpec&, const BanSpec&) = default;
};

class BanList {
 public:
  static constexpr uint32_t kMaxBanAfter = 64;

  // `shards` is clamped to 1..max_keys (max_keys 0 is taken as 1).
  explicit BanList(const BanSpec& spec, uint32_t shards = 64);
  BanList(const BanList&) = delete;
  BanList& operator=(const BanList&) = delete;

  // Records a violation by `key_hash` at `now_ns`. True when THIS violation starts a ban (so
  // the caller logs once); false otherwise, including when bans are off or the key is already
  // banned.
  bool RecordViolation(uint64_t key_hash, uint64_t now_ns);
  // True while `key_hash` is banned: now_ns < BannedUntil(key_hash).
  bool IsBanned(uint64_t key_hash, uint64_t now_ns) const;
  // The end of the key's latest ban (possibly past), or 0 if none is remembered.
  uint64_t BannedUntil(uint64_t key_hash) const;

  size_t size() const;  // keys held: violators and banned keys (for tests and metrics)
  const BanSpec& spec() const { return spec_; }

 private:
  struct Entry {
    uint64_t expires = 0;       // when the state becomes the same as none
    uint64_t banned_until = 0;  // 0 = never banned
    uint32_t record = 0;        // 1 + index of the key's violation ring; 0 = empty slot
    uint16_t count = 0;         // violations in the ring (<= ban_after)
    uint16_t head = 0;          // next ring position to write; the oldest when count is full
    bool occupied() const { return record != 0; }
  };
  struct alignas(64) Shard {
    detail::SpinLock lock;
    detail::FlatTable<Entry> table;
    std::vector<uint64_t> times;  // violation rings, ban_after per record
    std::vector<uint32_t> free;   // records of erased keys, reused first
    std::atomic<size_t> size{0};
  };
  Shard& ShardFor(uint64_t mixed) const { return shards_[detail::ShardOf(mixed, shard_count_)]; }
  void Evict(Shard& shard, uint64_t now_ns);  // lock held, shard full

  BanSpec spec_;
  uint32_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
  // Bans ever started (never decremented): while 0, IsBanned() needs no lock.
  std::atomic<uint64_t> bans_started_{0};
};

}  // namespace torii::ratelimit
