// app/reloader.h: the configuration generations of a running server, and how one replaces
// another.
//
// Owns: the config in use and every earlier one that something may still refer to (a
// HealthChecker or Discovery of a replaced generation, requests in flight), the TLS contexts
// in use, the active health checker and the DNS discovery of the current config. SIGHUP
// (ReloadFile) and a DNS change (PollDiscovery) build the next http::ProxyConfig off the
// workers' threads, carry the running state over (generation.h CarryOver) and hand it to every
// worker; requests in flight finish on the generation they started on. Anything wrong leaves
// the running generation serving. Runs on the main thread; what it hands worker 0 (checker,
// discovery, admin, ticket keys) is posted to worker 0's thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "app/admin.h"
#include "app/discovery.h"
#include "app/generation.h"
#include "app/health_checker.h"
#include "app/ocsp_fetcher.h"
#include "conf/config.h"
#include "core/worker.h"
#include "http/proxy_config.h"
#include "http/proxy_context.h"

namespace torii::app {

class Reloader {
 public:
  using TicketKeyList = std::vector<std::shared_ptr<tls::TicketKeys>>;

  Reloader(const conf::Config& config, uint32_t workers);
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // Start-up: the TLS contexts, the backends named by DNS resolved once (start-up fails when
  // one does not resolve, unless [dns] resolve_at_start = false), the first generation. Empty,
  // or why torii cannot start.
  std::string Start();

  const std::shared_ptr<const http::ProxyConfig>& proxy_config() const { return proxy_config_; }
  // What worker 0 runs for the first generation (it is handed the next ones by Install).
  HealthChecker* checker() const { return checker_.get(); }
  Discovery* discovery() const { return discovery_; }
  OcspFetcher* ocsp() const { return ocsp_.get(); }
  // The ticket key sets worker 0 rotates; replaced in place (on worker 0) by each generation.
  const std::shared_ptr<TicketKeyList>& ticket_keys() const { return ticket_keys_; }

  // The workers that take each next generation (and worker 0 its checker, discovery and the
  // admin's view, `admin` may be null). Called once they exist, before any reload.
  void Attach(std::vector<http::ProxyContext*> contexts, Admin* admin);

  // SIGHUP: read and check the config file again (the running one's source), build its TLS
  // contexts and resolve its names, then install it. False (logged) when refused.
  bool ReloadFile();
  // DNS changed a pool's backends: the next generation, from the running config.
  void PollDiscovery();
  // At exit, once the workers' threads have returned and before the workers are destroyed:
  // the resolvers unwatch their sockets on worker 0's ring, which must still exist.
  void StopDiscovery() {
    discovery_ = nullptr;
    discoveries_.clear();
  }

 private:
  const conf::Config& running() const { return configs_.empty() ? first_ : *configs_.back(); }
  void Install(std::shared_ptr<http::ProxyConfig> next, const conf::Config& config,
               Discovery* discovery, bool reload);

  const conf::Config& first_;
  uint32_t workers_;
  // Configs read by reloads (each one's HealthChecker and Discovery refer to it), kept to exit.
  std::vector<std::unique_ptr<conf::Config>> configs_;
  TlsContexts tls_;
  // Every config's Discovery (one per reload), kept until the workers stop.
  std::vector<std::unique_ptr<Discovery>> discoveries_;
  Discovery* discovery_ = nullptr;
  std::shared_ptr<const http::ProxyConfig> proxy_config_;
  // Active health checks run on worker 0's ring; a replaced checker is kept (on worker 0) until
  // none of its probes is in flight.
  std::shared_ptr<HealthChecker> checker_;
  std::shared_ptr<std::vector<std::shared_ptr<HealthChecker>>> retired_checkers_ =
      std::make_shared<std::vector<std::shared_ptr<HealthChecker>>>();
  std::shared_ptr<TicketKeyList> ticket_keys_;
  // OCSP responses fetched for the TLS contexts, on worker 0's ring: replaced with the contexts
  // (a reload, not a DNS change), the old one kept until its fetches in flight end.
  std::shared_ptr<OcspFetcher> ocsp_;
  std::shared_ptr<std::vector<std::shared_ptr<OcspFetcher>>> retired_ocsp_ =
      std::make_shared<std::vector<std::shared_ptr<OcspFetcher>>>();
  std::vector<http::ProxyContext*> contexts_;
  Admin* admin_ = nullptr;
};

}  // namespace torii::app
