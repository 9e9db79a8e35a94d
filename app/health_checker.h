// app/health_checker.h: active health checks, once per process.
//
// One HealthChecker per process runs on worker 0's ring (app/ schedules the checks,
// balancer/ keeps the state): every `interval` it opens a connection to each backend of each
// pool that has `health` configured, sends `GET path`, reads the status line, and reports
// pass or fail into the pool's shared balancer::PoolHealth, which every worker reads. A
// check that does not answer within `timeout` fails. State changes are logged. A pool with
// `tls` is checked over TLS with the same context, verification, SNI and session cache as its
// traffic; `type = "tcp"` checks only that the TCP connect completes. An HTTP/2 pool (protocol
// "h2" / "h2c") is checked over HTTP/2: `GET path` judged by its status, or with `type =
// "grpc"` the gRPC health protocol (grpc.health.v1.Health/Check for `service`), which passes
// on grpc-status 0 and SERVING.
//
// Checks are ordinary core::Conn connections with their own handler, so they obey the same
// lifetime rules as proxied traffic and stop when the worker drains. One check per backend is
// in flight at a time (the loader keeps timeout <= interval).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/health.h"
#include "conf/config.h"
#include "core/worker.h"
#include "http/proxy_config.h"
#include "http/proxy_context.h"

namespace torii::app {

class HealthChecker {
 public:
  // `proxy` holds the shared PoolHealth objects the checks report into; `config` the check
  // settings. Both must outlive the checker's use.
  HealthChecker(const conf::Config& config, const http::ProxyConfig& proxy);
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // No pool has checks configured.
  bool empty() const { return targets_.empty(); }
  // On worker 0's thread, once its loop runs (its on_start hook): the first round starts now.
  // `ctx` is that worker's proxy context (TLS checks count their failures there).
  void Start(http::ProxyContext& ctx);
  // Hot reload, on the same thread: no further round, and results of checks in flight are
  // dropped (a new checker for the new config takes over; this object must stay alive while
  // its probes are).
  void Stop();
  // A probe is in flight (it calls OnResult: the checker must live until it did). Worker 0's
  // thread.
  bool busy() const;

  // A probe's verdict (called by the probe's handler).
  void OnResult(uint32_t target, bool ok, std::string_view detail);

 private:
  struct Target {
    std::string pool;
    std::string backend;  // "127.0.0.1:9001", for logs
    uint32_t index = 0;   // backend index in its pool
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    std::string request;  // the whole GET request; empty: a TCP connect check (or HTTP/2)
    // HTTP/2 pools: the request as fields (path, :authority) and, for gRPC, its message.
    bool h2 = false;
    bool grpc = false;
    std::string path;
    std::string authority;
    std::string grpc_message;
    // The pool's TLS (null: plain): context, name to send and verify, session cache.
    std::shared_ptr<const tls::ClientContext> tls;
    std::string tls_name;
    std::shared_ptr<tls::ClientSessionCache> tls_sessions;
    uint8_t send_proxy = 0;  // the pool's send_proxy: a LOCAL PROXY header first
    uint64_t interval_ms = 0;
    uint64_t timeout_ms = 0;
    std::vector<conf::StatusRange> expect;
    std::shared_ptr<balancer::PoolHealth> health;
    uint64_t next_due_ms = 0;
    bool in_flight = false;
    uint32_t fails_in_row = 0;  // for the log line
  };

  void Round();
  void StartProbe(uint32_t target);

  std::vector<Target> targets_;
  http::ProxyContext* ctx_ = nullptr;
  core::Worker* worker_ = nullptr;
  core::Worker::TaskId task_ = 0;
  bool stopped_ = false;
};

}  // namespace torii::app
