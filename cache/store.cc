// cache/store.cc: the sharded, memory-bounded response store and its fill registry (store.h).
//
// A shard holds three arrays, all indexed by uint32_t so links stay small and survive the
// arrays' growth: `recs` (one per primary key: the key, its variants, its fill), `nodes` (one
// per stored entry: the shared_ptr, the queue links, the next older variant) and `slots`, an
// open-addressing index from the caller's hash to a rec (linear probing, backward-shift
// deletion, so a churned shard never fills with tombstones), plus the S3-FIFO ghost. Free recs
// and nodes are chained and reused; the arrays grow by doubling and are never shrunk (their
// size is bounded by the entries a shard's budget can hold, and each entry's charge includes
// kEntryOverhead for them).
#include "cache/store.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "base/hash.h"
#include "base/spin_lock.h"

namespace torii::cache {
namespace {

constexpr uint32_t kNil = 0xffffffffu;
constexpr uint32_t kMaxShards = 4096;
constexpr uint8_t kMaxFreq = 3;  // S3-FIFO's 2-bit frequency

// Lemire's multiply-shift range reduction on the high half; the bucket uses the low bits.
uint32_t ShardOf(uint64_t mixed, uint32_t shards) {
  return static_cast<uint32_t>(((mixed >> 32) * shards) >> 32);
}

using SpinLock = base::SpinLock;

// Adds to a counter that only its shard's lock holder writes: a plain load and store, no
// locked instruction; readers load it relaxed without the lock.
void Bump(std::atomic<uint64_t>& counter, uint64_t by = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

void Set(std::atomic<size_t>& mirror, size_t value) {
  mirror.store(value, std::memory_order_relaxed);
}

// Whether Lookup() must ask the matcher (or, for Vary: *, refuse) before serving `e`.
bool HasVary(const Entry& e) { return e.vary_star || !e.vary.empty(); }

// Every field of `a` has a field of the same name in `b` with the same value and presence.
bool VaryFieldsIn(const std::vector<Entry::VaryField>& a, const std::vector<Entry::VaryField>& b) {
  for (const Entry::VaryField& f : a) {
    const auto same = [&f](const Entry::VaryField& g) {
      return g.name == f.name && g.has_value == f.has_value && g.value == f.value;
    };
    if (std::find_if(b.begin(), b.end(), same) == b.end()) {
      return false;
    }
  }
  return true;
}

// Whether `a` and `b` are the same variant of a key (Insert() replaces one with the other).
bool SameVariant(const Entry& a, const Entry& b) {
  return a.vary_star == b.vary_star && a.coding == b.coding && a.vary.size() == b.vary.size() &&
         VaryFieldsIn(a.vary, b.vary) && VaryFieldsIn(b.vary, a.vary);
}

// Entries dropped under a shard's lock, released after it (a body may be megabytes).
using Graveyard = std::vector<std::shared_ptr<const Entry>>;

}  // namespace

struct alignas(64) Store::Shard {
  struct Rec {
    std::string key;
    uint64_t hash = 0;
    uint32_t head = kNil;  // newest variant (a node); next free rec while unused
    uint32_t variants = 0;
    bool filling = false;
    int64_t fill_started = 0;
    Waiter filler;
    std::vector<Waiter> waiters;
  };
  struct Node {
    std::shared_ptr<const Entry> entry;
    size_t charge = 0;
    uint32_t rec = kNil;
    uint32_t prev = kNil;   // towards its queue's head (newest)
    uint32_t next = kNil;   // towards its queue's tail (oldest)
    uint32_t older = kNil;  // next older variant of the same rec; next free node
    uint8_t freq = 0;       // hits since it entered its queue or was last reinserted, max 3
    bool main = false;      // in the main queue (else the small one)
    bool vary = false;      // HasVary(*entry), kept here so a hit need not read the Entry
  };
  struct Slot {
    uint64_t hash = 0;
    uint32_t rec = kNil;  // kNil: empty
  };
  struct Queue {
    uint32_t head = kNil;
    uint32_t tail = kNil;
    size_t bytes = 0;
  };

