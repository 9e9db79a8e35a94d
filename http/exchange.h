// http/exchange.h: one request and its response, whatever protocol carried it.
//
// An Exchange runs the stages for one request in order: OnRequestHead → ResolveClient →
// AssignIds → CheckRequest (target, Host, path normalisation, SNI vs Host, route) →
// CheckAccess (lists, bans, rate limit) → CheckClientCert → CheckAuth → a route's redirect or
// return, or the cache (CacheBeforeUpstream) → BuildUpstreamHead → PickBackendAndSend (pick,
// slot, pooled or new connection, send) → OnRequestBody → OnUpstreamHead (DecideCompression,
// the head) → OnUpstreamBody → OnUpstreamDone → FinishExchange (access log, counters). A 101
// leads to OnUpstreamUpgrade and the tunnel (session_tunnel.cc). Every local reply goes
// through SendLocalReply(status, note), which also records why for the log.
//
// The downstream codec that owns the exchange (h1_session.h: one at a time per connection;
// h2_session.h: one per stream) feeds it the request's events and gives it a Downstream to
// answer through; the stages themselves are libraries and pure functions. The UpstreamConn
// lent to the exchange finds it again by its connection and id (ExchangeHost), resolved on
// every use: either side may end at any moment and the other sees nullptr, never a dangling
// pointer.
//
// Internal to http/: the public surface is proxy_session.h.
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/slab.h"
#include "cache/entry.h"
#include "cache/range.h"
#include "core/worker.h"
#include "http/compression_plan.h"
#include "http/downstream.h"
#include "http/h1_parser.h"
#include "http/proxy_context.h"
#include "http/proxy_protocol.h"
#include "http/proxy_session.h"
#include "http/serialize.h"
#include "http/upstream.h"
#include "tls/session.h"

namespace torii::http {

class Exchange;

// What the handler of a client connection (a downstream codec) also is: it finds the exchange
// an upstream connection, a slot queue or a cache fetch reports to, by the id the exchange was
// given (nullptr once it is gone). Not a ConnHandler itself: the codecs derive from both.
class ExchangeHost {
 public:
  virtual Exchange* FindExchange(uint32_t id) = 0;
  // The exchange waiting with `ticket` (max_conns queue, or a coalesced cache fetch).
  virtual Exchange* FindWaiter(uint64_t ticket) = 0;

 protected:
  ~ExchangeHost() = default;
};

// An HTTP/1.1 connection holds one only while requests are in progress (an idle keep-alive
// connection has none; SlabAllocated keeps them apart from malloc's chunks); an HTTP/2 stream
// holds one.
class Exchange : public base::SlabAllocated<Exchange> {
 public:
  // The state of the request side (what the codec delivered) and of the response side.
  enum class Req : uint8_t { kIdle, kHead, kBody, kDone };
  enum class Resp : uint8_t { kNone, kWaiting, kStreaming, kDone };

  Exchange(ProxyContext& ctx, ClientConn& conn, Downstream& down);
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // ---- From the downstream codec ----
  // A request begins (its first byte, or its HEADERS): the exchange's state starts afresh.
  // `id` names it to the upstream connection it will borrow (ExchangeHost::FindExchange).
  void Begin(uint32_t id);
  // The request head (valid during the call only). False: answered already or closing.
  bool OnRequestHead(const MessageHead& h);
  // `n` bytes of the request arrived from the client (the body's pace: body_min_rate).
  void OnRequestBytes(size_t n);
  // A piece of the request body, forwarded as it comes.
  void OnRequestBody(std::string_view body);
  // The request is complete (`must_close`: its framing ends the connection); `trailers` (valid
  // for this call) followed its body.
  void OnRequestEnd(bool must_close, std::span<const HeaderView> trailers);
  // The codec refused the request (its status and why), before or after its head.
  void OnRequestError(int status, const char* reason);
  // What the log shows of a request refused before its head reached the exchange, when the
  // codec knows it (HTTP/2: the fields arrive whole).
  void NoteRequestLine(std::string_view method, std::string_view target, uint8_t major);
  // The client took what was queued: below the high-water mark again.
  void OnWritable();
  // The timer set through Downstream::SetTimer fired.
  void OnTimer();
  // The client went away mid-exchange: the upstream is dropped; logged (499) with `note`
  // unless it is empty.
  void Abandon(std::string_view note);
  // The client side closed: everything the exchange holds is given back.
  void OnClosed();
  // The client's TLS handshake completed after this request came in its early data: a request
  // held for it goes on.
  void OnHandshakeDone();

