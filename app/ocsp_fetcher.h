// app/ocsp_fetcher.h: OCSP responses fetched by torii for the certificates it staples
// (listener tls.ocsp_stapling), once per process, on worker 0's ring.
//
// For every certificate of every TLS listener that names its responder (AIA) instead of an
// ocsp_file, the fetcher POSTs the certificate's OCSP request to the responder (HTTP/1.0,
// application/ocsp-request) and hands the answer to the listener's ServerContext, which checks
// it (issuer's signature, this certificate, good, current) before stapling it. A response is
// refreshed halfway through its validity (at most every 12 h, at least 1 min apart); a failed
// fetch (responder down, refused answer) is retried after 5 s, doubling to 10 min, and
// meanwhile the previous response stays stapled while it is valid, never past its nextUpdate
// (the ServerContext refuses to staple it then). Failures are logged once per streak, with
// the recovery.
//
// The responder's name is resolved when the generation is built (start, reload), on the main
// thread; fetches are ordinary core::Conn connections with a timeout of 10 s. One fetcher per
// generation: a reload starts a new one (the new contexts first staple what the old ones had).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/worker.h"
#include "http/proxy_config.h"
#include "tls/server_context.h"

namespace torii::app {

class OcspFetcher {
 public:
  explicit OcspFetcher(const http::ProxyConfig& proxy);
  OcspFetcher(const OcspFetcher&) = delete;
  OcspFetcher& operator=(const OcspFetcher&) = delete;

  bool empty() const { return targets_.empty(); }
  // On worker 0's thread once its loop runs: the first fetches start now.
  void Start(core::Worker& worker);
  // A reload, on the same thread: no further fetch; answers in flight are dropped.
  void Stop();
  bool busy() const;

  // A fetch ended: the HTTP response body (ok), or why it failed.
  void OnResult(uint32_t target, bool ok, std::string_view body_or_error);

  static constexpr uint64_t kTimeoutMs = 10000;
  static constexpr uint64_t kFirstRetryMs = 5000;
  static constexpr uint64_t kMaxRetryMs = 600000;

 private:
  struct Target {
    std::string listener;
    std::shared_ptr<const tls::ServerContext> ctx;
    const tls::ServerContext::OcspFetch* fetch = nullptr;
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    std::string request;  // the whole HTTP request
    std::string resolve_error;
    uint64_t due_ms = 0;
    uint64_t retry_ms = 0;  // the wait after the next failure
    bool in_flight = false;
    bool failing = false;  // logged: the current streak of failures
  };

  void Round();
  void Fetch(uint32_t target);
  void Failed(Target& t, std::string_view why);

  std::vector<Target> targets_;
  core::Worker* worker_ = nullptr;
  core::Worker::TaskId task_ = 0;
  bool stopped_ = false;
};

}  // namespace torii::app
