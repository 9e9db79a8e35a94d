// http/downstream.h: what an exchange sees of its client, whatever protocol carries it.
//
// An exchange (exchange.h) runs the stages for one request. It reaches its client only
// through Downstream, which a downstream codec implements: an HTTP/1.1 connection
// (h1_session.h: one exchange at a time) or one HTTP/2 stream (h2_session.h). What the
// connection itself knows (its listener, peer, PROXY header, client certificate) is in
// ClientConn, shared by every exchange on it.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/worker.h"
#include "http/h1_parser.h"
#include "http/serialize.h"
#include "ratelimit/conn_limit.h"
#include "tls/session.h"

namespace torii::http {

// What the exchange knows of the response body it is about to send.
enum class ResponseBody : uint8_t {
  kNone,     // no body (HEAD, 1xx, 204, 304, or an empty local reply's)
  kLength,   // exactly head.content_length bytes
  kUnknown,  // a length known only at its end (chunked or close-delimited backend, encoded)
};

// The client side of one exchange. Writes are queued in the protocol's framing; none of them
// calls back into the exchange (events come later, from the connection's own handler).
class Downstream {
 public:
  virtual ~Downstream() = default;

  // The wire protocol, for the access log ("HTTP/1.1", "HTTP/2.0").
  virtual std::string_view protocol() const = 0;
  // The client side is gone or going: no more of this exchange reaches it.
  virtual bool closing() const = 0;
  // Response bytes queued for the client and not yet taken by it.
  virtual size_t queued() const = 0;
  // More than the high-water mark is queued: the client is slow.
  virtual bool WriteBlocked() = 0;

  // An interim response (103): false, and nothing written, where the protocol has none.
  virtual bool WriteInterim(const MessageHead& head) = 0;
  // "100 Continue" (the exchange is ready for the request body).
  virtual void WriteContinue() = 0;
  // The backend's "101 Switching Protocols" (`head`, with `extra`: Connection and Upgrade) as
  // the client's protocol opens a tunnel: a 101 on HTTP/1.1, a 200 on an HTTP/2 stream (RFC
  // 8441). From here the body bytes both ways are the new protocol's. Returns the status the
  // client got, or 0 where the protocol has no tunnel.
  virtual int WriteSwitchingProtocols(const MessageHead& head, std::string_view extra) = 0;
  // The tunnel ends: cleanly (what is queued goes first, then the end of the byte stream: the
  // connection's FIN on HTTP/1.1, END_STREAM on HTTP/2) or, `abort`, at once (the connection
  // closed; the stream reset).
  virtual void EndTunnel(bool abort) = 0;
  // The final response head. `*close` may be set where the body's end is the connection's
  // (HTTP/1.0); `head_request`: the head describes a body that is not sent.
  virtual void WriteHead(const MessageHead& head, ResponseBody body, bool head_request, bool* close,
                         std::string_view extra, const HeadEdits& edits) = 0;
  // The client's connection, when body bytes written after WriteHead may go into its socket as
  // they are (plain HTTP/1.1 with the backend's Content-Length: Upstream::SpliceBodyTo); else
  // nullptr.
  virtual core::Conn* SpliceTarget() { return nullptr; }
  // Body bytes. `lend`: they lie in a receive buffer being delivered now (no copy needed
  // before this call returns), else they are copied.
  virtual void WriteBody(std::string_view bytes, bool lend) = 0;
  // Body bytes that `owner` keeps alive (a stored response's body): a codec that can send them
  // from there holds `owner` instead of copying them.
  virtual void WriteStoredBody(std::string_view bytes,
                               const std::shared_ptr<const void>& /*owner*/) {
    WriteBody(bytes, /*lend=*/false);
  }
  // The end of the response, with the trailer fields the backend sent after its body (passed
  // on where the framing has room for them: a chunked body's last chunk, HTTP/2 trailing
  // HEADERS; else dropped). True when the connection must close for the client to see it.
  virtual bool WriteEnd(std::span<const HeaderView> trailers) = 0;
  // A complete reply torii makes itself: `body` (possibly empty) of `content_type`, or the
  // status line's text as text/plain when `content_type` is empty. Returns the body's size.
  virtual size_t WriteLocalReply(int status, bool close, std::string_view extra,
                                 std::string_view body, std::string_view content_type) = 0;

