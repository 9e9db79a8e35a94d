// http/h1_session.cc: see h1_session.h.
#include "http/h1_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "http/h2_session.h"
#include "http/proxy_session.h"
#include "http/tls_transport.h"

namespace torii::http {

namespace {

// Pipelined bytes buffered beyond the current request before receiving pauses.
constexpr size_t kMaxPipelineBuffer = 64 * 1024;

}  // namespace

std::string FormatAddress(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof(buf));
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

H1Session::H1Session(ProxyContext& ctx, core::Conn& conn, ClientConn client)
    : ctx_(ctx), conn_(conn), client_(std::move(client)) {
  client_.host = this;
  // A TLS client has handshake_timeout to finish its handshake (then, silent, idle_timeout);
  // a PROXY header must be complete within header_timeout.
  const ListenerSpec& spec = cfg().listeners[client_.listener];
  awaiting_proxy_ = spec.proxy_protocol;
  probe_h2_ = spec.h2c || (spec.tls && spec.tls->offers_h2());
  SetConnTimer(Timer::kIdle, awaiting_proxy_ ? cfg().limits.header_timeout_ms : FirstIdleMs());
  conn.SetIdle(core::Conn::Idle::kFresh);  // silent so far: the first to make room
}

uint64_t H1Session::FirstIdleMs() const {
  const ListenerSpec& spec = cfg().listeners[client_.listener];
  return spec.tls ? std::min(spec.tls->handshake_timeout_ms(), cfg().limits.idle_timeout_ms)
                  : cfg().limits.idle_timeout_ms;
}

bool H1Session::OnProxyHeader(core::Conn& /*conn*/, const ProxyHeader& header) {
  awaiting_proxy_ = false;
  if (!header.local) {
    client_.proxied = std::make_unique<ClientConn::Proxied>();
    client_.proxied->source = header.source;
    client_.proxied->dest = header.dest;
    client_.proxied->text = FormatAddress(reinterpret_cast<const sockaddr*>(&header.source));
  }
  SetConnTimer(Timer::kIdle, FirstIdleMs());
  return true;
}

void H1Session::SetConnTimer(Timer what, uint64_t ms) {
  timer_ = what;
  if (what == Timer::kNone) {
    conn_.ClearTimer();
  } else {
    conn_.SetTimer(ctx_.worker().now_ms() + ms);
  }
}

void H1Session::ClearTimer() {
  if (timer_ == Timer::kExchange) {
    SetConnTimer(Timer::kNone, 0);
  }
}

bool H1Session::ProbeH2(std::span<const char> data) {
  const ListenerSpec& spec = cfg().listeners[client_.listener];
  if (spec.tls) {
    probe_h2_ = false;
    const auto* tls = static_cast<const TlsServerTransport*>(conn_.transport());
    if (tls->server_session().alpn() == "h2") {
      SwitchToH2(std::string_view(data.data(), data.size()));
      return true;
    }
    return false;
  }
  // h2c with prior knowledge (RFC 9113 §3.3): the connection preface decides. Its first bytes
  // may come alone; they wait in the input buffer until the rest decides either way.
  std::string& in = x().buffers().in;
  in.append(data.data(), data.size());
  const std::string_view preface = kH2Preface;
  const size_t n = std::min(in.size(), preface.size());
  if (std::string_view(in).substr(0, n) == preface.substr(0, n)) {
    if (in.size() < preface.size()) {
      return true;
    }
    std::string bytes = std::move(in);
    in.clear();
    SwitchToH2(bytes);
    return true;
  }
  probe_h2_ = false;
  std::string bytes = std::move(in);
  in.clear();
  OnRecv(conn_, std::span<const char>(bytes.data(), bytes.size()));
  return true;
}

void H1Session::SwitchToH2(std::string_view bytes) {
  const std::string first(bytes);  // `bytes` may live in this session's buffers
  if (x_) {
    x_->ReleaseBuffers();
  }
  auto h2 = std::make_unique<H2Session>(ctx_, conn_, std::move(client_));
  H2Session* next = h2.get();
  core::Conn& conn = conn_;
  conn.set_handler(std::move(h2));  // destroys *this: nothing of it is used from here
  next->OnRecv(conn, std::span<const char>(first.data(), first.size()));
}

void H1Session::StartRequest() {
  conn_.SetIdle(core::Conn::Idle::kNo);
  SetConnTimer(Timer::kHeader, cfg().limits.header_timeout_ms);
  x().Begin(++next_id_);
}

void H1Session::OnRecv(core::Conn& conn, std::span<const char> data) {
  if (close_when_ready_) {
    return;  // decided to close: later requests are not read
  }
  if (x_ && x_->tunnel()) {
    x_->RelayToUpstream(std::string_view(data.data(), data.size()));
    return;
  }
  if (probe_h2_ && ProbeH2(data)) {
    return;
  }
  if (Idle() && !conn.WriteBlocked()) {
    StartRequest();  // the first byte of a request
  }
  Exchange& x = this->x();
  x.buffers().in.append(data.data(), data.size());
  x.OnRequestBytes(data.size());
  Pump();
  if (!conn.closing() && x_ &&
      x_->input().size() > kMaxPipelineBuffer + cfg().limits.header_bytes && !recv_paused_) {
    // The client keeps sending while we cannot parse (pipelining ahead of a slow response):
    // stop reading until the current exchange finishes (a pipelining flood).
    recv_paused_ = true;
    conn.PauseRecv();
  }
}

void H1Session::WaitForReader() {
  // The client sends requests faster than it reads the responses (pipelining without
  // reading): no next exchange starts while what it is owed exceeds the high-water mark, and
  // nothing more is read, so memory stays bounded whatever it sends. OnWritable resumes; a
  // client that never reads meets the send timeout.
  waiting_reader_ = true;
  PauseReading();
  SetConnTimer(Timer::kReader, cfg().limits.send_timeout_ms);
}

void H1Session::Compact() {
  ExchangeBuffers& b = x_->buffers();
  if (!b.parser().in_head() && b.parser().consumed() > 0) {
    b.in.erase(0, b.parser().consumed());
    b.parser().DropConsumed();
  }
}

void H1Session::Pump() {
  using Req = Exchange::Req;
  if (!x_) {
    return;  // idle: nothing to parse
  }
  Exchange& x = *x_;  // freed only by OnFlush, never during a pump
  while (!conn_.closing()) {
    if (x.req() == Req::kDone || x.req() == Req::kIdle) {
      if (x.req() == Req::kIdle && !x.input().empty()) {
        if (conn_.WriteBlocked()) {
          WaitForReader();
          return;
        }
        StartRequest();  // pipelined bytes of the next request
        continue;
      }
      return;
    }
    if (x.held()) {
      return;
    }
    ExchangeBuffers& b = x.buffers();
    const H1Parser::Step step = b.parser().Next(b.in.data(), b.in.size());
    switch (step.event) {
      case H1Parser::Event::kNeedMore:
        Compact();
        if (client_.peer_eof && x.req() == Req::kHead && x.resp() == Exchange::Resp::kNone) {
          conn_.Close();  // a partial head after the client's FIN can never complete
        }
        return;
      case H1Parser::Event::kError:
        x.OnRequestError(b.parser().error_status(), b.parser().error_reason());
        return;
      case H1Parser::Event::kHead: {
        if (timer_ == Timer::kHeader) {
          SetConnTimer(Timer::kNone, 0);
        }
        const MessageHead& head = b.parser().head();
        out_.Reset(head.version_minor);
        if (!x.OnRequestHead(head)) {
          return;
        }
        Compact();
        break;
      }
      case H1Parser::Event::kBody:
        x.OnRequestBody(step.body);
        Compact();
        break;
      case H1Parser::Event::kDone:
        Compact();
        x.OnRequestEnd(b.parser().must_close(), b.parser().trailers());
        break;
    }
  }
}

void H1Session::Finished() {
  // Keep-alive: the next request (pipelined, or when it comes), or the end.
  if (x_->close_after() || client_.draining || (client_.peer_eof && x_->input().empty())) {
    CloseWhenSent();
    return;
  }
  ResumeReading();
  if (x_->input().empty()) {
    GoIdle();
    return;
  }
  Pump();
}

void H1Session::GoIdle() {
  SetConnTimer(Timer::kIdle, cfg().limits.idle_timeout_ms);
  // An idle connection keeps no buffer: they go back to the worker's pool, and the exchange
  // itself late in this loop turn (OnFlush: the exchange that called Finished still runs).
  x_->ReleaseBuffers();
  conn_.WantFlush();
  conn_.SetIdle(core::Conn::Idle::kKeepAlive);  // may make room at the connection limit
}

void H1Session::PauseReading() {
  if (!recv_paused_) {
    recv_paused_ = true;
    conn_.PauseRecv();
  }
}

void H1Session::ResumeReading() {
  if (recv_paused_) {
    recv_paused_ = false;
    conn_.ResumeRecv();
  }
}

void H1Session::Continue() {
  if (!conn_.closing() && x_ && !x_->tunnel()) {
    Pump();  // (a tunnel's bytes are relayed as they arrive: nothing is held to resume)
  }
}

bool H1Session::WriteInterim(const MessageHead& head) {
  return out_.WriteInterim(conn_, head, &ctx_.scratch());
}

int H1Session::WriteSwitchingProtocols(const MessageHead& head, std::string_view extra) {
  out_.WriteSwitchingProtocols(conn_, head, extra, &ctx_.scratch());
  return 101;
}

void H1Session::WriteHead(const MessageHead& head, ResponseBody body, bool head_request,
                          bool* close, std::string_view extra, const HeadEdits& edits) {
  out_.WriteHead(conn_, head, body, head_request, close, extra, edits, &ctx_.scratch());
}

core::Conn* H1Session::SpliceTarget() {
  // Bytes pass through unframed only with the backend's length; a transport (TLS) encrypts.
  return out_.framing() == Framing::kContentLength && conn_.transport() == nullptr ? &conn_
                                                                                   : nullptr;
}

void H1Session::WriteBody(std::string_view bytes, bool lend) {
  out_.WriteBody(conn_, bytes, lend, &ctx_.scratch());
}

void H1Session::WriteStoredBody(std::string_view bytes, const std::shared_ptr<const void>& owner) {
  out_.WriteBody(conn_, bytes, /*lend=*/false, &ctx_.scratch(), owner);
}

size_t H1Session::WriteLocalReply(int status, bool close, std::string_view extra,
                                  std::string_view body, std::string_view content_type) {
  return out_.WriteLocalReply(conn_, status, close, extra, body, content_type, &ctx_.scratch());
}

void H1Session::OnWritable(core::Conn& conn) {
  if (timer_ == Timer::kReader) {
    SetConnTimer(Timer::kNone, 0);
  }
  if (waiting_reader_) {
    // Between exchanges, the client read enough: go on with the requests it sent.
    waiting_reader_ = false;
    if (!x_->held()) {
      ResumeReading();
    }
    if (x_->input().empty()) {
      GoIdle();
    } else {
      Pump();
    }
    return;
  }
  (void)conn;
  if (x_) {
    x_->OnWritable();
  }
}

void H1Session::OnEof(core::Conn& conn) {
  using Req = Exchange::Req;
  client_.peer_eof = true;
  if (x_ && x_->tunnel()) {
    x_->EndTunnel("client closed", /*abort=*/false);
    return;
  }
  if (Idle()) {
    conn.Close();  // a keep-alive client went away between requests: normal
    return;
  }
  if (x_->req() == Req::kBody) {
    // FIN in the middle of a request body: the request can never complete. The upstream got
    // part of it and must not be reused.
    x_->Abandon("client closed mid-body");
    conn.Close();
    return;
  }
  if (x_->req() == Req::kHead && x_->resp() == Exchange::Resp::kNone) {
    // Half a head and then FIN: nothing to answer.
    conn.Close();
    return;
  }
  // A half-close after a complete request (printf | nc): answer it (and any complete
  // pipelined requests after it), then close.
  if (x_->input().empty()) {
    x_->set_close_after();
  }
}

void H1Session::OnError(core::Conn& conn, core::Error /*error*/) {
  if (x_ && x_->tunnel()) {
    x_->EndTunnel("client reset", /*abort=*/true);
    return;
  }
  if (x_) {
    const Exchange::Resp resp = x_->resp();
    x_->Abandon(resp == Exchange::Resp::kWaiting || resp == Exchange::Resp::kStreaming
                    ? "client reset"
                    : "");
  }
  conn.Close();
}

void H1Session::OnTimer(core::Conn& conn) {
  const Timer what = timer_;
  timer_ = Timer::kNone;
  switch (what) {
    case Timer::kIdle:
      if (cfg().listeners[client_.listener].tls && !awaiting_proxy_) {
        static_cast<TlsServerTransport*>(conn.transport())->HandshakeTimedOut(conn);
      }
      conn.Close();
      return;
    case Timer::kHeader:
      x().set_close_after();
      x().OnRequestError(408, "header timeout");
      return;
    case Timer::kReader:
      conn.Abort();  // the client does not read what it asked for
      return;
    case Timer::kExchange:
      if (x_) {
        x_->OnTimer();
      }
      return;
    case Timer::kNone:
      return;
  }
}

void H1Session::OnDrain(core::Conn& conn) {
  client_.draining = true;
  if (x_ && x_->tunnel()) {
    return;  // a tunnel runs on until either side closes or shutdown_grace ends (OnClosed)
  }
  if (Idle()) {
    conn.Close();
  }
}

void H1Session::OnClosed(core::Conn& /*conn*/) {
  if (x_) {
    x_->OnClosed();
  }
}

void H1Session::OnFlush(core::Conn& /*conn*/) {
  // Asked for by Finished(): an exchange still between requests at the end of the loop turn
  // goes (no request came in the same turn), so an idle connection holds none.
  if (x_ && x_->idle() && !x_->has_buffers()) {
    x_.reset();
  }
}

void H1Session::CloseWhenSent() {
  const ListenerSpec& spec = cfg().listeners[client_.listener];
  if (spec.tls && !close_when_ready_ &&
      static_cast<const TlsServerTransport*>(conn_.transport())->server_session().in_early_data()) {
    close_when_ready_ = true;  // what arrives meanwhile is not parsed (OnRecv)
    SetConnTimer(Timer::kIdle, spec.tls->handshake_timeout_ms());
    return;
  }
  conn_.CloseAfterFlush();
}

void H1Session::OnTransportReady(core::Conn& /*conn*/) {
  if (close_when_ready_) {
    conn_.CloseAfterFlush();
    return;
  }
  if (x_) {
    x_->OnHandshakeDone();
  }
}

std::unique_ptr<core::ConnHandler> NewClientSession(ProxyContext& ctx, core::Conn& conn,
                                                    uint32_t listener) {
  const ListenerSpec& spec = ctx.config().listeners[listener];
  if (spec.proxy_protocol &&
      !ctx.config().trusted_proxies.Contains(ratelimit::IpFromSockaddr(conn.peer()))) {
    // Whoever may write a PROXY header names the client: only trusted_proxies may.
    ctx.NoteRefusedConnection(spec.name, "PROXY header from a peer not in trusted_proxies");
    return nullptr;
  }
  ClientConn client;
  client.ref = conn.ref();
  client.listener = listener;
  client.accepted_ns = ctx.worker().now_ns();
  client.peer = FormatAddress(conn.peer());
  // Connection limits (listener-wide, then per socket peer), counted across workers.
  if (spec.conns || spec.per_ip) {
    client.slots = std::make_unique<ClientConn::LimitSlots>();
  }
  if (spec.conns) {
    if (spec.conns->fetch_add(1, std::memory_order_acq_rel) >= spec.max_conns) {
      spec.conns->fetch_sub(1, std::memory_order_acq_rel);
      ctx.NoteRefusedConnection(spec.name, "listener max_conns");
      return nullptr;
    }
    client.slots->listener = spec.conns;
  }
  if (spec.per_ip) {
    const uint64_t ip_key = ratelimit::HashIp(ratelimit::IpFromSockaddr(conn.peer()), 255);
    if (!spec.per_ip->TryAcquire(ip_key)) {
      ctx.NoteRefusedConnection(spec.name, "max_conns_per_ip");
      return nullptr;  // `client` gives the listener slot back
    }
    client.slots->ip = spec.per_ip;
    client.slots->ip_key = ip_key;
  }
  std::unique_ptr<core::Transport> tls;
  if (spec.tls) {
    tls = std::make_unique<TlsServerTransport>(ctx, conn, spec.tls);
  }
  if (spec.proxy_protocol) {
    // The PROXY header comes before anything else, the TLS handshake included.
    conn.set_transport(std::make_unique<ProxyHeaderReader>(
        std::move(tls), [](core::Conn& c, const ProxyHeader& header) {
          return static_cast<H1Session*>(c.handler())->OnProxyHeader(c, header);
        }));
  } else if (tls) {
    conn.set_transport(std::move(tls));
  }
  return std::make_unique<H1Session>(ctx, conn, std::move(client));
}

}  // namespace torii::http
