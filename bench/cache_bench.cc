// bench/cache_bench.cc: Google Benchmark micro-benchmarks of the response store (cache/store.h).
//
//   build-bench/bench/cache_bench [--benchmark_min_time=0.3] [--benchmark_repetitions=5]
//
// Cases (time per iteration = ns per call):
//   BM_LookupHit/threads:N: Store::Lookup() of one of 100k stored entries (no Vary), in a
//       seeded random order, default options (256 MiB: 8 shards). The hot path: one shard
//       lock, a probe, a full key compare, a hit count and a shared_ptr copy. With 2 threads
//       each walks its own order over the same store (shard locks shared, keys rarely).
//   BM_LookupHitHot/threads:N: the same over 1000 of those entries only (a hot set that stays
//       in the CPU caches): the store's own cost without the memory latency of 100k entries.
//   BM_LookupHitVary: the same with every entry carrying one Vary field, matched by a
//       trivial matcher (the two-lock path: candidates copied, matched outside, hit recorded).
//   BM_LookupMiss: Lookup() of keys never stored, on the 100k-entry store.
//   BM_InsertEvict: Insert() of a 4 KiB entry under a new key into a full 64 MiB store, so
//       every call evicts about one entry and frees it. Includes the caller's make_shared of
//       the Entry; the 4 KiB body is one string shared by all entries (charged to each).
//   BM_FillJoinEnd: JoinFill() (kFill) + EndFill() of one key without waiters.
//
// Keys look like real primary keys ("https|example.com|443|/static/item/012345?v=1"); their
// hashes are computed beforehand (the caller's keyed hash is not the store's cost).
// Timings never become test thresholds (STYLE.md J).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cache/store.h"

namespace {

using torii::cache::Entry;
using torii::cache::HeaderSource;
using torii::cache::Store;
using torii::cache::StoreOptions;

constexpr size_t kEntries = 100000;
constexpr size_t kHotKeys = 1000;

// splitmix64: a seeded stream, so every run benchmarks the same order.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

struct Key {
  std::string text;
  uint64_t hash;
};

std::vector<Key> MakeKeys(const char* path, size_t n) {
  std::vector<Key> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "https|example.com|443|/%s/item/%06zu?v=1", path, i);
    keys.push_back({buf, std::hash<std::string>{}(buf)});
  }
  return keys;
}

// A random permutation of 0..n-1 (the lookup order).
std::vector<uint32_t> Order(size_t n, uint64_t seed) {
  std::vector<uint32_t> order(n);
  for (size_t i = 0; i < n; ++i) {
    order[i] = static_cast<uint32_t>(i);
  }
  Rng rng(seed);
  for (size_t i = n - 1; i > 0; --i) {
    std::swap(order[i], order[rng.Next() % (i + 1)]);
  }
  return order;
}

class AcceptEncoding : public HeaderSource {
 public:
  bool Get(std::string_view lower_name, std::string* out) const override {
    if (lower_name != "accept-encoding") {
      return false;
    }
    out->assign("gzip");
    return true;
  }
};

bool Matcher(const Entry& entry, const HeaderSource& request) {
  std::string value;
  for (const Entry::VaryField& f : entry.vary) {
    if (request.Get(f.name, &value) != f.has_value || value != f.value) {
      return false;
    }
  }
  return true;
}

std::shared_ptr<Entry> MakeEntry(std::shared_ptr<const std::string> body, bool vary) {
  auto e = std::make_shared<Entry>();
  e->status = 200;
  e->headers = {{"content-type", "text/css"}, {"cache-control", "max-age=3600"}};
  e->body = std::move(body);
  if (vary) {
    e->vary.push_back({"accept-encoding", "gzip", true});
  }
  return e;
}

