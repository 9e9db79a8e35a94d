// http/tls_transport.h: TLS as a core::Transport, on client and on backend connections.
//
// Owns: one tls::Session per connection, fed with the bytes core/ received and writing the
// records it produces straight into the connection's out queue (Session::SetOutputSink), so
// ClientSession and UpstreamConn read and write plaintext through the same Conn calls whether
// the wire is encrypted or not. Also: what a failed handshake does (a log line at most once a
// second per worker, an alert, a clean close; "400 plain HTTP on TLS port" for a client that
// spoke plain HTTP) and the facts the access log shows.
//
// Leaves out: certificates, SNI, tickets and verification (tls/), timers (the handlers keep
// theirs: the client session arms handshake_timeout for a TLS listener).
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "core/transport.h"
#include "core/worker.h"
#include "tls/session.h"

namespace torii::http {

class ProxyContext;

class TlsServerTransport final : public core::Transport {
 public:
  TlsServerTransport(ProxyContext& ctx, core::Conn& conn,
                     std::shared_ptr<const tls::ServerContext> tls);

  void OnReceived(core::Conn& conn, std::span<const char> bytes) override;
  void Write(core::Conn& conn, std::string_view bytes) override;
  void OnCloseAfterFlush(core::Conn& conn) override;

  // The handshake finished: plaintext flows.
  bool ready() const { return session_.handshake_done(); }
  // The handler's handshake deadline passed (counted and logged as a failure).
  void HandshakeTimedOut(core::Conn& conn);
  const tls::ServerSession& session() const { return session_; }

 private:
  void Failed(core::Conn& conn);

  ProxyContext& ctx_;
  uint64_t idle_timeout_ms_;
  tls::ServerSession session_;
  bool ready_seen_ = false;
};

class TlsClientTransport final : public core::Transport {
 public:
  TlsClientTransport(ProxyContext& ctx, core::Conn& conn,
                     std::shared_ptr<const tls::ClientContext> tls, std::string_view host,
                     std::shared_ptr<tls::ClientSessionCache> sessions);

  void OnReceived(core::Conn& conn, std::span<const char> bytes) override;
  void Write(core::Conn& conn, std::string_view bytes) override;
  void OnConnected(core::Conn& conn) override;
  void OnCloseAfterFlush(core::Conn& conn) override;
  const tls::ClientSession& session() const { return session_; }

 private:
  void Failed(core::Conn& conn);

  ProxyContext& ctx_;
  tls::ClientSession session_;
};

}  // namespace torii::http
