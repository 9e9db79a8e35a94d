// core/transport.h: a byte-stream layer between a connection's socket and its handler.
//
// What Envoy calls a transport socket: TLS, implemented outside core/ (http/ over tls/), sits
// here so that the protocol code above it reads and writes plaintext through the same Conn
// surface whether the wire is encrypted or not. core/ only routes bytes through it:
//  - received bytes go to OnReceived() instead of the handler's OnRecv(); the transport hands
//    what it decodes to conn.handler()->OnRecv() itself;
//  - Conn::Write() / WriteFromRecvBuffer() go to Write(); the transport may transform the bytes
//    at once, or hold them (pending() counts them as queued) until Flush(), which the worker
//    calls before it sends: what a handler writes during one loop turn (a response head, then
//    its body) then goes out as one TLS record instead of several. Either way the transport
//    queues what goes on the wire with Conn::WriteRaw();
//  - an outbound connection that finished connecting calls OnConnected() (a ClientHello) before
//    the handler's OnConnected();
//  - Conn::CloseAfterFlush() calls OnCloseAfterFlush() first (close_notify).
// The transport is owned by the Conn, destroyed with its handler, and may close the
// connection from any of these calls (a failed handshake).
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace torii::core {

class Conn;

class Transport {
 public:
  virtual ~Transport() = default;
  // `bytes` arrived from the socket; they live in the receive buffer for this call only.
  virtual void OnReceived(Conn& conn, std::span<const char> bytes) = 0;
  // The handler wrote `bytes` of plaintext.
  virtual void Write(Conn& conn, std::string_view bytes) = 0;
  // Bytes written and held back, not yet on the out queue.
  virtual size_t pending() const { return 0; }
  // Transforms what is held back onto the out queue (the worker, before sending).
  virtual void Flush(Conn& /*conn*/) {}
  virtual void OnConnected(Conn& /*conn*/) {}
  virtual void OnCloseAfterFlush(Conn& /*conn*/) {}
};

}  // namespace torii::core