  // The exchange's timer (one at a time): OnTimer() at `ms` from now, or never.
  virtual void SetTimer(uint64_t ms) = 0;
  virtual void ClearTimer() = 0;
  // Request bytes: stop taking them from the client (back-pressure), take them again.
  virtual void PauseReading() = 0;
  virtual void ResumeReading() = 0;
  // The exchange no longer holds its request back: deliver what waits (may call back now).
  virtual void Continue() = 0;
  // The exchange is over (logged, upstream released): the codec goes on with the connection.
  virtual void Finished() = 0;
  // The exchange cannot complete: end the client side so it sees a truncation. CloseAfterFlush
  // sends what is queued first; Close does not; Abort also tells the peer it was cut (RST).
  virtual void CloseAfterFlush() = 0;
  virtual void Close() = 0;
  virtual void Abort() = 0;
};

// A client certificate of a client_auth listener: read from the TLS session at the
// connection's first request and kept for the others.
struct ClientCertInfo {
  tls::DownstreamSession::ClientCert state = tls::DownstreamSession::ClientCert::kNone;
  std::string verify;              // for the log: "SUCCESS", "FAILED:<why>" or "NONE" (as nginx's)
  std::string subject;             // RFC 2253
  std::vector<std::string> names;  // subject CN and SANs (client_cert_allow)
  std::string fields;              // RFC 9440 Client-Cert / Client-Cert-Chain lines, when verified
};

// What every exchange of one client connection shares. Owned by the connection's handler.
class ExchangeHost;

struct ClientConn {
  // From a PROXY header: the client and the address it connected to.
  struct Proxied {
    sockaddr_storage source;
    sockaddr_storage dest;
    std::string text;  // source's address, as peer
  };
  // The connection-limit slots a connection holds (NewClientSession), given back when it
  // ends. Only a listener with a limit gives its connections one: a connection without holds
  // a null pointer, not the slots.
  struct LimitSlots {
    std::shared_ptr<std::atomic<uint32_t>> listener;  // the listener's max_conns count
    std::shared_ptr<ratelimit::ConnLimiter> ip;       // max_conns_per_ip
    uint64_t ip_key = 0;
    LimitSlots() = default;
    LimitSlots(const LimitSlots&) = delete;
    LimitSlots& operator=(const LimitSlots&) = delete;
    ~LimitSlots() {
      if (listener) {
        listener->fetch_sub(1, std::memory_order_acq_rel);
      }
      if (ip) {
        ip->Release(ip_key);
      }
    }
  };

  core::ConnRef ref;
  ExchangeHost* host = nullptr;  // the connection's handler (set by it)
  uint32_t listener = 0;
  uint32_t requests = 0;             // requests begun on the connection (HTTP/2: streams)
  uint64_t accepted_ns = 0;          // the loop turn that accepted it (accept phase)
  std::string peer;                  // the socket peer's address
  std::unique_ptr<Proxied> proxied;  // null without a PROXY header
  std::unique_ptr<ClientCertInfo> client_cert;  // client_auth listeners, from the first request
  std::unique_ptr<LimitSlots> slots;            // null unless the listener limits connections
  bool draining = false;  // shutting down: the exchanges in flight are the last
  bool peer_eof = false;  // the client half-closed (HTTP/1.1)

  ClientConn() = default;
  ClientConn(ClientConn&&) = default;
  ClientConn& operator=(ClientConn&&) = delete;

  // The connection's client: the PROXY header's source, else `conn`'s socket peer (`conn` is
  // read only then: a background refresh's ClientConn has no connection and always the former).
  const sockaddr* client(const core::Conn* conn) const {
    return proxied ? reinterpret_cast<const sockaddr*>(&proxied->source) : conn->peer();
  }
  std::string_view client_text() const { return proxied ? proxied->text : peer; }
};

// "1.2.3.4" or "::1" for an AF_INET / AF_INET6 address ("" otherwise).
std::string FormatAddress(const sockaddr* sa);

}  // namespace torii::http
