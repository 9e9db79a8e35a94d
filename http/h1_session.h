// http/h1_session.h: the HTTP/1.1 downstream codec (internal to http/).
//
// H1Session handles one client connection that speaks HTTP/1.x: it parses requests with
// H1Parser (pipelined ones in order), runs one Exchange at a time through them, and writes
// responses with H1ResponseWriter. The connection's own concerns stay here: the idle and
// header timeouts, keep-alive, pipelining (no next request while the client is owed more than
// the high-water mark: backpressure), the PROXY header, half-close. A connection that turns
// out to speak HTTP/2 (ALPN "h2", or the h2c preface on an h2c listener) is handed to an
// H2Session before its first request.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "base/slab.h"
#include "core/worker.h"
#include "http/downstream.h"
#include "http/exchange.h"
#include "http/h1_response_writer.h"
#include "http/proxy_context.h"
#include "http/proxy_protocol.h"

namespace torii::http {

class H1Session final : public core::ConnHandler,
                        public ExchangeHost,
                        private Downstream,
                        public base::SlabAllocated<H1Session> {
 public:
  H1Session(ProxyContext& ctx, core::Conn& conn, ClientConn client);

  // The listener's PROXY header arrived (ProxyHeaderReader): its source is this connection's
  // client from now on. Returns false to refuse the connection.
  bool OnProxyHeader(core::Conn& conn, const ProxyHeader& header);

  void OnRecv(core::Conn& conn, std::span<const char> data) override;
  void OnEof(core::Conn& conn) override;
  void OnError(core::Conn& conn, core::Error error) override;
  void OnTimer(core::Conn& conn) override;
  void OnWritable(core::Conn& conn) override;
  void OnDrain(core::Conn& conn) override;
  void OnClosed(core::Conn& conn) override;
  void OnTransportReady(core::Conn& conn) override;
  void OnFlush(core::Conn& conn) override;

  Exchange* FindExchange(uint32_t id) override { return x_ && x_->id() == id ? x_.get() : nullptr; }
  Exchange* FindWaiter(uint64_t ticket) override {
    return x_ && x_->waiter_ticket() == ticket ? x_.get() : nullptr;
  }

 private:
  // The connection's own timers; kExchange: the exchange's (Downstream::SetTimer).
  enum class Timer : uint8_t { kNone, kIdle, kHeader, kReader, kExchange };

  // The first wait of a connection: handshake_timeout on TLS (bounded by idle_timeout).
  uint64_t FirstIdleMs() const;
  // The exchange's configuration; between requests the newest (the next exchange's).
  const ProxyConfig& cfg() const { return x_ ? x_->cfg() : ctx_.config(); }
  // The exchange, made when a request's first bytes come (or the h2c probe needs the input
  // buffer); Finished() lets it go once the connection is idle.
  Exchange& x() {
    if (!x_) {
      x_ = std::make_unique<Exchange>(ctx_, client_, static_cast<Downstream&>(*this));
    }
    return *x_;
  }
  // Between requests: no exchange in progress, and no byte of the next request yet.
  bool Idle() const { return !x_ || (x_->idle() && x_->input().empty()); }
  // Closes the connection once what is queued is sent. A TLS client still in early data
  // first completes its handshake (within handshake_timeout): its next ticket and the
  // close_notify can only follow that, and a client closed on before it would see an
  // unexpected end of its connection.
  void CloseWhenSent();
  void SetConnTimer(Timer what, uint64_t ms);
  // A request begins: the header timeout runs from here (not reset by later bytes: slowloris).
  void StartRequest();
  void Pump();
  // Between exchanges: the client is owed more than the high-water mark; stop until it reads.
  void WaitForReader();
  // Between requests with nothing buffered: the keep-alive wait begins, holding no buffer and,
  // after this loop turn, no exchange.
  void GoIdle();
  void Compact();
  // The connection speaks HTTP/2: an H2Session takes it over with `bytes` (this is destroyed).
  void SwitchToH2(std::string_view bytes);
  // Whether the first bytes decide for HTTP/2 (ALPN h2, or the h2c preface): true when the
  // connection was handed over or more bytes are needed to decide.
  bool ProbeH2(std::span<const char> data);

  // ---- Downstream ----
  std::string_view protocol() const override { return "HTTP/1.1"; }
  bool closing() const override { return conn_.closing(); }
  size_t queued() const override { return conn_.queued(); }
  bool WriteBlocked() override { return conn_.WriteBlocked(); }
  bool WriteInterim(const MessageHead& head) override;
  void WriteContinue() override { H1ResponseWriter::WriteContinue(conn_); }
  int WriteSwitchingProtocols(const MessageHead& head, std::string_view extra) override;
  void EndTunnel(bool abort) override {
    if (abort) {
      conn_.Close();
    } else {
      CloseWhenSent();
    }
  }
  void WriteHead(const MessageHead& head, ResponseBody body, bool head_request, bool* close,
                 std::string_view extra, const HeadEdits& edits) override;
  core::Conn* SpliceTarget() override;
  void WriteBody(std::string_view bytes, bool lend) override;
  void WriteStoredBody(std::string_view bytes, const std::shared_ptr<const void>& owner) override;
  bool WriteEnd(std::span<const HeaderView> trailers) override {
    return out_.WriteEnd(conn_, trailers, &ctx_.scratch());
  }
  size_t WriteLocalReply(int status, bool close, std::string_view extra, std::string_view body,
                         std::string_view content_type) override;
  void SetTimer(uint64_t ms) override { SetConnTimer(Timer::kExchange, ms); }
  void ClearTimer() override;
  void PauseReading() override;
  void ResumeReading() override;
  void Continue() override;
  void Finished() override;
  void CloseAfterFlush() override { CloseWhenSent(); }
  void Close() override { conn_.Close(); }
  void Abort() override { conn_.Abort(); }

  ProxyContext& ctx_;
  core::Conn& conn_;  // the handler lives as long as its connection
  ClientConn client_;
  std::unique_ptr<Exchange> x_;  // null while the connection is idle (x())
  H1ResponseWriter out_;  // the response half of the codec (framing for this client)
  uint32_t next_id_ = 0;  // the id of the next exchange (its place on the connection)
  Timer timer_ = Timer::kNone;
  bool recv_paused_ = false;
  bool waiting_reader_ = false;  // WaitForReader: no next request until OnWritable
  bool awaiting_proxy_ = false;  // a proxy_protocol listener's connection before its header
  bool probe_h2_ = false;        // the first bytes may still turn out to be HTTP/2
  bool close_when_ready_ = false;  // closing once the TLS handshake after early data is done
};
// What an idle keep-alive connection keeps, besides its core::Conn: see bench/README.md (idle).
static_assert(sizeof(H1Session) <= 160, "an idle HTTP/1.1 connection's session grew");

}  // namespace torii::http
