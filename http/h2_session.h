// http/h2_session.h: the HTTP/2 downstream codec (internal to http/), on torii's own framing.
//
// H2Session handles one client connection that speaks HTTP/2 (ALPN "h2", or the h2c preface
// on an h2c listener; H1Session hands it over before the first request). Received bytes go
// to the server codec (h2_server_codec.h) as they come; frames are written once per loop turn
// (Conn::WantFlush → OnFlush), and only while the connection's send queue is under its
// high-water mark, so a client that does not read holds back the codec, not torii's memory.
// Response bodies are framed round-robin: one DATA frame per stream in turn, as the windows
// allow, straight from each stream's queue (H2BodyQueue::Send: never copied into a frame
// buffer).
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
// the codec's bounds, a header block left unfinished by header_timeout, RFC 7540 priorities
// are off, and an idle connection gets GOAWAY at idle_timeout.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/slab.h"
#include "core/worker.h"
#include "http/downstream.h"
#include "http/exchange.h"
#include "http/h2_fields.h"
#include "http/h2_server_codec.h"
#include "http/proxy_context.h"

namespace torii::http {

// What an HTTP/2 client sends first (RFC 9113 §3.4).
inline constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

class H2Session final : public core::ConnHandler,
                        public ExchangeHost,
                        public base::SlabAllocated<H2Session>,
                        private H2Codec::Host {
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

  // ---- H2Codec::Host ----
  void OnBegin(int32_t stream) override;
  void OnField(int32_t stream, std::string_view name, std::string_view value) override;
  void OnHeaders(int32_t stream, bool end_stream) override;
  void OnData(int32_t stream, std::string_view bytes) override;
  void OnDataEnd(int32_t stream) override;
  void OnReset(int32_t stream) override;
  void OnStreamError(int32_t stream) override;
  void OnTooLarge(int32_t stream) override;

  // Received bytes to the codec, then what they call for; the codec stops once kHeldOutput of
  // answers wait to be written (a client whose requests are answered faster than it reads):
  // how many it took (all when the connection ends).
  size_t Process(std::string_view bytes);
  // What was not taken, or arrived while reading was paused (unread_), fed once the answers
  // are written, each time until kHeldOutput more wait; a client still not reading pauses it
  // again with the rest kept. Reading resumes once none is left.
  void FeedHeld();

  const ProxyConfig& cfg() const { return ctx_.config(); }
  Stream* Find(int32_t id);
  // The codec's frames, then response bodies, to the connection while it is under the
  // high-water mark; then the streams whose queue drained hear OnWritable.
  void Flush();
  // The codec's frames (control frames, HEADERS) to the connection; held while it is above its
  // high-water mark, unless the connection is closing. A client that does not read is no
  // longer read from once kHeldOutput of them wait (answers without a body close their stream
  // at once: the stream limit does not bound them); once they went out, what arrived meanwhile
  // is fed first (FeedHeld), then reading resumes.
  void Emit(bool closing = false);
  // DATA for the streams in sending_, one frame each in turn, while the windows and the
  // connection take them.
  void SendBodies();
  // `id` has response bytes (or its end) to frame.
  void Schedule(int32_t id);
  // Streams the codec closed since the last call: off the list, their exchanges told. Never
  // while an exchange is on the stack (after Receive, and in Flush).
  void ProcessClosed();
  // The connection's timer: the earliest stream deadline, or IdleDue() without streams (a
  // scan of the streams: at start and when the timer fires). Between, ArmAt only brings it
  // earlier (deadlines that move later are found when it fires), and Rearm after each read or
  // flush notes the connection going idle or busy and a header block begun or ended.
  void ArmTimer();
  // An idle connection's next deadline: its spare streams' trim, then idle_timeout.
  uint64_t IdleDue() const;
  void TrimSpares();
  void ArmAt(uint64_t at);
  void Rearm();
  // A stream the client ended early (OnReset, OnStreamError): counted as a reset unless it
  // was answered already or torii ended it.
  void NoteEarlyEnd(int32_t id);
  // A client reset a stream: within the budget, or the connection is to end (rapid reset).
  void NoteClientReset();
  // A fatal GOAWAY (`code`): every exchange abandoned with `note`, the connection closed once
  // the GOAWAY is out.
  void Terminate(H2Error code, std::string_view note);
  // Ends every exchange still running (the connection is going): logged with `note`.
  void AbandonAll(std::string_view note);
  // GOAWAY already sent and nothing left to do: close after what is queued.
  void MaybeFinish();

  ProxyContext& ctx_;
  core::Conn& conn_;  // the handler lives as long as its connection
  ClientConn client_;
  H2ServerCodec codec_;
  // The open streams (at most max_concurrent_streams, so a scan finds one faster than a hash).
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<Stream>> spare_;  // ended streams kept for the next ones
  std::vector<int32_t> writable_;       // streams whose response queue drained (Flush)
  std::vector<int32_t> sending_;        // streams with response bytes to frame (SendBodies)
  std::vector<std::pair<int32_t, H2Error>> closed_;  // ProcessClosed's (kept between calls)
  uint64_t idle_since_ms_ = 0;
  uint64_t armed_ms_ = 0;    // the connection timer's deadline (0: not armed)
  uint64_t block_due_ms_ = 0;  // header_timeout of the header block in progress (0: none)
  bool recv_paused_ = false;   // held output past kHeldOutput: not reading (Emit)
  // Bytes the codec did not take yet, and those received after the pause (completions already
  // in the ring when it was asked for): bounded by what the receive had in flight; fed to the
  // codec only while reading is not paused (FeedHeld).
  std::string unread_;
  bool idle_listed_ = false;  // in the worker's idle list (no stream open)
  double reset_budget_;  // rapid reset: resets the client may still make now
  uint64_t reset_refill_ms_ = 0;
  bool spares_trimmed_ = true;  // no stream since the spare ones were last trimmed
  bool calm_ = false;           // streams reset past the budget: GOAWAY ENHANCE_YOUR_CALM due
};

}  // namespace torii::http
