// http/client_session.h: the client side of a proxied exchange (internal to http/).
//
// Declared here, rather than inside proxy_session.cc, so that the response cache's part of the
// session (session_cache.cc) is a translation unit of its own. Nothing outside http/ includes
// this header: the public surface is proxy_session.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cache/entry.h"
#include "cache/range.h"
#include "core/worker.h"
#include "http/compression_plan.h"
#include "http/h1_parser.h"
#include "http/h1_response_writer.h"
#include "http/proxy_context.h"
#include "http/proxy_protocol.h"
#include "http/proxy_session.h"
#include "http/serialize.h"
#include "tls/session.h"

namespace torii::http {

class ClientSession final : public core::ConnHandler {
 public:
  ClientSession(ProxyContext& ctx, core::Conn& conn, uint32_t listener);

  ~ClientSession() override {
    const ListenerSpec& spec = cfg().listeners[listener_];
    if (holds_listener_slot_) {
      spec.conns->fetch_sub(1, std::memory_order_acq_rel);
    }
    if (holds_ip_slot_) {
      spec.per_ip->Release(ip_key_);
    }
  }
  // The connection-limit slots this session gives back when it ends (NewClientSession).
  void HoldConnectionSlots(bool listener, bool per_ip, uint64_t ip_key) {
    holds_listener_slot_ = listener;
    holds_ip_slot_ = per_ip;
    ip_key_ = ip_key;
  }

  void OnRecv(core::Conn& conn, std::span<const char> data) override;
  void OnEof(core::Conn& conn) override;
  void OnError(core::Conn& conn, core::Error error) override;
  void OnTimer(core::Conn& conn) override;
  void OnWritable(core::Conn& conn) override;
  void OnDrain(core::Conn& conn) override;
  void OnClosed(core::Conn& conn) override;

  // From the UpstreamConn lent to this session.
  void OnUpstreamHead(core::Conn& up, const MessageHead& head);
  // A 103 Early Hints from the backend, before its final response.
  void OnUpstreamInterim(const MessageHead& head);
  void OnUpstreamBody(core::Conn& up, std::string_view body);
  void OnUpstreamDone(bool reusable);
  void OnUpstreamFailed(UpstreamFailure why, bool reused);
  void OnUpstreamWritable();
  // The listener's PROXY header arrived (ProxyHeaderReader): its source is this connection's
  // client from now on. Returns false to refuse the connection.
  bool OnProxyHeader(core::Conn& conn, const ProxyHeader& header);

  // ---- Upgrades (session_tunnel.cc) ----
  // This exchange forwarded an upgrade the route tunnels (http/upgrade.h).
  bool upgrade_requested() const { return x_.upgrade; }
  // The backend switched protocols to `protocol` (its 101's Upgrade): the 101 goes to the
  // client, and from here both connections are one byte tunnel until either side closes or
  // it idles out.
  void OnUpstreamUpgrade(const MessageHead& head, std::string_view protocol);
  // Tunnel bytes from the backend (inside its receive buffer).
  void OnTunnelData(core::Conn& up, std::string_view bytes);
  // The backend's side of the tunnel closed (`error`: reset rather than FIN).
  void OnTunnelUpstreamClosed(bool error);

 private:
  enum class Req : uint8_t { kIdle, kHead, kBody, kDone };
  enum class Resp : uint8_t { kNone, kWaiting, kStreaming, kDone };
  enum class TimerFor : uint8_t {
    kNone,
    kIdle,
    kHeader,
    kBody,
    kSend,
    kQueue,
    kDelay,
    kCacheWait,
    kTunnel
  };

  static H1Parser::Limits RequestLimits(const ProxyLimits& l) {
    return H1Parser::Limits{l.header_bytes, l.header_count, l.body_bytes};
  }
  core::Conn* self() const { return ctx_.worker().Resolve(self_); }
  // The first wait of a connection: handshake_timeout on TLS (bounded by idle_timeout).
  uint64_t FirstIdleMs() const;
  // The connection's client: the PROXY header's source on a proxy_protocol listener, else the
  // socket peer. Who the request's client is may go further (ResolveClient).
  const sockaddr* ConnClient(const core::Conn& conn) const {
    return proxied_ ? reinterpret_cast<const sockaddr*>(&proxied_->source) : conn.peer();
  }
  std::string_view ConnClientText() const { return proxied_ ? proxied_->text : peer_; }
  // The config of the generation this session's current exchange runs under (hot reload).
  const ProxyConfig& cfg() const { return gen_->config(); }
  // "https" on a TLS listener, else "http" (X-Forwarded-Proto, cache keys, redirects).
  const char* scheme() const { return cfg().listeners[listener_].scheme(); }
  // The exchange's buffers, borrowed from the worker's pool on first use.
  ExchangeBuffers& B() {
    if (!b_) {
      b_ = ctx_.AcquireBuffers(H1Parser::Kind::kRequest, RequestLimits(cfg().limits));
    }
    return *b_;
  }
  const std::string& input() const { return b_ ? b_->in : kNoInput; }
  void ReleaseBuffers() {
    if (b_) {
      ctx_.ReleaseBuffers(std::move(b_));
    }
  }
  static inline const std::string kNoInput;
  core::Conn* upstream() const { return ctx_.worker().Resolve(up_); }
  UpstreamConn* upstream_handler() const {
    core::Conn* c = upstream();
    return c != nullptr ? static_cast<UpstreamConn*>(c->handler()) : nullptr;
  }

