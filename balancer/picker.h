// balancer/picker.h: choosing a backend of a pool. No I/O, no locks, no HTTP.
//
// A Picker is built from a pool's backend list and is owned by one worker thread (each worker
// has its own instance, so picks never contend). Health reaches Pick() only through the
// `healthy` mask the caller passes (Pingora's ready()); `exclude` holds the backends already
// tried for this request (HAProxy's "server to avoid"), so a retry never lands on the same one.
// The one piece of state shared between workers is least_conn's LoadCounters (load.h), which
// the caller creates once per pool and passes to every worker's picker.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "balancer/load.h"

namespace torii::balancer {

// A set of backend indexes (0..size-1). Small and copyable; one bit per backend.
class BackendMask {
 public:
  BackendMask() = default;
  explicit BackendMask(uint32_t size, bool all_set = false);

  uint32_t size() const { return size_; }
  // An index outside 0..size-1 reads as clear: a mask built for fewer backends (or a
  // default-constructed one) simply holds none of the extra ones. Inline: pickers call it once
  // or twice per backend per pick.
  bool test(uint32_t i) const { return i < size_ && ((words_[i / 64] >> (i % 64)) & 1) != 0; }
  void set(uint32_t i, bool value = true);
  uint32_t count() const;
  // The mask 64 backends at a time, for pickers that read it whole: bit k of word(w) is
  // test(w * 64 + k). words() is (size() + 63) / 64. Bits at and past size() are always clear,
  // and a word past the end reads as 0, so like test() a mask built for fewer backends reads as
  // holding none of the extra ones.
  uint32_t words() const { return static_cast<uint32_t>(words_.size()); }
  uint64_t word(uint32_t w) const { return w < words_.size() ? words_[w] : 0; }
  // Clears the mask and gives it `size` backends, reusing its memory (no allocation when the
  // size does not grow).
  void Reset(uint32_t size);

