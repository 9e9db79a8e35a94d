// http/exchange.cc: see exchange.h (its cache part is session_cache.cc, its tunnel part
// session_tunnel.cc).
#include "http/exchange.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "base/base64.h"
#include "base/text.h"
#include "http/compression_plan.h"
#include "http/grpc.h"
#include "http/h2_upstream.h"
#include "http/router.h"
#include "http/serialize.h"
#include "http/tls_transport.h"
#include "http/upgrade.h"
#include "ratelimit/access.h"

namespace torii::http {

namespace {

const std::string kEventStreamType = "text/event-stream";
const std::span<const std::string> kEventStream(&kEventStreamType, 1);

constexpr std::string_view kEarlyDataLine = "Early-Data: 1\r\n";  // RFC 8470 §5.1

uint64_t CeilSeconds(uint64_t ns) { return ns / 1000000000 + (ns % 1000000000 != 0 ? 1 : 0); }

}  // namespace

Exchange::Exchange(ProxyContext& ctx, ClientConn& conn, Downstream& down)
    : ctx_(ctx), conn_(conn), down_(down), gen_(ctx.generation()) {}

void Exchange::Begin(uint32_t id) {
  id_ = id;
  ExchangeBuffers& b = buffers();  // the exchange's state lives there from now on
  b.state = ExchangeState{};
  b.method.clear();
  b.target.clear();
  b.host.clear();
  req_ = Req::kHead;
  resp_ = Resp::kNone;
  close_after_ = false;
  held_ = false;
  b.start_ms = ctx_.worker().now_ms();
  if (cfg().timing) {
    b.timing = ExchangeTiming{};
    b.timing.first_byte = ctx_.worker().now_ns();
    if (conn_.requests == 0) {
      b.timing.accept_ns = std::max<uint64_t>(1, b.timing.first_byte - conn_.accepted_ns);
    }
  }
}

uint64_t Exchange::waiter_ticket() const {
  if (!b_) {
    return 0;  // idle
  }
  if (x().queue_ticket != 0) {
    return x().queue_ticket;
  }
  return b_ && (b_->cache.waiting || b_->cache.reading) ? b_->cache.filler.c : 0;
}

const tls::DownstreamSession& Exchange::tls_session() const {
  return static_cast<const TlsServerTransport*>(client_conn()->transport())->server_session();
}

void Exchange::SetTimerFor(TimerFor what, uint64_t ms) {
  timer_for_ = what;
  if (what == TimerFor::kNone) {
    down_.ClearTimer();
  } else {
    down_.SetTimer(ms);
  }
}

void Exchange::OnRequestError(int status, const char* reason) {
  if (resp_ == Resp::kNone) {
    spdlog::debug("client {}: bad request: {}", conn_.peer, reason);
    SendLocalReply(status, reason);
    return;
  }
  // The head was fine but the body is not (bad chunk, over the limit): the upstream got part
  // of a body and must never be reused.
  DetachUpstream(false);
  if (resp_ == Resp::kWaiting) {
    resp_ = Resp::kNone;
    SendLocalReply(status, reason);
  } else {
    AbortClient(reason);
  }
}

void Exchange::OnRequestEnd(bool must_close, std::span<const HeaderView> trailers) {
  req_ = Req::kDone;
  if (Upstream* u = upstream()) {
    if (resp_ != Resp::kDone) {
      std::vector<HeaderView> kept;  // allocates only when there are trailers
      KeepTrailers(trailers, cfg().routes[x().route].trailers, &kept);
      u->EndRequestBody(x().req_framing == Framing::kChunked, kept);
    } else {
      u->set_request_complete(true);  // answered already: nothing more is sent
    }
  }
  if (must_close) {
    close_after_ = true;
  }
  if (timer_for_ == TimerFor::kBody) {
    SetTimerFor(TimerFor::kNone, 0);
  }
  if (resp_ == Resp::kDone) {
    FinishExchange();
  }
}

bool Exchange::OnRequestHead(const MessageHead& h) {
  ++conn_.requests;
  ctx_.stats().requests++;
  buffers().method.assign(h.method);
  buffers().target.assign(h.target);  // refined by CheckRequest (absolute-form); logged if refused
  buffers().user.clear();
  buffers().state = ExchangeState{};
  x().method_id = h.method_id;
  x().version_major = h.version_major;
  x().version_minor = h.version_minor;
  x().req_framing = h.framing;
  if (cfg().listeners[conn_.listener].tls && tls_session().in_early_data()) {
    // RFC 8470: only what a replay cannot harm goes before the handshake completes.
    x().early = true;
    x().early_forward =
        (h.method_id == HTTP_GET || h.method_id == HTTP_HEAD || h.method_id == HTTP_OPTIONS) &&
        h.framing == Framing::kNone && !h.upgrade;
    x().await_handshake = !x().early_forward;
  }
  if (h.method_id == HTTP_POST) {
    // gRPC calls are POSTs: their failures are answered as gRPC, their grpc-timeout bounds
    // the wait for the backend.
    for (const HeaderView& hv : h.headers) {
      if (EqualsIgnoreCase(hv.name, "content-type")) {
        x().grpc = IsGrpcContentType(hv.value);
      } else if (EqualsIgnoreCase(hv.name, "grpc-timeout")) {
        x().grpc_timeout_ms = ParseGrpcTimeout(hv.value).value_or(0);
      }
    }
  }
  resp_ = Resp::kNone;
  close_after_ = !h.keep_alive || h.upgrade || conn_.draining ||
                 conn_.requests >= cfg().limits.keepalive_requests;
  if (gen_ != ctx_.generation()) {
    gen_ = ctx_.generation();  // a reload since the last request: this one uses the new config
  }
  const bool timing = cfg().timing;
  if (timing) {
    buffers().timing.head = ctx_.worker().now_ns();
  }
  ResolveClient(h);
  AssignIds(h);
  if (!CheckRequest(h) || !CheckAccess(h)) {
    return !down_.closing();
  }
  if (cfg().listeners[conn_.listener].http_to_https) {
    RedirectToHttps();
    return !down_.closing();
  }
  if (cfg().routes[x().route].require_client_cert && !CheckClientCert(cfg().routes[x().route])) {
    return !down_.closing();
  }
  if (cfg().routes[x().route].auth && !CheckAuth(h)) {
    return !down_.closing();
  }
  if (timing) {
    buffers().timing.access = ctx_.worker().now_ns();
    if (conn_.requests == 1 && cfg().listeners[conn_.listener].tls) {
      buffers().timing.tls_ns =
          static_cast<const TlsServerTransport*>(client_conn()->transport())->handshake_ns();
    }
  }
  req_ = h.framing == Framing::kNone ? Req::kHead : Req::kBody;
  if (req_ == Req::kBody) {
    x().body_start_ms = ctx_.worker().now_ms();
    SetTimerFor(TimerFor::kBody, BodyTimerMs());
  } else {
    SetTimerFor(TimerFor::kNone, 0);
  }
  // Route → pick → send: the head goes out now; the body follows as it arrives.
  const RouteSpec& route = cfg().routes[x().route];
  if (route.redirect_status != 0) {
    SendRedirect(route);
    return !down_.closing();
  }
  if (route.return_status != 0) {
    x().configured_reply = true;  // whatever its status, the request itself was fine
    SendLocalReply(route.return_status, "return", route.add_headers, route.return_body);
    return !down_.closing();
  }
  x().pool = route.split.empty() ? route.pool : ChooseSplit(route, h);
  buffers().exclude.Reset(static_cast<uint32_t>(cfg().pools[x().pool].backends.size()));
  resp_ = Resp::kWaiting;
  if (buffers().host.empty()) {
    // HTTP/1.0 without Host: name the pool, as nginx sends $proxy_host.
    buffers().host = cfg().pools[x().pool].name;
  }
  const PoolSpec& pool = cfg().pools[x().pool];
  x().key_hash = pool.needs_key_hash ? KeyHash(h, pool) : 0;
  x().coding =
      ReadCodingRequest(cfg().compression, route.compress, x().method_id == HTTP_HEAD, h.headers);
  const std::optional<std::string_view> upgrade =
      h.upgrade ? TunnelledUpgrade(h, route.upgrades) : std::nullopt;
  x().upgrade = upgrade.has_value();
  if (h.connect_protocol) {
    // An HTTP/2 client's tunnel (RFC 8441) opens on a 2xx, so it is never sent on as the
    // ordinary request an HTTP/1.1 upgrade falls back to. HTTP/2 pools carry no upgrades.
    if (!x().upgrade || pool.h2) {
      resp_ = Resp::kNone;
      RefuseAtHead(501, x().upgrade ? "upgrade to an HTTP/2 pool" : "upgrade not tunnelled");
      return !down_.closing();
    }
    x().connect_protocol = true;
  }
  if (route.cache >= 0 && !x().upgrade) {
    // Before the upstream head is built: a hit needs none of it.
    if (x().method_id == HTTP_PURGE) {
      CachePurge(h);
      return !down_.closing();
    }
    if (CacheBeforeUpstream(h)) {
      return !down_.closing();
    }
  }
  BuildUpstreamHead(h, upgrade.value_or(std::string_view()));
  if (buffers().cache.revalidating) {
    CacheAddValidators();
  }
  // Expect: 100-continue is answered here (and not forwarded): we are ready for the body.
  for (const HeaderView& hv : h.headers) {
    if (EqualsIgnoreCase(hv.name, "expect") && x().req_framing != Framing::kNone) {
      down_.WriteContinue();
    }
  }
  if (x().delay_ms > 0) {
    // Rate limit in delay mode: the request is spaced out at the limit's rate (nginx limit_req
    // without nodelay). Its body waits with it.
    held_ = true;
    SetTimerFor(TimerFor::kDelay, x().delay_ms);
    return true;
  }
  PickBackendAndSend();
  return !down_.closing();
}

void Exchange::EndDelay() {
  x().delay_ms = 0;
  held_ = false;
  SetTimerFor(req_ == Req::kBody ? TimerFor::kBody : TimerFor::kNone, BodyTimerMs());
  PickBackendAndSend();
  if (!down_.closing() && !held_) {
    down_.Continue();
  }
}

bool Exchange::RefuseAtHead(int status, std::string_view note, std::string_view extra_headers) {
  // Without a body the exchange ends when the parser reports kDone; with one, the body is
  // unread and SendLocalReply closes the connection rather than drain it.
  req_ = Req::kHead;
  SendLocalReply(status, note, extra_headers);
  return false;
}

const ClientCertInfo& Exchange::ClientCert() {
  if (conn_.client_cert) {
    return *conn_.client_cert;
  }
  conn_.client_cert = std::make_unique<ClientCertInfo>();
  ClientCertInfo& info = *conn_.client_cert;
  info.verify = "NONE";
  if (!cfg().listeners[conn_.listener].client_auth) {
    return info;
  }
  const tls::DownstreamSession& tls = tls_session();
  info.state = tls.client_cert();
  if (info.state == tls::DownstreamSession::ClientCert::kNone) {
    return info;
  }
  info.subject = tls.ClientSubject();
  if (info.state == tls::DownstreamSession::ClientCert::kFailed) {
    info.verify = "FAILED:";
    info.verify.append(tls.client_cert_error());
    return info;
  }
  info.verify = "SUCCESS";
  info.names = tls.ClientNames();
  // RFC 9440: each certificate as a structured-field byte sequence (:base64 of the DER:).
  const std::vector<std::string> chain = tls.ClientChainDer();
  for (size_t i = 0; i < chain.size(); ++i) {
    if (i == 0) {
      info.fields.append("Client-Cert: :");
    } else {
      info.fields.append(i == 1 ? "Client-Cert-Chain: :" : ", :");
    }
    base::AppendBase64(chain[i], &info.fields);
    info.fields.append(i == 0 || i + 1 == chain.size() ? ":\r\n" : ":");
  }
  return info;
}

bool Exchange::CheckClientCert(const RouteSpec& route) {
  const ClientCertInfo& info = ClientCert();
  if (info.state != tls::DownstreamSession::ClientCert::kVerified) {
    return RefuseAtHead(403, info.state == tls::DownstreamSession::ClientCert::kNone
                                 ? "client certificate required"
                                 : "client certificate not verified");
  }
  if (route.client_cert_allow.empty()) {
    return true;
  }
  for (const std::string& name : info.names) {
    for (const std::string& allowed : route.client_cert_allow) {
      if (name == allowed) {
        return true;
      }
    }
  }
  return RefuseAtHead(403, "client certificate not allowed");
}

bool Exchange::CheckAuth(const MessageHead& h) {
  BasicAuth& auth = *cfg().routes[x().route].auth;
  std::string_view value;
  int fields = 0;
  for (const HeaderView& hv : h.headers) {
    if (EqualsIgnoreCase(hv.name, "authorization")) {
      ++fields;
      value = hv.value;
    }
  }
  // The decoded credentials live in scratch for this call only, and are wiped after it.
  std::string& decoded = ctx_.scratch();
  std::optional<BasicCredentials> creds;
  if (fields == 1) {
    creds = ParseBasicCredentials(value, &decoded);
  }
  const bool ok = creds && auth.Verify(creds->user, creds->password);
  if (ok) {
    buffers().user.assign(creds->user);
  }
  std::fill(decoded.begin(), decoded.end(), '\0');
  decoded.clear();
  if (ok) {
    return true;
  }
  return RefuseAtHead(401, fields == 0 ? "credentials required" : "bad credentials",
                      auth.challenge());
}

bool Exchange::CheckAccess(const MessageHead& h) {
  const ProxyConfig& config = cfg();
  const ListenerSpec& listener = config.listeners[conn_.listener];
  const RouteSpec& route = config.routes[x().route];
  x().delay_ms = 0;
  if (listener.allow.empty() && listener.deny.empty() && route.allow.empty() &&
      route.deny.empty() && route.rate_limit < 0) {
    return true;  // the common case costs three branches
  }
  auto reject = [&](int status, std::string_view why, std::string_view extra = {}) {
    return RefuseAtHead(status, why, extra);
  };
  const ratelimit::IpAddr& client = buffers().client;
  if (const ratelimit::AccessVerdict verdict =
          ratelimit::DecideAccess(listener.allow, listener.deny, route.allow, route.deny, client);
      verdict != ratelimit::AccessVerdict::kAllow) {
    ctx_.stats().denied++;
    return reject(403, ratelimit::ToString(verdict));
  }
  if (route.rate_limit < 0) {
    return true;
  }
  const RateLimitSpec& limit = config.rate_limits[static_cast<uint32_t>(route.rate_limit)];
  uint64_t key = 0;
  bool keyed = false;
  if (limit.key == RateLimitSpec::Key::kRoute) {
    key = ratelimit::HashKey(
        std::string_view(reinterpret_cast<const char*>(&x().route), sizeof(x().route)));
    keyed = true;
  } else if (limit.key == RateLimitSpec::Key::kHeader) {
    for (const HeaderView& hv : h.headers) {
      if (EqualsIgnoreCase(hv.name, limit.header)) {
        // Keyed per process: a client cannot pick a value that collides with another's.
        key = ratelimit::HashKey(hv.value);
        keyed = true;
        break;
      }
    }
  }
  if (!keyed) {
    // client_ip (or a header the request lacks: omitting it must not escape the limit).
    key = ratelimit::HashIp(client, client.family == 4 ? limit.prefix_v4 : limit.prefix_v6);
  }
  const uint64_t now = core::MonotonicNs();
  if (limit.bans && limit.bans->IsBanned(key, now)) {
    ctx_.stats().denied++;
    return reject(403, "banned");
  }
  ratelimit::Decision d;
  bool headers = true;
  if (limit.fleet >= 0) {
    // The fleet's limit, from this worker's leases: never waits for Redis.
    FleetLimits& fleet = ctx_.fleet();
    ratelimit::LeaseTable& leases = fleet.table(limit);
    ratelimit::LeaseTable::Outcome o = leases.Check(key, now);
    if (o.new_key) {
      const std::string name = FleetKeyName(limit, h, client);
      leases.SetStoreKey(key, name);
      o.request.store_key = name;
    }
    if (o.ask) {
      fleet.Send(limit, std::move(o.request));
      if (o.verdict != ratelimit::LeaseTable::Verdict::kBanned && leases.store_down(now)) {
        o.verdict = ratelimit::LeaseTable::Verdict::kStoreDown;  // it failed at once
      }
    }
    using Verdict = ratelimit::LeaseTable::Verdict;
    switch (o.verdict) {
      case Verdict::kAllow:
        d.remaining = o.remaining;
        d.reset_ns = o.reset_ns;
        break;
      case Verdict::kDeny:
        d.allowed = false;
        d.retry_after_ns = o.retry_after_ns;
        break;
      case Verdict::kBanned:
        ctx_.stats().denied++;
        return reject(403, "banned");
      case Verdict::kStoreDown:
        switch (limit.on_store_error) {
          case RateLimitSpec::OnStoreError::kAllow:
            headers = false;  // nothing is known of the fleet's state
            break;
          case RateLimitSpec::OnStoreError::kDeny:
            d.allowed = false;
            d.retry_after_ns = 1000000000;
            break;
          case RateLimitSpec::OnStoreError::kLocal:
            d = limit.table->Check(key, now);  // this process's share of nothing: the limit alone
            break;
        }
        break;
    }
  } else {
    d = limit.table->Check(key, now);
  }
  // RateLimit-Policy / RateLimit (draft-ietf-httpapi-ratelimit-headers), on every response
  // of the route: the quota per window, and what is left of it now.
  std::string& extra = buffers().resp_extra;
  extra.clear();
  if (headers) {
    extra.assign("RateLimit-Policy: \"");
    extra.append(limit.name);
    extra.append("\";q=");
    extra.append(std::to_string(limit.quota));
    extra.append(";w=");
    extra.append(std::to_string(limit.window_s));
    extra.append("\r\nRateLimit: \"");
    extra.append(limit.name);
    extra.append("\";r=");
    extra.append(std::to_string(d.allowed ? d.remaining : 0));
    extra.append(";t=");
    extra.append(std::to_string(CeilSeconds(d.allowed ? d.reset_ns : d.retry_after_ns)));
    extra.append("\r\n");
  }
  if (!d.allowed) {
    ctx_.stats().rate_limited++;
    if (limit.bans && limit.bans->RecordViolation(key, now)) {
      ctx_.stats().bans++;
      spdlog::warn("client {} banned for {} s after {} rejections by rate_limit {}",
                   ratelimit::ToString(client), limit.ban_for_s, limit.ban_after, limit.name);
      if (limit.fleet >= 0) {
        // The fleet learns of the ban through Redis (with its remaining time).
        FleetLimits& fleet = ctx_.fleet();
        fleet.Send(limit, fleet.table(limit).Ban(key, FleetKeyName(limit, h, client),
                                                 limit.ban_for_s * 1000000000, now));
      }
    }
    extra.append("Retry-After: ");
    extra.append(std::to_string(std::max<uint64_t>(1, CeilSeconds(d.retry_after_ns))));
    extra.append("\r\n");
    extra.append(route.add_headers);
    return reject(429, "rate limited", extra);
  }
  extra.append(route.add_headers);
  x().has_resp_extra = true;
  x().delay_ms = (d.delay_ns + 999999) / 1000000;
  return true;
}

std::string Exchange::FleetKeyName(const RateLimitSpec& limit, const MessageHead& h,
                                   const ratelimit::IpAddr& client) const {
  // The same in every process (the local hash is keyed per process): the client's address or
  // prefix as text, a header value's SHA-256 (bounded, and no value can be chosen to collide),
  // or the route's host and path.
  if (limit.key == RateLimitSpec::Key::kRoute) {
    const RouteSpec& route = cfg().routes[x().route];
    return "route:" + route.host + route.path_prefix + route.path_exact;
  }
  if (limit.key == RateLimitSpec::Key::kHeader) {
    for (const HeaderView& hv : h.headers) {
      if (EqualsIgnoreCase(hv.name, limit.header)) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256(reinterpret_cast<const unsigned char*>(hv.value.data()), hv.value.size(), md);
        static constexpr char kHex[] = "0123456789abcdef";
        std::string out = "h:";
        for (size_t i = 0; i < 16; ++i) {
          out.push_back(kHex[md[i] >> 4]);
          out.push_back(kHex[md[i] & 15]);
        }
        return out;
      }
    }
  }
  const uint8_t prefix = client.family == 4 ? limit.prefix_v4 : limit.prefix_v6;
  return "ip:" + ratelimit::ToString(ratelimit::MaskPrefix(client, prefix)) + "/" +
         std::to_string(prefix);
}

