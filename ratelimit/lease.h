// ratelimit/lease.h: fleet-wide rate limits as leases of a shared budget.
//
// Several torii processes (and each one's workers) share one limit through a store (Redis:
// http/ runs LeaseScript() there). The store keeps the key's GCRA state (its TAT, as in
// rate_table.h) and hands out leases: "you may admit up to g requests now". A LeaseTable (one
// per process per limit, shared by its workers; sharded, one spin lock per shard, as a
// RateTable is) spends its leases locally, so the request path never waits for the store:
//
//  - a key with tokens left: one is spent, the request passes;
//  - a key without tokens: the request passes on credit (at most `batch` of them) and Check()
//    asks the caller to request a lease covering that debt plus `batch` more;
//  - the store's answer (OnGrant) settles the debt first; what it could not grant means the
//    fleet is at its limit: the key is refused locally until the store's retry time, so
//    refusals cost no round trip either, and from then on it gets no credit: a request that
//    finds no token asks for one and is refused meanwhile, until an answer grants in full;
//  - tokens unspent after `hold_ns` go back to the store (Sweep), so an idle worker does not
//    sit on budget another one needs;
//  - a store that fails or does not answer makes Check() say kStoreDown for `down_ns` (the
//    caller applies on_store_error: allow, deny or the local limit), without a request per key
//    hammering it.
//
// The error this allows, stated: a process admits on credit only while the store's last answer
// for the key granted all it was asked and had a batch to spare (the fleet was below its
// limit), or for a key it does not know (new, or forgotten after a second unused once its
// budget was whole again): at most `batch` requests per round trip. So N processes exceed the
// fleet-wide limit by at most N × batch requests each time a key reaches its limit from below
// or comes back to a process after a pause; while it stays at the limit every admitted request
// was granted by the store. Unspent tokens are at most N × batch and return within hold_ns.
//
// Bans (ban_list.h decides them per process) are published through the store with their
// duration; a lease answer for a banned key carries the ban's remaining time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/spin_lock.h"

namespace torii::ratelimit {

struct LeaseSpec {
  uint32_t batch = 1;             // tokens asked for beyond the debt; credit allowed while waiting
  uint64_t hold_ns = 100000000;   // unspent tokens go back after this (sync_interval)
  uint64_t down_ns = 1000000000;  // after a store failure, kStoreDown for this long; also how
                                  // long an answer may take before it counts as lost
  size_t max_keys = 10000;        // keys held per table

  friend bool operator==(const LeaseSpec&, const LeaseSpec&) = default;
};

// What a fleet-wide limit does with a request while the store cannot answer: limit it in this
// process alone, let it through, or refuse it.
enum class OnStoreError : uint8_t { kLocal, kAllow, kDeny };

// What to ask the store for `key` (Check and Sweep fill these; `want` 0 with a `give_back` only
// returns tokens).
struct LeaseAsk {
  uint64_t key = 0;
  std::string store_key;  // the key's name in the store (SetStoreKey)
  uint32_t want = 0;
  uint32_t give_back = 0;
  uint64_t ban_ms = 0;  // publish a ban of this length with the request
  // Which lease request this is (0: a give-back or a ban, whose answer settles nothing): an
  // answer applies to the request in flight only, never to another one that crossed it.
  uint32_t seq = 0;
};

class LeaseTable {
 public:
  explicit LeaseTable(const LeaseSpec& spec);
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;

  enum class Verdict : uint8_t { kAllow, kDeny, kBanned, kStoreDown };
  struct Outcome {
    Verdict verdict = Verdict::kAllow;
    uint64_t retry_after_ns = 0;  // kDeny / kBanned
    uint32_t remaining = 0;       // RateLimit r= (the fleet's, as of the last answer)
    uint64_t reset_ns = 0;        // RateLimit t=
    bool ask = false;             // send `request` to the store now
    bool new_key = false;         // first seen: name it with SetStoreKey (and in `request`)
    LeaseAsk request;
  };

  Outcome Check(uint64_t key, uint64_t now_ns);
  // The name of `key` in the store (the same in every process: the hash is per process), kept
  // for the requests Sweep makes.
  void SetStoreKey(uint64_t key, std::string_view name);