 private:
  uint32_t size_ = 0;
  std::vector<uint64_t> words_;
};

struct BackendSpec {
  uint32_t weight = 1;  // 1..256
  // 0: a primary. 1, 2, ...: a backup tier, which serves only when no backend of a lower tier
  // is eligible (SRV priorities; `backup = true` is tier 1).
  uint8_t tier = 0;
  // Stable identity for consistent hashing (ip_hash): HashBytes() of the backend's address, so
  // a backend keeps its share of the keys when others are added or removed around it. 0 = use
  // the backend's index, which is stable only while backends are appended at the end.
  uint64_t id = 0;
};

class Picker {
 public:
  virtual ~Picker() = default;
  // Returns a backend index that is set in `healthy` and not set in `exclude`, or nullopt when
  // none is. Never loops: O(backends) at worst. `key_hash` is used by hashing algorithms only.
  // Backups are eligible only when no primary is (healthy and not excluded).
  virtual std::optional<uint32_t> Pick(uint64_t key_hash, const BackendMask& healthy,
                                       const BackendMask& exclude) = 0;
  // Bookkeeping hooks for algorithms that count load (least-connections): OnRequestStart(b)
  // when a request is committed to backend b, and OnRequestEnd(b) exactly once when it is over,
  // whatever the outcome (response, error, timeout, client gone). No-ops for the others.
  virtual void OnRequestStart(uint32_t /*backend*/) {}
  virtual void OnRequestEnd(uint32_t /*backend*/) {}
  virtual uint32_t size() const = 0;
};

// Smooth weighted round-robin (nginx's algorithm): a weight-3 backend gets 3 of every 5 picks
// against a weight-2 one, interleaved (a b a b a), not in bursts.
std::unique_ptr<Picker> MakeRoundRobin(std::vector<BackendSpec> backends);

// Least connections, weighted (nginx least_conn, HAProxy leastconn): the eligible backend with
// the fewest active requests relative to its weight (active_i / weight_i, compared without
// division), counted across all workers through `load`. Ties go round-robin, weighted (a
// weight-3 backend gets 3 of every 4 tied picks against a weight-1 one), so a lightly loaded
// pool, where every count is 0, still honours the weights. OnRequestStart()/OnRequestEnd() call
// load->Add()/Sub(): the caller must pair them, on this same picker, for every request.
// `load` is shared by the pool's pickers and must have backends.size() counters; nullptr gives
// the picker private counters (single worker, tests). Returns nullptr when `load` has the wrong
// size (a wiring bug).
std::unique_ptr<Picker> MakeLeastConn(std::vector<BackendSpec> backends,
                                      std::shared_ptr<LoadCounters> load);

// Consistent hashing on Pick()'s `key_hash` through a Maglev lookup table (Eisenbud et al.,
// NSDI 2016): a key keeps its backend across picks, workers and restarts, a backend's share of
// the keys is proportional to its weight, and removing one backend of N moves about 1/N of the
// keys (plus a small Maglev surplus, see ip_hash.cc). A key whose backend is unhealthy or
// excluded goes to the next eligible entry along its probe sequence through the table, and
// returns when the backend does. Backends are placed by BackendSpec::id. The table (65537 slots,
// or 100 per backend beyond 655) is built here, once: a few milliseconds, ~256 KiB per picker.
std::unique_ptr<Picker> MakeIpHash(std::vector<BackendSpec> backends);

// A 64-bit non-cryptographic hash of `bytes` for Pick()'s `key_hash` (a client address, a header
// or cookie value) and for BackendSpec::id (a backend address). Deterministic across calls,
// processes and builds: changing it remaps every ip_hash client, so treat it as a format.
uint64_t HashBytes(std::string_view bytes);

// What a hashing algorithm (ip_hash) hashes, and a split's stickiness key: the client's address,
// a request header's value or a cookie's.
enum class HashKey : uint8_t { kClientIp, kHeader, kCookie };

// The algorithms, as a pool's config names them (`algorithm = "least_conn"`).
enum class Algorithm : uint8_t { kRoundRobin, kLeastConn, kIpHash };
inline constexpr Algorithm kAlgorithms[] = {Algorithm::kRoundRobin, Algorithm::kLeastConn,
                                            Algorithm::kIpHash};
// Its config name: "round_robin", "least_conn", "ip_hash" (the one list of them).
std::string_view AlgorithmName(Algorithm algorithm);
// The algorithm a config name names (exact, case-sensitive), or nullopt.
std::optional<Algorithm> ParseAlgorithm(std::string_view name);

// `load` is least_conn's shared counters (see MakeLeastConn; nullptr = private ones) and is
// ignored by the others. nullptr for least_conn with `load` of the wrong size.
std::unique_ptr<Picker> MakePicker(Algorithm algorithm, std::vector<BackendSpec> backends,
                                   std::shared_ptr<LoadCounters> load);
// By config name (nullptr for an unknown one); `load` = nullptr when not given (least_conn
// then counts this picker's requests only).
std::unique_ptr<Picker> MakePicker(std::string_view algorithm, std::vector<BackendSpec> backends,
                                   std::shared_ptr<LoadCounters> load = nullptr);

// What an algorithm needs from its caller (HAProxy BE_LB_NEED_*), so config loading can refuse a
// combination that cannot work.
//
// Pick() reads `key_hash`: the caller hashes the client address (or the configured hash_key
// header/cookie) with HashBytes(). For the others key_hash is ignored, so a hash_key is an error.
bool NeedsKeyHash(Algorithm algorithm);
// The picker counts load: the caller creates one LoadCounters per pool, shares it among the
// workers' pickers, and calls OnRequestStart()/OnRequestEnd() around every request.
bool NeedsLoadCounters(Algorithm algorithm);
// By config name: false for an unknown one.
bool NeedsKeyHash(std::string_view algorithm);
bool NeedsLoadCounters(std::string_view algorithm);

}  // namespace torii::balancer