  Req req() const { return req_; }
  Resp resp() const { return resp_; }
  bool idle() const { return req_ == Req::kIdle; }
  // The request is held (a backend slot, a rate-limit delay, a cache fetch, or back-pressure
  // from the backend): the codec delivers no more of it until Downstream::Continue().
  bool held() const { return held_; }
  // After this exchange the connection ends (HTTP/1.1).
  bool close_after() const { return close_after_; }
  void set_close_after() { close_after_ = true; }
  bool tunnel() const { return b_ != nullptr && b_->state.tunnel; }
  uint32_t id() const { return id_; }
  uint64_t waiter_ticket() const;
  // The exchange's buffers, borrowed from the worker's pool on first use (the HTTP/1.1 codec
  // keeps its input and parser there too).
  ExchangeBuffers& buffers() {
    if (!b_) {
      b_ = ctx_.AcquireBuffers(H1Parser::Kind::kRequest, RequestLimits(cfg().limits));
    }
    return *b_;
  }
  bool has_buffers() const { return b_ != nullptr; }
  const std::string& input() const { return b_ ? b_->in : kNoInput; }
  void ReleaseBuffers() {
    if (b_) {
      ctx_.ReleaseBuffers(std::move(b_));
    }
  }
  // Phase timestamps of the request being read (ProxyConfig::timing), when on.
  ExchangeTiming* timing() { return cfg().timing ? &buffers().timing : nullptr; }
  const ProxyConfig& cfg() const { return gen_->config(); }
  static H1Parser::Limits RequestLimits(const ProxyLimits& l) {
    return H1Parser::Limits{l.header_bytes, l.header_count, l.body_bytes};
  }

  // ---- From the UpstreamConn lent to this exchange ----
  void OnUpstreamHead(Upstream& up, const MessageHead& head);
  // A 103 Early Hints from the backend, before its final response.
  void OnUpstreamInterim(const MessageHead& head);
  void OnUpstreamBody(Upstream& up, std::string_view body);
  // `bytes` more of the body went to the client past OnUpstreamBody (Upstream::SpliceBodyTo),
  // `spliced` of them socket to socket.
  void OnUpstreamSpliced(uint64_t bytes, uint64_t spliced);
  // The client did not take its response within send_timeout (the kSend timer, or a spliced
  // body waiting for it, UpstreamConn::OnTimer): cut off, logged.
  void OnSendTimeout();
  // The response is complete; `trailers` (valid for this call) are what followed its body.
  void OnUpstreamDone(bool reusable, std::span<const HeaderView> trailers);
  void OnUpstreamFailed(UpstreamFailure why, bool reused);
  void OnUpstreamWritable();
  // The upstream connection this exchange was sent on finished connecting (Server-Timing).
  void NoteUpstreamConnected() {
    if (b_ && cfg().timing) {
      b_->timing.connected = ctx_.worker().now_ns();
    }
  }