void Exchange::ResolveClient(const MessageHead& h) {
  ExchangeBuffers& b = buffers();
  b.client = ratelimit::IpFromSockaddr(ConnClient());
  b.client_text.clear();
  b.forwarded_for.clear();
  const ratelimit::IpList& trusted = cfg().trusted_proxies;
  if (trusted.empty() || !trusted.Contains(b.client)) {
    return;  // the peer is the client; whatever it says about others is dropped
  }
  // A trusted proxy: its X-Forwarded-For chain (repeated headers joined in order) names the
  // client, and the backend gets that chain with the proxy appended (nginx's
  // $proxy_add_x_forwarded_for).
  for (const HeaderView& hv : h.headers) {
    if (EqualsIgnoreCase(hv.name, "x-forwarded-for")) {
      if (!b.forwarded_for.empty()) {
        b.forwarded_for.append(", ");
      }
      b.forwarded_for.append(hv.value);
    }
  }
  const ratelimit::IpAddr peer = b.client;
  b.client = ratelimit::RealClient(peer, b.forwarded_for, trusted);
  if (b.client != peer) {
    b.client_text = ratelimit::ToString(b.client);
  }
  if (!b.forwarded_for.empty()) {
    b.forwarded_for.append(", ");
  }
  b.forwarded_for.append(ConnClientText());
}