  SpinLock lock;
  size_t budget = 0;     // bytes this shard may hold
  size_t small_cap = 0;  // the small queue's share of it
  size_t fill_cap = 0;   // fills in flight at most

  std::vector<Rec> recs;
  std::vector<Node> nodes;
  std::vector<Slot> slots;  // size 0 or a power of two, at most 3/4 full
  size_t slots_used = 0;
  uint32_t free_rec = kNil;
  uint32_t free_node = kNil;
  Queue small;  // S3-FIFO's S: new entries
  Queue main;   // S3-FIFO's M: entries hit while in S, or readmitted through the ghost
  std::vector<uint64_t> ghost;  // hashes of keys evicted from S unhit; direct-mapped, lossy
  size_t bytes = 0;
  size_t entries = 0;
  size_t fills = 0;

  // Mirrors and counters for Stats(), written under the lock, read without it.
  std::atomic<size_t> bytes_seen{0};
  std::atomic<size_t> entries_seen{0};
  std::atomic<size_t> fills_seen{0};
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> inserts{0};
  std::atomic<uint64_t> evictions{0};
  std::atomic<uint64_t> refusals{0};  // fetch_add without the lock (Insert refuses before it)

  // --- index -----------------------------------------------------------------------------

  // The rec of `key`, or kNil. `mixed` = base::Mix64(hash).
  uint32_t Find(std::string_view key, uint64_t hash, uint64_t mixed) const {
    if (slots.empty()) {
      return kNil;
    }
    const size_t mask = slots.size() - 1;
    for (size_t i = mixed & mask;; i = (i + 1) & mask) {
      const Slot& s = slots[i];
      if (s.rec == kNil) {
        return kNil;
      }
      if (s.hash == hash && recs[s.rec].key == key) {
        return s.rec;
      }
    }
  }

  // A new rec for `key`, which must be absent.
  uint32_t AddRec(std::string_view key, uint64_t hash, uint64_t mixed) {
    uint32_t r = free_rec;
    if (r != kNil) {
      free_rec = recs[r].head;
    } else {
      r = static_cast<uint32_t>(recs.size());
      recs.emplace_back();
    }
    Rec& rec = recs[r];
    rec.key.assign(key);
    rec.hash = hash;
    rec.head = kNil;
    rec.variants = 0;
    rec.filling = false;
    if ((slots_used + 1) * 4 > slots.size() * 3) {
      Grow();
    }
    const size_t mask = slots.size() - 1;
    size_t i = mixed & mask;
    while (slots[i].rec != kNil) {
      i = (i + 1) & mask;
    }
    slots[i] = Slot{hash, r};
    ++slots_used;
    return r;
  }

  // Frees rec `r` once it holds no variant and no fill.
  void ReleaseIfUnused(uint32_t r) {
    Rec& rec = recs[r];
    if (rec.variants != 0 || rec.filling) {
      return;
    }
    EraseSlot(rec.hash, r);
    std::string().swap(rec.key);  // an unused rec keeps no key bytes the budget cannot see
    std::vector<Waiter>().swap(rec.waiters);
    rec.head = free_rec;
    free_rec = r;
  }

  void Grow() {
    const size_t n = slots.empty() ? 16 : slots.size() * 2;
    std::vector<Slot> old(n);
    old.swap(slots);
    const size_t mask = n - 1;
    for (const Slot& s : old) {
      if (s.rec != kNil) {
        size_t i = base::Mix64(s.hash) & mask;
        while (slots[i].rec != kNil) {
          i = (i + 1) & mask;
        }
        slots[i] = s;
      }
    }
  }

