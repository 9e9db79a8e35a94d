// http/tls_transport.cc: see tls_transport.h.
#include "http/tls_transport.h"

#include <algorithm>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "http/proxy_context.h"
#include "ratelimit/ip.h"

namespace torii::http {

namespace {

// Records go straight into the connection's out queue as OpenSSL produces them.
tls::OutputSink SinkTo(core::Conn& conn) {
  return tls::OutputSink{
      [](void* c, std::string_view bytes) { static_cast<core::Conn*>(c)->WriteRaw(bytes); },
      &conn};
}

// nginx answers a plain HTTP request on a TLS port the same way: the client may be a person
// who typed http:// for https://.
constexpr std::string_view kPlainHttpReply =
    "HTTP/1.1 400 Bad Request\r\nServer: torii\r\nContent-Type: text/plain\r\n"
    "Content-Length: 52\r\nConnection: close\r\n\r\n"
    "400 Bad Request: plain HTTP sent to an HTTPS port\n\n";

}  // namespace

void TlsTransport::Write(core::Conn& conn, std::string_view bytes) {
  if (pending_.empty() && bytes.size() >= kRecord) {
    // Whole records straight from the caller's bytes: nothing to gather first.
    const size_t whole = bytes.size() - bytes.size() % kRecord;
    if (!Seal(conn, bytes.substr(0, whole))) {
      return;
    }
    bytes.remove_prefix(whole);
    if (bytes.empty()) {
      return;
    }
  }
  if (pending_.empty() && pending_.capacity() < kRecord) {
    pending_ = ctx_.TakeSealBuffer();
  }
  while (!bytes.empty()) {
    const size_t n = std::min(bytes.size(), kRecord - pending_.size());
    pending_.append(bytes.substr(0, n));
    bytes.remove_prefix(n);
    if (pending_.size() == kRecord) {
      const bool sealed = Seal(conn, pending_);
      pending_.clear();
      if (!sealed) {
        return;
      }
    }
  }
}

bool TlsTransport::Seal(core::Conn& conn, std::string_view plaintext) {
  const uint64_t now = ctx_.worker().now_ms();
  while (!plaintext.empty()) {
    const size_t limit = records_.Limit(now);
    // Full records: one write, which OpenSSL cuts into records of that size itself.
    const size_t n = limit == tls::RecordSizer::kMaxRecord ? plaintext.size()
                                                           : std::min(plaintext.size(), limit);
    if (session().Write(plaintext.substr(0, n)) == tls::Status::kFailed) {
      Failed(conn);
      return false;
    }
    records_.Sealed(n, now);
    plaintext.remove_prefix(n);
  }
  return true;
}

void TlsTransport::Flush(core::Conn& conn) {
  if (!pending_.empty()) {
    Seal(conn, pending_);
  }
  if (pending_.capacity() >= kRecord) {
    ctx_.GiveSealBuffer(std::move(pending_));
    pending_ = std::string();  // an idle connection keeps no plaintext buffer
  }
}

void TlsTransport::OnCloseAfterFlush(core::Conn& conn) {
  Flush(conn);
  session().Shutdown();  // close_notify, so the peer can tell the end from a truncation
}

TlsServerTransport::TlsServerTransport(ProxyContext& ctx, core::Conn& conn,
                                       std::shared_ptr<const tls::ServerContext> tls)
    : TlsTransport(ctx, tls->record_size()),
      idle_timeout_ms_(ctx.config().limits.idle_timeout_ms),
      accepted_ns_(core::MonotonicNs()),
      session_(std::move(tls)) {
  session_.SetOutputSink(SinkTo(conn));
}

void TlsServerTransport::OnReceived(core::Conn& conn, std::span<const char> bytes) {
  const tls::Status status = session_.Receive(bytes, [&](std::string_view plain) {
    if (session_.handshake_done()) {
      NoteHandshakeDone();  // the first request byte: the handler's own timers take over
    }
    conn.handler()->OnRecv(conn, std::span<const char>(plain.data(), plain.size()));
    return !conn.closing();
  });
  if (status == tls::Status::kFailed) {
    Failed(conn);
    return;
  }
  if (handshake_ns_ == 0 && session_.handshake_done()) {
    NoteHandshakeDone();
    if (session_.early_data_received()) {
      // Requests came in early data and may wait for this (the handler's timers run).
      if (!conn.closing()) {
        conn.handler()->OnTransportReady(conn);
      }
    } else {
      // Handshake done, no request yet: the connection is idle like a fresh plain one.
      conn.SetTimer(ctx_.worker().now_ms() + idle_timeout_ms_);
    }
  }
}

void TlsServerTransport::NoteHandshakeDone() {
  if (handshake_ns_ == 0) {
    handshake_ns_ = std::max<uint64_t>(1, core::MonotonicNs() - accepted_ns_);
  }
}

void TlsServerTransport::HandshakeTimedOut(core::Conn& conn) {
  if (!session_.handshake_done() && !session_.failed()) {
    session_.FailTimeout();
    ctx_.NoteTlsFailure(conn, session_.failure_reason());
  }
}

void TlsServerTransport::Failed(core::Conn& conn) {
  ctx_.NoteTlsFailure(conn, session_.failure_reason());
  if (session_.failure() == tls::Failure::kPlainHttp) {
    conn.WriteRaw(kPlainHttpReply);
  }
  conn.CloseAfterFlush();  // the alert (or the 400) goes out, then the connection closes
}

TlsClientTransport::TlsClientTransport(ProxyContext& ctx, core::Conn& conn,
                                       std::shared_ptr<const tls::ClientContext> tls,
                                       std::string_view host,
                                       std::shared_ptr<tls::ClientSessionCache> sessions)
    : TlsTransport(ctx, tls::kMaxRecordSize), session_(std::move(tls), host, std::move(sessions)) {
  session_.SetOutputSink(SinkTo(conn));
}

void TlsClientTransport::OnConnected(core::Conn& conn) {
  if (session_.Start() == tls::Status::kFailed) {
    Failed(conn);
  }
}

void TlsClientTransport::OnReceived(core::Conn& conn, std::span<const char> bytes) {
  const tls::Status status = session_.Receive(bytes, [&](std::string_view plain) {
    conn.handler()->OnRecv(conn, std::span<const char>(plain.data(), plain.size()));
    return !conn.closing();
  });
  if (status == tls::Status::kFailed) {
    Failed(conn);
  }
}

void TlsClientTransport::Failed(core::Conn& conn) {
  if (conn.closing()) {
    return;
  }
  ctx_.NoteTlsFailure(conn, session_.failure_reason());
  // To the upstream handler this is a broken connection: retried or 502 as any other.
  conn.handler()->OnError(conn, core::Error::FromCqe(-EPROTO, core::Side::kUpstream));
}

}  // namespace torii::http