  // ---- Upgrades (session_tunnel.cc) ----
  // This exchange forwarded an upgrade the route tunnels (http/upgrade.h).
  bool upgrade_requested() const { return b_ != nullptr && b_->state.upgrade; }
  // The backend's 101 answers the WebSocket key torii made for this request (true when torii
  // made none: the client's own handshake is the client's to check).
  bool SwitchAccepted(const MessageHead& head) const;
  // The backend switched protocols to `protocol` (its 101's Upgrade): the 101 goes to the
  // client, and from here both connections are one byte tunnel until either side closes or
  // it idles out.
  void OnUpstreamUpgrade(const MessageHead& head, std::string_view protocol);
  // Tunnel bytes from the backend (inside its receive buffer).
  void OnTunnelData(core::Conn& up, std::string_view bytes);
  // The backend's side of the tunnel closed (`error`: reset rather than FIN).
  void OnTunnelUpstreamClosed(bool error);
  // Tunnel bytes from the client to the backend, with back-pressure both ways (also what
  // OnRequestBody does once the tunnel is open).
  void RelayToUpstream(std::string_view bytes);
  // Ends the tunnel: logged once, both connections closed (after what is queued is sent, or
  // at once when `abort`).
  void EndTunnel(std::string_view note, bool abort);

  // ---- Background refreshes (cache_refresh.h) ----
  // This exchange, one of the worker's CacheRefresher, takes over the revalidation `from` has
  // prepared for a stale-while-revalidate entry (its route, pool, upstream head and stale
  // entry, and the lead of the entry's fill) and sends it: the response only updates the
  // store; it is neither logged nor counted as a request.
  void StartRefresh(uint32_t id, Exchange& from);
  // What a refresh knows of the client connection whose request started it: its listener, and
  // the client and local addresses (a PROXY header to the backend names them).
  ClientConn RefreshClientConn() const;

  // ---- Waits ----
  // max_conns: a backend slot may be free now.
  void ResumeFromQueue(uint64_t ticket);
  // Request coalescing: the fetch this request waited for ended (session_cache.cc).
  void ResumeFromCacheWait(uint64_t ticket);
  // The disk tier's read this request waited for ended: `entry` is what it found (nullptr: torn,
  // purged or another variant), already promoted to the memory tier.
  void ResumeFromDisk(uint64_t ticket, std::shared_ptr<const cache::Entry> entry);

 private:
  enum class TimerFor : uint8_t {
    kNone,
    kBody,
    kSend,
    kQueue,
    kDelay,
    kCacheWait,
    kTunnel,
    kHandshake,
  };

  core::Conn* client_conn() const { return ctx_.worker().Resolve(conn_.ref); }
  // The connection's client: the PROXY header's source on a proxy_protocol listener, else the
  // socket peer. Who the request's client is may go further (ResolveClient).
  const sockaddr* ConnClient() const { return conn_.client(client_conn()); }
  std::string_view ConnClientText() const { return conn_.client_text(); }
  // "https" on a TLS listener, else "http" (X-Forwarded-Proto, cache keys, redirects).
  const char* scheme() const { return cfg().listeners[conn_.listener].scheme(); }
  static inline const std::string kNoInput;
  // The exchange's backend request (nullptr: none, or gone).
  Upstream* upstream() const {
    core::Conn* c = ctx_.worker().Resolve(up_.conn);
    return c != nullptr ? static_cast<UpstreamHandler*>(c->handler())->FindUpstream(up_.stream)
                        : nullptr;
  }
  // The connection of an HTTP/1.1 upstream carrying a tunnel (after a 101).
  core::Conn* tunnel_upstream() const { return ctx_.worker().Resolve(up_.conn); }
  // The TLS session of the client connection (TLS listeners only).
  const tls::DownstreamSession& tls_session() const;

