// cache/store.h: the process-wide response store, shared by every worker thread.
//
// Owns: Store, a sharded, lock-striped, memory-bounded map from a primary cache key to the
// stored responses (Entry) of that key, one per Vary-selected variant; the eviction policy;
// and the request-coalescing registry (which request fetches a missing key while the others
// wait for it), kept here because it too must be shared by every worker.
//
// Keys. The caller builds the primary key (scheme, host, port, path, query...) and hashes it
// with a keyed hash (an attacker who could choose colliding keys under a public hash could
// pile them into one bucket). The store only mixes that hash (fmix64) to pick a shard and a
// bucket, and compares keys in full, so a hash collision never serves another URL's response.
//
// Variants. A key holds up to kMaxVariants entries, newest first. Lookup() returns the newest
// one whose Vary fields match the request, as decided by the VaryMatcher given to the
// constructor (cache/policy.h's VaryMatches(); the store knows nothing of header
// normalisation). Inserting an entry whose Vary fields equal a stored variant's replaces it.
//
// Memory. Each entry is charged ChargeOf(): its body, headers, strings, key and a fixed
// bookkeeping allowance that also covers the store's own index, node and control block. The
// budget `memory` is split evenly over the shards and each shard evicts until its entries fit
// its share, so bytes() <= memory holds at all times, under any flood of distinct URLs. An
// object can only be stored if it fits a shard several times over: max_object() is
// min(options.max_object, shard budget / kObjectsPerShard), and when the shard count is picked
// (shards = 0) it is the largest power of two <= 64 that keeps options.max_object storable.
// With the defaults (256 MiB, 8 MiB) that is 8 shards of 32 MiB; a store of 1 MiB has one
// shard and a max_object of 256 KiB. One insert therefore never flushes more than a quarter
// of a shard. The fill registry is outside the byte budget, bounded by max_fills (and by
// connections); the index, node and ghost arrays grow with the entries and are covered by
// kEntryOverhead.
//
// Eviction: S3-FIFO per shard (Yang et al., "FIFO queues are all you need for cache
// eviction", SOSP 2023). New entries enter a small FIFO queue (kSmallPercent of the shard's
// budget); a Lookup() hit only counts on the entry (a frequency capped at 3), it moves
// nothing. When the shard is over budget, the small queue gives up its oldest entry while it
// holds its share: to the main queue if it was hit since it arrived, else out, its key hash
// remembered in a ghost table; the main queue's oldest entry is reinserted with one hit less
// if it was hit, else evicted. A key evicted from the small queue unhit and stored again soon
// after (its second request) goes straight to main. One-hit wonders (a crawler, a flood of
// cache-busting queries) thus only cycle through the small queue and cannot flush entries in
// use, and a hit writes nothing but its own node: hits on different keys of a shard share no
// cache line but the lock's, where LRU would move both to one list head. Amortised O(1): each
// reinsertion spends an earlier hit. The ghost is direct-mapped and lossy (about one slot per
// entry held), the bounded form of the paper's ghost queue. A replaced variant inherits the
// queue and hits of the one it replaces.
//
// Concurrency: one spin lock per shard (cache-line aligned, no global lock; a std::mutex
// costs as much again as the critical sections it would guard). Lookup() of an entry without
// Vary takes the lock once, allocates nothing and returns a shared_ptr copy; an entry with
// Vary is matched outside the lock (the matcher reads request headers through a virtual
// call and may allocate) and the lock is taken a second time to record the hit. Evicted and
// replaced entries are released after the lock is dropped, so freeing a large body never
// stalls other threads on the shard. Readers keep what they hold: eviction only drops the
// store's reference. Counters live in their shard (written under its lock, read without it).
//
// Leaves out: freshness, storability and Vary normalisation (policy.h), key building and
// hashing (http/), what a Waiter means and how it is woken (the caller), and time (the caller
// passes `now`, Unix seconds, as everywhere in cache/).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "cache/entry.h"

namespace torii::cache {

// Whether a stored entry with Vary fields (entry.vary non-empty) may answer `request`.
// Entries without Vary match every request and are never passed to it.
using VaryMatcher = bool (*)(const Entry& entry, const HeaderSource& request);

struct StoreOptions {
  size_t memory = size_t{256} << 20;    // bytes charged at most, all shards together
  size_t max_object = size_t{8} << 20;  // charge of one entry at most (may be lowered, above)
  uint32_t shards = 0;                  // 0 = pick (above); otherwise used as given, max 4096
  size_t max_waiters_per_fill = 65536;  // JoinFill() answers kBypass beyond this
  size_t max_fills = size_t{1} << 20;   // fills in flight at most (split over the shards)
  int64_t fill_timeout = 30;            // seconds after which a fill in flight may be taken over

