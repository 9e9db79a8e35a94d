// ratelimit/rate_table.h: request rate limits (GCRA), one table per [rate_limit.NAME].
//
// Owns: Rate and ParseRate ("100/s"), LimitSpec, Decision, and RateTable, the per-key state of
// one limit, shared by every worker thread of the process so a client whose connections land
// on different workers meets one limit.
//
// The algorithm is GCRA (the Generic Cell Rate Algorithm of ATM, ITU-T I.371; what redis-cell
// and Go's throttled implement), a token bucket without the bucket: a key's whole state is one
// time, its TAT
// (theoretical arrival time). With T = period / count (the emission interval) and a burst
// tolerance tau = burst * T, for a request of `cost` at `now`:
//
//   start   = max(TAT, now)          the moment this request's share of the rate begins
//   new_TAT = start + cost * T
//   allowed iff new_TAT - now <= tau + T;  then TAT = new_TAT, else TAT is unchanged.
//
// What that means to a client:
//  - `burst` is how many requests beyond the steady rate may arrive at once: a fresh (or idle)
//    key may make burst + 1 requests at the same instant. Rate 10/s, burst 5: six pass, the
//    seventh is rejected with retry_after 100 ms, and after that one request more every 100 ms.
//    burst 0 means strictly one request per T.
//  - Rejected requests cost nothing (TAT does not move), so a client hammering a limit is let
//    through again at exactly the rate, not locked out.
//  - Delay mode (`delay_mode`, nginx's limit_req without `nodelay`) admits exactly the same
//    requests but spaces them: each allowed request gets delay_ns = start - now, so the first
//    request of a burst goes at once and the next ones at T, 2T, ... burst*T; the burst+2nd
//    concurrent request is rejected. Up to `burst` requests wait at any time. The caller holds
//    a request for delay_ns before forwarding it.
//  - A request whose cost alone exceeds burst + 1 can never pass: rejected with retry_after_ns
//    = UINT64_MAX ("never"). cost 0 asks without consuming (a fresh key is not stored).
//  - remaining = how many cost-1 requests would still be admitted right now (after this one);
//    reset_ns = time until the key is back to a full quota (burst + 1). They feed the IETF
//    RateLimit header (limit = burst + 1). In delay mode "admitted" includes delayed.
//  - T is rounded down to whole nanoseconds (7/s → 142857142 ns), i.e. at most 1 ns per
//    request in the client's favour. Clocks: `now` is any monotonic nanosecond count (the
//    same clock for every caller); a caller whose `now` is a little behind another's is
//    handled (max() above), it only sees the state as of its own `now`.
//
// Bounded memory: the table holds at most spec.max_keys keys, split evenly over the shards
// (each shard at most its share; shards are clamped to max_keys). A key whose TAT <= now is
// idle: its state is the same as no state, so dropping it changes no decision. Inserting a new
// key into a full shard sweeps that shard once (detail::EvictBatch): every idle key goes, and
// when idle keys are fewer than an eighth of the shard, so do up to an eighth of its active
// keys, those closest to idle (smallest TAT, estimated from a 128-slot sample). A dropped
// active key is handed back at most (TAT - now) of quota, and the active keys kept are further
// from idle (up to the sample's accuracy), so a flood of fresh keys (TAT = now + T) evicts its
// own kind before any client that has spent its burst. A flood of distinct keys therefore
// cannot grow memory past max_keys, and costs amortised O(1) per new key: one
// O(max_keys / shards) sweep pays for the next shard/8 inserts. Slots are 16 bytes; a shard's
// slot array grows on demand up to the power of two that holds its share at 3/4 load (about
// 4 MiB for 100k keys over 64 shards) and is never shrunk.
//
// Concurrency: one SpinLock per shard (cache-line sized, so shards never share a line); no
// global lock. Check() is exact: N threads racing for a key's last unit of quota let exactly
// one through. No allocation on Check() of a key already stored; a new key may double its
// shard's slot array (amortised, bounded by max_keys).
//
// Leaves out: what a key is (the caller hashes an address with HashIp(), or text with
// HashKey()), the clock, the HTTP answer (429, Retry-After, RateLimit headers: http/), bans
// (ban_list.h) and the queue that delay mode implies (the caller's timers).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "ratelimit/flat_table.h"

namespace torii::ratelimit {

struct Rate {
  uint64_t count = 0;      // requests ...
  uint64_t period_ns = 0;  // ... per this period

  friend bool operator==(const Rate&, const Rate&) = default;
};

// "<count>/<unit>": count 1..1e9 in decimal digits, unit s, m, h or d.
// "100/s" = {100, 1e9}, "6000/m" = {6000, 60e9}. nullopt for anything else (spaces, 0,
// missing unit, overflow).
std::optional<Rate> ParseRate(std::string_view text);

struct LimitSpec {
  Rate rate;
  uint32_t burst = 0;        // extra requests allowed at once (immediate) or queued (delay mode)
  size_t max_keys = 100000;  // keys held at most (0 is taken as 1)
  bool delay_mode = false;   // nginx limit_req without nodelay: delay instead of allowing at once

  friend bool operator==(const LimitSpec&, const LimitSpec&) = default;
};

// What a limit counts by: the client's address (or its /N prefix), a request header's value,
// or the route (one budget shared by every client).
enum class LimitKey : uint8_t { kClientIp, kHeader, kRoute };

// The answer to one Check(). All durations are from the `now` passed in.
struct Decision {
  bool allowed = true;
  uint64_t delay_ns = 0;  // delay mode: how long to hold the request before forwarding (0 = now)
  // When rejected: time until the request would be allowed; UINT64_MAX = never.
  uint64_t retry_after_ns = 0;
  uint32_t remaining = 0;  // requests still allowed right now (for the RateLimit header)
  uint64_t reset_ns = 0;   // time until the full quota is back (for the RateLimit header)
};

class RateTable {
 public:
  // A rate with count 0 is taken as 1 and a period shorter than count as one ns per request
  // (ParseRate never produces either). `shards` is clamped to 1..max_keys.
  explicit RateTable(const LimitSpec& spec, uint32_t shards = 64);
  RateTable(const RateTable&) = delete;
  RateTable& operator=(const RateTable&) = delete;

  // Counts a request of `cost` (usually 1) for `key_hash` at `now_ns` and says whether it may
  // pass (see the file comment for the exact rule). Thread-safe.
  Decision Check(uint64_t key_hash, uint64_t now_ns, uint32_t cost = 1);

  size_t size() const;  // keys held (for tests and metrics)
  const LimitSpec& spec() const { return spec_; }

  // The emission interval T and burst tolerance tau, in ns, as used (for tests and headers).
  uint64_t interval_ns() const { return interval_ns_; }
  uint64_t tolerance_ns() const { return tolerance_ns_; }
  uint32_t shard_count() const { return shard_count_; }

 private:
  struct Entry {
    uint64_t tat = 0;  // 0 = empty slot; a stored TAT is at least T >= 1
    bool occupied() const { return tat != 0; }
  };
  struct alignas(64) Shard {
    detail::SpinLock lock;
    detail::FlatTable<Entry> table;
    std::atomic<size_t> size{0};  // mirror of table.size() readable without the lock
  };

  // Makes room in a full shard (lock held): detail::EvictBatch on the TATs.
  static void Evict(Shard& shard, uint64_t now_ns);

  LimitSpec spec_;
  uint64_t interval_ns_;   // T
  uint64_t tolerance_ns_;  // tau
  uint64_t horizon_ns_;    // tau + T (saturated)
  uint32_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace torii::ratelimit
