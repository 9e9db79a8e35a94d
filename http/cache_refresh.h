// http/cache_refresh.h: stale-while-revalidate's background refreshes (RFC 5861 §3).
//
// The first request for an entry inside its stale-while-revalidate window is answered from the
// stale entry at once, as every later one is, and the revalidation it would have waited for
// goes on here, owned by the worker rather than by that client's connection: the client may
// leave, the refresh still updates the store. A refresh is an Exchange of its own whose
// Downstream takes the response and drops it (the store is all it writes); upstream
// connections find it through this host as they find a client connection's exchanges.
//
// Internal to http/: the exchange starts refreshes (session_cache.cc), ProxyContext owns this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/worker.h"
#include "http/exchange.h"

namespace torii::http {

class CacheRefresher final : public ExchangeHost {
 public:
  // Refreshes in flight on one worker, at most: past that, a request whose entry is within its
  // stale-while-revalidate window revalidates in the foreground (and waits, as it would
  // without the directive).
  static constexpr size_t kMaxInFlight = 1024;

  explicit CacheRefresher(ProxyContext& ctx);
  CacheRefresher(const CacheRefresher&) = delete;
  CacheRefresher& operator=(const CacheRefresher&) = delete;
  // After the worker's loop has ended (ProxyContext outlives it).
  ~CacheRefresher();

  bool HasRoom() const { return live_.size() < kMaxInFlight; }
  size_t in_flight() const { return live_.size(); }
  // Takes over the revalidation `from` prepared and sends it (Exchange::StartRefresh).
  void Start(Exchange& from);

  // ---- ExchangeHost ----
  Exchange* FindExchange(uint32_t id) override;
  Exchange* FindWaiter(uint64_t /*ticket*/) override { return nullptr; }  // none ever waits

 private:
  class Refresh;
  // A refresh's exchange is over (or cut): destroyed from a task, outside its own calls.
  void Ended(uint32_t id);
  void Reap();

  ProxyContext& ctx_;
  std::unordered_map<uint32_t, std::unique_ptr<Refresh>> live_;
  std::vector<uint32_t> ended_;
  uint32_t next_id_ = 0;
  core::Worker::TaskId reap_task_ = 0;
  bool reap_created_ = false;
};

}  // namespace torii::http
