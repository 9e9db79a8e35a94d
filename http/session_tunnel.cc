// http/session_tunnel.cc: the tunnel after a 101 (WebSocket and other upgrades).
//
// Which upgrades are forwarded is decided at the request head (http/upgrade.h). When the
// backend answers 101, the client gets the 101 and from then on neither connection is parsed:
// bytes go across as they arrive, from each side's receive buffer straight into the other's
// send queue. Each direction is back-pressured on its own: when the receiving side has more
// than Conn::kHighWater queued, the sending side's receive pauses until it drains (OnWritable
// / OnUpstreamWritable), so a peer that stops reading costs at most that much memory. The
// tunnel ends when either side closes (what is queued for the other is sent first), resets,
// is silent both ways for tunnel_idle_timeout, or at shutdown once shutdown_grace is over;
// it is logged once, with the bytes each way, and counted in metrics.
//
// An HTTP/2 client's tunnel (RFC 8441) is its stream: the codec hands over DATA as request
// body (OnRequestBody relays it), takes the backend's bytes as response body, and ends the
// stream with END_STREAM, or resets it, where HTTP/1.1 closes the connection.
#include "base/text.h"
#include "http/exchange.h"
#include "http/serialize.h"

namespace torii::http {

void Exchange::OnUpstreamUpgrade(const MessageHead& head, std::string_view protocol) {
  NoteUpstreamResponse(101);
  if (cfg().timing) {
    buffers().timing.response = ctx_.worker().now_ns();
  }
  // The 101 is rebuilt like any response head; Connection and Upgrade are hop-by-hop, so
  // ours name the protocol the backend switched to.
  std::string& extra = buffers().resp_extra;
  extra.assign("Connection: upgrade\r\n");
  base::AppendField(&extra, "Upgrade", protocol);
  AppendRequestId(&extra);
  // The client's protocol says how the switch reaches it: a 101 on HTTP/1.1, a 200 that opens
  // the stream's tunnel on HTTP/2 (RFC 8441).
  const int status = down_.WriteSwitchingProtocols(head, extra);
  if (status == 0) {
    x().status = 101;
    AbortClient("101 on a protocol without upgrades");
    return;
  }
  x().status = status;
  x().tunnel = true;
  x().switched = true;
  resp_ = Resp::kStreaming;
  ctx_.stats().tunnels_opened++;
  SetTimerFor(TimerFor::kTunnel, cfg().limits.tunnel_idle_timeout_ms);
  // Bytes the client sent after its request head, before the 101, are the new protocol's.
  if (!buffers().in.empty()) {
    RelayToUpstream(buffers().in);
    buffers().in.clear();
  }
  if (!held_) {
    down_.ResumeReading();  // paused while the request waited (pipelining guard)
    down_.Continue();       // tunnel bytes a codec held while the backend answered (HTTP/2)
  }
}

bool Exchange::SwitchAccepted(const MessageHead& head) const {
  if (!x().connect_protocol || !b_ || b_->ws_accept.empty()) {
    return true;
  }
  int found = 0;
  bool match = false;
  for (const HeaderView& hv : head.headers) {
    if (EqualsIgnoreCase(hv.name, "sec-websocket-accept")) {
      ++found;
      match = base::TrimOws(hv.value) == b_->ws_accept;
    }
  }
  return found == 1 && match;
}

void Exchange::RelayToUpstream(std::string_view bytes) {
  core::Conn* up = tunnel_upstream();
  if (up == nullptr || bytes.empty()) {
    return;
  }
  x().bytes_up += bytes.size();
  ctx_.stats().tunnel_bytes_up += bytes.size();
  up->WriteFromRecvBuffer(bytes);
  if (up->queued() > core::Conn::kHighWater && !held_) {
    // The backend reads slower than the client sends: stop reading the client.
    held_ = true;
    down_.PauseReading();
  }
  SetTimerFor(TimerFor::kTunnel, cfg().limits.tunnel_idle_timeout_ms);
}

void Exchange::OnTunnelData(core::Conn& up, std::string_view bytes) {
  if (down_.closing() || !x().tunnel || bytes.empty()) {
    return;
  }
  x().bytes_sent += bytes.size();
  ctx_.stats().tunnel_bytes_down += bytes.size();
  down_.WriteBody(bytes, /*lend=*/true);
  if (down_.queued() > core::Conn::kHighWater && !upstream_paused_) {
    // The client reads slower than the backend sends: stop reading the backend (OnWritable
    // resumes it).
    upstream_paused_ = true;
    up.PauseRecv();
  }
  SetTimerFor(TimerFor::kTunnel, cfg().limits.tunnel_idle_timeout_ms);
}

void Exchange::OnTunnelUpstreamClosed(bool error) {
  if (!x().tunnel) {
    return;  // the client ended the tunnel itself (EndTunnel)
  }
  up_.reset();  // the upstream detached and closed itself
  EndTunnel(error ? "backend reset" : "backend closed", /*abort=*/false);
}

void Exchange::EndTunnel(std::string_view note, bool abort) {
  if (!x().tunnel) {
    return;
  }
  x().tunnel = false;
  x().note = note;
  ctx_.stats().tunnels_closed++;
  if (core::Conn* up = tunnel_upstream()) {
    auto* handler = static_cast<UpstreamConn*>(up->handler());
    up_.reset();
    upstream_paused_ = false;
    handler->EndTunnel(*up, abort);
  }
  LogExchange();
  SetTimerFor(TimerFor::kNone, 0);
  resp_ = Resp::kNone;
  req_ = Req::kIdle;
  down_.EndTunnel(abort);
}

}  // namespace torii::http
