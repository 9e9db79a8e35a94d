// app/discovery.h: backends found by DNS, kept current for every worker.
//
// One Discovery per config version. It asks the questions the config implies: A and AAAA for
// every backend given by name (resolve = true), SRV for a pool's discover name and then A and
// AAAA for each SRV target; each question asked once however many pools use it. A pool's
// backend list is its numeric backends, then each name's addresses (with the entry's port,
// weight and backup), then the SRV targets' addresses (the SRV port and weight; the lowest
// priority serves, each higher one is a further backup tier: SrvBackends), without duplicate
// addresses.
//
// At start-up (and on reload) ResolveNow() asks everything once on the calling thread; after
// that the questions are asked again on worker 0's ring (dns::Resolver), each at its TTL
// (dns::Tracker: clamped by [dns] min_ttl / max_ttl, negative answers per their SOA, failures
// retried with backoff while the last good answer stays in use). When a pool's list changes,
// TakeChanged() says so to the main thread, which builds the next config generation from
// Backends(): requests in flight finish on the previous one, a removed address gets no new
// request and its idle connections close, an address that stays keeps its health state.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "conf/config.h"
#include "core/worker.h"
#include "dns/resolver.h"
#include "dns/tracker.h"
#include "http/proxy_config.h"

namespace torii::app {

// SRV records as backends (RFC 2782): each priority, lowest first, is a tier (the lowest
// serves, the next is the first backup tier, and so on; past 255 the rest share the last).
// Weights are relative within a priority: kept when they fit 1..256, else scaled into it with
// their proportions (1000 and 3000 stay 1:3); 0 ("rarely") becomes 1. In the records' order.
struct SrvBackend {
  std::string target;
  uint16_t port = 0;
  uint32_t weight = 1;
  uint8_t tier = 0;
};
std::vector<SrvBackend> SrvBackends(const std::vector<dns::SrvTarget>& records);

class Discovery {
 public:
  explicit Discovery(const conf::Config& config);
  ~Discovery();
  Discovery(const Discovery&) = delete;
  Discovery& operator=(const Discovery&) = delete;

  // No pool has a backend given by name.
  bool empty() const { return questions_.empty(); }

  // Asks every question once and waits for the answers (bounded by [dns] timeout × attempts
  // per round; SRV targets take a second round). On a thread that is no worker, before Start().
  // Returns why start-up must stop ("" = fine): a name with no address when [dns]
  // resolve_at_start is true (otherwise it is logged and its backends come when it resolves).
  std::string ResolveNow();

  // The backends of pool `pool` (index in the config's pools) as they stand: numeric ones and
  // those DNS gave. Any thread.
  std::vector<http::BackendTarget> Backends(size_t pool) const;

  // On worker 0's thread: keeps asking, each question at its time. Stop() ends it (a reload
  // starts the next config's Discovery); both on that thread.
  void Start(core::Worker& worker);
  void Stop();

  // Main thread: true once after any pool's backend list changed.
  bool TakeChanged();

  // The status page's view of one question of a pool.
  struct NameStatus {
    std::string name;
    const char* type = "A";
    uint32_t records = 0;        // addresses, or SRV targets
    bool resolved = false;       // an answer arrived at least once
    bool negative = false;       // NXDOMAIN / NODATA
    bool stale = false;          // the last query failed: the previous answer is in use
    std::string error;           // why it failed
    uint64_t next_query_ms = 0;  // monotonic
  };
  // Pool `pool`'s questions as of the last answer. Any thread.
  std::vector<NameStatus> Status(size_t pool) const;

 private:
  struct Question {
    Question(std::string n, dns::Type t, const dns::RefreshPolicy& policy)
        : name(std::move(n)), type(t), tracker(policy) {}
    std::string name;
    dns::Type type;
    dns::Tracker tracker;
    bool in_flight = false;
    uint32_t users = 0;  // pools (and SRV answers) that need it; 0 = no longer asked
  };
  using Key = std::pair<std::string, dns::Type>;
  struct PoolSources {
    std::string name;  // the pool's, for logs
    std::vector<conf::BackendConfig> backends;
    std::string srv;
    std::vector<std::string> srv_targets;  // the A/AAAA questions the SRV answer added
  };

  Question& Want(const std::string& name, dns::Type type);
  void Unwant(const std::string& name, dns::Type type);
  // Applies an answer (or failure) to its question; true when what it says changed.
  bool Apply(const Key& key, const dns::QueryResult& result, uint64_t now_ms);
  // After an SRV answer: the A/AAAA questions of its targets.
  void SyncSrvTargets(PoolSources& pool);
  std::vector<http::BackendTarget> Compute(const PoolSources& pool) const;
  // Recomputes every pool's list; marks changed_ (under mu_) when one differs.
  void Publish(bool log);
  void Tick();
  void TickOnce();
  void Ask(const Key& key);

  dns::ResolverOptions resolver_options_;
  dns::RefreshPolicy policy_;
  bool resolve_at_start_ = true;
  std::vector<PoolSources> pools_;
  std::map<Key, Question> questions_;

  core::Worker* worker_ = nullptr;
  std::unique_ptr<dns::Resolver> resolver_;
  core::Worker::TaskId task_ = 0;
  bool stopped_ = false;
  bool ticking_ = false;  // Tick() is running (an answer may arrive inside it)
  bool tick_again_ = false;

  mutable std::mutex mu_;                                    // guards what other threads read
  std::vector<std::vector<http::BackendTarget>> published_;  // per pool
  std::vector<std::vector<NameStatus>> status_;              // per pool
  // When each address was first published (monotonic ms), per pool: slow_start ramps from it.
  // Addresses of the first answers (before the workers serve) count as there from the start.
  std::vector<std::map<std::string, uint64_t>> added_;
  bool started_ = false;
  bool changed_ = false;
};

}  // namespace torii::app