void Exchange::AssignIds(const MessageHead& h) {
  const ProxyConfig& config = cfg();
  ExchangeBuffers& b = buffers();
  b.request_id.clear();
  b.trace_id.clear();
  b.id_lines.clear();
  if (!config.request_id_header.empty()) {
    // Kept from a trusted proxy (so one ID follows the request through the fleet), made here
    // otherwise: a client cannot choose the ID the logs will show for it.
    if (!b.forwarded_for.empty()) {
      for (const HeaderView& hv : h.headers) {
        if (EqualsIgnoreCase(hv.name, config.request_id_header) && IsValidRequestId(hv.value)) {
          b.request_id.assign(hv.value);
          break;
        }
      }
    }
    if (b.request_id.empty()) {
      uint8_t raw[16];
      ctx_.ids().Fill(raw, sizeof(raw));
      AppendHex(raw, sizeof(raw), &b.request_id);
    }
    AppendRequestId(&b.id_lines);
  }
  if (config.trace_context) {
    // W3C Trace Context: continue the client's trace with torii as the parent span, or start
    // one (SettleTrace makes the new ids when the backend's head or the log needs them: a
    // request answered here and not logged makes none). tracestate passes through untouched
    // as an end-to-end field.
    std::optional<TraceParent> tp;
    for (const HeaderView& hv : h.headers) {
      if (EqualsIgnoreCase(hv.name, "traceparent")) {
        tp = tp ? std::nullopt : ParseTraceParent(hv.value);  // two: invalid, start anew
        if (!tp) {
          break;
        }
      }
    }
    if (tp) {
      b.trace = *tp;
      x().trace = ExchangeState::Trace::kContinue;
    } else {
      x().trace = ExchangeState::Trace::kStart;
    }
  }
}

void Exchange::SettleTrace() {
  ExchangeBuffers& b = buffers();
  if (x().trace == ExchangeState::Trace::kOff || x().trace == ExchangeState::Trace::kSettled) {
    return;
  }
  if (x().trace == ExchangeState::Trace::kStart) {
    b.trace.flags = 0;
    ctx_.ids().Fill(b.trace.trace_id.data(), b.trace.trace_id.size());
  }
  ctx_.ids().Fill(b.trace.parent_id.data(), b.trace.parent_id.size());
  AppendHex(b.trace.trace_id.data(), b.trace.trace_id.size(), &b.trace_id);
  x().trace = ExchangeState::Trace::kSettled;
}

void Exchange::AppendRequestId(std::string* lines) const {
  if (b_ && !b_->request_id.empty()) {
    base::AppendField(lines, cfg().request_id_header, b_->request_id);
  }
}

void Exchange::BuildUpstreamHead(const MessageHead& h, std::string_view upgrade) {
  ExchangeBuffers& b = buffers();
  std::string_view proto = scheme();
  std::string_view forwarded_host;
  if (!b.forwarded_for.empty()) {
    // From a trusted proxy, the scheme and host the client used at that proxy are kept: the
    // left-most X-Forwarded-Proto element when it is http or https, and a well-formed
    // X-Forwarded-Host. Anything else is replaced (ours) or dropped.
    bool proto_seen = false;
    for (const HeaderView& hv : h.headers) {
      if (!proto_seen && EqualsIgnoreCase(hv.name, "x-forwarded-proto")) {
        proto_seen = true;
        const std::string_view first = base::TrimOws(hv.value.substr(0, hv.value.find(',')));
        if (EqualsIgnoreCase(first, "https")) {
          proto = "https";
        } else if (EqualsIgnoreCase(first, "http")) {
          proto = "http";
        }
      } else if (forwarded_host.empty() && EqualsIgnoreCase(hv.name, "x-forwarded-host") &&
                 ValidateHost(hv.value)) {
        forwarded_host = hv.value;
      }
    }
  }
  // The route's rewrites apply to what the backend gets only: routing, access, limits, the
  // cache key and the log all used the client's (normalised) request.
  const RouteSpec& route = cfg().routes[x().route];
  std::string_view target = b.target;
  std::string& rewritten = ctx_.scratch();
  if (RewriteTarget(route, b.target, &rewritten)) {
    target = rewritten;
  }
  if (x().trace != ExchangeState::Trace::kOff) {
    SettleTrace();
    b.id_lines.append("traceparent: ");  // right after the request ID, as AssignIds left it
    AppendTraceParent(b.trace, &b.id_lines);
    b.id_lines.append("\r\n");
  }
  b.id_lines.append(route.upstream_add);
  if (cfg().listeners[conn_.listener].client_auth &&
      cfg().listeners[conn_.listener].client_cert_forward) {
    b.id_lines.append(ClientCert().fields);  // empty unless the certificate verified
  }
  b.ws_accept.clear();
  if (!upgrade.empty()) {
    b.id_lines.append("Connection: upgrade\r\n");
    base::AppendField(&b.id_lines, "Upgrade", upgrade);
    if (x().connect_protocol && EqualsIgnoreCase(upgrade, "websocket")) {
      // The HTTP/2 client's WebSocket has no key of its own (RFC 8441 §5): the backend's
      // handshake is torii's, and its 101 must answer this key (SwitchAccepted).
      const std::string key = NewWebSocketKey();
      base::AppendField(&b.id_lines, "Sec-WebSocket-Key", key);
      b.ws_accept = WebSocketAccept(key);
    }
  }
  if (x().early_forward) {
    // RFC 8470 §5.1: the backend may answer 425 Too Early (a client's own marker stays).
    x().early_marked = std::none_of(h.headers.begin(), h.headers.end(), [](const HeaderView& hv) {
      return EqualsIgnoreCase(hv.name, "early-data");
    });
    if (x().early_marked) {
      b.id_lines.append(kEarlyDataLine);
    }
  }
  if (cfg().forwarded_header) {
    AppendForwarded(h, &b.id_lines);
  }
  BuildUpstreamRequestHead(
      h,
      route.host_rewrite.empty() ? std::string_view(b.host) : std::string_view(route.host_rewrite),
      target, b.forwarded_for.empty() ? ConnClientText() : b.forwarded_for, x().req_framing,
      &b.upstream_head, proto, forwarded_host,
      UpstreamHeadEdits{route.upstream_remove, b.id_lines});
}