  bool CheckRequest(const MessageHead& h);
  // Who the client is (buffers().client, client_text, forwarded_for): the peer, or behind
  // trusted_proxies the right-most untrusted X-Forwarded-For hop (hops further left are the
  // client's to invent).
  void ResolveClient(const MessageHead& h);
  // The request ID (kept from a trusted peer or made) and the trace context (continued or
  // started) of this request: buffers().request_id, the ID's line in id_lines, and the trace
  // (http/trace.h) whose new ids SettleTrace makes.
  void AssignIds(const MessageHead& h);
  // Makes the trace context's new ids (torii's parent id; a trace id when the client sent none)
  // and buffers().trace_id, once, when first needed: the backend's traceparent, the log.
  void SettleTrace();
  // "Request-Id-Header: ID\r\n" onto a response's extra lines, when IDs are on.
  void AppendRequestId(std::string* lines) const;
  // "Forwarded: ...\r\n" (RFC 7239) for the backend: a trusted proxy's elements plus ours.
  void AppendForwarded(const MessageHead& h, std::string* lines) const;
  // The upstream request head (buffers().upstream_head) for this request, with the forwarding
  // headers ResolveClient decided.
  // `upgrade`: the Upgrade value forwarded when the route tunnels it (upgrade.h), else "".
  void BuildUpstreamHead(const MessageHead& h, std::string_view upgrade = {});
  void PickBackendAndSend();
  // TLS early data (RFC 8470): a request in it is forwarded only when a replay could do no
  // harm (GET, HEAD or OPTIONS without a body or upgrade), marked Early-Data: 1; any other
  // waits here (held) until the handshake completes, which a replayed flight never does. True
  // when it waits.
  bool HoldForHandshake();
  // The backend answered 425 Too Early to a request sent in early data: sent again without
  // Early-Data once the handshake has completed.
  void RetryAfterHandshake();
  // The error page configured for `status` (this request's route's, then the server's).
  const ErrorPage* FindErrorPage(int status) const;
  // A reply torii makes itself: `body_text` (text/plain), an error page for its status, or the
  // status line's text.
  void SendLocalReply(int status, std::string_view note, std::string_view extra_headers = {},
                      std::string_view body_text = {});
  void SendRedirect(const RouteSpec& route);
  // A plain listener with http_to_https: every request goes to https://HOST/TARGET.
  void RedirectToHttps();
  // max_conns: wait for a slot (true), or false when waiting cannot help.
  bool QueueForSlot();
  // HTTP/2 pools: a stream on a connection to x().backend with room, or on a new one. False
  // when that failed (the backend is excluded); true when sent, or answered (503).
  bool SendOnStream(const PoolSpec& pool);
  // The request went to x().backend: counted, and its time noted (cache, phases).
  void NoteSent(const PoolSpec& pool);
  // A new connection to x().backend handled by `handler` (PROXY header and TLS as the pool
  // says), or nullptr: the backend is excluded, or (*answered) torii is out of connections and
  // answered 503. Either way the slot taken for it is given back.
  core::Conn* ConnectUpstream(const PoolSpec& pool, std::unique_ptr<core::ConnHandler> handler,
                              bool* answered);
  // How long the connect may take: the route's connect_timeout, else the pool's.
  static uint64_t ConnectTimeoutMs(const PoolSpec& pool, const RouteSpec& route);
  // How long the backend may take between response bytes: the route's or the pool's
  // response_timeout, or a gRPC call's grpc-timeout when shorter.
  uint64_t ResponseTimeoutMs(const PoolSpec& pool, const RouteSpec& route) const;
  // Listener and route access lists, bans and the route's rate limit; false = answered.
  bool CheckAccess(const MessageHead& h);
  // The name of the request's key of a fleet-wide `limit` in Redis (the same in every process).
  std::string FleetKeyName(const RateLimitSpec& limit, const MessageHead& h,
                           const ratelimit::IpAddr& client) const;
  // The client's certificate on a client_auth listener (none elsewhere): read from the TLS
  // session at the connection's first request and kept for its other requests.
  const ClientCertInfo& ClientCert();
  // A route with require_client_cert: true when the certificate verified (and is allowed),
  // else 403 (false = answered).
  bool CheckClientCert(const RouteSpec& route);
  // Answers `status` to a request refused at its head (before any of its body was read); false.
  bool RefuseAtHead(int status, std::string_view note, std::string_view extra_headers = {});
  // The route's Basic authentication (basic_auth.h): true when the credentials hold, else 401
  // with the challenge (false = answered).
  bool CheckAuth(const MessageHead& h);
  void EndDelay();
  // A response head from the backend: its pool's counters (responses, time to first byte)
  // and passive health (a fail_status counts as a failure).
  void NoteUpstreamResponse(int status);
  // Compression at the response head: applies PlanCompression() (encoder or decoder, `edits`).
  void DecideCompression(const MessageHead& head, HeadEdits* edits);
  // Writes response body bytes to the client in the response framing (copied).
  void WriteBody(std::string_view bytes);
  void EndEncoder(bool finished);
  // "Server-Timing: ..." for the current exchange (routes with server_timing = true).
  void AppendServerTiming(std::string* out) const;
  // The body timer: body_timeout since the last byte, and never past the moment the body falls
  // below body_min_rate on average (after the grace period): slow POST.
  uint64_t BodyTimerMs() const {
    const ProxyLimits& l = cfg().limits;
    uint64_t ms = l.body_timeout_ms;
    if (l.body_min_rate > 0) {
      const uint64_t now = ctx_.worker().now_ms();
      const uint64_t due =
          x().body_start_ms + l.body_grace_ms + x().body_bytes * 1000 / l.body_min_rate;
      ms = std::min(ms, due > now ? due - now : 1);
    }
    return ms;
  }

