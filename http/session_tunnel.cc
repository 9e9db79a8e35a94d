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
#include "http/client_session.h"
#include "http/serialize.h"

namespace torii::http {

void ClientSession::OnUpstreamUpgrade(const MessageHead& head, std::string_view protocol) {
  core::Conn* me = self();
  if (me == nullptr) {
    return;
  }
  x_.status = 101;
  x_.tunnel = true;
  resp_ = Resp::kStreaming;
  NoteUpstreamResponse(101);
  ctx_.stats().tunnels_opened++;
  if (cfg().timing) {
    B().timing.response = ctx_.worker().now_ns();
  }
  // The 101 is rebuilt like any response head; Connection and Upgrade are hop-by-hop, so
  // ours name the protocol the backend switched to.
  std::string& extra = B().resp_extra;
  extra.assign("Connection: upgrade\r\nUpgrade: ");
  extra.append(protocol);
  extra.append("\r\n");
  AppendRequestId(&extra);
  out_.WriteSwitchingProtocols(*me, head, extra, &ctx_.scratch());
  SetTimerFor(*me, TimerFor::kTunnel, cfg().limits.tunnel_idle_timeout_ms);
  // Bytes the client sent after its request head, before the 101, are the new protocol's.
  if (!B().in.empty()) {
    RelayToUpstream(*me, B().in);
    B().in.clear();
  }
  if (recv_paused_ && !paused_for_upstream_) {
    recv_paused_ = false;  // paused while the request waited (pipelining guard)
    me->ResumeRecv();
  }
}

void ClientSession::RelayToUpstream(core::Conn& conn, std::string_view bytes) {
  core::Conn* up = upstream();
  if (up == nullptr || bytes.empty()) {
    return;
  }
  x_.bytes_up += bytes.size();
  ctx_.stats().tunnel_bytes_up += bytes.size();
  up->WriteFromRecvBuffer(bytes);
  if (up->queued() > core::Conn::kHighWater && !paused_for_upstream_) {
    // The backend reads slower than the client sends: stop reading the client.
    paused_for_upstream_ = true;
    if (!recv_paused_) {
      recv_paused_ = true;
      conn.PauseRecv();
    }
  }
  SetTimerFor(conn, TimerFor::kTunnel, cfg().limits.tunnel_idle_timeout_ms);
}

void ClientSession::OnTunnelData(core::Conn& up, std::string_view bytes) {
  core::Conn* me = self();
  if (me == nullptr || !x_.tunnel || bytes.empty()) {
    return;
  }
  x_.bytes_sent += bytes.size();
  ctx_.stats().tunnel_bytes_down += bytes.size();
  me->WriteFromRecvBuffer(bytes);
  if (me->queued() > core::Conn::kHighWater && !upstream_paused_) {
    // The client reads slower than the backend sends: stop reading the backend (OnWritable
    // resumes it).
    upstream_paused_ = true;
    up.PauseRecv();
  }
  SetTimerFor(*me, TimerFor::kTunnel, cfg().limits.tunnel_idle_timeout_ms);
}

void ClientSession::OnTunnelUpstreamClosed(bool error) {
  if (!x_.tunnel) {
    return;  // the client ended the tunnel itself (EndTunnel)
  }
  up_.reset();  // the upstream detached and closed itself
  if (core::Conn* me = self()) {
    EndTunnel(*me, error ? "backend reset" : "backend closed", /*abort=*/false);
  }
}

void ClientSession::EndTunnel(core::Conn& conn, std::string_view note, bool abort) {
  if (!x_.tunnel) {
    return;
  }
  x_.tunnel = false;
  x_.note = note;
  ctx_.stats().tunnels_closed++;
  if (core::Conn* up = upstream()) {
    auto* handler = static_cast<UpstreamConn*>(up->handler());
    up_.reset();
    upstream_paused_ = false;
    handler->EndTunnel(*up, abort);
  }
  LogExchange();
  SetTimerFor(conn, TimerFor::kNone, 0);
  resp_ = Resp::kNone;
  req_ = Req::kIdle;
  if (abort) {
    conn.Close();
  } else {
    conn.CloseAfterFlush();
  }
}

}  // namespace torii::http