  void Pump(core::Conn& conn);
  // Between exchanges: the client is owed more than the high-water mark; stop until it reads.
  void WaitForReader(core::Conn& conn);
  void Compact();
  // The request codec's events for the exchange: the head (false: answered or closing), a
  // body piece (ForwardBody), the end of the request (`must_close`: the client's framing
  // ends the connection), and a request the codec refused (its status and why).
  bool OnRequestHead(core::Conn& conn);
  void OnRequestEnd(core::Conn& conn, bool must_close);
  void OnRequestError(core::Conn& conn, int status, const char* reason);
  bool CheckRequest(core::Conn& conn);
  // Who the client is (B().client, client_text, forwarded_for): the peer, or behind
  // trusted_proxies the right-most untrusted X-Forwarded-For hop (issue #15).
  void ResolveClient(const core::Conn& conn, const MessageHead& h);
  // The request ID (kept from a trusted peer or made) and the traceparent (continued or
  // started) of this request: B().request_id, trace_id, id_lines (http/trace.h).
  void AssignIds(const MessageHead& h);
  // "Request-Id-Header: ID\r\n" onto a response's extra lines, when IDs are on.
  void AppendRequestId(std::string* lines) const;
  // "Forwarded: ...\r\n" (RFC 7239) for the backend: a trusted proxy's elements plus ours.
  void AppendForwarded(const MessageHead& h, std::string* lines) const;
  // The upstream request head (B().upstream_head) for this request, with the forwarding
  // headers ResolveClient decided.
  // `upgrade`: the Upgrade value forwarded when the route tunnels it (upgrade.h), else "".
  void BuildUpstreamHead(const MessageHead& h, std::string_view upgrade = {});
  void PickBackendAndSend(core::Conn& conn);
  void ForwardBody(std::string_view body);
  // The error page configured for `status` (this request's route's, then the server's).
  const ErrorPage* FindErrorPage(int status) const;
  // A reply torii makes itself: `body_text` (text/plain), an error page for its status, or the
  // status line's text.
  void SendLocalReply(core::Conn& conn, int status, std::string_view note,
                      std::string_view extra_headers = {}, std::string_view body_text = {});
  void SendRedirect(core::Conn& conn, const RouteSpec& route);
  // A plain listener with http_to_https: every request goes to https://HOST/TARGET.
  void RedirectToHttps(core::Conn& conn);
  // max_conns: wait for a slot (true), or false when waiting cannot help.
  bool QueueForSlot(core::Conn& conn);
  // Listener and route access lists, bans and the route's rate limit; false = answered.
  bool CheckAccess(core::Conn& conn);
  // The client's certificate on a client_auth listener (none elsewhere): read from the TLS
  // session at the connection's first use and kept for its other requests.
  struct ClientCertInfo {
    tls::DownstreamSession::ClientCert state = tls::DownstreamSession::ClientCert::kNone;
    std::string verify;   // for the log: "SUCCESS", "FAILED:<why>" or "NONE" (as nginx's)
    std::string subject;  // RFC 2253
    std::vector<std::string> names;  // subject CN and SANs (client_cert_allow)
    std::string fields;  // RFC 9440 Client-Cert / Client-Cert-Chain lines, when verified
  };
  const ClientCertInfo& ClientCert();
  // A route with require_client_cert: true when the certificate verified (and is allowed),
  // else 403 (false = answered).
  bool CheckClientCert(core::Conn& conn, const RouteSpec& route);
  // Answers `status` to a request refused at its head (before any of its body was read); false.
  bool RefuseAtHead(core::Conn& conn, int status, std::string_view note,
                    std::string_view extra_headers = {});
  // The route's Basic authentication (basic_auth.h): true when the credentials hold, else 401
  // with the challenge (false = answered).
  bool CheckAuth(core::Conn& conn, const MessageHead& h);
  void EndDelay(core::Conn& conn);
  // A response head from the backend: its pool's counters (responses, time to first byte)
  // and passive health (a fail_status counts as a failure).
  void NoteUpstreamResponse(int status);
  // Compression at the response head: applies PlanCompression() (encoder or decoder, `edits`).
  void DecideCompression(const MessageHead& head, HeadEdits* edits);
  // Writes response body bytes to the client in the response framing (copied).
  void WriteBody(core::Conn& me, std::string_view bytes);
  void EndEncoder(bool finished);
  // "Server-Timing: ..." for the current exchange (routes with server_timing = true).
  void AppendServerTiming(std::string* out) const;
 public:
  // The upstream connection this exchange was sent on finished connecting (Server-Timing).
  void NoteUpstreamConnected() {
    if (b_ && cfg().timing) {
      b_->timing.connected = ctx_.worker().now_ns();
    }
  }
 private:
  // The body timer: body_timeout since the last byte, and never past the moment the body falls
  // below body_min_rate on average (after the grace period): slow POST (BAD-INPUTS D2).
  uint64_t BodyTimerMs() const {
    const ProxyLimits& l = cfg().limits;
    uint64_t ms = l.body_timeout_ms;
    if (l.body_min_rate > 0) {
      const uint64_t now = ctx_.worker().now_ms();
      const uint64_t due =
          x_.body_start_ms + l.body_grace_ms + x_.body_bytes * 1000 / l.body_min_rate;
      ms = std::min(ms, due > now ? due - now : 1);
    }
    return ms;
  }
 public:
  void ResumeFromQueue(core::Conn& conn, uint64_t ticket);
  // Request coalescing: the fetch this request waited for ended (session_cache.cc).
  void ResumeFromCacheWait(core::Conn& conn, uint64_t ticket);