 private:
  // ---- The response cache's part of the exchange (session_cache.cc) ----
  // At the request head of a route with a cache: answers from the store, or parks the request
  // behind another request's fetch of the same key (true); or prepares this request's fetch,
  // with validators when a stale entry can be revalidated (false: go on to the backend).
  bool CacheBeforeUpstream(const MessageHead& h);
  // What CacheBeforeUpstream does with the entry a lookup found (nullptr: none): serve it, park,
  // hand a revalidation to the refresher (true), or prepare the fetch (false). `h` is the
  // request head while it is readable; nullptr after a disk read, when the request's fields
  // are saved and its upstream head is built already. `hit` is the Cache-Status of a fresh hit.
  bool CacheDecide(std::shared_ptr<const cache::Entry> entry,
                   std::span<const HeaderView> request_headers, const MessageHead* h,
                   std::string_view hit);
  // A miss in memory with a record on disk: parks the request while the worker's ring reads it.
  void CacheReadDisk(const CacheSpec& spec, const cache::DiskRecord& rec, const MessageHead& h);
  // Writes a response just stored in memory through to the disk tier, if the cache has one.
  void CacheWriteDisk(const CacheSpec& spec, const cache::Entry& entry);
  // PURGE of a URL on a route with a cache (allowed CIDRs only).
  void CachePurge(const MessageHead& h);
  // At the backend's response head. True: the client is answered from the store instead
  // (a 304 refreshed the entry, or stale-if-error); the backend's body is then discarded.
  bool CacheOnUpstreamHead(const MessageHead& head);
  void CacheOnUpstreamBody(std::string_view body);
  // The backend's response ended complete: store it (when it is being stored).
  void CacheOnUpstreamDone();
  // A 5xx local reply is due: serve the stale entry instead when stale-if-error allows (true).
  bool CacheServeStaleOnError(int status);
  // End of the exchange however it ended: the fetch this request led is over (waiters woken),
  // or it stops waiting for another's.
  void CacheEndExchange();
  void CacheWaitTimeout();
  // Writes a stored response to the client (304 to a matching conditional request; a
  // compressed variant when the route compresses), with Age and Cache-Status.
  void ServeEntry(const std::shared_ptr<const cache::Entry>& entry,
                  std::span<const HeaderView> request_headers, std::string_view cache_status);
  // The body of `entry` in `coding`: the stored variant, or made now and stored (nullptr:
  // no encoder free, send identity).
  cache::Body CompressedVariant(const std::shared_ptr<const cache::Entry>& entry,
                                codec::Coding coding, std::span<const HeaderView> request_headers);
  void SaveRequestHeaders(std::span<const HeaderView> headers);
  cache::Waiter NewWaiter();
  // A revalidation: the stale entry's validators replace the client's conditionals in the
  // upstream head just built.
  void CacheAddValidators();
  static void StripConditionals(std::string* head);
  // Ends the fetch this request leads (EndFill) and wakes its waiters; no-op otherwise.
  void CacheEndFill();
  // RFC 9111 §4.4: a successful unsafe request removes the URL (and Location /
  // Content-Location on the same host).
  void Invalidate(const CacheSpec& spec, const MessageHead& head);
  // What a Range in `request_headers` asks of a stored `entry` (cache/range.h); kIgnore unless
  // this is a GET of a stored 200 with one Range (and an If-Range that holds).
  cache::RangeAnswer RangeOf(const cache::Entry& entry,
                             std::span<const HeaderView> request_headers) const;
  // Writes more of the stored body as the client drains (true when it is all queued).
  bool ContinueServing();
  // The exchange is over once the response is queued, the request read and no upstream
  // connection is still attached.
  void MaybeFinishServed();
  // Forwards the request to the backend as a plain miss (after a wait, a bypass).
  void CacheGoUpstream();
  // stale-while-revalidate, as the entry's fill begins: answers the client from the stale
  // entry now and hands the revalidation to the worker's CacheRefresher (true), or false when
  // it cannot take it (this request then revalidates in the foreground).
  bool RefreshInBackground(const MessageHead* h);