  friend bool operator==(const StoreOptions&, const StoreOptions&) = default;
};

// Identifies a request waiting for a fill. Opaque to the store: the caller encodes its worker,
// connection slot and generation, and a ticket. Compared whole.
struct Waiter {
  uint64_t a = 0;
  uint64_t b = 0;
  uint64_t c = 0;
  friend bool operator==(const Waiter&, const Waiter&) = default;
};

enum class FillRole : uint8_t {
  kFill,    // the caller fetches the response and must call EndFill() exactly once
  kWait,    // another request is fetching it: the caller waits to be woken by its EndFill()
  kBypass,  // no room to wait (waiters or fills full): go to the backend without coalescing
};

// A snapshot of the counters (each summed over the shards; not one atomic snapshot).
struct StoreStats {
  size_t entries = 0;      // entries stored
  size_t bytes = 0;        // their charges
  size_t capacity = 0;     // options.memory
  uint64_t hits = 0;       // Lookup() calls that returned an entry
  uint64_t misses = 0;     // Lookup() calls that returned nullptr
  uint64_t inserts = 0;    // entries stored by Insert()
  uint64_t evictions = 0;  // entries dropped to make room (memory or kMaxVariants)
  uint64_t refusals = 0;   // Insert() calls refused: charge above max_object()
  size_t fills = 0;        // fills in flight
};

class Store {
 public:
  static constexpr size_t kMaxVariants = 16;      // per primary key; the oldest goes first
  static constexpr size_t kObjectsPerShard = 4;   // max_object() fits a shard this many times
  static constexpr uint32_t kMaxAutoShards = 64;  // shards picked when options.shards == 0
  static constexpr size_t kSmallPercent = 10;     // S3-FIFO small queue, of a shard's budget
  // Bytes charged per entry for what the store allocates around it: its rec (key header,
  // fill fields), node, index slots at 3/4 load, ghost slots, two control blocks and the
  // allocator headers of the Entry, body, key and header strings.
  static constexpr size_t kEntryOverhead = 320;

  // `matcher` decides Vary (nullptr: only entries without Vary ever match). A memory of 0 is
  // taken as 1 byte (nothing fits); max_waiters_per_fill and max_fills of 0 as 1.
  explicit Store(const StoreOptions& options = {}, VaryMatcher matcher = nullptr);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // The newest variant of `key` (whose keyed hash is `hash`) that matches `request`, or
  // nullptr. Counts a hit or a miss, and a hit on the entry for eviction. The entry stays valid
  // for as long as the caller holds it, whatever the store does meanwhile. Fresh or stale is
  // the caller's decision (policy.h). Thread-safe; allocates nothing.
  std::shared_ptr<const Entry> Lookup(std::string_view key, uint64_t hash,
                                      const HeaderSource& request);

  // Stores `entry` under `key`. `entry` must be new to the store and read by nobody else: the
  // store sets entry->id (unique in the process) and, when entry->charge is 0, entry->charge
  // = ChargeOf(key, *entry) (a copy of a stored entry must reset charge to 0), and gives a
  // borrowed body (Body::borrowed: a disk record served in place) a copy of its own. Refuses
  // (nullptr, counted) an entry whose charge exceeds max_object(), and a null entry. Replaces
  // the variant whose Vary fields (names, values, presence; order aside) and coding equal
  // entry's, drops the oldest variant when the key already holds kMaxVariants, then evicts
  // the shard's least valuable entries until it fits its budget. Returns the stored entry.
  std::shared_ptr<const Entry> Insert(std::string_view key, uint64_t hash,
                                      std::shared_ptr<Entry> entry);

  // Removes every variant of `key` (invalidation, PURGE). A fill in flight for it goes on.
  // Returns whether any variant was stored.
  bool Remove(std::string_view key, uint64_t hash);

  // Walks every stored entry (all shards, each under its lock in turn): `decide` returns the
  // entry itself to keep it, nullptr to remove it, or a replacement with the same charge (a
  // copy with other metadata, e.g. marked stale). Returns how many were removed or replaced.
  // O(entries): for administrative purges (by tag), not the request path.
  using PurgeDecision =
      std::function<std::shared_ptr<const Entry>(const std::shared_ptr<const Entry>&)>;
  size_t PurgeMatching(const PurgeDecision& decide);

  // Removes the one variant of `key` whose id is `id` (a compressed variant whose source is
  // gone). Returns whether it was stored.
  bool RemoveEntry(std::string_view key, uint64_t hash, uint64_t id);

  // Request coalescing, per primary key. After a Lookup() miss:
  //  - no fill in flight for `key`: registers one owned by `self` and answers kFill;
  //  - a fill in flight, started less than fill_timeout seconds before `now`: adds `self` to
  //    its waiters and answers kWait, or kBypass when it already has max_waiters_per_fill;
  //  - a fill in flight for fill_timeout seconds or more (abandoned or stuck): `self` takes
  //    it over (kFill); the waiters stay attached and `self` leaves them if it was one;
  //  - the shard already tracks its share of max_fills: kBypass.
  FillRole JoinFill(std::string_view key, uint64_t hash, const Waiter& self, int64_t now);

  // Ends the fill that `filler` owns (the `self` it passed to JoinFill when told kFill) and
  // returns its waiters in arrival order; the caller wakes them, and each looks the key up
  // again (a miss joins again, and one of them becomes the next filler). Returns nothing and
  // changes nothing when `filler` no longer owns a fill of `key` (it was taken over).
  std::vector<Waiter> EndFill(std::string_view key, uint64_t hash, const Waiter& filler);

  // Removes `waiter` from the fill of `key` (it timed out, or its connection closed). Returns
  // whether it was waiting there. O(waiters).
  bool LeaveFill(std::string_view key, uint64_t hash, const Waiter& waiter);

  // Bytes charged for storing `entry` under `key` (what Insert() sets when charge is 0).
  static size_t ChargeOf(std::string_view key, const Entry& entry);

  StoreStats Stats() const;
  size_t bytes() const;  // sum of the stored entries' charges, <= capacity()
  size_t entries() const;
  size_t capacity() const { return memory_; }
  size_t max_object() const { return max_object_; }  // after the shard budget's cap
  uint32_t shard_count() const { return shard_count_; }

 private:
  struct Shard;  // store.cc

  Shard& ShardFor(uint64_t mixed) const;

  size_t memory_;
  size_t max_object_;
  size_t max_waiters_;
  int64_t fill_timeout_;
  VaryMatcher matcher_;
  uint32_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
  alignas(64) std::atomic<uint64_t> next_id_{0};  // written by Insert() only, on its own line
};

}  // namespace torii::cache
