// http/proxy_session.h: the public surface of the proxy's connection handlers.
//
// A client connection gets a downstream codec (h1_session.h for HTTP/1.1, h2_session.h for
// HTTP/2 once ALPN or the h2c preface says so) that runs one Exchange (exchange.h) per
// request. UpstreamConn handles one connection to a backend, speaking HTTP/1.1 (the upstream
// codec): it is lent to one exchange at a time, pooled per worker and backend between
// exchanges, and reports the response to the exchange it is lent to, found again by the
// client connection's ConnRef and the exchange's id on every use: either side may close at
// any moment and the other sees nullptr, never a dangling pointer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/worker.h"
#include "http/h1_parser.h"
#include "http/proxy_context.h"
#include "http/retry.h"
#include "http/upstream.h"

namespace torii::http {

class Exchange;
class ExchangeHost;

class UpstreamConn final : public UpstreamHandler, public Upstream {
 public:
  UpstreamConn(ProxyContext& ctx, std::shared_ptr<Generation> gen, uint32_t pool,
               uint32_t backend);

  // Lends this connection to exchange `client`, waiting at most `connect_timeout_ms` for the
  // connect and `response_timeout_ms` between response bytes. `head_request`: the request is
  // HEAD (the response has no body whatever it says). A client connection's handler is
  // replaced only before its first request, when nothing is attached to it.
  void Attach(core::Conn& self, const ExchangeRef& client, bool head_request, bool holds_slot,
              uint64_t connect_timeout_ms, uint64_t response_timeout_ms);
  uint32_t backend() const { return backend_; }
  // Idle in the pool: a new generation takes it over as its (pool, backend) (Generation::Adopt).
  bool idle() const { return idle_; }
  void Rehome(std::shared_ptr<Generation> gen, uint32_t pool, uint32_t backend) {
    gen_ = std::move(gen);
    pool_ = pool;
    backend_ = backend;
  }

  // ---- Upstream (the connection is lent whole to one exchange) ----
  // The client is done with this connection: pool it when `reusable`, else close it.
  void Release(bool reusable) override;
  bool reused() const override { return reused_; }
  void set_request_complete(bool v) override { request_complete_ = v; }
  void WriteRequestBody(std::string_view bytes, bool chunked, std::string* scratch) override;
  // A chunked body's last chunk carries the client's `trailers`.
  void EndRequestBody(bool chunked, std::span<const HeaderView> trailers) override;
  bool WriteBlocked() const override { return self_->queued() > core::Conn::kHighWater; }
  void PauseResponse() override { self_->PauseRecv(); }
  void ResumeResponse() override { self_->ResumeRecv(); }
  Upstream* FindUpstream(uint32_t /*stream*/) override { return this; }
  // Plain connections only: the forward starts once the bytes that came with the head are
  // parsed (Pump), for what remains of the Content-Length.
  bool SpliceBodyTo(core::Conn& client) override;

  // Ends the tunnel this connection carries (after a 101): detached from the client and
  // closed, after its queued bytes when not `error`; the client is told unless it asked.
  void EndTunnel(core::Conn& self, bool error);

  void OnRecv(core::Conn& conn, std::span<const char> data) override;
  void OnEof(core::Conn& conn) override;
  void OnError(core::Conn& conn, core::Error error) override;
  void OnTimer(core::Conn& conn) override;
  void OnConnected(core::Conn& conn, core::Result<void> result) override;
  void OnWritable(core::Conn& conn) override;
  void OnDrain(core::Conn& conn) override;
  void OnClosed(core::Conn& conn) override;
  void OnForwarded(core::Conn& conn, const core::ForwardProgress& progress) override;

 private:
  Exchange* client();
  const std::string& input() const { return b_ ? b_->in : kNoInput; }
  static inline const std::string kNoInput;
  // Closes the connection when it is idle in the pool or lent to nobody; returns true then.
  bool CloseIfUnattached(core::Conn& self);
  // Parses the response from buf[0..len): either the receive buffer itself (owned = false;
  // an unconsumed tail is then copied to b_->in) or b_->in (owned = true).
  void Pump(core::Conn& self, const char* buf, size_t len, bool owned);
  void Fail(core::Conn& self, UpstreamFailure why);

  const ProxyConfig& cfg() const { return gen_->config(); }

  ProxyContext& ctx_;
  core::Conn* self_ = nullptr;  // the connection (set by Attach; the handler lives as long)
  // The generation the connection was opened under: its pool and backend indices refer to it,
  // and it is pooled only while that generation is the worker's active one.
  std::shared_ptr<Generation> gen_;
  uint32_t pool_;
  uint32_t backend_;
  uint64_t connect_timeout_ms_ = 0;   // of the exchange attached (route or pool)
  uint64_t response_timeout_ms_ = 0;
  ExchangeRef client_;                  // the exchange this connection is lent to (invalid: none)
  std::unique_ptr<ExchangeBuffers> b_;  // borrowed while lent to a client (with the parser)
  H1Parser::Limits limits_;
  bool idle_ = false;
  bool connected_ = false;
  bool reused_ = false;
  bool request_complete_ = false;
  bool response_done_ = false;
  bool response_started_ = false;  // a final response head was passed to the client
  bool counted_ = false;  // the picker counts a request on this backend (least_conn load)
  bool holds_slot_ = false;  // the request holds one of the backend's max_conns slots
  bool tunnel_ = false;      // after a 101: bytes are relayed to the client, never parsed
  bool forwarding_ = false;  // the body's rest goes to the client by Conn::ForwardTo
  core::ConnRef splice_to_;  // SpliceBodyTo's client, until the forward starts
  uint64_t forward_progress_ms_ = 0;  // when the forward started or last moved bytes
  // Starts the forward of the body's rest to splice_to_ (Pump, once the buffered bytes are
  // parsed); false when it could not start (the body then goes on through the parser).
  bool StartSplice(core::Conn& self);
  // The forwarded body is complete: the response ends as the parser's kDone would end it
  // (`clean`: nothing came after it; else the connection is not reused, B9).
  void EndSplicedResponse(core::Conn& self, bool clean);
  // Ends the picker's count of the current request and gives back its slot, exactly once per
  // Attach().
  void EndCount();
};

// The handler of an accepted client connection (its listener's connection limits taken, its
// transports set): an H1Session, which hands the connection to an H2Session when it turns out to
// speak HTTP/2. nullptr refuses the connection.
std::unique_ptr<core::ConnHandler> NewClientSession(ProxyContext& ctx, core::Conn& conn,
                                                    uint32_t listener);

// Called by ProxyContext for a client whose request waits for a backend slot (max_conns):
// tries again; the session re-enqueues itself at the front when there is still none. A stale
// `ticket` (the request was answered meanwhile) does nothing.
void ResumeQueuedRequest(core::Conn& client, uint64_t ticket);

// Called on the waiter's worker when a fetch it was coalesced behind ended (ProxyContext::
// WakeCacheWaiters). A stale `ticket` does nothing.
void ResumeCacheWaiter(core::Conn& client, uint64_t ticket);

// Called on the reader's worker when a disk-tier read ended (session_cache.cc) with what it found.
// A stale `ticket` does nothing.
void ResumeDiskRead(core::Conn& client, uint64_t ticket, std::shared_ptr<const cache::Entry> entry);

}  // namespace torii::http
