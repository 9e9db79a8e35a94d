// bench/ratelimit_bench.cc: Google Benchmark micro-benchmarks of the ratelimit/ stage library.
//
//   build-bench/bench/ratelimit_bench [--benchmark_min_time=0.3] [--benchmark_repetitions=5]
//
// Cases (time per iteration = ns per call):
//   BM_CheckExistingKey: RateTable::Check() on one stored key, one thread (the hot path of a
//       limited route that is not hit: a lock, one probe, the GCRA arithmetic).
//   BM_CheckDistinctKeys/100000: Check() cycling over 100k stored keys in a seeded random
//       order (max_keys 200k so none is evicted): the cost with the table out of L1/L2.
//   BM_CheckNewKeyFlood/<max_keys>: every call a key never seen, on a full table whose keys
//       are all active (the worst case: each call sweeps a shard, evicts the key closest to
//       idle, inserts). max_keys 100000 over 64 shards = ~1.5k keys per sweep.
//   BM_CheckContended/threads:2: two threads on the same key (one shard lock bouncing
//       between cores). BM_CheckTwoKeys/threads:2: two threads on two keys (usually two
//       shards: no sharing).
//   BM_IpListContains/1000: IpList::Contains() over 1000 random IPv4 CIDRs (/8../32), half of
//       the probed addresses inside one of them. BM_IpListContainsV6/1000 likewise for IPv6.
//   BM_HashIp/4, BM_HashIp/6: the keyed key hash of one address.
//   BM_RealClient: RealClient() over a 3-hop X-Forwarded-For behind a trusted proxy.
//   BM_ConnAcquireRelease: ConnLimiter::TryAcquire() + Release() of one key (insert + erase).
//
// The clock is a counter advanced by 1 µs per call (at 1M req/s of one key, far above the
// rate: most checks are rejections, which cost the same as admissions on a stored key).
// Timings never become test thresholds (STYLE.md J).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "ratelimit/client_ip.h"
#include "ratelimit/conn_limit.h"
#include "ratelimit/ip.h"
#include "ratelimit/rate_table.h"

namespace {

using torii::ratelimit::Cidr;
using torii::ratelimit::ConnLimiter;
using torii::ratelimit::IpAddr;
using torii::ratelimit::IpList;
using torii::ratelimit::LimitSpec;
using torii::ratelimit::RateTable;

constexpr uint64_t kSec = 1000000000;
constexpr uint64_t kT0 = 1000 * kSec;

// splitmix64: a seeded stream, so every run benchmarks the same keys.
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

LimitSpec Spec(size_t max_keys) {
  LimitSpec spec;
  spec.rate = *torii::ratelimit::ParseRate("100/s");
  spec.burst = 50;
  spec.max_keys = max_keys;
  return spec;
}

void BM_CheckExistingKey(benchmark::State& state) {
  RateTable table(Spec(100000));
  const uint64_t key = torii::ratelimit::HashIp(*torii::ratelimit::ParseIp("192.0.2.1"), 255);
  uint64_t now = kT0;
  table.Check(key, now);
  for (auto _ : state) {
    now += 1000;
    benchmark::DoNotOptimize(table.Check(key, now));
  }
}
BENCHMARK(BM_CheckExistingKey);

void BM_CheckDistinctKeys(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  RateTable table(Spec(2 * n));
  Rng rng(1);
  std::vector<uint64_t> keys(n);
  for (uint64_t& k : keys) {
    k = rng.Next();
  }
  uint64_t now = kT0;
  for (uint64_t k : keys) {
    table.Check(k, now);
  }
  if (table.size() != n) {
    state.SkipWithError("keys were evicted");
    return;
  }
  size_t i = 0;
  for (auto _ : state) {
    now += 1000;
    benchmark::DoNotOptimize(table.Check(keys[i], now));
    if (++i == n) {
      i = 0;
    }
  }
}
BENCHMARK(BM_CheckDistinctKeys)->Arg(100000);

void BM_CheckNewKeyFlood(benchmark::State& state) {
  const auto max_keys = static_cast<size_t>(state.range(0));
  LimitSpec spec = Spec(max_keys);
  spec.rate = *torii::ratelimit::ParseRate("1/h");  // every key stays active: no idle sweep wins
  RateTable table(spec);
  Rng rng(2);
  const uint64_t now = kT0;
  for (size_t i = 0; i < 2 * max_keys; ++i) {
    table.Check(rng.Next(), now);
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(table.Check(rng.Next(), now));
  }
  if (table.size() > max_keys) {
    state.SkipWithError("bound exceeded");
  }
}
BENCHMARK(BM_CheckNewKeyFlood)->Arg(10000)->Arg(100000);

RateTable* g_shared = nullptr;

void BM_CheckContended(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_shared = new RateTable(Spec(100000));
  }
  // Google Benchmark starts the timed loop of every thread together (after setup).
  uint64_t now = kT0;
  for (auto _ : state) {
    now += 1000;
    benchmark::DoNotOptimize(g_shared->Check(42, now));
  }
  if (state.thread_index() == 0) {
    delete g_shared;
    g_shared = nullptr;
  }
}
BENCHMARK(BM_CheckContended)->Threads(1)->Threads(2)->UseRealTime();