void Exchange::AppendForwarded(const MessageHead& h, std::string* lines) const {
  // RFC 7239: a trusted proxy's elements stay, in order, and torii's hop is appended; from
  // anyone else only torii's hop is sent (the client's field was dropped).
  lines->append("Forwarded: ");
  const size_t start = lines->size();
  if (!b_->forwarded_for.empty()) {
    for (const HeaderView& hv : h.headers) {
      if (EqualsIgnoreCase(hv.name, "forwarded") && !base::TrimOws(hv.value).empty()) {
        if (lines->size() > start) {
          lines->append(", ");
        }
        lines->append(base::TrimOws(hv.value));
      }
    }
  }
  if (lines->size() > start) {
    lines->append(", ");
  }
  // for=: the node that sent the request to torii; an IPv6 address is quoted and bracketed.
  const std::string_view node = ConnClientText();
  const bool v6 = node.find(':') != std::string_view::npos;
  lines->append(v6 ? "for=\"[" : "for=").append(node).append(v6 ? "]\"" : "");
  if (!b_->host.empty()) {
    lines->append(";host=\"").append(b_->host).append("\"");  // ValidateHost: no quote in it
  }
  lines->append(";proto=").append(scheme()).append("\r\n");
}

bool Exchange::CheckRequest(const MessageHead& h) {
  auto reject = [&](int status, std::string_view why) { return RefuseAtHead(status, why); };
  if (h.method_id == HTTP_CONNECT) {
    close_after_ = true;
    return reject(501, "CONNECT not supported");
  }
  // Expectations other than 100-continue: 417.
  std::string_view host_header;
  int host_count = 0;
  for (const HeaderView& hv : h.headers) {
    if (EqualsIgnoreCase(hv.name, "host")) {
      ++host_count;
      host_header = hv.value;
    } else if (EqualsIgnoreCase(hv.name, "expect") && !EqualsIgnoreCase(hv.value, "100-continue")) {
      close_after_ = true;
      return reject(417, "unsupported expectation");
    }
  }
  if (host_count > 1) {
    close_after_ = true;
    return reject(400, "duplicate Host");
  }
  // Request target: origin-form, absolute-form (its authority overrides Host, RFC 9112 §3.2.2),
  // or "*".
  std::string_view target = h.target;
  std::string_view authority;
  if (target.front() == '/') {
    // origin-form
  } else if (target == "*" && h.method_id == HTTP_OPTIONS) {
    // asterisk-form
  } else {
    std::string_view rest;
    if (target.size() > 7 && EqualsIgnoreCase(target.substr(0, 7), "http://")) {
      rest = target.substr(7);
    } else if (target.size() > 8 && EqualsIgnoreCase(target.substr(0, 8), "https://")) {
      rest = target.substr(8);
    } else {
      close_after_ = true;
      return reject(400, "bad request target");
    }
    const size_t end = rest.find_first_of("/?");
    authority = rest.substr(0, end);
    target = end == std::string_view::npos ? std::string_view("/") : rest.substr(end);
    if (!target.empty() && target.front() == '?') {
      buffers().target.assign("/");
      buffers().target.append(target);
    }
  }
  if (authority.empty() && host_count == 0 && h.version_minor >= 1) {
    close_after_ = true;
    return reject(400, "missing Host");
  }
  const std::string_view host = authority.empty() ? host_header : authority;
  std::string_view host_name;
  if (!host.empty() || h.version_minor >= 1) {
    auto name = ValidateHost(host);
    if (!name) {
      close_after_ = true;
      return reject(400, "invalid Host");
    }
    host_name = *name;
  }
  if (const tls::ServerContext* tls = cfg().listeners[conn_.listener].tls.get();
      tls != nullptr && tls->group_count() > 1 && !host_name.empty()) {
    // RFC 9110 §15.5.20 (domain fronting): the TLS server name chose one certificate; a Host
    // that another certificate serves (the default one, for a name none lists) was not meant
    // for this connection. Without SNI there is no claim to contradict.
    const std::string_view sni = tls_session().sni();
    if (!sni.empty() && tls->Lookup(sni) != tls->Lookup(host_name)) {
      return reject(421, "misdirected request (SNI names another certificate)");
    }
  }
  buffers().host.assign(host);
  if (target.empty() || target.front() != '?') {
    buffers().target.assign(target);
  }
  // Route, access lists, limits, the cache key and the backend all see the normalised path:
  // a spelling the backend would read as another path cannot pass a rule meant for it.
  if (buffers().target != "*") {
    if (const PathError bad =
            NormalizePath(&buffers().target, cfg().listeners[conn_.listener].path);
        bad != PathError::kNone) {
      buffers().target.assign(h.target);  // the log shows what the client sent
      close_after_ = true;
      return reject(400, ToString(bad));
    }
  }
  // Route by the same host the upstream will see (so route and cache key never disagree).
  std::string lower(host_name);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  // "OPTIONS *" concerns the server as a whole: route it by host, as the path "/".
  const auto route = MatchRoute(
      cfg().routes, RouteRequest{lower,
                                 buffers().target == "*" ? std::string_view("/")
                                                         : std::string_view(buffers().target),
                                 h.method_id, h.headers});
  if (!route) {
    return reject(404, "no route");
  }
  x().route = *route;
  x().routed = true;
  CountRoute(RouteSpec::kRequests);
  return true;
}

void Exchange::RedirectToHttps() {
  // https://HOST/TARGET on the default port: the host without the port the client named.
  req_ = x().req_framing == Framing::kNone ? Req::kHead : Req::kBody;
  std::string_view host = buffers().host;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);  // IPv6 literal
  } else {
    host = host.substr(0, host.find(':'));
  }
  std::string& extra = buffers().upstream_head;  // unused: this request never goes upstream
  extra.assign("Location: https://");
  extra.append(host);
  extra.append(buffers().target == "*" ? std::string_view("/")
                                       : std::string_view(buffers().target));
  extra.append("\r\n");
  // 301 keeps browsers on https for GET; 308 keeps the method and body of anything else.
  const bool safe = x().method_id == HTTP_GET || x().method_id == HTTP_HEAD;
  SendLocalReply(safe ? 301 : 308, "http_to_https", extra);
}

void Exchange::SendRedirect(const RouteSpec& route) {
  // Location: the configured URL, plus the request's path and query for a prefix redirect.
  std::string& extra = buffers().upstream_head;  // unused by a route that never goes upstream
  extra.assign("Location: ");
  extra.append(route.redirect);
  if (route.redirect_prefix) {
    extra.append(buffers().target == "*" ? std::string_view("/")
                                         : std::string_view(buffers().target));
  }
  extra.append("\r\n");
  extra.append(route.add_headers);
  SendLocalReply(route.redirect_status, "redirect", extra);
}

uint32_t Exchange::ChooseSplit(const RouteSpec& route, const MessageHead& h) {
  // A header or cookie naming one of the split's pools forces it (canary by header).
  if (route.split_by != PoolSpec::HashKey::kClientIp) {
    std::optional<std::string_view> named;
    if (route.split_by == PoolSpec::HashKey::kCookie) {
      named = CookieValue(h.headers, route.split_by_name);
    } else {
      for (const HeaderView& hv : h.headers) {
        if (EqualsIgnoreCase(hv.name, route.split_by_name)) {
          named = base::TrimOws(hv.value);
          break;
        }
      }
    }
    if (named) {
      for (const RouteSpec::SplitTarget& t : route.split) {
        if (cfg().pools[t.pool].name == *named) {
          return t.pool;
        }
      }
    }
  }
  // Sticky: the client's address decides, so a client stays on one side of the split.
  const uint64_t r = route.split_sticky ? ClientAddressHash() : ctx_.ids().Next();
  return PickSplit(route, r % route.split_total);
}

uint64_t Exchange::ClientAddressHash() const {
  const ratelimit::IpAddr& c = b_->client;
  return balancer::HashBytes(
      std::string_view(reinterpret_cast<const char*>(c.bytes.data()), c.family == 4 ? 4 : 16));
}

