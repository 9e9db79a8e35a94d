// http/upstream_conn.cc: UpstreamConn (proxy_session.h), the HTTP/1.1 upstream codec.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "base/text.h"
#include "http/exchange.h"
#include "http/proxy_session.h"
#include "http/serialize.h"

namespace torii::http {

UpstreamConn::UpstreamConn(ProxyContext& ctx, std::shared_ptr<Generation> gen, uint32_t pool,
                           uint32_t backend)
    : ctx_(ctx),
      gen_(std::move(gen)),
      pool_(pool),
      backend_(backend),
      limits_{gen_->config().limits.header_bytes * 2, gen_->config().limits.header_count * 2,
              ~uint64_t{0}} {}

Exchange* UpstreamConn::client() { return client_.Resolve(ctx_.worker()); }

bool UpstreamConn::CloseIfUnattached(core::Conn& self) {
  if (idle_) {
    // Any event on an idle pooled connection (FIN, reset, unexpected bytes, keep-alive
    // timeout) retires it: it leaves the pool and closes.
    gen_->DropIdle(pool_, backend_, self.ref());
    idle_ = false;
    self.Close();
    return true;
  }
  if (!client_.valid()) {
    self.Close();
    return true;
  }
  return false;
}

void UpstreamConn::Attach(core::Conn& self, const ExchangeRef& client, bool head_request,
                          bool holds_slot, uint64_t connect_timeout_ms,
                          uint64_t response_timeout_ms) {
  if (!b_) {
    b_ = ctx_.AcquireBuffers(H1Parser::Kind::kResponse, limits_);
  }
  self_ = &self;
  reused_ = idle_;
  if (!reused_) {
    // A new connection waits for its first response head with one receive at a time when the
    // body may be spliced; Pump switches as responses come (see SpliceBodyTo).
    self.SetRecvOneShot(cfg().pools[pool_].splice_min > 0 && self.transport() == nullptr);
  }
  idle_ = false;
  self.SetIdle(core::Conn::Idle::kNo);
  client_ = client;
  response_done_ = false;
  request_complete_ = false;
  forwarding_ = false;
  splice_to_.reset();
  b_->parser().set_request_was_head(head_request);
  if (!counted_) {
    counted_ = true;
    gen_->picker(pool_).OnRequestStart(backend_);
  }
  holds_slot_ = holds_slot;
  connect_timeout_ms_ = connect_timeout_ms;
  response_timeout_ms_ = response_timeout_ms;
  self.SetTimer(ctx_.worker().now_ms() + (connected_ ? response_timeout_ms_ : connect_timeout_ms_));
}

void UpstreamConn::WriteRequestBody(std::string_view bytes, bool chunked, std::string* scratch) {
  core::Conn& self = *self_;
  if (chunked) {
    // Re-chunked without extensions: one chunk per piece.
    scratch->clear();
    AppendChunkHeader(bytes.size(), scratch);
    self.Write(*scratch);
    self.Write(bytes);
    self.Write("\r\n");
  } else {
    self.Write(bytes);
  }
}

void UpstreamConn::EndRequestBody(bool chunked, std::span<const HeaderView> trailers) {
  core::Conn& self = *self_;
  if (chunked && trailers.empty()) {
    self.Write("0\r\n\r\n");
  } else if (chunked) {
    std::string last;
    AppendLastChunk(trailers, &last);
    self.Write(last);
  }
  request_complete_ = true;
}

void UpstreamConn::EndCount() {
  if (counted_) {
    counted_ = false;
    gen_->picker(pool_).OnRequestEnd(backend_);
  }
  if (holds_slot_) {
    holds_slot_ = false;
    gen_->ReleaseSlot(pool_, backend_);
  }
}

void UpstreamConn::Release(bool reusable) {
  core::Conn& self = *self_;
  client_.reset();
  EndCount();
  if (self.closing()) {
    return;
  }
  // Pool only a connection whose exchange ended cleanly with nothing left over (B9), and never
  // one whose PROXY header named this client.
  if (reusable && cfg().pools[pool_].send_proxy == 0 && response_done_ && request_complete_ &&
      input().empty() && self.send_idle() && gen_->PutIdle(pool_, backend_, self)) {
    idle_ = true;
    self.SetIdle(core::Conn::Idle::kKeepAlive);
    // A pooled connection keeps no buffer: it goes back to the worker's pool.
    ctx_.ReleaseBuffers(std::move(b_));
    self.SetTimer(ctx_.worker().now_ms() + cfg().pools[pool_].keepalive_timeout_ms);
    return;
  }
  self.Close();
}

void UpstreamConn::Fail(core::Conn& self, UpstreamFailure why) {
  Exchange* c = client();
  const bool reused = reused_;
  client_.reset();
  EndCount();
  self.Close();
  if (c != nullptr) {
    c->OnUpstreamFailed(why, reused);
  }
}

void UpstreamConn::OnConnected(core::Conn& self, core::Result<void> result) {
  if (!result) {
    Fail(self, UpstreamFailure::kConnectFailed);
    return;
  }
  connected_ = true;
  if (client_.valid()) {
    self.SetTimer(ctx_.worker().now_ms() + response_timeout_ms_);
    if (Exchange* c = client()) {
      c->NoteUpstreamConnected();
    }
  }
}

void UpstreamConn::OnRecv(core::Conn& self, std::span<const char> data) {
  if (CloseIfUnattached(self)) {
    return;  // bytes on an idle pooled connection (B9): never trust it again
  }
  if (tunnel_) {
    if (Exchange* c = client()) {
      c->OnTunnelData(self, std::string_view(data.data(), data.size()));
    }
    return;
  }
  self.SetTimer(ctx_.worker().now_ms() + response_timeout_ms_);
  if (b_->in.empty()) {
    // The common case: parse straight from the receive buffer, so a body is copied once
    // (into the client's out queue); only a partial head or an unread tail is kept.
    Pump(self, data.data(), data.size(), /*owned=*/false);
  } else {
    b_->in.append(data.data(), data.size());
    Pump(self, b_->in.data(), b_->in.size(), /*owned=*/true);
  }
}

void UpstreamConn::Pump(core::Conn& self, const char* buf, size_t len, bool owned) {
  H1Parser& parser = b_->parser();
  // Forgets what the parser consumed: from b_->in when it holds the bytes, else by moving
  // the view over the receive buffer.
  const auto drop = [&] {
    const size_t n = parser.consumed();
    if (owned) {
      b_->in.erase(0, n);
      buf = b_->in.data();
      len = b_->in.size();
    } else {
      buf += n;
      len -= n;
    }
    parser.DropConsumed();
  };
  while (!self.closing() && client_.valid()) {
    const H1Parser::Step step = parser.Next(buf, len);
    switch (step.event) {
      case H1Parser::Event::kNeedMore:
        if (!parser.in_head()) {
          drop();
          if (splice_to_.valid() && len == 0 && StartSplice(self)) {
            return;  // the rest of the body goes socket to socket
          }
        }
        if (!owned && len > 0) {
          // A partial head: keep it from the message start (the parser's offsets count
          // from there), to be completed by the next receive.
          b_->in.assign(buf, len);
        }
        return;
      case H1Parser::Event::kError:
        spdlog::debug("upstream {}: bad response: {}", cfg().pools[pool_].backends[backend_].name,
                      parser.error_reason());
        Fail(self, response_started_ ? UpstreamFailure::kTruncated : UpstreamFailure::kBadResponse);
        return;
      case H1Parser::Event::kHead: {
        const MessageHead& h = parser.head();
        if (h.status == 101) {
          // Switching protocols: only an answer to an upgrade this exchange forwarded.
          // RFC 9110 §15.2.2: a 101 names the protocol it switches to.
          Exchange* c = client();
          std::optional<std::string_view> protocol;
          for (const HeaderView& hv : h.headers) {
            if (EqualsIgnoreCase(hv.name, "upgrade")) {
              protocol = hv.value;
            }
          }
          if (c == nullptr || !c->upgrade_requested() || !protocol || !c->SwitchAccepted(h)) {
            Fail(self, UpstreamFailure::kBadResponse);
            return;
          }
          tunnel_ = true;
          response_started_ = true;
          self.ClearTimer();  // the client's tunnel_idle_timeout watches both sides now
          c->OnUpstreamUpgrade(h, *protocol);
          drop();
          if (len > 0 && !self.closing()) {
            // What the backend sent right after its 101 is already the new protocol.
            if (Exchange* again = client()) {
              again->OnTunnelData(self, std::string_view(buf, len));
            }
          }
          if (owned) {
            b_->in.clear();
          }
          return;
        }
        if (h.status >= 100 && h.status < 200) {
          // Interim: 103 Early Hints goes on to the client, the rest is dropped; the final
          // response follows either way (B10).
          if (Exchange* c = client(); c != nullptr && h.status == 103) {
            c->OnUpstreamInterim(h);
          }
          break;
        }
        response_started_ = true;
        if (Exchange* c = client()) {
          c->OnUpstreamHead(*this, h);
        }
        if (!splice_to_.valid()) {
          // Not spliced: the rest of this body, and the next response's head, come through
          // a multishot receive (no receive to arm per buffer).
          self.SetRecvOneShot(false);
        }
        drop();
        break;
      }
      case H1Parser::Event::kBody:
        if (Exchange* c = client()) {
          c->OnUpstreamBody(*this, step.body);
        }
        drop();
        break;
      case H1Parser::Event::kDone: {
        drop();
        splice_to_.reset();  // the whole body came with the head
        if (!response_started_) {
          break;  // end of an interim response
        }
        response_done_ = true;
        response_started_ = false;
        self.ClearTimer();
        // Bytes after a complete response (B9) make the connection unusable; they are never
        // parsed as the next response.
        const bool reusable = !parser.must_close() && len == 0;
        Exchange* c = client();
        if (c == nullptr) {
          Release(false);
          return;
        }
        // May pool this connection and return b_ (the trailers live there until then).
        c->OnUpstreamDone(reusable, parser.trailers());
        return;  // b_ may be gone: stop here
      }
    }
  }
}

bool UpstreamConn::SpliceBodyTo(core::Conn& client) {
  if (self_ == nullptr || self_->transport() != nullptr || tunnel_ || forwarding_ ||
      b_->parser().head().framing != Framing::kContentLength) {
    return false;
  }
  splice_to_ = client.ref();
  return true;
}

bool UpstreamConn::StartSplice(core::Conn& self) {
  core::Conn* to = ctx_.worker().Resolve(splice_to_);
  splice_to_.reset();
  const H1Parser& parser = b_->parser();
  const uint64_t seen = parser.body_bytes_seen();
  const uint64_t length = parser.head().content_length;
  if (to == nullptr || seen >= length || !self.ForwardTo(*to, length - seen)) {
    self.SetRecvOneShot(false);  // the body comes through the parser after all
    return false;
  }
  forwarding_ = true;
  // Who is slow shows when the timer fires (OnTimer): the client (send_timeout) or the
  // backend (response_timeout since bytes last moved).
  forward_progress_ms_ = ctx_.worker().now_ms();
  self.SetTimer(forward_progress_ms_ +
                std::min(cfg().limits.send_timeout_ms, response_timeout_ms_));
  // A connection that carried a spliced body waits for its next head one receive at a time
  // (the forward re-arms receiving when it is done), so that one can be spliced as well.
  self.SetRecvOneShot(true);
  return true;
}

void UpstreamConn::OnForwarded(core::Conn& self, const core::ForwardProgress& progress) {
  Exchange* c = client();
  if (c != nullptr && progress.bytes > 0) {
    c->OnUpstreamSpliced(progress.bytes, progress.spliced);
  }
  if (progress.done) {
    EndSplicedResponse(self, !progress.input_follows);
    return;
  }
  // Bytes moved: the wait starts again, the client's (send_timeout) while it has bytes it has
  // not taken, else the backend's.
  forward_progress_ms_ = ctx_.worker().now_ms();
  self.SetTimer(forward_progress_ms_ + (self.ForwardWaitsForDestination()
                                            ? cfg().limits.send_timeout_ms
                                            : response_timeout_ms_));
}

void UpstreamConn::EndSplicedResponse(core::Conn& self, bool clean) {
  forwarding_ = false;
  H1Parser& parser = b_->parser();
  // Bytes after a complete response (B9) make the connection unusable, as in Pump.
  const bool reusable = parser.head().keep_alive && clean;
  // The body went past the parser: it starts afresh for the next response.
  parser.Init(H1Parser::Kind::kResponse, limits_);
  response_done_ = true;
  response_started_ = false;
  self.ClearTimer();
  Exchange* c = client();
  if (c == nullptr) {
    Release(false);
    return;
  }
  c->OnUpstreamDone(reusable, {});
}

void UpstreamConn::OnEof(core::Conn& self) {
  if (CloseIfUnattached(self)) {
    return;
  }
  if (tunnel_) {
    EndTunnel(self, /*error=*/false);
    return;
  }
  if (response_started_) {
    const H1Parser::Step step = b_->parser().Finish();
    if (step.event == H1Parser::Event::kDone) {
      response_done_ = true;
      response_started_ = false;
      Exchange* c = client();
      client_.reset();
      self.Close();
      if (c != nullptr) {
        c->OnUpstreamDone(false, {});  // close-delimited: no trailers
      }
      return;
    }
    Fail(self, UpstreamFailure::kTruncated);
    return;
  }
  Fail(self, input().empty() && !b_->parser().started() ? UpstreamFailure::kClosedEarly
                                                        : UpstreamFailure::kBadResponse);
}

void UpstreamConn::OnError(core::Conn& self, core::Error /*error*/) {
  if (CloseIfUnattached(self)) {
    return;
  }
  if (tunnel_) {
    EndTunnel(self, /*error=*/true);
    return;
  }
  Fail(self, response_started_
                 ? UpstreamFailure::kTruncated
                 : (input().empty() && !b_->parser().started() ? UpstreamFailure::kClosedEarly
                                                               : UpstreamFailure::kBadResponse));
}

void UpstreamConn::EndTunnel(core::Conn& self, bool error) {
  Exchange* c = client();
  client_.reset();
  EndCount();
  if (error) {
    self.Close();
  } else {
    self.CloseAfterFlush();  // what the client sent last still reaches the backend
  }
  if (c != nullptr) {
    c->OnTunnelUpstreamClosed(error);
  }
}

void UpstreamConn::OnTimer(core::Conn& self) {
  if (CloseIfUnattached(self)) {
    return;
  }
  if (forwarding_) {
    if (self.ForwardWaitsForDestination()) {
      // The backend's bytes wait for a client that does not take them: the client's send
      // timeout, not a backend failure.
      if (Exchange* c = client()) {
        c->OnSendTimeout();
        return;
      }
    } else if (ctx_.worker().now_ms() < forward_progress_ms_ + response_timeout_ms_) {
      self.SetTimer(forward_progress_ms_ + response_timeout_ms_);  // the backend's wait goes on
      return;
    }
  }
  Fail(self, connected_ ? UpstreamFailure::kTimeout : UpstreamFailure::kConnectTimeout);
}

void UpstreamConn::OnWritable(core::Conn& /*self*/) {
  if (Exchange* c = client()) {
    c->OnUpstreamWritable();
  }
}

void UpstreamConn::OnDrain(core::Conn& self) {
  if (idle_) {
    CloseIfUnattached(self);
  }
}

void UpstreamConn::OnClosed(core::Conn& self) {
  EndCount();
  if (b_) {
    ctx_.ReleaseBuffers(std::move(b_));
  }
  if (idle_) {
    gen_->DropIdle(pool_, backend_, self.ref());
    idle_ = false;
  }
  if (client_.valid()) {
    // Closed underneath an exchange without Fail() (should not happen): tell the client.
    Exchange* c = client();
    client_.reset();
    if (c != nullptr) {
      c->OnUpstreamFailed(
          response_started_ ? UpstreamFailure::kTruncated : UpstreamFailure::kClosedEarly, reused_);
    }
  }
}

}  // namespace torii::http
