// http/upstream.h: what an exchange sees of the backend request answering it, whatever
// protocol carries it.
//
// An exchange (exchange.h) reaches its backend only through Upstream, which an upstream codec
// implements: a whole HTTP/1.1 connection lent to one exchange at a time (UpstreamConn,
// proxy_session.h) or one stream of a multiplexed HTTP/2 connection (h2_upstream.h). The
// exchange keeps an UpstreamRef and resolves it on every use (UpstreamHandler::FindUpstream):
// either side may end at any moment and the other then sees nullptr, never a dangling pointer.
// Events come back the other way, from the codec to Exchange::OnUpstream*.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/worker.h"
#include "http/h1_parser.h"

namespace torii::http {

class Exchange;
class ExchangeHost;

class Upstream {
 public:
  // Request body bytes, as they come from the client: re-chunked without extensions when
  // `chunked` (HTTP/1.1), DATA frames on a stream.
  virtual void WriteRequestBody(std::string_view bytes, bool chunked, std::string* scratch) = 0;
  // The end of the request body, with the client's trailer fields (as the route kept them).
  virtual void EndRequestBody(bool chunked, std::span<const HeaderView> trailers) = 0;
  // Every request byte is queued (HTTP/1.1: the connection may be pooled after the response).
  virtual void set_request_complete(bool complete) = 0;
  // More request bytes are queued than the high-water mark: the backend is slow to take them
  // (the exchange stops reading its client until OnUpstreamWritable).
  virtual bool WriteBlocked() const = 0;
  // Response bytes: stop reading them from the backend (the client is slow), read them again.
  virtual void PauseResponse() = 0;
  virtual void ResumeResponse() = 0;
  // The exchange is done with its backend request: `reusable` when it ended cleanly (the
  // connection may carry another). Nothing is reported to the exchange afterwards.
  virtual void Release(bool reusable) = 0;
  // The request went out on a connection that had carried others before (the keep-alive
  // race: the backend may have closed it meanwhile).
  virtual bool reused() const = 0;
  // Called from OnUpstreamHead: the rest of this response's body (its Content-Length, after
  // what came with the head) may go straight from the backend's socket to `client`'s
  // (core::Conn::ForwardTo) instead of through OnUpstreamBody; OnUpstreamSpliced reports it.
  // False where this upstream cannot (HTTP/2, TLS): the body comes the ordinary way.
  virtual bool SpliceBodyTo(core::Conn& /*client*/) { return false; }

 protected:
  ~Upstream() = default;
};

// The handler of an upstream connection: finds the Upstream of one exchange on it (`stream`:
// 0 on HTTP/1.1, the stream id on HTTP/2), or nullptr once it is gone.
class UpstreamHandler : public core::ConnHandler {
 public:
  virtual Upstream* FindUpstream(uint32_t stream) = 0;
};

// Where an upstream request reports: exchange `id` of `host`. A client connection's host (its
// handler) lives as long as the connection `conn`, resolved on every use; a host the worker
// owns (the background cache refreshes, cache_refresh.h: `conn` invalid) outlives every
// upstream it lends an exchange to.
struct ExchangeRef {
  core::ConnRef conn;
  ExchangeHost* host = nullptr;
  uint32_t id = 0;
  bool valid() const { return host != nullptr; }
  void reset() { *this = ExchangeRef{}; }
  // The exchange, or nullptr once it or its connection is gone.
  Exchange* Resolve(const core::Worker& worker) const;
};

// Where an exchange's Upstream lives: its connection and stream.
struct UpstreamRef {
  core::ConnRef conn;
  uint32_t stream = 0;
  bool valid() const { return conn.valid(); }
  void reset() {
    conn.reset();
    stream = 0;
  }
};

}  // namespace torii::http