uint64_t Exchange::KeyHash(const MessageHead& h, const PoolSpec& pool) const {
  if (pool.hash_key == PoolSpec::HashKey::kHeader) {
    for (const HeaderView& hv : h.headers) {
      if (EqualsIgnoreCase(hv.name, pool.hash_key_name)) {
        return balancer::HashBytes(hv.value);
      }
    }
  } else if (pool.hash_key == PoolSpec::HashKey::kCookie) {
    if (const auto value = CookieValue(h.headers, pool.hash_key_name)) {
      return balancer::HashBytes(*value);
    }
  }
  // The client address, without the port (a client keeps its backend across connections);
  // behind a trusted proxy, the client it names.
  if (!b_->client_text.empty()) {
    return ClientAddressHash();
  }
  const sockaddr* sa = ConnClient();
  if (sa->sa_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in*>(sa)->sin_addr;
    return balancer::HashBytes(std::string_view(reinterpret_cast<const char*>(&in), sizeof(in)));
  }
  const auto& in6 = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
  return balancer::HashBytes(std::string_view(reinterpret_cast<const char*>(&in6), sizeof(in6)));
}

bool Exchange::CanRetryElsewhere(uint32_t failed) {
  const balancer::BackendMask& healthy = gen_->healthy(x().pool);
  for (uint32_t i = 0; i < healthy.size(); ++i) {
    if (healthy.test(i) && !buffers().exclude.test(i) && i != failed) {
      return true;
    }
  }
  return false;
}

bool Exchange::HoldForHandshake() {
  if (!x().await_handshake) {
    return false;
  }
  if (tls_session().handshake_done()) {
    x().await_handshake = false;
    return false;
  }
  held_ = true;
  SetTimerFor(TimerFor::kHandshake, cfg().listeners[conn_.listener].tls->handshake_timeout_ms());
  return true;
}

void Exchange::OnHandshakeDone() {
  if (!b_ || !x().await_handshake) {  // idle, or nothing waits for the handshake
    return;
  }
  x().await_handshake = false;
  if (timer_for_ != TimerFor::kHandshake) {
    return;  // not waiting yet (a rate-limit delay, a cache fetch): it goes on from there
  }
  held_ = false;
  SetTimerFor(req_ == Req::kBody ? TimerFor::kBody : TimerFor::kNone, BodyTimerMs());
  PickBackendAndSend();
  if (!down_.closing() && !held_) {
    down_.Continue();
  }
}

void Exchange::RetryAfterHandshake() {
  DetachUpstream(false);  // the 425's body is not wanted
  x().early_forward = false;
  if (x().early_marked) {
    x().early_marked = false;
    std::string& head = buffers().upstream_head;
    const size_t at = head.find(kEarlyDataLine);
    if (at != std::string::npos) {
      head.erase(at, kEarlyDataLine.size());
    }
  }
  x().await_handshake = true;
  PickBackendAndSend();
}

void Exchange::PickBackendAndSend() {
  if (HoldForHandshake()) {
    return;
  }
  const PoolSpec& pool = cfg().pools[x().pool];
  // Bounded: every turn either sends, answers, queues, or excludes a backend / loses a slot
  // race (which another worker won, so the backend shows as full on the next turn).
  for (uint32_t turn = 0; turn < 2 * pool.backends.size() + 4; ++turn) {
    ++x().attempts;
    auto pick =
        gen_->picker(x().pool).Pick(x().key_hash, gen_->available(x().pool), buffers().exclude);
    if (!pick) {
      if (QueueForSlot()) {
        return;
      }
      // Nothing left to try: no backend is configured/eligible, or every one refused.
      const bool tried = buffers().exclude.count() > 0;
      resp_ = Resp::kNone;
      SendLocalReply(503, tried ? "no backend reachable" : "no backend available");
      return;
    }
    if (!gen_->TryAcquireSlot(x().pool, *pick)) {
      continue;  // another worker took the last slot since available() looked
    }
    x().backend = *pick;
    x().have_backend = true;
    if (pool.h2) {
      if (SendOnStream(pool)) {
        return;
      }
      continue;  // that backend is excluded now
    }
    core::Conn* up = nullptr;
    if (x().attempts == 1 || !x().force_fresh) {
      up = gen_->TakeIdle(x().pool, x().backend);
    }
    if (up != nullptr) {
      ctx_.stats().upstream_reused++;
    } else {
      bool answered = false;
      up = ConnectUpstream(pool, std::make_unique<UpstreamConn>(ctx_, gen_, x().pool, x().backend),
                           &answered);
      if (answered) {
        return;
      }
      if (up == nullptr) {
        continue;  // that backend is excluded now
      }
    }
    up_ = UpstreamRef{up->ref(), 0};
    auto* handler = static_cast<UpstreamConn*>(up->handler());
    const RouteSpec& route = cfg().routes[x().route];
    handler->Attach(*up, ExchangeRef{conn_.ref, conn_.host, id_}, x().method_id == HTTP_HEAD,
                    /*holds_slot=*/pool.max_conns > 0, ConnectTimeoutMs(pool, route),
                    ResponseTimeoutMs(pool, route));
    handler->set_request_complete(req_ == Req::kDone);
    up->Write(buffers().upstream_head);
    NoteSent(pool);
    return;
  }
  // Lost every slot race in a row: wait like any request that found the backends full.
  if (!QueueForSlot()) {
    resp_ = Resp::kNone;
    SendLocalReply(503, "no backend available");
  }
}

core::Conn* Exchange::ConnectUpstream(const PoolSpec& pool,
                                      std::unique_ptr<core::ConnHandler> handler, bool* answered) {
  const BackendTarget& b = pool.backends[x().backend];
  auto r = ctx_.worker().Connect(reinterpret_cast<const sockaddr*>(&b.addr), b.addr_len,
                                 std::move(handler), pool.tcp_fastopen);
  if (!r) {
    gen_->ReleaseSlot(x().pool, x().backend);
    if (r.error().code == core::Errc::kNoFds || r.error().code == core::Errc::kTooManyConns) {
      // Out of fds or connection slots: this is our limit, not the backend's.
      resp_ = Resp::kNone;
      SendLocalReply(503, "no upstream connection available");
      *answered = true;
      return nullptr;
    }
    buffers().exclude.set(x().backend);
    return nullptr;
  }
  core::Conn* up = *r;
  if (pool.send_proxy != 0) {
    // Before anything else on the wire (the TLS ClientHello included): who the client is,
    // and the address it reached (the PROXY header's, else this listener's).
    sockaddr_storage local{};
    const sockaddr* dest = reinterpret_cast<const sockaddr*>(&local);
    if (conn_.proxied) {
      dest = reinterpret_cast<const sockaddr*>(&conn_.proxied->dest);
    } else {
      socklen_t len = sizeof(local);
      getsockname(client_conn()->fd(), reinterpret_cast<sockaddr*>(&local), &len);
    }
    ctx_.scratch().clear();
    AppendProxyHeader(pool.send_proxy, ConnClient(), dest, &ctx_.scratch());
    up->WriteRaw(ctx_.scratch());
  }
  if (pool.tls) {
    up->set_transport(std::make_unique<TlsClientTransport>(
        ctx_, *up, pool.tls, pool.tls_names[x().backend], pool.tls_sessions[x().backend]));
  }
  ctx_.stats().upstream_connects++;
  return up;
}

uint64_t Exchange::ConnectTimeoutMs(const PoolSpec& pool, const RouteSpec& route) {
  return route.connect_timeout_ms != 0 ? route.connect_timeout_ms : pool.connect_timeout_ms;
}

uint64_t Exchange::ResponseTimeoutMs(const PoolSpec& pool, const RouteSpec& route) const {
  const uint64_t configured =
      route.response_timeout_ms != 0 ? route.response_timeout_ms : pool.response_timeout_ms;
  // A gRPC client's deadline: the backend wait ends with it (DEADLINE_EXCEEDED).
  return x().grpc_timeout_ms != 0 ? std::min(configured, x().grpc_timeout_ms) : configured;
}

bool Exchange::SendOnStream(const PoolSpec& pool) {
  core::Conn* up = nullptr;
  if (x().attempts == 1 || !x().force_fresh) {
    up = H2UpstreamConn::FindWithRoom(ctx_.worker(), *gen_, x().pool, x().backend);
  }
  if (up != nullptr) {
    ctx_.stats().upstream_reused++;
  } else {
    bool answered = false;
    up = ConnectUpstream(pool, std::make_unique<H2UpstreamConn>(ctx_, gen_, x().pool, x().backend),
                         &answered);
    if (up == nullptr) {
      return answered;
    }
    static_cast<H2UpstreamConn*>(up->handler())->Register(*up);
  }
  const RouteSpec& route = cfg().routes[x().route];
  H2UpstreamConn::StreamParams p;
  p.client = ExchangeRef{conn_.ref, conn_.host, id_};
  p.head_request = x().method_id == HTTP_HEAD;
  p.holds_slot = pool.max_conns > 0;
  p.end_stream = x().req_framing == Framing::kNone;
  p.connect_timeout_ms = ConnectTimeoutMs(pool, route);
  p.response_timeout_ms = ResponseTimeoutMs(pool, route);
  const uint32_t stream =
      static_cast<H2UpstreamConn*>(up->handler())->Open(*up, p, &buffers().upstream_head);
  if (stream == 0) {
    buffers().exclude.set(x().backend);  // the refused stream gave back its slot as it went
    return false;
  }
  up_ = UpstreamRef{up->ref(), stream};
  NoteSent(pool);
  return true;
}