  // Backward-shift deletion (Knuth 6.4 Algorithm R): later entries of the cluster that may
  // sit closer to their home move into the hole, so probes never meet tombstones.
  void EraseSlot(uint64_t hash, uint32_t r) {
    const size_t mask = slots.size() - 1;
    size_t hole = base::Mix64(hash) & mask;
    while (slots[hole].rec != r) {
      hole = (hole + 1) & mask;
    }
    for (size_t j = (hole + 1) & mask; slots[j].rec != kNil; j = (j + 1) & mask) {
      const size_t home = base::Mix64(slots[j].hash) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        slots[hole] = slots[j];
        hole = j;
      }
    }
    slots[hole] = Slot{};
    --slots_used;
  }

  // --- queues (S3-FIFO) -------------------------------------------------------------------

  Queue& QueueOf(uint32_t n) { return nodes[n].main ? main : small; }

  void PushFront(uint32_t n) {
    Queue& q = QueueOf(n);
    Node& node = nodes[n];
    node.prev = kNil;
    node.next = q.head;
    if (q.head != kNil) {
      nodes[q.head].prev = n;
    } else {
      q.tail = n;
    }
    q.head = n;
    q.bytes += node.charge;
  }

  void Unlink(uint32_t n) {
    Queue& q = QueueOf(n);
    Node& node = nodes[n];
    (node.prev != kNil ? nodes[node.prev].next : q.head) = node.next;
    (node.next != kNil ? nodes[node.next].prev : q.tail) = node.prev;
    q.bytes -= node.charge;
  }

  // Moves node `n` to the head of the main queue with no hits counted.
  void Reinsert(uint32_t n) {
    Unlink(n);
    nodes[n].main = true;
    nodes[n].freq = 0;
    PushFront(n);
  }

  // The oldest node of `q` other than `keep` (kNil: none).
  uint32_t Oldest(const Queue& q, uint32_t keep) const {
    return q.tail != keep ? q.tail : nodes[keep].prev;
  }

  // The ghost slot of a key hash (bits apart from those that chose the shard and the bucket).
  uint64_t& GhostSlot(uint64_t hash) {
    return ghost[(base::Mix64(hash) >> 20) & (ghost.size() - 1)];
  }

  void RememberEvicted(uint64_t hash) {
    if (ghost.size() <= entries) {  // at least one slot per entry held; regrown empty
      size_t n = std::max<size_t>(64, ghost.size());
      while (n <= entries) {
        n *= 2;
      }
      ghost.assign(n, 0);
    }
    GhostSlot(hash) = hash;
  }

  // Whether `hash` was evicted from S unhit recently (and forgets it).
  bool Readmitted(uint64_t hash) {
    if (ghost.empty() || GhostSlot(hash) != hash) {
      return false;
    }
    GhostSlot(hash) = 0;
    return true;
  }

  // --- nodes -------------------------------------------------------------------------------

  // Stores `entry` as the newest variant of rec `r`, at the head of the main queue if
  // `in_main`, else of the small one, with `freq` hits.
  uint32_t AddNode(uint32_t r, std::shared_ptr<const Entry> entry, bool in_main, uint8_t freq) {
    uint32_t n = free_node;
    if (n != kNil) {
      free_node = nodes[n].older;
    } else {
      n = static_cast<uint32_t>(nodes.size());
      nodes.emplace_back();
    }
    Node& node = nodes[n];
    node.charge = entry->charge;
    node.rec = r;
    node.main = in_main;
    node.freq = freq;
    node.vary = HasVary(*entry);
    node.entry = std::move(entry);
    node.older = recs[r].head;
    recs[r].head = n;
    ++recs[r].variants;
    PushFront(n);
    bytes += node.charge;
    ++entries;
    return n;
  }

