// bench/pick_bench.cc: Google Benchmark micro-benchmarks of balancer::Picker::Pick() and
// balancer::HashBytes().
//
//   build-bench/bench/pick_bench [--benchmark_min_time=0.3] [--benchmark_repetitions=5]
//
// Cases (time per iteration = ns per pick, or per hash):
//   BM_Pick/<algorithm>/<backends>/<down %>
//       algorithm: round_robin, least_conn, ip_hash, each built through MakePicker();
//       backends: 3, 64, 1024, weights 1..4 mixed; down %: 0 (all healthy) or 10 (every tenth
//       backend, rounded up, so 1 of 3, 7 of 64, 103 of 1024, spread over the pool).
//       `exclude` is the empty mask the proxy passes on a first attempt (sized to the pool).
//   BM_PickRetry/<algorithm>/<backends>: round_robin and least_conn at 64 and 1024 backends,
//       all healthy, every pick a retry: `exclude` holds the backend the previous pick chose
//       (the proxy's retry after a failure), so the pickers' word-wise exclude path is timed.
//       No load is counted (least_conn's counts stay 0: ties only).
//   BM_LeastConnHooks/64: least_conn's OnRequestStart() + OnRequestEnd() alone, the part of
//       BM_Pick/least_conn that is not the pick (two atomic read-modify-writes).
//   BM_HashBytes/4, BM_HashBytes/16: HashBytes() of a 4-byte (a packed IPv4 address) and a
//       16-byte (a packed IPv6 address) key.
//
// As the proxy does, least_conn commits each pick with OnRequestStart() and ends the request
// picked 32 picks earlier with OnRequestEnd(), so 32 requests stay in flight and the counts the
// picker compares are realistic rather than all zero; its figure includes those two hooks.
// ip_hash gets a different key each iteration: HashBytes() of random dotted IPv4 strings,
// precomputed so the hash is not timed. Every pick is checked eligible once before timing, so a
// picker that silently returns nullopt cannot produce a fast, meaningless figure. Timings
// never become test thresholds (STYLE.md J).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/picker.h"

namespace {

using torii::balancer::BackendMask;
using torii::balancer::BackendSpec;
using torii::balancer::HashBytes;
using torii::balancer::MakePicker;
using torii::balancer::Picker;

// splitmix64: a seeded stream, so every run benchmarks the same pool and keys.
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

// `n` primaries with weights 1..4 (seeded); backend i is "10.<i / 256>.<i % 256>.1:8080".
std::vector<BackendSpec> Pool(uint32_t n) {
  Rng rng(7);
  std::vector<BackendSpec> specs;
  specs.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const std::string addr =
        "10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".1:8080";
    specs.push_back(
        BackendSpec{static_cast<uint32_t>(1 + rng.Next() % 4), /*backup=*/false, HashBytes(addr)});
  }
  return specs;
}

// All healthy, or `down_percent` of the backends (rounded up) down, spread evenly.
BackendMask Healthy(uint32_t n, uint32_t down_percent) {
  BackendMask healthy(n, /*all_set=*/true);
  const uint32_t down = (n * down_percent + 99) / 100;
  for (uint32_t k = 0; k < down; ++k) {
    healthy.set(static_cast<uint32_t>(uint64_t{k} * n / down), false);
  }
  return healthy;
}

// Key hashes of random dotted IPv4 addresses; a power of two so the index is a mask.
constexpr size_t kKeys = 4096;
std::vector<uint64_t> ClientKeys() {
  Rng rng(42);
  std::vector<uint64_t> keys(kKeys);
  for (uint64_t& key : keys) {
    const uint64_t r = rng.Next();
    const std::string ip = std::to_string(r & 0xff) + "." + std::to_string((r >> 8) & 0xff) + "." +
                           std::to_string((r >> 16) & 0xff) + "." +
                           std::to_string((r >> 24) & 0xff);
    key = HashBytes(ip);
  }
  return keys;
}

// Requests kept in flight for least_conn (a power of two: the ring index is a mask).
constexpr uint32_t kInFlight = 32;

