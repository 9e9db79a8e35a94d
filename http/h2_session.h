// http/h2_session.h: the HTTP/2 downstream codec (internal to http/), on nghttp2.
//
// H2Session handles one client connection that speaks HTTP/2 (ALPN "h2", or the h2c preface
// on an h2c listener; H1Session hands it over before the first request). nghttp2 is driven
// through its memory interface by the worker's loop: received bytes go to mem_recv as they
// come; frames are written once per loop turn (Conn::WantFlush → OnFlush), and only while the
// connection's send queue is under its high-water mark, so a client that does not read holds
// back nghttp2, not torii's memory.
//
// Each request stream runs one Exchange (exchange.h), exactly as an HTTP/1.1 request does: the
// stream is that exchange's Downstream. Request bodies are flow-controlled by what the
// exchange takes: DATA is acknowledged (WINDOW_UPDATE) only once it went on to the backend, so
// a slow backend closes the stream's window instead of filling a buffer. Response bodies wait
// in the stream until its window and the connection take them (the exchange sees them as
// queued bytes and pauses its backend above the high-water mark).
//
// Defences: SETTINGS_MAX_CONCURRENT_STREAMS ([limits] max_concurrent_streams), the header
// list bounded by [limits] header_bytes and header_count (431), request bodies by body_bytes
// (413), streams reset by the client faster than a budget (rapid reset, CVE-2023-44487) end the
// connection with GOAWAY ENHANCE_YOUR_CALM, CONTINUATION, SETTINGS and PING floods are cut by
// nghttp2's own bounds, RFC 7540 priorities are off, and an idle connection gets GOAWAY at
// idle_timeout.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "base/slab.h"
#include "core/worker.h"
#include "http/downstream.h"
#include "http/exchange.h"
#include "http/h2_fields.h"
#include "http/h2_mem.h"
#include "http/proxy_context.h"

namespace torii::http {

// What an HTTP/2 client sends first (RFC 9113 §3.4).
inline constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

class H2Session final : public core::ConnHandler,
                        public ExchangeHost,
                        public base::SlabAllocated<H2Session> {
 public:
  H2Session(ProxyContext& ctx, core::Conn& conn, ClientConn client);
  ~H2Session() override;
  H2Session(const H2Session&) = delete;
  H2Session& operator=(const H2Session&) = delete;

  void OnRecv(core::Conn& conn, std::span<const char> data) override;
  void OnEof(core::Conn& conn) override;
  void OnError(core::Conn& conn, core::Error error) override;
  void OnTimer(core::Conn& conn) override;
  void OnWritable(core::Conn& conn) override;
  void OnDrain(core::Conn& conn) override;
  void OnClosed(core::Conn& conn) override;
  void OnFlush(core::Conn& conn) override;
  void OnTransportReady(core::Conn& conn) override;

  Exchange* FindExchange(uint32_t id) override;
  Exchange* FindWaiter(uint64_t ticket) override;

 private:
  class Stream;
  friend class Stream;

  // nghttp2's callbacks (user_data is the session).
  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user);
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int SendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                      nghttp2_data_source* source, void* user);
  static ssize_t ReadBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void* user);

  const ProxyConfig& cfg() const { return ctx_.config(); }
  Stream* Find(int32_t id);
  // nghttp2's frames to the connection while it is under the high-water mark; then the
  // streams whose queue drained hear OnWritable.
  void Flush();
  // The connection's timer: the earliest stream deadline, or IdleDue() without streams (a
  // scan of the streams: at start and when the timer fires). Between, ArmAt only brings it
  // earlier (deadlines that move later are found when it fires), and Rearm after each read or
  // flush notes the connection going idle or busy and the header blocks begun.
  void ArmTimer();
  // An idle connection's next deadline: its spare streams' trim, then idle_timeout.
  uint64_t IdleDue() const;
  void TrimSpares();
  void ArmAt(uint64_t at);
  void Rearm();
  // A client reset a stream: within the budget, or the connection ends (rapid reset).
  void NoteClientReset();
  // Ends every exchange still running (the connection is going): logged with `note`.
  void AbandonAll(std::string_view note);
  // GOAWAY already sent and nothing left to do: close after what is queued.
  void MaybeFinish();

  ProxyContext& ctx_;
  core::Conn& conn_;  // the handler lives as long as its connection
  ClientConn client_;
  H2SessionMemory memory_;  // ng_'s allocator: before ng_, gone after it
  nghttp2_session* ng_ = nullptr;
  // The open streams (at most max_concurrent_streams, so a scan finds one faster than a hash).
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<Stream>> spare_;  // ended streams kept for the next ones
  std::vector<int32_t> writable_;       // streams whose response queue drained (Flush)
  std::vector<int32_t> awaiting_;       // streams begun since the last Rearm (header_timeout)
  uint64_t idle_since_ms_ = 0;
  uint64_t armed_ms_ = 0;    // the connection timer's deadline (0: not armed)
  bool idle_listed_ = false;  // in the worker's idle list (no stream open)
  double reset_budget_;  // rapid reset: resets the client may still make now
  uint64_t reset_refill_ms_ = 0;
  bool spares_trimmed_ = true;  // no stream since the spare ones were last trimmed
  bool goaway_ = false;  // GOAWAY submitted: no new stream, close when the last ends
};

}  // namespace torii::http