  // Drops node `n` (its rec stays, even if now unused: the caller releases it) and moves its
  // entry to `grave`.
  void DropNode(uint32_t n, Graveyard& grave) {
    Rec& rec = recs[nodes[n].rec];
    uint32_t* link = &rec.head;
    while (*link != n) {
      link = &nodes[*link].older;
    }
    *link = nodes[n].older;
    --rec.variants;
    Unlink(n);
    Node& node = nodes[n];
    bytes -= node.charge;
    --entries;
    grave.push_back(std::move(node.entry));
    node.entry.reset();
    node.rec = kNil;
    node.older = free_node;
    free_node = n;
  }

  // A Lookup() hit: counted on the node only (no queue move, so a hit writes one byte of its
  // own node, and hits on different keys of a shard share no line but the lock's).
  void Hit(uint32_t n) {
    if (nodes[n].freq < kMaxFreq) {
      ++nodes[n].freq;
    }
  }

  // Evicts until the shard fits its budget, never `keep`. Returns how many went. The small
  // queue gives up its oldest entry while it holds its share (or main has nothing to give):
  // to main if it was hit, else out, its key remembered in the ghost. Main's oldest is
  // reinserted with one hit less if it was hit, else evicted. Every reinsertion spends a hit,
  // so the loop is amortised O(1) per insert.
  uint64_t EvictToFit(uint32_t keep, Graveyard& grave) {
    uint64_t evicted = 0;
    while (bytes > budget) {
      const uint32_t s_old = Oldest(small, keep);
      const uint32_t m_old = Oldest(main, keep);
      uint32_t victim = kNil;
      if (s_old != kNil && (small.bytes >= small_cap || m_old == kNil)) {
        if (nodes[s_old].freq > 0) {
          Reinsert(s_old);
          continue;
        }
        RememberEvicted(recs[nodes[s_old].rec].hash);
        victim = s_old;
      } else if (m_old != kNil) {
        if (nodes[m_old].freq > 0) {
          const uint8_t freq = nodes[m_old].freq;
          Reinsert(m_old);
          nodes[m_old].freq = static_cast<uint8_t>(freq - 1);
          continue;
        }
        victim = m_old;
      } else {
        break;  // unreachable: keep's charge <= max_object < budget
      }
      const uint32_t r = nodes[victim].rec;
      DropNode(victim, grave);
      ReleaseIfUnused(r);
      ++evicted;
    }
    return evicted;
  }

  // The node of rec `r` holding `entry`, or kNil (dropped meanwhile).
  uint32_t NodeOf(uint32_t r, const Entry* entry) const {
    for (uint32_t v = recs[r].head; v != kNil; v = nodes[v].older) {
      if (nodes[v].entry.get() == entry) {
        return v;
      }
    }
    return kNil;
  }

