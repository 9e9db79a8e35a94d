// app/admin.h: the admin listener: Prometheus metrics and a JSON status document.
//
// One [admin] listener per process, served by worker 0 (listed as "admin" in the
// ready file). It answers, one request per connection (Connection: close):
//   GET /metrics      Prometheus text format 0.0.4: counters summed over the workers when read,
//                     gauges for connections and backend health, a request-duration histogram
//   GET /status.json  the same state as JSON for people and dashboards (documented in README)
//   GET /             a live HTML status page (self-contained; polls /status.json)
// Clients outside [admin] allow (default: loopback only) get 403; other paths 404; methods
// other than GET/HEAD 405.
//
// The documents are report.h's (each number described once there). Reads, never writes: every
// number comes from core::Counter values owned by the workers, or from the shared
// balancer/ratelimit state (atomics). On a reload worker 0 hands it the new
// ProxyConfig (SetProxyConfig) and it counts the reload.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "app/discovery.h"
#include "app/report.h"
#include "conf/config.h"
#include "core/worker.h"
#include "http/proxy_config.h"
#include "http/proxy_context.h"
#include "ratelimit/ip.h"

namespace torii::app {

class Admin {
 public:
  Admin(const conf::Config& config, std::shared_ptr<const http::ProxyConfig> proxy,
        std::vector<const http::ProxyContext*> contexts);

  // The handler of a connection accepted on the admin listener.
  std::unique_ptr<core::ConnHandler> Accept(core::Conn& conn);

  // The documents (public for tests and the handler).
  std::string Metrics() const;
  std::string StatusJson() const;
  bool Allowed(const ratelimit::IpAddr& client) const;
  // Hot reload (on worker 0's thread, where the admin listener is served).
  void SetProxyConfig(std::shared_ptr<const http::ProxyConfig> proxy) { proxy_ = std::move(proxy); }
  void CountReload() { ++reloads_; }
  // The Discovery of the config in use (backends found by DNS), for the status page.
  void SetDiscovery(const Discovery* discovery) { discovery_ = discovery; }

 private:
  ReportInputs Inputs() const;

  std::shared_ptr<const http::ProxyConfig> proxy_;
  std::vector<const http::ProxyContext*> contexts_;
  std::vector<std::string> listener_names_;
  ratelimit::IpList allow_;
  uint64_t started_ms_;
  uint64_t reloads_ = 0;
  const Discovery* discovery_ = nullptr;
};

}  // namespace torii::app