void BM_CheckTwoKeys(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_shared = new RateTable(Spec(100000));
  }
  uint64_t now = kT0;
  const uint64_t key = 0x1234567 * (state.thread_index() + 1);
  for (auto _ : state) {
    now += 1000;
    benchmark::DoNotOptimize(g_shared->Check(key, now));
  }
  if (state.thread_index() == 0) {
    delete g_shared;
    g_shared = nullptr;
  }
}
BENCHMARK(BM_CheckTwoKeys)->Threads(2)->UseRealTime();

IpAddr RandomAddr(Rng& rng, uint8_t family) {
  IpAddr a;
  a.family = family;
  const uint64_t hi = rng.Next();
  const uint64_t lo = rng.Next();
  for (int i = 0; i < 8; ++i) {
    a.bytes[i] = static_cast<uint8_t>(hi >> (8 * i));
    a.bytes[8 + i] = static_cast<uint8_t>(lo >> (8 * i));
  }
  if (family == 4) {
    std::fill(a.bytes.begin() + 4, a.bytes.end(), 0);
  } else {
    a.bytes[0] = 0x20;
  }
  return a;
}

void IpListBench(benchmark::State& state, uint8_t family) {
  const auto n = static_cast<size_t>(state.range(0));
  Rng rng(3);
  IpList list;
  std::vector<Cidr> cidrs;
  const uint32_t width = family == 4 ? 32 : 128;
  const uint32_t min_prefix = family == 4 ? 8 : 32;
  for (size_t i = 0; i < n; ++i) {
    const auto prefix = static_cast<uint8_t>(min_prefix + rng.Next() % (width - min_prefix + 1));
    Cidr c{torii::ratelimit::MaskPrefix(RandomAddr(rng, family), prefix), prefix};
    cidrs.push_back(c);
    list.Add(c);
  }
  constexpr size_t kProbes = 4096;
  std::vector<IpAddr> probes;
  for (size_t i = 0; i < kProbes; ++i) {
    probes.push_back(i % 2 == 0 ? cidrs[rng.Next() % n].addr : RandomAddr(rng, family));
  }
  size_t i = 0;
  size_t hits = 0;
  for (auto _ : state) {
    hits += list.Contains(probes[i & (kProbes - 1)]) ? 1 : 0;
    ++i;
  }
  benchmark::DoNotOptimize(hits);
}
void BM_IpListContains(benchmark::State& state) { IpListBench(state, 4); }
void BM_IpListContainsV6(benchmark::State& state) { IpListBench(state, 6); }
BENCHMARK(BM_IpListContains)->Arg(1000);
BENCHMARK(BM_IpListContainsV6)->Arg(1000);

void BM_HashIp(benchmark::State& state) {
  const IpAddr a = *torii::ratelimit::ParseIp(state.range(0) == 4 ? "192.0.2.1" : "2001:db8::1");
  for (auto _ : state) {
    benchmark::DoNotOptimize(torii::ratelimit::HashIp(a, 255));
  }
}
BENCHMARK(BM_HashIp)->Arg(4)->Arg(6);

void BM_RealClient(benchmark::State& state) {
  IpList trusted;
  trusted.Add(*torii::ratelimit::ParseCidr("10.0.0.0/8", nullptr));
  const IpAddr peer = *torii::ratelimit::ParseIp("10.0.0.2");
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        torii::ratelimit::RealClient(peer, "6.6.6.6, 198.51.100.7, 10.0.0.3", trusted));
  }
}
BENCHMARK(BM_RealClient);

void BM_ConnAcquireRelease(benchmark::State& state) {
  ConnLimiter limiter(/*limit=*/10, /*max_keys=*/100000);
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter.TryAcquire(77));
    limiter.Release(77);
  }
}
BENCHMARK(BM_ConnAcquireRelease);

}  // namespace