  void Publish() {
    Set(bytes_seen, bytes);
    Set(entries_seen, entries);
    Set(fills_seen, fills);
  }
};

Store::Store(const StoreOptions& options, VaryMatcher matcher)
    : memory_(options.memory == 0 ? 1 : options.memory),
      max_waiters_(options.max_waiters_per_fill == 0 ? 1 : options.max_waiters_per_fill),
      fill_timeout_(options.fill_timeout),
      matcher_(matcher) {
  uint32_t shards = options.shards;
  if (shards == 0) {
    // Halve from 64 until a shard holds kObjectsPerShard objects of max_object.
    shards = kMaxAutoShards;
    while (shards > 1 && memory_ / shards / kObjectsPerShard < options.max_object) {
      shards /= 2;
    }
  }
  shards = std::min(shards, kMaxShards);
  if (shards > memory_) {
    shards = static_cast<uint32_t>(memory_);  // every shard gets at least one byte
  }
  shard_count_ = shards;
  // Split memory exactly: the first (memory % shards) shards take one byte more.
  const size_t base = memory_ / shard_count_;
  const size_t extra = memory_ % shard_count_;
  max_object_ = std::min(options.max_object, base / kObjectsPerShard);
  const size_t max_fills = options.max_fills == 0 ? 1 : options.max_fills;
  const size_t fill_cap = std::max<size_t>(1, max_fills / shard_count_);
  shards_ = std::make_unique<Shard[]>(shard_count_);
  for (uint32_t i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    s.budget = base + (i < extra ? 1 : 0);
    s.small_cap = s.budget / 100 * kSmallPercent + s.budget % 100 * kSmallPercent / 100;
    s.fill_cap = fill_cap;
  }
}

Store::~Store() = default;

Store::Shard& Store::ShardFor(uint64_t mixed) const {
  return shards_[ShardOf(mixed, shard_count_)];
}

std::shared_ptr<const Entry> Store::Lookup(std::string_view key, uint64_t hash,
                                           const HeaderSource& request) {
  const uint64_t mixed = base::Mix64(hash);
  Shard& s = ShardFor(mixed);
  // Variants that need the matcher, newest first, copied so that they outlive the lock.
  std::shared_ptr<const Entry> candidates[kMaxVariants];
  size_t count = 0;
  {
    std::lock_guard<SpinLock> hold(s.lock);
    const uint32_t r = s.Find(key, hash, mixed);
    if (r != kNil) {
      for (uint32_t v = s.recs[r].head; v != kNil && count < kMaxVariants; v = s.nodes[v].older) {
        Shard::Node& node = s.nodes[v];
        if (!node.vary) {
          if (count == 0) {  // the common case: the newest candidate matches every request
            s.Hit(v);
            Bump(s.hits);
            return node.entry;
          }
          candidates[count++] = node.entry;  // matches for sure: nothing older can win
          break;
        }
        if (matcher_ != nullptr && !node.entry->vary_star) {
          candidates[count++] = node.entry;
        }
      }
    }
    if (count == 0) {
      Bump(s.misses);
      return nullptr;
    }
  }
  // The matcher reads the request through a virtual call and may allocate: not under a lock.
  size_t found = count;
  for (size_t i = 0; i < count && found == count; ++i) {
    if (!HasVary(*candidates[i]) || matcher_(*candidates[i], request)) {
      found = i;
    }
  }
  {
    std::lock_guard<SpinLock> hold(s.lock);
    if (found == count) {
      Bump(s.misses);
      return nullptr;
    }
    Bump(s.hits);
    // Count the hit if it is still stored; if it was dropped meanwhile it is served anyway.
    const uint32_t r = s.Find(key, hash, mixed);
    const uint32_t v = r == kNil ? kNil : s.NodeOf(r, candidates[found].get());
    if (v != kNil) {
      s.Hit(v);
    }
  }
  return std::move(candidates[found]);
}

std::shared_ptr<const Entry> Store::Insert(std::string_view key, uint64_t hash,
                                           std::shared_ptr<Entry> entry) {
  const uint64_t mixed = base::Mix64(hash);
  Shard& s = ShardFor(mixed);
  if (entry == nullptr) {
    s.refusals.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (entry->body.borrowed()) {
    entry->body = std::make_shared<const std::string>(*entry->body);  // its own copy, kept
  }
  if (entry->charge == 0) {
    entry->charge = ChargeOf(key, *entry);
  }
  if (entry->charge > max_object_) {
    s.refusals.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  entry->id = next_id_.fetch_add(1, std::memory_order_relaxed) + 1;
  std::shared_ptr<const Entry> stored = std::move(entry);
  Graveyard grave;  // destroyed after the lock is released (declared before it)
  std::lock_guard<SpinLock> hold(s.lock);
  uint32_t r = s.Find(key, hash, mixed);
  if (r == kNil) {
    r = s.AddRec(key, hash, mixed);
  }
  // A refreshed variant keeps the queue and hits of the one it replaces; a key evicted from
  // the small queue unhit not long ago is back, so it goes to main (S3-FIFO's ghost).
  bool in_main = false;
  uint8_t freq = 0;
  bool replaced = false;
  for (uint32_t v = s.recs[r].head; v != kNil; v = s.nodes[v].older) {
    if (SameVariant(*s.nodes[v].entry, *stored)) {
      in_main = s.nodes[v].main;
      freq = s.nodes[v].freq;
      replaced = true;
      s.DropNode(v, grave);
      break;
    }
  }
  if (!replaced) {
    in_main = s.Readmitted(hash);
  }
  uint64_t evicted = 0;
  if (s.recs[r].variants >= kMaxVariants) {
    uint32_t oldest = s.recs[r].head;
    while (s.nodes[oldest].older != kNil) {
      oldest = s.nodes[oldest].older;
    }
    s.DropNode(oldest, grave);
    ++evicted;
  }
  const uint32_t n = s.AddNode(r, stored, in_main, freq);
  evicted += s.EvictToFit(n, grave);
  Bump(s.inserts);
  Bump(s.evictions, evicted);
  s.Publish();
  return stored;
}

bool Store::Remove(std::string_view key, uint64_t hash) {
  const uint64_t mixed = base::Mix64(hash);
  Shard& s = ShardFor(mixed);
  Graveyard grave;
  std::lock_guard<SpinLock> hold(s.lock);
  const uint32_t r = s.Find(key, hash, mixed);
  if (r == kNil) {
    return false;
  }
  const bool any = s.recs[r].variants != 0;
  while (s.recs[r].head != kNil) {
    s.DropNode(s.recs[r].head, grave);
  }
  s.ReleaseIfUnused(r);
  s.Publish();
  return any;
}

size_t Store::PurgeMatching(const PurgeDecision& decide) {
  size_t changed = 0;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    Graveyard grave;  // destroyed after the lock is released
    std::lock_guard<SpinLock> hold(s.lock);
    for (Shard::Queue* q : {&s.small, &s.main}) {
      uint32_t v = q->head;
      while (v != kNil) {
        const uint32_t next = s.nodes[v].next;
        std::shared_ptr<const Entry> kept = decide(s.nodes[v].entry);
        if (kept == nullptr) {
          const uint32_t r = s.nodes[v].rec;
          s.DropNode(v, grave);
          s.ReleaseIfUnused(r);
          ++changed;
        } else if (kept != s.nodes[v].entry) {
          grave.push_back(std::move(s.nodes[v].entry));
          s.nodes[v].entry = std::move(kept);
          ++changed;
        }
        v = next;
      }
    }
    s.Publish();
  }
  return changed;
}

bool Store::RemoveEntry(std::string_view key, uint64_t hash, uint64_t id) {
  const uint64_t mixed = base::Mix64(hash);
  Shard& s = ShardFor(mixed);
  Graveyard grave;
  std::lock_guard<SpinLock> hold(s.lock);
  const uint32_t r = s.Find(key, hash, mixed);
  if (r == kNil) {
    return false;
  }
  for (uint32_t v = s.recs[r].head; v != kNil; v = s.nodes[v].older) {
    if (s.nodes[v].entry->id == id) {
      s.DropNode(v, grave);
      s.ReleaseIfUnused(r);
      s.Publish();
      return true;
    }
  }
  return false;
}

FillRole Store::JoinFill(std::string_view key, uint64_t hash, const Waiter& self, int64_t now) {
  const uint64_t mixed = base::Mix64(hash);
  Shard& s = ShardFor(mixed);
  std::lock_guard<SpinLock> hold(s.lock);
  uint32_t r = s.Find(key, hash, mixed);
  if (r == kNil || !s.recs[r].filling) {
    if (s.fills >= s.fill_cap) {
      return FillRole::kBypass;
    }
    if (r == kNil) {
      r = s.AddRec(key, hash, mixed);
    }
    Shard::Rec& rec = s.recs[r];
    rec.filling = true;
    rec.fill_started = now;
    rec.filler = self;
    ++s.fills;
    s.Publish();
    return FillRole::kFill;
  }
  Shard::Rec& rec = s.recs[r];
  int64_t age = 0;
  if (!__builtin_sub_overflow(now, rec.fill_started, &age) && age >= fill_timeout_) {
    // Taken over: the new filler inherits the waiters (minus itself) and the old one's
    // EndFill() becomes a no-op.
    rec.filler = self;
    rec.fill_started = now;
    const auto it = std::find(rec.waiters.begin(), rec.waiters.end(), self);
    if (it != rec.waiters.end()) {
      rec.waiters.erase(it);
    }
    return FillRole::kFill;
  }
  if (rec.waiters.size() >= max_waiters_) {
    return FillRole::kBypass;
  }
  rec.waiters.push_back(self);
  return FillRole::kWait;
}

std::vector<Waiter> Store::EndFill(std::string_view key, uint64_t hash, const Waiter& filler) {
  const uint64_t mixed = base::Mix64(hash);
  Shard& s = ShardFor(mixed);
  std::vector<Waiter> woken;
  std::lock_guard<SpinLock> hold(s.lock);
  const uint32_t r = s.Find(key, hash, mixed);
  if (r == kNil || !s.recs[r].filling || !(s.recs[r].filler == filler)) {
    return woken;
  }
  Shard::Rec& rec = s.recs[r];
  woken.swap(rec.waiters);
  rec.filling = false;
  --s.fills;
  s.ReleaseIfUnused(r);
  s.Publish();
  return woken;
}

bool Store::LeaveFill(std::string_view key, uint64_t hash, const Waiter& waiter) {
  const uint64_t mixed = base::Mix64(hash);
  Shard& s = ShardFor(mixed);
  std::lock_guard<SpinLock> hold(s.lock);
  const uint32_t r = s.Find(key, hash, mixed);
  if (r == kNil || !s.recs[r].filling) {
    return false;
  }
  std::vector<Waiter>& waiters = s.recs[r].waiters;
  const auto it = std::find(waiters.begin(), waiters.end(), waiter);
  if (it == waiters.end()) {
    return false;
  }
  waiters.erase(it);  // keeps arrival order for the others
  return true;
}

size_t Store::ChargeOf(std::string_view key, const Entry& entry) {
  size_t charge = kEntryOverhead + sizeof(Entry) + key.size();
  if (entry.body != nullptr) {
    charge += sizeof(std::string) + entry.body->size();
  }
  for (const Header& h : entry.headers) {
    charge += sizeof(Header) + h.name.size() + h.value.size();
  }
  for (const Entry::VaryField& f : entry.vary) {
    charge += sizeof(Entry::VaryField) + f.name.size() + f.value.size();
  }
  return charge + entry.etag.size() + entry.last_modified.size() + entry.rendered.size();
}

StoreStats Store::Stats() const {
  StoreStats st;
  st.capacity = memory_;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    const Shard& s = shards_[i];
    st.entries += s.entries_seen.load(std::memory_order_relaxed);
    st.bytes += s.bytes_seen.load(std::memory_order_relaxed);
    st.fills += s.fills_seen.load(std::memory_order_relaxed);
    st.hits += s.hits.load(std::memory_order_relaxed);
    st.misses += s.misses.load(std::memory_order_relaxed);
    st.inserts += s.inserts.load(std::memory_order_relaxed);
    st.evictions += s.evictions.load(std::memory_order_relaxed);
    st.refusals += s.refusals.load(std::memory_order_relaxed);
  }
  return st;
}

size_t Store::bytes() const {
  size_t n = 0;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    n += shards_[i].bytes_seen.load(std::memory_order_relaxed);
  }
  return n;
}

size_t Store::entries() const {
  size_t n = 0;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    n += shards_[i].entries_seen.load(std::memory_order_relaxed);
  }
  return n;
}

}  // namespace torii::cache