  // The store's answer to request `seq` (LeaseAsk::seq) for `key` (LeaseScript's reply).
  struct Grant {
    uint32_t granted = 0;
    uint64_t retry_after_ns = 0;
    uint32_t remaining = 0;
    uint64_t reset_ns = 0;
    uint64_t banned_ns = 0;
  };
  void OnGrant(uint64_t key, uint32_t seq, const Grant& grant, uint64_t now_ns);
  // Request `seq` for `key` failed (error, timeout, store down): kStoreDown for `down_ns` (0 =
  // the spec's down_ns; a connection still being made is retried sooner).
  void OnStoreError(uint64_t key, uint32_t seq, uint64_t now_ns, uint64_t down_ns = 0);
  // A ban this process decided for `key` (`store_key` its name in the store): refused here at
  // once; the returned request publishes it (with the tokens held, given back).
  LeaseAsk Ban(uint64_t key, std::string_view store_key, uint64_t ban_ns, uint64_t now_ns);

  // Tokens held past hold_ns are returned, idle keys forgotten (once the store's budget for
  // them is whole again). Every worker may call it every hold_ns or so: it runs at most once
  // per hold_ns / 2. Appends the requests to send to `out`.
  void Sweep(uint64_t now_ns, std::vector<LeaseAsk>* out);

  bool store_down(uint64_t now_ns) const {
    return now_ns < down_until_.load(std::memory_order_relaxed);
  }
  size_t size() const;
  static constexpr uint32_t kShards = 16;
  const LeaseSpec& spec() const { return spec_; }

 private:
  struct Lease {
    uint32_t tokens = 0;
    uint32_t debt = 0;        // admitted without a token, not yet charged to the store
    uint32_t asked_debt = 0;  // part of `debt` the request in flight covers
    bool pending = false;
    uint32_t pending_seq = 0;
    uint64_t pending_since = 0;  // an answer lost (a reload replaced the connection) expires
    bool banned = false;
    bool starved = false;  // the last answer granted less than asked: no credit
    uint64_t granted_ns = 0;
    uint64_t denied_until = 0;
    uint64_t last_ns = 0;
    uint32_t remaining = 0;
    uint64_t reset_at = 0;
    std::string store_key;
  };

  struct alignas(64) Shard {
    base::SpinLock mu;
    std::unordered_map<uint64_t, Lease> keys;
    uint32_t next_seq = 0;
    uint64_t last_sweep = 0;
    std::vector<LeaseAsk> evicted;  // give-backs of keys evicted by Check, sent by Sweep
  };

  Shard& ShardOf(uint64_t key) { return shards_[key % kShards]; }
  LeaseAsk AskFor(Shard& shard, uint64_t key, Lease& lease, uint64_t now_ns);
  // The key's entry, made (room made first in a full shard) when absent: *added says so.
  Lease& FindOrAdd(Shard& shard, uint64_t key, bool* added);
  // A full shard: the least recently used of a few keys sampled (none waiting for the store)
  // goes, its tokens given back. O(1): a flood of new keys costs no scan.
  void MakeRoom(Shard& shard, uint64_t key);

  LeaseSpec spec_;
  size_t shard_keys_;  // max_keys per shard
  std::atomic<uint64_t> down_until_{0};
  std::unique_ptr<Shard[]> shards_;
};

// The Lua script the store runs for one lease request. KEYS[1] = the key's TAT, KEYS[2] = its
// ban; ARGV = T (µs), tau (µs), want, give_back, ban_ms. Returns {granted, retry_after_us,
// remaining, reset_us, banned_ms}. The store's clock (TIME) is the only clock, so the fleet's
// processes need not agree on theirs.
const std::string& LeaseScript();

// The lease size for a limit: the requests of one sync interval at the full rate, at least 1,
// at most half the burst (so one worker cannot hold a client's whole burst).
uint32_t LeaseBatch(uint64_t interval_ns, uint32_t burst, uint64_t sync_ns);

}  // namespace torii::ratelimit
