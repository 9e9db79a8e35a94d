// tls/client_context.h: TLS from torii to its backends: one context per pool, one small
// session cache per backend.
//
// Owns: ClientContext (an SSL_CTX built from ClientOptions: verification against the system
// trust store or a CA file, TLS 1.2 minimum, ALPN, no renegotiation) and ClientSessionCache
// (the last resumable session a backend gave us, so the next pooled connection to it resumes
// instead of paying a full handshake). UpstreamSession (session.h) applies the per-connection
// parts: SNI, the name checked against the certificate, the cached session.
//
// Thread safety: ClientContext is immutable after Create; ClientSessionCache takes a mutex
// (held for a pointer swap, once per connection set-up and per ticket received).
// Leaves out: client certificates (mTLS to backends), OCSP, certificate pinning.
#pragma once

#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "tls/options.h"
#include "tls/stats.h"

struct ssl_ctx_st;
struct ssl_st;
struct ssl_session_st;

namespace torii::tls {

class ClientContext {
 public:
  // Fails (message naming the CA file) when the trust store cannot be loaded, or an ALPN
  // name is empty or longer than 255 bytes.
  static std::expected<std::shared_ptr<const ClientContext>, std::string> Create(
      const ClientOptions& options, std::shared_ptr<HandshakeStats> stats = nullptr);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  ssl_ctx_st* ctx() const { return ctx_; }
  const ClientOptions& options() const { return options_; }
  HandshakeStats& stats() const { return *stats_; }

  // Sets SNI and the verified name on a new client SSL: options().sni, else `host`. An IP
  // address gets no SNI (RFC 6066) and is verified against the certificate's IP SANs.
  bool Configure(ssl_st* ssl, std::string_view host) const;

 private:
  ClientContext() = default;

  ssl_ctx_st* ctx_ = nullptr;
  ClientOptions options_;
  std::shared_ptr<HandshakeStats> stats_;
};

// The session to resume on the next connection to one backend. TLS 1.3 recommends one
// ticket per connection; torii's backends are its own fleet, so reusing the latest ticket on
// several pooled connections is accepted (only linkability is lost, and nothing is secret
// about which proxy talks to which backend).
class ClientSessionCache {
 public:
  ClientSessionCache() = default;
  ~ClientSessionCache();
  ClientSessionCache(const ClientSessionCache&) = delete;
  ClientSessionCache& operator=(const ClientSessionCache&) = delete;

  // Keeps `session` (takes over the caller's reference), dropping the previous one. A
  // session that cannot be resumed is dropped instead.
  void Store(ssl_session_st* session);
  // A new reference to the stored session (the caller frees it), or nullptr.
  ssl_session_st* Take() const;
  void Clear();
  bool empty() const;

 private:
  mutable std::mutex mu_;
  ssl_session_st* session_ = nullptr;
};

}  // namespace torii::tls