 private:
  // ---- The response cache's part of the exchange (session_cache.cc) ----
  // At the request head of a route with a cache: answers from the store, or parks the request
  // behind another request's fetch of the same key (true); or prepares this request's fetch,
  // with validators when a stale entry can be revalidated (false: go on to the backend).
  bool CacheBeforeUpstream(core::Conn& conn, const MessageHead& h);
  // PURGE of a URL on a route with a cache (allowed CIDRs only).
  void CachePurge(core::Conn& conn, const MessageHead& h);
  // At the backend's response head. True: the client is answered from the store instead
  // (a 304 refreshed the entry, or stale-if-error); the backend's body is then discarded.
  bool CacheOnUpstreamHead(core::Conn& me, const MessageHead& head);
  void CacheOnUpstreamBody(std::string_view body);
  // The backend's response ended complete: store it (when it is being stored).
  void CacheOnUpstreamDone();
  // A 5xx local reply is due: serve the stale entry instead when stale-if-error allows (true).
  bool CacheServeStaleOnError(core::Conn& conn, int status);
  // End of the exchange however it ended: the fetch this request led is over (waiters woken),
  // or it stops waiting for another's.
  void CacheEndExchange();
  void CacheWaitTimeout(core::Conn& conn);
  // Writes a stored response to the client (304 to a matching conditional request; a
  // compressed variant when the route compresses), with Age and Cache-Status.
  void ServeEntry(core::Conn& conn, const std::shared_ptr<const cache::Entry>& entry,
                  std::span<const HeaderView> request_headers, std::string_view cache_status);
  // The body of `entry` in `coding`: the stored variant, or made now and stored (nullptr:
  // no encoder free, send identity).
  std::shared_ptr<const std::string> CompressedVariant(
      const std::shared_ptr<const cache::Entry>& entry, codec::Coding coding,
      std::span<const HeaderView> request_headers);
  void SaveRequestHeaders(std::span<const HeaderView> headers);
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
  bool ContinueServing(core::Conn& conn);
  // The exchange is over once the response is queued, the request read and no upstream
  // connection is still attached.
  void MaybeFinishServed(core::Conn& conn);
  // Forwards the request to the backend as a plain miss (after a wait, a bypass).
  void CacheGoUpstream(core::Conn& conn);
 private:
  uint64_t KeyHash(const core::Conn& conn, const MessageHead& h, const PoolSpec& pool) const;
  // A hash of B().client's address bytes (ip_hash behind trusted proxies, sticky splits).
  uint64_t ClientAddressHash() const;
  // The pool a split route sends this request to (split_by, split_sticky, else by weight).
  uint32_t ChooseSplit(const RouteSpec& route, const MessageHead& h);
  // Some eligible backend of the pool is neither excluded nor `failed`.
  bool CanRetryElsewhere(uint32_t failed);
  void FinishExchange(core::Conn& conn);
  void DetachUpstream(bool reusable);
  void AbortClient(core::Conn& conn, std::string_view note);
  void SetTimerFor(core::Conn& conn, TimerFor what, uint64_t ms);
  void LogExchange();
  // Adds `n` to this request's route's counter `column` (RouteSpec::Column).
  void CountRoute(uint32_t column, uint64_t n = 1) {
    cfg().routes[x_.route].requests->at(ctx_.worker().id(), column) += n;
  }
  // Tunnel bytes from the client to the backend, with back-pressure both ways.
  void RelayToUpstream(core::Conn& conn, std::string_view bytes);
  // Ends the tunnel: logged once, both connections closed (after what is queued is sent, or
  // at once when `abort`).
  void EndTunnel(core::Conn& conn, std::string_view note, bool abort);

