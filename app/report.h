// app/report.h: what the admin endpoint reports, each number described once.
//
// Owns: the tables of metrics (Prometheus name, type, help, labels, the key /status.json gives
// it, and how to read it from the workers' counters or the shared state) and the two renderers
// that write every table as Prometheus text format 0.0.4 and as the status document. A number
// that both formats show is read by the same function. Leaves out: the listener, its access
// list and the HTML page (admin.h).
//
// Reads, never writes: per-worker core::Counter values (summed when read), the shared
// balancer/ratelimit/cache state (atomics) and the config generation in use.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "app/discovery.h"
#include "http/proxy_config.h"
#include "http/proxy_context.h"

namespace torii::app {

struct ReportInputs {
  const http::ProxyConfig& proxy;                          // the generation in use
  std::span<const http::ProxyContext* const> contexts;    // one per worker
  const std::vector<std::string>& listener_names;          // by listener index
  const Discovery* discovery;                              // may be null
  uint64_t uptime_s = 0;
  uint64_t reloads = 0;
};

// GET /metrics: Prometheus text format 0.0.4.
std::string PrometheusText(const ReportInputs& in);
// GET /status.json (its fields are documented in the README).
std::string StatusJson(const ReportInputs& in);

}  // namespace torii::app