void Exchange::NoteSent(const PoolSpec& pool) {
  pool.counters->at(ctx_.worker().id(),
                    x().backend * PoolSpec::kBackendColumns + PoolSpec::kSelected)++;
  if (buffers().cache.cache >= 0) {
    buffers().cache.request_time = ctx_.UnixNow();
  }
  if (cfg().timing) {
    buffers().timing.sent = ctx_.worker().now_ns();
    buffers().timing.connected = 0;
  }
}

bool Exchange::QueueForSlot() {
  const PoolSpec& pool = cfg().pools[x().pool];
  if (pool.max_conns == 0 || background_) {
    return false;  // a background refresh has no connection to be woken through: it ends
  }
  // Waiting helps only if some eligible backend is merely full.
  const balancer::BackendMask& healthy = gen_->healthy(x().pool);
  bool full_only = false;
  for (uint32_t i = 0; i < healthy.size() && !full_only; ++i) {
    full_only = healthy.test(i) && !buffers().exclude.test(i);
  }
  if (!full_only) {
    return false;
  }
  const bool first = x().queue_ticket == 0;
  if (first) {
    ctx_.stats().queued++;
    x().queue_ticket = ctx_.NextQueueTicket();
    // The request waits up to queue_timeout in all, however often it is resumed.
    SetTimerFor(TimerFor::kQueue, pool.queue_timeout_ms);
  }
  // Hold the body (and the next pipelined request) until a backend takes the request.
  held_ = true;
  gen_->Enqueue(x().pool, conn_.ref, x().queue_ticket, requeue_front_);
  return true;
}

void Exchange::ResumeFromQueue(uint64_t ticket) {
  if (!b_ || ticket != x().queue_ticket || down_.closing()) {
    return;  // answered (queue timeout) or gone since it was queued
  }
  held_ = false;
  requeue_front_ = true;
  PickBackendAndSend();
  requeue_front_ = false;
  if (down_.closing() || held_) {
    return;  // still waiting (back at the front of the queue), or answered and closing
  }
  x().queue_ticket = 0;
  if (resp_ == Resp::kWaiting) {
    SetTimerFor(req_ == Req::kBody ? TimerFor::kBody : TimerFor::kNone, BodyTimerMs());
  }
  down_.Continue();
}

void Exchange::NoteRequestLine(std::string_view method, std::string_view target, uint8_t major) {
  buffers().method.assign(method);
  buffers().target.assign(target);
  x().version_major = major;
}

void Exchange::OnRequestBytes(size_t n) {
  if (req_ == Req::kBody) {
    x().body_bytes += n;
    if (timer_for_ == TimerFor::kBody) {
      SetTimerFor(TimerFor::kBody, BodyTimerMs());
    }
  }
}

void Exchange::OnRequestBody(std::string_view body) {
  if (x().tunnel) {
    RelayToUpstream(body);  // a codec whose tunnel bytes come framed (HTTP/2 DATA)
    return;
  }
  Upstream* up = upstream();
  if (up == nullptr || body.empty()) {
    return;  // upstream gone (error reply already on its way): discard
  }
  up->WriteRequestBody(body, x().req_framing == Framing::kChunked, &ctx_.scratch());
  if (up->WriteBlocked()) {
    // The backend reads slower than the client sends: stop reading the client.
    held_ = true;
    down_.PauseReading();
  }
}

void Exchange::OnUpstreamWritable() {
  if (!held_) {
    return;
  }
  held_ = false;
  if (down_.closing()) {
    return;
  }
  down_.ResumeReading();
  down_.Continue();  // in a tunnel: the bytes a codec held back (HTTP/2), never parsed
}

void Exchange::OnUpstreamInterim(const MessageHead& head) {
  // 103 Early Hints (RFC 8297) lets the client start fetching while the backend works. Never
  // after the final response began (nor to a client whose protocol has none: the writer
  // says), and at most kMaxInterim per exchange and only while the client reads: a backend
  // cannot make torii buffer interim responses without bound.
  if (down_.closing() || resp_ != Resp::kWaiting || x().interim_sent >= kMaxInterim ||
      down_.WriteBlocked()) {
    return;
  }
  if (down_.WriteInterim(head)) {
    ++x().interim_sent;
  }
}

void Exchange::OnUpstreamHead(Upstream& up, const MessageHead& head) {
  if (down_.closing()) {
    return;
  }
  if (head.status == 425 && x().early_forward) {
    RetryAfterHandshake();
    return;
  }
  if (x().connect_protocol && head.status >= 200 && head.status < 300) {
    // The client takes a 2xx as its tunnel's opening (RFC 8441), and this backend answered
    // the upgrade without switching (HTTP/1.1 lets it ignore one: no fault of the backend's).
    DetachUpstream(false);
    resp_ = Resp::kNone;
    SendLocalReply(502, "backend did not switch protocols");
    return;
  }
  x().status = head.status;
  resp_ = Resp::kStreaming;
  NoteUpstreamResponse(head.status);
  if (b_->cache.cache >= 0 && CacheOnUpstreamHead(head)) {
    return;  // answered from the store (refreshed by a 304, or stale-if-error)
  }
  const bool head_req = x().method_id == HTTP_HEAD;
  HeadEdits edits;
  DecideCompression(head, &edits);
  const RouteSpec& route = cfg().routes[x().route];
  edits.remove = route.response_remove;
  std::string_view extra = x().has_resp_extra ? std::string_view(buffers().resp_extra)
                                              : std::string_view(route.add_headers);
  if (cfg().timing) {
    buffers().timing.response = ctx_.worker().now_ns();
  }
  if (route.server_timing || !buffers().request_id.empty()) {
    if (!x().has_resp_extra) {
      buffers().resp_extra.assign(route.add_headers);
      x().has_resp_extra = true;
    }
    if (route.server_timing) {
      AppendServerTiming(&buffers().resp_extra);
    }
    AppendRequestId(&buffers().resp_extra);
    extra = buffers().resp_extra;
  }
  // What the client learns of the body's length: the backend's, unless the body is re-coded
  // here (its length is then known only at its end).
  using Body = ResponseBody;
  Body body = head.framing == Framing::kNone            ? Body::kNone
              : head.framing == Framing::kContentLength ? Body::kLength
                                                        : Body::kUnknown;
  if (x().encoder || x().decoder) {
    body = Body::kUnknown;
    // Event streams must reach the client event by event; anything else is flushed only as the
    // codec's buffers fill (a flush per upstream read would cost 1-45% of the ratio).
    x().flush_each_piece = false;
    for (const HeaderView& hv : head.headers) {
      if (EqualsIgnoreCase(hv.name, "content-type") && codec::TypeMatches(hv.value, kEventStream)) {
        x().flush_each_piece = true;
      }
    }
  }
  if (conn_.draining) {
    close_after_ = true;
  }
  down_.WriteHead(head, body, head_req, &close_after_, extra, edits);
  // A large body that passes through as it is may go socket to socket (splice_min).
  const uint64_t splice_min = cfg().pools[x().pool].splice_min;
  if (body == Body::kLength && !head_req && splice_min > 0 && head.content_length >= splice_min &&
      !x().encoder && !x().decoder && !b_->cache.pending && !down_.closing()) {
    if (core::Conn* client = down_.SpliceTarget()) {
      up.SpliceBodyTo(*client);
    }
  }
}

void Exchange::OnUpstreamSpliced(uint64_t bytes, uint64_t spliced) {
  x().bytes_sent += bytes;
  ctx_.stats().spliced_bytes += spliced;
}

void Exchange::NoteUpstreamResponse(int status) {
  CounterGrid& counters = *cfg().pools[x().pool].counters;
  const uint32_t worker = ctx_.worker().id();
  const uint32_t base = x().backend * PoolSpec::kBackendColumns;
  counters.at(worker, base + PoolSpec::kResponses)++;
  if (b_->timing.sent != 0) {
    counters.at(worker, base + PoolSpec::kTtfbUs) +=
        (ctx_.worker().now_ns() - std::min(b_->timing.sent, ctx_.worker().now_ns())) / 1000;
  }
  if (gen_->IsFailureStatus(x().pool, status)) {
    gen_->ReportBackendFailure(x().pool, x().backend, "failure status");
  } else {
    gen_->ReportBackendSuccess(x().pool, x().backend);
  }
}

void Exchange::DecideCompression(const MessageHead& head, HeadEdits* edits) {
  const CompressionPlan plan =
      PlanCompression(cfg().compression, cfg().routes[x().route].compress, x().coding, head);
  if (plan.decode) {
    x().decoder = codec::MakeDecoder(*plan.decode, cfg().compression.max_decoded);
    if (x().decoder) {
      edits->drop_content_encoding = true;
      edits->vary_accept_encoding = true;
      edits->weaken_etag = true;
    }
    return;
  }
  edits->vary_accept_encoding = plan.vary;
  if (plan.encode == codec::Coding::kIdentity) {
    return;
  }
  x().encoder = ctx_.AcquireEncoder(plan.encode);
  if (!x().encoder) {
    return;  // at the worker's encoder cap, or out of memory: send it as it is
  }
  edits->content_encoding = codec::Name(plan.encode);
  edits->weaken_etag = true;
  ctx_.stats().compressed++;
}

