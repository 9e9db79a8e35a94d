// http/h2_upstream.h: the HTTP/2 upstream connection (internal to http/), framed by torii's
// own client codec (h2_client_codec.h).
//
// H2UpstreamConn is one connection to a backend of a pool with protocol = "h2" (TLS, ALPN h2)
// or "h2c" (prior knowledge). Each worker keeps its connections to a backend in the
// Generation's shared list; an exchange takes a stream on the first one with room (under the
// backend's SETTINGS_MAX_CONCURRENT_STREAMS and the pool's max_streams) and a new connection is
// opened only when none has. Each stream is the Upstream (upstream.h) of one exchange, found
// again by its id; the exchange reaches it, and it reaches the exchange, only by resolving
// references, so either may end first.
//
// Flow control is chained end to end: a stream's request body is queued here only up to the
// high-water mark (the exchange then stops reading its client until the backend's window takes
// it), and response DATA is acknowledged (WINDOW_UPDATE) as the exchange passes it to its
// client, except while the client is slow (PauseResponse): the backend's stream window then
// closes instead of a buffer growing.
//
// Failures: a stream reset by the backend with REFUSED_STREAM, or above the last stream id of
// its GOAWAY, never reached the application (UpstreamFailure::kRefused: retried); a reset or a
// connection lost before the response head is kClosedEarly, after it kTruncated; no response
// byte within response_timeout is kTimeout. GOAWAY drains a connection: no new stream on it,
// closed once its streams are done. A connection without streams for keepalive_timeout closes;
// one with streams that hears nothing for keepalive_timeout / 2 sends PING, and without an answer
// as long again its streams fail (a dead peer; retried when safe).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/worker.h"
#include "http/h2_client_codec.h"
#include "http/h2_fields.h"
#include "http/proxy_context.h"
#include "http/retry.h"
#include "http/upstream.h"

namespace torii::http {

class ExchangeHost;

class H2UpstreamConn final : public UpstreamHandler, private H2ClientCodec::Host {
 public:
  H2UpstreamConn(ProxyContext& ctx, std::shared_ptr<Generation> gen, uint32_t pool,
                 uint32_t backend);
  ~H2UpstreamConn() override;
  H2UpstreamConn(const H2UpstreamConn&) = delete;
  H2UpstreamConn& operator=(const H2UpstreamConn&) = delete;

  // A connection of this worker to (pool, backend) that takes another stream now, or nullptr.
  static core::Conn* FindWithRoom(core::Worker& worker, Generation& gen, uint32_t pool,
                                  uint32_t backend);
  // A new connection (just connecting) joins the shared list.
  void Register(core::Conn& self);
  // A new generation (a reload, an address change) takes this shared connection over as its
  // (pool, backend), its place on the shared list moved by the caller (Generation::Adopt):
  // streams in flight finish on it and end their counts there (the old counts were handed
  // over to the new, balancer/hand_over.h); new streams come from the new generation. False
  // when it takes no new stream (draining, failed): it is left to end with the old one.
  bool Rehome(std::shared_ptr<Generation> gen, uint32_t pool, uint32_t backend);

  // What a stream is for: exchange `client`.
  struct StreamParams {
    ExchangeRef client;
    bool head_request = false;
    bool holds_slot = false;  // one of the backend's max_conns slots, given back at its end
    bool end_stream = false;  // the request has no body: HEADERS end it
    uint64_t connect_timeout_ms = 0;
    uint64_t response_timeout_ms = 0;
  };
  // Opens a stream carrying `head` (as BuildUpstreamRequestHead wrote it; rewritten in place).
  // Returns its id, or 0 when no stream could be opened (the caller tries elsewhere).
  uint32_t Open(core::Conn& self, const StreamParams& params, std::string* head);

  Upstream* FindUpstream(uint32_t stream) override;

  void OnRecv(core::Conn& conn, std::span<const char> data) override;
  void OnEof(core::Conn& conn) override;
  void OnError(core::Conn& conn, core::Error error) override;
  void OnTimer(core::Conn& conn) override;
  void OnConnected(core::Conn& conn, core::Result<void> result) override;
  void OnWritable(core::Conn& conn) override;
  void OnDrain(core::Conn& conn) override;
  void OnFlush(core::Conn& conn) override;
  void OnClosed(core::Conn& conn) override;

 private:
  class Stream;
  friend class Stream;

  // ---- H2ClientCodec::Host ----
  void OnField(int32_t stream, std::string_view name, std::string_view value) override;
  void OnHeaders(int32_t stream, bool end_stream) override;
  void OnData(int32_t stream, std::string_view bytes) override;
  void OnDataEnd(int32_t stream) override;
  void OnSettings() override;
  void OnGoaway() override;
  void OnPingAck() override {}  // any byte received shows the peer alive (OnRecv)
  void OnMalformed(int32_t stream) override;

  const ProxyConfig& cfg() const { return gen_->config(); }
  Stream* Find(int32_t id);
  bool HasRoom() const;
  // Frames out: the codec's control frames and HEADERS, then request bodies as the windows
  // allow while the connection is under its high-water mark; streams whose request queue
  // drained hear it (OnUpstreamWritable).
  void Flush();
  // The codec's frames to the connection; held while it is above its high-water mark, unless
  // `closing` (the last frames before a close).
  void Emit(bool closing = false);
  // DATA (and trailers) of the streams in sending_, as far as windows and the connection allow.
  void SendBodies();
  // A stream has request body bytes (or its end) to send.
  void QueueBody(int32_t id);
  // Streams the codec closed since the last call: off the map, their exchanges told.
  void ProcessClosed();
  void CloseStream(int32_t id, H2Error code);
  // No new stream on this connection (GOAWAY either way, shutdown, reload): off the shared list.
  void Unshare();
  // Every stream fails with `why` (the connection is lost); the connection closes.
  void FailAll(UpstreamFailure why);
  // The timer: the earliest stream deadline, the PING due, else keepalive_timeout without
  // streams (a scan of the streams: when the timer fires). Between, ArmAt only brings it
  // earlier: deadlines that move later are found when it fires.
  void ArmTimer();
  void ArmAt(uint64_t at);
  void MaybeClose();
  // Streams in flight and nothing received for this long: PING (keepalive_timeout / 2, at
  // least 1 s); no answer within as long again: the peer is dead.
  uint64_t PingInterval() const;

  ProxyContext& ctx_;
  std::shared_ptr<Generation> gen_;
  uint32_t pool_;
  uint32_t backend_;
  core::Conn* self_ = nullptr;
  H2ClientCodec codec_;
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;
  // The stream Find() gave last (a header block's fields arrive one callback each, all for one
  // stream): nullptr once it leaves streams_.
  Stream* last_ = nullptr;
  std::vector<std::unique_ptr<Stream>> spare_;  // ended streams kept for the next ones
  std::vector<int32_t> writable_;               // streams whose request queue drained (Flush)
  std::vector<int32_t> sending_;                // streams with request body to frame
  uint64_t idle_since_ms_ = 0;
  uint64_t armed_ms_ = 0;
  uint64_t last_recv_ms_ = 0;  // the last bytes from the backend
  uint64_t ping_sent_ms_ = 0;  // a PING waits for its answer since then (0: none)
  uint32_t opened_ = 0;  // streams opened so far (the next one is "reused" when > 0)
  bool connected_ = false;
  bool settings_seen_ = false;  // the backend's SETTINGS arrived
  bool shared_ = false;    // on the Generation's shared list
  bool draining_ = false;  // no new stream: close when the last one ends
  bool failed_ = false;    // FailAll ran: the connection is going
};

}  // namespace torii::http