  // Laid out by size (8, 4, then 1-byte fields) so that an idle connection, which holds
  // nothing else, stays small. Per-exchange state that needs memory of its own (the retry
  // exclusion mask, head storage, timings) lives in the pooled ExchangeBuffers instead.
  ProxyContext& ctx_;
  // Taken at accept, renewed at each request head: a reload applies from the next request.
  std::shared_ptr<Generation> gen_;
  std::unique_ptr<ExchangeBuffers> b_;  // borrowed while a request is in progress
  std::string peer_;                    // the socket peer's address
  // From a PROXY header (null without one): the client and the address it connected to.
  struct Proxied {
    sockaddr_storage source;
    sockaddr_storage dest;
    std::string text;  // source's address, as peer_
  };
  std::unique_ptr<Proxied> proxied_;
  std::unique_ptr<ClientCertInfo> client_cert_;  // client_auth listeners, from the first request
  std::unique_ptr<codec::Encoder> encoder_;  // compressing the response being sent
  std::unique_ptr<codec::Decoder> decoder_;  // decompress: the backend's coding, undone
  // The current exchange's own state: one struct, reset in one go at each request head.
  struct ExchangeState {
    std::string_view note;      // why torii answered locally or cut the exchange (access log)
    uint64_t key_hash = 0;      // ip_hash key
    uint64_t queue_ticket = 0;  // max_conns queue: the ticket this request waits with (0: none)
    uint64_t delay_ms = 0;      // rate limit delay mode: hold the request this long
    uint64_t bytes_sent = 0;    // response body bytes sent to the client
    uint64_t bytes_up = 0;      // tunnel bytes from the client to the backend
    uint64_t body_start_ms = 0;  // when the request's body phase began
    uint64_t body_bytes = 0;     // request bytes received since then (body_min_rate)
    uint32_t pool = 0;
    uint32_t backend = 0;
    uint32_t attempts = 0;
    uint32_t retries_used = 0;  // retries on another backend (pool.retries caps them)
    uint32_t route = 0;
    int status = 0;
    Framing req_framing = Framing::kNone;
    uint8_t method_id = 0;
    uint8_t version_minor = 1;
    CodingRequest coding;             // what the client accepts (compression)
    bool flush_each_piece = false;    // event stream: flush the encoder per piece
    bool has_resp_extra = false;      // B().resp_extra holds this request's response headers
    bool have_backend = false;
    bool fresh_retry_used = false;    // the one retry of a reused connection's keep-alive race
    bool force_fresh = false;         // retry on a new connection, not a pooled one
    uint8_t interim_sent = 0;         // 103 responses forwarded (at most kMaxInterim)
    bool configured_reply = false;    // a return route's reply: the connection stays open
    bool routed = false;              // `route` holds this request's route
    bool upgrade = false;             // the request's upgrade was forwarded (upgrade.h)
    bool tunnel = false;              // the backend said 101: the connection is a tunnel
  } x_;
  static constexpr uint8_t kMaxInterim = 4;
  uint64_t start_ms_ = 0;
  uint64_t accepted_ns_ = 0;     // the loop turn that accepted the connection (accept phase)
  uint64_t ip_key_ = 0;          // max_conns_per_ip slot held by this connection
  core::ConnRef self_;
  core::ConnRef up_;
  uint32_t listener_;
  uint32_t requests_ = 0;
  TimerFor timer_for_ = TimerFor::kNone;
  H1ResponseWriter out_;  // the response half of the HTTP/1.1 codec (framing for this client)
  Req req_ = Req::kIdle;
  Resp resp_ = Resp::kNone;
  bool requeue_front_ = false;     // a resumed waiter without a slot goes back to the front
  bool close_after_ = false;
  bool upstream_paused_ = false;  // we paused the upstream's receive for client backpressure
  bool paused_for_upstream_ = false;  // we paused our receive for upstream backpressure
  bool recv_paused_ = false;
  bool waiting_reader_ = false;  // WaitForReader: no next request until OnWritable
  bool draining_ = false;
  bool peer_eof_ = false;     // the client half-closed: finish what is complete, then close
  bool holds_listener_slot_ = false;
  bool holds_ip_slot_ = false;
  bool awaiting_proxy_ = false;  // a proxy_protocol listener's connection before its header
};

}  // namespace torii::http