void Exchange::WriteBody(std::string_view bytes) {
  x().bytes_sent += bytes.size();
  down_.WriteBody(bytes, /*lend=*/false);
}

void Exchange::AppendServerTiming(std::string* out) const {
  // Durations in ms with µs precision (W3C Server-Timing). The phases torii controls:
  // head = reading the request head, access = access lists and rate limit, wait = picking a
  // backend incl. a max_conns queue or a rate-limit delay, connect = a new upstream connection
  // (absent when a pooled one was reused), backend = the backend's time to its response head,
  // total = first request byte to response head.
  const ExchangeTiming& t = b_->timing;
  char buf[256];
  auto ms = [](uint64_t from, uint64_t to) {
    return from != 0 && to >= from ? static_cast<double>(to - from) / 1e6 : 0.0;
  };
  const uint64_t upstream_ready = t.connected != 0 ? t.connected : t.sent;
  int n = std::snprintf(buf, sizeof(buf),
                        "Server-Timing: head;dur=%.3f, access;dur=%.3f, wait;dur=%.3f",
                        ms(t.first_byte, t.head), ms(t.head, t.access), ms(t.access, t.sent));
  if (t.connected != 0) {
    n += std::snprintf(buf + n, sizeof(buf) - static_cast<size_t>(n), ", connect;dur=%.3f",
                       ms(t.sent, t.connected));
  }
  std::snprintf(buf + n, sizeof(buf) - static_cast<size_t>(n),
                ", backend;dur=%.3f, total;dur=%.3f\r\n", ms(upstream_ready, t.response),
                ms(t.first_byte, t.response));
  out->append(buf);
}

void Exchange::EndEncoder(bool finished) {
  if (!b_) {
    return;  // idle: no codec
  }
  x().decoder.reset();
  if (!x().encoder) {
    return;
  }
  if (finished) {
    ctx_.stats().compress_in += x().encoder->total_in();
    ctx_.stats().compress_out += x().encoder->total_out();
  }
  ctx_.ReleaseEncoder(std::move(x().encoder));
}

void Exchange::OnUpstreamBody(Upstream& up, std::string_view body) {
  if (down_.closing() || body.empty()) {
    return;
  }
  if (b_->cache.cache >= 0) {
    if (b_->cache.from_store) {
      return;  // the client is answered from the store: the backend's body is not wanted
    }
    if (b_->cache.pending) {
      CacheOnUpstreamBody(body);
    }
  }
  if (x().encoder || x().decoder) {
    std::string& out = ctx_.codec_out();
    out.clear();
    const uint64_t codec_start = cfg().timing ? core::MonotonicNs() : 0;
    bool ok;
    if (x().decoder) {
      ok = x().decoder->Write(body, &out);  // false: corrupt, or over max_decoded (a bomb)
    } else {
      ok = x().encoder->Write(body, &out);
      if (ok && x().flush_each_piece) {
        ok = x().encoder->Flush(&out);
      }
    }
    if (codec_start != 0) {
      b_->timing.codec_ns += core::MonotonicNs() - codec_start;
    }
    if (!ok) {
      const bool decoding = x().decoder != nullptr;
      EndEncoder(false);
      AbortClient(decoding ? "backend body could not be decoded" : "compression failed");
      return;
    }
    WriteBody(out);
    if (down_.queued() > core::Conn::kHighWater && !upstream_paused_) {
      upstream_paused_ = true;
      up.PauseResponse();
      SetTimerFor(TimerFor::kSend, cfg().limits.send_timeout_ms);
    }
    return;
  }
  x().bytes_sent += body.size();
  // The body is sent from the upstream's receive buffer itself when it can be (no copy).
  down_.WriteBody(body, /*lend=*/true);
  if (down_.queued() > core::Conn::kHighWater && !upstream_paused_) {
    // Fast backend, slow client: stop reading the backend until the client catches up; the
    // client must drain within send_timeout.
    upstream_paused_ = true;
    up.PauseResponse();
    SetTimerFor(TimerFor::kSend, cfg().limits.send_timeout_ms);
  }
}

void Exchange::OnWritable() {
  if (timer_for_ == TimerFor::kSend) {
    SetTimerFor(TimerFor::kNone, 0);
  }
  if (upstream_paused_) {
    upstream_paused_ = false;
    if (Upstream* up = upstream()) {
      up->ResumeResponse();
    }
  }
  if (b_ && b_->cache.serving && ContinueServing()) {
    if (timer_for_ == TimerFor::kSend) {
      SetTimerFor(TimerFor::kNone, 0);
    }
    down_.WriteEnd({});  // stored responses keep no trailers
    resp_ = Resp::kDone;
    MaybeFinishServed();
  }
}

void Exchange::OnSendTimeout() {
  // The client does not read its response: give up on it and on the upstream.
  x().note = "send timeout";
  DetachUpstream(false);
  LogExchange();
  down_.Abort();
}

void Exchange::OnUpstreamDone(bool reusable, std::span<const HeaderView> trailers) {
  if (b_ && b_->cache.cache >= 0) {
    if (b_->cache.from_store) {
      DetachUpstream(reusable && (req_ == Req::kDone || req_ == Req::kHead));
      MaybeFinishServed();
      return;
    }
    CacheOnUpstreamDone();
  }
  if (x().encoder || x().decoder) {
    std::string& out = ctx_.codec_out();
    out.clear();
    const uint64_t codec_start = cfg().timing ? core::MonotonicNs() : 0;
    const bool ok = x().decoder ? x().decoder->Finish(&out) : x().encoder->Finish(&out);
    if (codec_start != 0) {
      b_->timing.codec_ns += core::MonotonicNs() - codec_start;
    }
    if (!ok) {
      EndEncoder(false);
      AbortClient("compression failed");
      return;
    }
    WriteBody(out);
  }
  EndEncoder(true);
  // A close-delimited body ends with the connection.
  std::vector<HeaderView> kept;  // allocates only when there are trailers
  KeepTrailers(trailers, cfg().routes[x().route].trailers, &kept);
  const bool close_to_end = down_.WriteEnd(kept);
  resp_ = Resp::kDone;
  // An upstream that answered before the request body was complete may not have read it:
  // never pool it, and close the client too since its body has nowhere to go.
  const bool body_complete = req_ == Req::kDone || req_ == Req::kHead;
  // A connection that was asked to switch protocols is not trusted with another request.
  DetachUpstream(reusable && body_complete && !x().upgrade);
  if (close_to_end) {
    close_after_ = true;
  }
  if (!body_complete && x().req_framing != Framing::kNone) {
    close_after_ = true;
    req_ = Req::kDone;
  }
  if (req_ == Req::kDone) {
    FinishExchange();
  }
}

void Exchange::OnUpstreamFailed(UpstreamFailure why, bool reused) {
  up_.reset();
  if (down_.closing()) {
    return;
  }
  const bool nothing_sent = resp_ == Resp::kWaiting;
  if (why == UpstreamFailure::kConnectFailed || why == UpstreamFailure::kConnectTimeout) {
    ctx_.stats().upstream_connect_failures++;
  }
  if (!SaysNothingOfBackend(why, reused)) {
    gen_->ReportBackendFailure(x().pool, x().backend, ToString(why));
  }
  RetryFacts facts;
  facts.why = why;
  facts.reused = reused;
  facts.response_started = !nothing_sent;
  facts.request_has_body = x().req_framing != Framing::kNone;
  facts.idempotent = IsIdempotentMethod(x().method_id);
  facts.fresh_retry_used = x().fresh_retry_used;
  facts.retries_used = x().retries_used;
  facts.max_retries = cfg().pools[x().pool].retries;
  facts.other_backend_left = CanRetryElsewhere(x().backend);
  x().force_fresh = false;
  switch (DecideRetry(facts)) {
    case RetryAction::kRetryFresh:
      x().fresh_retry_used = true;
      x().force_fresh = true;
      ctx_.stats().retries++;
      PickBackendAndSend();
      return;
    case RetryAction::kRetryElsewhere:
      buffers().exclude.set(x().backend);
      ++x().retries_used;
      ctx_.stats().retries++;
      PickBackendAndSend();
      return;
    case RetryAction::kFail:
      break;
  }
  if (nothing_sent) {
    resp_ = Resp::kNone;
    const FailureReply reply = FailureReplyFor(why, facts.other_backend_left);
    if (req_ != Req::kDone && req_ != Req::kHead) {
      close_after_ = true;  // the request body cannot be read to completion usefully
    }
    SendLocalReply(reply.status, reply.note);
    return;
  }
  // Part of the response already went out: forward every byte we got, then end the
  // connection without completing the message so the client sees the truncation.
  AbortClient(why == UpstreamFailure::kTimeout ? "upstream timeout mid-response"
                                               : "upstream failed mid-response");
}

const ErrorPage* Exchange::FindErrorPage(int status) const {
  if (x().routed) {
    for (const ErrorPage& page : cfg().routes[x().route].error_pages) {
      if (page.status == status) {
        return &page;
      }
    }
  }
  for (const ErrorPage& page : cfg().error_pages) {
    if (page.status == status) {
      return &page;
    }
  }
  return nullptr;
}

