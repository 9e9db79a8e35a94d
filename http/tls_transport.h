// http/tls_transport.h: TLS as a core::Transport, on client and on backend connections.
//
// Owns: one tls::Session per connection, fed with the bytes core/ received and writing the
// records it produces straight into the connection's out queue (Session::SetOutputSink), so
// the downstream codecs and UpstreamConn read and write plaintext through the same Conn calls
// whether the wire is encrypted or not. Also: what a failed handshake does (a log line at most once a
// second per worker, an alert, a clean close; "400 plain HTTP on TLS port" for a client that
// spoke plain HTTP) and the facts the access log shows.
//
// Leaves out: certificates, SNI, tickets and verification (tls/), timers (the handlers keep
// theirs: H1Session arms handshake_timeout for a TLS listener; ALPN "h2" hands the connection
// to H2Session at its first bytes).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/transport.h"
#include "core/worker.h"
#include "tls/record_size.h"
#include "tls/session.h"

namespace torii::http {

class ProxyContext;

// What both directions share: plaintext written during a loop turn is held and sealed at
// Flush() (the worker calls it before sending), so a response head and its body become one
// record, not one record per Write(). Whenever a full record's worth (kRecord) is held it is
// sealed at once, so the held bytes never outgrow one record; their buffer is the worker's
// (ProxyContext::TakeSealBuffer), given back after each flush, so an idle connection holds
// none and a busy one neither grows nor frees a buffer per turn. How much goes in each record
// is the RecordSizer's call: to clients, the listener's record_size (dynamic by default: small
// records while a connection's window is small); to backends, full records.
class TlsTransport : public core::Transport {
 public:
  static constexpr size_t kRecord = tls::kMaxRecordSize;  // TLS's largest record

  void Write(core::Conn& conn, std::string_view bytes) override;
  size_t pending() const override { return pending_.size(); }
  void Flush(core::Conn& conn) override;
  void OnCloseAfterFlush(core::Conn& conn) override;

 protected:
  // `record_size`: tls::ServerOptions::record_size (0: dynamic).
  TlsTransport(ProxyContext& ctx, uint32_t record_size) : ctx_(ctx), records_(record_size) {}
  virtual tls::Session& session() = 0;
  virtual void Failed(core::Conn& conn) = 0;

  ProxyContext& ctx_;

 private:
  // Seals `plaintext` into records (written to the connection through the session's sink);
  // false when the session failed (the connection is closing).
  bool Seal(core::Conn& conn, std::string_view plaintext);

  std::string pending_;
  tls::RecordSizer records_;
};

class TlsServerTransport final : public TlsTransport {
 public:
  TlsServerTransport(ProxyContext& ctx, core::Conn& conn,
                     std::shared_ptr<const tls::ServerContext> tls);

  void OnReceived(core::Conn& conn, std::span<const char> bytes) override;

  // The handshake finished: plaintext flows.
  bool ready() const { return session_.handshake_done(); }
  // The handler's handshake deadline passed (counted and logged as a failure).
  void HandshakeTimedOut(core::Conn& conn);
  const tls::DownstreamSession& server_session() const { return session_; }
  // How long the handshake took, accept to done (0 until it is done).
  uint64_t handshake_ns() const { return handshake_ns_; }

 private:
  tls::Session& session() override { return session_; }
  void Failed(core::Conn& conn) override;

  void NoteHandshakeDone();

  uint64_t idle_timeout_ms_;
  uint64_t accepted_ns_;
  uint64_t handshake_ns_ = 0;  // 0 until the handshake is seen done
  tls::DownstreamSession session_;
};

class TlsClientTransport final : public TlsTransport {
 public:
  TlsClientTransport(ProxyContext& ctx, core::Conn& conn,
                     std::shared_ptr<const tls::ClientContext> tls, std::string_view host,
                     std::shared_ptr<tls::ClientSessionCache> sessions);

  void OnReceived(core::Conn& conn, std::span<const char> bytes) override;
  void OnConnected(core::Conn& conn) override;

 private:
  tls::Session& session() override { return session_; }
  void Failed(core::Conn& conn) override;

  tls::UpstreamSession session_;
};

}  // namespace torii::http