 private:
  uint64_t KeyHash(const MessageHead& h, const PoolSpec& pool) const;
  // A hash of buffers().client's address bytes (ip_hash behind trusted proxies, sticky splits).
  uint64_t ClientAddressHash() const;
  // The pool a split route sends this request to (split_by, split_sticky, else by weight).
  uint32_t ChooseSplit(const RouteSpec& route, const MessageHead& h);
  // Some eligible backend of the pool is neither excluded nor `failed`.
  bool CanRetryElsewhere(uint32_t failed);
  void FinishExchange();
  void DetachUpstream(bool reusable);
  void AbortClient(std::string_view note);
  void SetTimerFor(TimerFor what, uint64_t ms);
  void LogExchange();
  // Adds `n` to this request's route's counter `column` (RouteSpec::Column).
  void CountRoute(uint32_t column, uint64_t n = 1) {
    cfg().routes[x().route].requests->at(ctx_.worker().id(), column) += n;
  }

  // The current exchange's state (ExchangeState), in its buffers: valid from Begin() until
  // they go back to the pool, which happens only once the exchange is idle.
  ExchangeState& x() {
    assert(b_ != nullptr);
    return b_->state;
  }
  const ExchangeState& x() const {
    assert(b_ != nullptr);
    return b_->state;
  }

  // Laid out by size (8, 4, then 1-byte fields). The exchange's own state and what needs memory
  // of its own (the retry exclusion mask, head storage, timings) live in the pooled
  // ExchangeBuffers: an idle connection's Exchange is this much.
  ProxyContext& ctx_;
  ClientConn& conn_;
  Downstream& down_;
  // Taken at the connection's start, renewed at each request head: a reload applies from the
  // next request.
  std::shared_ptr<Generation> gen_;
  std::unique_ptr<ExchangeBuffers> b_;  // borrowed while a request is in progress
  static constexpr uint8_t kMaxInterim = 4;
  UpstreamRef up_;
  uint32_t id_ = 0;
  TimerFor timer_for_ = TimerFor::kNone;
  Req req_ = Req::kIdle;
  Resp resp_ = Resp::kNone;
  bool requeue_front_ = false;  // a resumed waiter without a slot goes back to the front
  bool close_after_ = false;
  bool upstream_paused_ = false;  // we paused the upstream's receive for client back-pressure
  bool held_ = false;             // the request is held (see held())
  bool background_ = false;       // a CacheRefresher's: no client, never logged
};

}  // namespace torii::http