void Exchange::SendLocalReply(int status, std::string_view note, std::string_view extra_headers,
                              std::string_view body_text) {
  if (status >= 500 && b_ && b_->cache.entry && CacheServeStaleOnError(status)) {
    return;
  }
  x().status = status;
  x().note = note;
  resp_ = Resp::kDone;
  if (status >= 400) {
    // A request we refused for its framing or limits: whatever follows cannot be trusted.
    // Refusals of a well-formed request (access, rate, route, backend) keep the connection.
    const bool well_formed = status == 401 || status == 403 || status == 404 || status == 421 ||
                             status == 429 || status == 502 || status == 503 || status == 504 ||
                             x().configured_reply;
    if (!well_formed) {
      close_after_ = true;
    }
  }
  if (conn_.draining || conn_.peer_eof) {
    close_after_ = true;
  }
  if (x().req_framing != Framing::kNone && req_ != Req::kDone) {
    close_after_ = true;  // the body is unread: close rather than drain it
  }
  std::string with_id;
  if (b_ && !b_->request_id.empty()) {
    with_id.assign(extra_headers);
    AppendRequestId(&with_id);
    extra_headers = with_id;
  }
  // The operator's page for this status (the route's, then the server's), for the replies
  // torii makes itself; a return route's body is its own.
  std::string_view content_type = body_text.empty() ? "" : "text/plain";
  if (body_text.empty() && status >= 400 && !x().configured_reply) {
    if (const ErrorPage* page = FindErrorPage(status)) {
      body_text = page->body;
      content_type = page->content_type;
    }
  }
  std::string grpc_fields;
  if (x().grpc && status >= 400) {
    // A gRPC client reads the outcome from grpc-status: 200 and a trailers-only reply (the
    // access log shows the 200 sent, and the note why).
    grpc_fields.assign(extra_headers);
    AppendGrpcStatusFields(GrpcStatusFor(status), note.empty() ? ReasonPhrase(status) : note,
                           &grpc_fields);
    extra_headers = grpc_fields;
    status = x().status = 200;
    body_text = {};
    content_type = "application/grpc";
  }
  x().bytes_sent =
      down_.WriteLocalReply(status, close_after_, extra_headers, body_text, content_type);
  if (close_after_) {
    req_ = Req::kDone;
  }
  if (req_ == Req::kDone) {
    FinishExchange();
  }
}

void Exchange::AbortClient(std::string_view note) {
  EndEncoder(false);
  x().note = note;
  ctx_.stats().aborted++;
  DetachUpstream(false);
  LogExchange();
  CacheEndExchange();
  resp_ = Resp::kNone;
  req_ = Req::kIdle;
  down_.CloseAfterFlush();
}

void Exchange::DetachUpstream(bool reusable) {
  if (!up_.valid()) {
    return;
  }
  Upstream* up = upstream();
  up_.reset();
  if (up == nullptr) {
    return;
  }
  if (upstream_paused_) {
    upstream_paused_ = false;
    up->ResumeResponse();
  }
  up->Release(reusable);
}

void Exchange::LogExchange() {
  if (background_) {
    return;  // a background refresh is no client's request
  }
  ProxyStats& stats = ctx_.stats();
  stats.responses_by_class[x().status >= 100 && x().status < 600 ? x().status / 100 : 0]++;
  stats.bytes_sent += x().bytes_sent;
  stats.ObserveLatency((ctx_.worker().now_ms() - buffers().start_ms) * 1000);
  PhaseTimes phases;
  if (cfg().timing && b_) {
    buffers().timing.done = ctx_.worker().now_ns();
    phases = ComputePhases(buffers().timing);
    stats.ObservePhases(phases);
  }
  if (!ctx_.log().enabled()) {
    return;
  }
  AccessRecord r;
  if (buffers().client_text.empty()) {
    r.client = ConnClientText();
    r.peer = conn_.proxied ? std::string_view(conn_.peer) : std::string_view();
  } else {
    r.client = buffers().client_text;
    r.peer = conn_.peer;
  }
  r.request_id = buffers().request_id;
  r.user = buffers().user;
  if (cfg().listeners[conn_.listener].client_auth) {
    const ClientCertInfo& cert = ClientCert();
    r.client_verify = cert.verify;
    r.client_dn = cert.subject;
  }
  SettleTrace();
  r.trace_id = buffers().trace_id;
  r.method = buffers().method;
  r.target = buffers().target;
  r.host = buffers().host;
  r.version_major = x().version_major;
  r.version_minor = x().version_major == 2 ? 0 : x().version_minor;  // "HTTP/2.0"
  r.status = x().status;
  r.bytes_sent = x().bytes_sent;
  r.backend = x().have_backend ? std::string_view(cfg().pools[x().pool].backends[x().backend].name)
                               : std::string_view();
  r.duration_ms = ctx_.worker().now_ms() - buffers().start_ms;
  r.note = x().note;
  r.cache = buffers().cache.status;
  if (x().switched) {
    r.tunnel_bytes_up = x().bytes_up;
  }
  if (cfg().timing) {
    r.phases = &phases;
  }
  if (cfg().listeners[conn_.listener].tls) {
    const tls::DownstreamSession& tls = tls_session();
    r.tls_version = tls.version();
    r.tls_cipher = tls.cipher();
    r.sni = tls.sni();
    r.tls_resumed = tls.resumed();
    r.early_data = x().early;
  }
  ctx_.log().Append(r);
}

void Exchange::FinishExchange() {
  LogExchange();
  CacheEndExchange();
  upstream_paused_ = false;
  DetachUpstream(false);
  req_ = Req::kIdle;
  resp_ = Resp::kNone;
  held_ = false;
  SetTimerFor(TimerFor::kNone, 0);
  down_.Finished();
}

void Exchange::Abandon(std::string_view note) {
  if (!b_) {
    return;  // idle (between requests, or an HTTP/2 stream whose head never came): nothing began
  }
  if (tunnel()) {
    EndTunnel(note, /*abort=*/true);
    return;
  }
  SetTimerFor(TimerFor::kNone, 0);
  EndEncoder(false);
  DetachUpstream(false);
  if (!note.empty()) {
    x().note = note;
    x().status = x().status == 0 ? 499 : x().status;
    LogExchange();
  }
  req_ = Req::kIdle;
  resp_ = Resp::kNone;
}

void Exchange::OnClosed() {
  if (tunnel()) {
    EndTunnel("tunnel closed at shutdown", /*abort=*/true);
  }
  EndEncoder(false);
  DetachUpstream(false);
  CacheEndExchange();
  ReleaseBuffers();
}

void Exchange::OnTimer() {
  switch (timer_for_) {
    case TimerFor::kBody:
      if (resp_ == Resp::kNone || resp_ == Resp::kWaiting) {
        DetachUpstream(false);
        resp_ = Resp::kNone;
        close_after_ = true;
        SendLocalReply(408, "body timeout");
      } else {
        DetachUpstream(false);
        down_.Close();
      }
      return;
    case TimerFor::kDelay:
      EndDelay();
      return;
    case TimerFor::kCacheWait:
      CacheWaitTimeout();
      return;
    case TimerFor::kTunnel:
      EndTunnel("tunnel idle timeout", /*abort=*/false);
      return;
    case TimerFor::kHandshake:
      // Early data whose handshake never completed: a replayed flight, or a client gone.
      held_ = false;
      x().note = "handshake not completed after early data";
      LogExchange();
      down_.Abort();
      return;
    case TimerFor::kQueue:
      // max_conns: no backend slot freed within queue_timeout.
      x().queue_ticket = 0;
      held_ = false;
      resp_ = Resp::kNone;
      SendLocalReply(503, "queue timeout");
      down_.Continue();  // the request's end (or the rest of its body) is still unparsed
      return;
    case TimerFor::kSend:
      OnSendTimeout();
      return;
    case TimerFor::kNone:
      return;
  }
}

Exchange* ExchangeRef::Resolve(const core::Worker& worker) const {
  if (host == nullptr || (conn.valid() && worker.Resolve(conn) == nullptr)) {
    return nullptr;
  }
  return host->FindExchange(id);
}

// The waiter lists keep connection references only; these (rare) wake-ups find the handler's
// ExchangeHost side by its dynamic type.
namespace {

// The exchange of `client` waiting with `ticket`, or nullptr.
Exchange* WaitingExchange(core::Conn& client, uint64_t ticket) {
  auto* host = dynamic_cast<ExchangeHost*>(client.handler());
  return host != nullptr ? host->FindWaiter(ticket) : nullptr;
}

}  // namespace

void ResumeQueuedRequest(core::Conn& client, uint64_t ticket) {
  if (Exchange* x = WaitingExchange(client, ticket)) {
    x->ResumeFromQueue(ticket);
  }
}

void ResumeCacheWaiter(core::Conn& client, uint64_t ticket) {
  if (Exchange* x = WaitingExchange(client, ticket)) {
    x->ResumeFromCacheWait(ticket);
  }
}

void ResumeDiskRead(core::Conn& client, uint64_t ticket,
                    std::shared_ptr<const cache::Entry> entry) {
  if (Exchange* x = WaitingExchange(client, ticket)) {
    x->ResumeFromDisk(ticket, std::move(entry));
  }
}

}  // namespace torii::http