// 100k entries of 512-byte bodies, built once per process and shared by the lookup cases
// (lookups count hits but never evict).
struct Filled {
  explicit Filled(bool vary) : store(StoreOptions{}, vary ? Matcher : nullptr) {
    keys = MakeKeys("static", kEntries);
    auto body = std::make_shared<const std::string>(512, 'b');
    for (const Key& k : keys) {
      store.Insert(k.text, k.hash, MakeEntry(body, vary));
    }
  }
  Store store;
  std::vector<Key> keys;
};

Filled& Plain() {
  static Filled filled(false);
  return filled;
}

Filled& Varied() {
  static Filled filled(true);
  return filled;
}

// Looks up keys[0..n) (n = 0: all) in a random order per thread.
void LookupLoop(benchmark::State& state, Filled& f, const std::vector<Key>& keys, size_t n = 0) {
  const std::vector<uint32_t> order =
      Order(n == 0 ? keys.size() : n, 1 + static_cast<uint64_t>(state.thread_index()));
  const AcceptEncoding request;
  size_t i = 0;
  size_t hits = 0;
  for (auto _ : state) {
    const Key& k = keys[order[i]];
    hits += f.store.Lookup(k.text, k.hash, request) != nullptr ? 1 : 0;
    if (++i == order.size()) {
      i = 0;
    }
  }
  benchmark::DoNotOptimize(hits);
  state.counters["hit_ratio"] =
      benchmark::Counter(static_cast<double>(hits) / static_cast<double>(state.iterations()),
                         benchmark::Counter::kAvgThreads);
}

void BM_LookupHit(benchmark::State& state) {
  Filled& f = Plain();
  if (f.store.entries() != kEntries) {
    state.SkipWithError("entries were evicted");
    return;
  }
  LookupLoop(state, f, f.keys);
}
BENCHMARK(BM_LookupHit)->Threads(1)->Threads(2)->UseRealTime();

void BM_LookupHitHot(benchmark::State& state) {
  Filled& f = Plain();
  LookupLoop(state, f, f.keys, kHotKeys);
}
BENCHMARK(BM_LookupHitHot)->Threads(1)->Threads(2)->UseRealTime();

void BM_LookupHitVary(benchmark::State& state) {
  Filled& f = Varied();
  LookupLoop(state, f, f.keys);
}
BENCHMARK(BM_LookupHitVary);

void BM_LookupMiss(benchmark::State& state) {
  static const std::vector<Key> absent = MakeKeys("absent", kEntries);
  LookupLoop(state, Plain(), absent);
}
BENCHMARK(BM_LookupMiss);

void BM_InsertEvict(benchmark::State& state) {
  Store store(StoreOptions{.memory = size_t{64} << 20});
  static const std::vector<Key> keys = MakeKeys("insert", 200000);
  auto body = std::make_shared<const std::string>(4096, 'i');
  size_t i = 0;
  for (; store.Stats().evictions == 0; i = (i + 1) % keys.size()) {  // fill it first
    store.Insert(keys[i].text, keys[i].hash, MakeEntry(body, false));
  }
  const uint64_t evictions_before = store.Stats().evictions;
  for (auto _ : state) {
    benchmark::DoNotOptimize(store.Insert(keys[i].text, keys[i].hash, MakeEntry(body, false)));
    if (++i == keys.size()) {
      i = 0;
    }
  }
  state.counters["evicted_per_insert"] =
      benchmark::Counter(static_cast<double>(store.Stats().evictions - evictions_before) /
                         static_cast<double>(state.iterations()));
  state.counters["entries"] = static_cast<double>(store.entries());
}
BENCHMARK(BM_InsertEvict);

void BM_FillJoinEnd(benchmark::State& state) {
  Store store;
  const torii::cache::Waiter self{1, 2, 3};
  const std::string key = "https|example.com|443|/api/slow";
  const uint64_t hash = std::hash<std::string>{}(key);
  for (auto _ : state) {
    benchmark::DoNotOptimize(store.JoinFill(key, hash, self, 0));
    benchmark::DoNotOptimize(store.EndFill(key, hash, self));
  }
}
BENCHMARK(BM_FillJoinEnd);

}  // namespace