void BM_Pick(benchmark::State& state, std::string_view algorithm) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const auto down_percent = static_cast<uint32_t>(state.range(1));
  std::unique_ptr<Picker> picker = MakePicker(algorithm, Pool(n));
  if (picker == nullptr) {
    state.SkipWithError("MakePicker returned nullptr");
    return;
  }
  const BackendMask healthy = Healthy(n, down_percent);
  const BackendMask exclude(n);
  const std::vector<uint64_t> keys = ClientKeys();
  const bool count_load = algorithm == "least_conn";

  // Sanity pass, untimed, on a separate picker: every pick exists and is eligible.
  {
    std::unique_ptr<Picker> check = MakePicker(algorithm, Pool(n));
    for (uint64_t key : keys) {
      const std::optional<uint32_t> pick = check->Pick(key, healthy, exclude);
      if (!pick || !healthy.test(*pick)) {
        state.SkipWithError("a pick was nullopt or not eligible");
        return;
      }
    }
  }

  std::array<uint32_t, kInFlight> in_flight;
  in_flight.fill(UINT32_MAX);
  uint64_t sum = 0;
  size_t i = 0;
  for (auto _ : state) {
    const std::optional<uint32_t> pick = picker->Pick(keys[i & (kKeys - 1)], healthy, exclude);
    const uint32_t backend = *pick;  // checked above: never nullopt
    if (count_load) {
      uint32_t& slot = in_flight[i & (kInFlight - 1)];
      if (slot != UINT32_MAX) {
        picker->OnRequestEnd(slot);
      }
      picker->OnRequestStart(backend);
      slot = backend;
    }
    sum += backend;
    ++i;
  }
  benchmark::DoNotOptimize(sum);
  for (uint32_t backend : in_flight) {
    if (backend != UINT32_MAX) {
      picker->OnRequestEnd(backend);
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// With --benchmark_repetitions=N, also report the fastest repetition: on a shared machine the
// minimum is the figure least disturbed by other work.
double Min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

void PickArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"backends", "down_pct"});
  b->ArgsProduct({{3, 64, 1024}, {0, 10}});
  b->ComputeStatistics("min", Min);
}

BENCHMARK_CAPTURE(BM_Pick, round_robin, std::string_view("round_robin"))->Apply(PickArgs);
BENCHMARK_CAPTURE(BM_Pick, least_conn, std::string_view("least_conn"))->Apply(PickArgs);
BENCHMARK_CAPTURE(BM_Pick, ip_hash, std::string_view("ip_hash"))->Apply(PickArgs);

// Every pick excludes the previous pick's backend, as a retry after a failure does.
void BM_PickRetry(benchmark::State& state, std::string_view algorithm) {
  const auto n = static_cast<uint32_t>(state.range(0));
  std::unique_ptr<Picker> picker = MakePicker(algorithm, Pool(n));
  if (picker == nullptr) {
    state.SkipWithError("MakePicker returned nullptr");
    return;
  }
  const BackendMask healthy(n, /*all_set=*/true);
  BackendMask exclude(n);
  uint32_t previous = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    exclude.set(previous, true);
    const std::optional<uint32_t> pick = picker->Pick(0, healthy, exclude);
    exclude.set(previous, false);
    if (!pick || *pick == previous) {
      state.SkipWithError("a retry was nullopt or landed on the excluded backend");
      return;
    }
    previous = *pick;
    sum += previous;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}

void RetryArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("backends")->Arg(64)->Arg(1024)->ComputeStatistics("min", Min);
}

BENCHMARK_CAPTURE(BM_PickRetry, round_robin, std::string_view("round_robin"))->Apply(RetryArgs);
BENCHMARK_CAPTURE(BM_PickRetry, least_conn, std::string_view("least_conn"))->Apply(RetryArgs);

// least_conn's two hooks alone, as BM_Pick/least_conn calls them (one OnRequestStart and one
// OnRequestEnd per iteration, 32 requests in flight): two atomic read-modify-writes on the
// shared counters and two virtual calls. Subtract it from BM_Pick/least_conn for the pick.
void BM_LeastConnHooks(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  std::unique_ptr<Picker> picker = MakePicker("least_conn", Pool(n));
  std::array<uint32_t, kInFlight> in_flight;
  in_flight.fill(UINT32_MAX);
  uint32_t backend = 0;
  size_t i = 0;
  for (auto _ : state) {
    uint32_t& slot = in_flight[i & (kInFlight - 1)];
    if (slot != UINT32_MAX) {
      picker->OnRequestEnd(slot);
    }
    picker->OnRequestStart(backend);
    slot = backend;
    backend = backend + 1 == n ? 0 : backend + 1;
    ++i;
  }
  for (uint32_t b : in_flight) {
    if (b != UINT32_MAX) {
      picker->OnRequestEnd(b);
    }
  }
}
BENCHMARK(BM_LeastConnHooks)->ArgName("backends")->Arg(64)->ComputeStatistics("min", Min);

// HashBytes over `state.range(0)` bytes, the input changing every iteration (its first 4
// bytes count up) so nothing can be hoisted out of the loop.
void BM_HashBytes(benchmark::State& state) {
  const auto len = static_cast<size_t>(state.range(0));
  std::array<unsigned char, 16> buf{};
  for (size_t k = 0; k < buf.size(); ++k) {
    buf[k] = static_cast<unsigned char>(0x5a + 17 * k);
  }
  uint32_t counter = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    std::memcpy(buf.data(), &counter, sizeof(counter));
    ++counter;
    benchmark::DoNotOptimize(buf);
    sum += HashBytes(std::string_view(reinterpret_cast<const char*>(buf.data()), len));
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(len));
}
BENCHMARK(BM_HashBytes)->ArgName("bytes")->Arg(4)->Arg(16)->ComputeStatistics("min", Min);

}  // namespace
