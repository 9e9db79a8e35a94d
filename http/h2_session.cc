// http/h2_session.cc: see h2_session.h.
#include "http/h2_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "base/text.h"
#include "http/h2_body.h"
#include "http/h2_fields.h"
#include "http/h2_mem.h"
#include "http/serialize.h"

namespace torii::http {

namespace {

// Rapid reset (CVE-2023-44487): a client may reset this many streams in a burst, refilled at
// kResetRate per second; past that the connection ends with GOAWAY ENHANCE_YOUR_CALM.
constexpr double kResetBurst = 200;
constexpr double kResetRate = 100;
// The connection-level receive window (stream windows stay at the protocol's 64 KiB): bodies
// of several streams in flight without a WINDOW_UPDATE each round trip.
constexpr int32_t kConnectionWindow = 1 << 20;
// Ended streams a connection keeps for its next ones (their objects and small buffers): as
// many as it keeps busy at once, up to kSpareStreams, and none once it has been idle for
// kSpareTrimMs (a client's requests come in bursts: between two, a connection is idle); its
// nghttp2 session then gives its large blocks' pages back too (H2SessionMemory).
constexpr size_t kSpareStreams = 32;
constexpr uint64_t kSpareTrimMs = 1000;
// The buffers a spare stream keeps.
constexpr size_t kKeptBuffer = 16 * 1024;

}  // namespace

// =============================================================================================
// One request stream: its exchange, and the exchange's Downstream.

class H2Session::Stream final : public Downstream {
 public:
  Stream(H2Session& s, int32_t id)
      : s_(s),
        id_(id),
        x_(s.ctx_, s.client_, *this),
        fields_(s.cfg().limits.header_bytes, s.cfg().limits.header_count) {}

  // Ended and kept spare for another stream of the connection: emptied, keeping buffers of
  // up to kKeptBuffer bytes and dropping larger ones.
  void Park() {
    id_ = 0;
    fields_.Clear();
    held_in_.clear();
    trailer_store_.clear();
    trailer_fields_.clear();
    trailer_bytes_ = 0;
    trailers_too_large_ = false;
    body_.Clear(kKeptBuffer);
    if (held_in_.capacity() > kKeptBuffer) {
      std::string().swap(held_in_);
    }
    if (trailer_store_.capacity() > kKeptBuffer) {
      std::string().swap(trailer_store_);
    }
    body_bytes_ = 0;
    deadline_ms_ = 0;
    head_request_ = awaiting_head_ = remote_done_ = end_held_ = finished_ = reset_ =
        reset_after_response_ = no_body_ = tunnel_ = false;
  }

  // ---- The request, from nghttp2 ----
  void AddField(std::string_view name, std::string_view value) { fields_.Add(name, value); }
  // A field of the request's trailing HEADERS (nghttp2 checked it as RFC 9113 §8.2 says),
  // bounded as the head is by header_bytes and header_count.
  void AddTrailer(std::string_view name, std::string_view value) {
    trailer_bytes_ += name.size() + value.size() + 32;  // as SETTINGS_MAX_HEADER_LIST_SIZE counts
    if (trailer_bytes_ <= s_.cfg().limits.header_bytes &&
        trailer_fields_.size() < s_.cfg().limits.header_count) {
      trailer_fields_.push_back(
          {static_cast<uint32_t>(trailer_store_.size()), static_cast<uint32_t>(name.size())});
      trailer_store_.append(name).append(value);
    } else {
      trailers_too_large_ = true;
    }
  }

  // The request's HEADERS are complete: its head goes to the exchange.
  void Reuse(int32_t id) { id_ = id; }

  void DispatchHead(bool end_stream) {
    awaiting_head_ = false;
    deadline_ms_ = 0;
    s_.ctx_.stats().h2_streams++;
    x_.Begin(static_cast<uint32_t>(id_));
    remote_done_ = end_stream;
    MessageHead h;
    if (const auto refusal = fields_.Build(end_stream, s_.cfg().limits.body_bytes, &h)) {
      x_.NoteRequestLine(fields_.method(), fields_.path(), 2);
      x_.OnRequestError(refusal->status, refusal->reason);
      return;
    }
    head_request_ = h.method_id == HTTP_HEAD;
    tunnel_ = h.connect_protocol;
    if (!x_.OnRequestHead(h)) {
      return;
    }
    // An extended CONNECT is a request without a body: its DATA are the tunnel's (OnData).
    if ((end_stream || tunnel_) && !x_.idle()) {
      x_.OnRequestEnd(false, {});
    }
  }

  // DATA from the client (request body bytes, or a tunnel's): to the exchange, or held (see
  // Holds), or dropped once the exchange is over.
  void OnData(std::string_view bytes) {
    if (finished_ || x_.idle()) {
      Consume(bytes.size());  // answered already: the rest is not wanted
      return;
    }
    if (!tunnel_) {
      body_bytes_ += bytes.size();
      x_.OnRequestBytes(bytes.size());
      if (body_bytes_ > s_.cfg().limits.body_bytes) {
        Consume(bytes.size());
        x_.OnRequestError(413, "request body too large");
        return;
      }
    }
    if (Holds()) {
      held_in_.append(bytes);  // bounded by the stream's window: nothing is acknowledged
      return;
    }
    Consume(bytes.size());
    x_.OnRequestBody(bytes);
  }

  // The client's END_STREAM (after the last DATA or trailers).
  void OnRemoteEnd() {
    remote_done_ = true;
    if (finished_ || x_.idle()) {
      return;
    }
    if (trailers_too_large_ && !tunnel_) {
      x_.OnRequestError(431, "trailer section too large");
      return;
    }
    if (Holds()) {
      end_held_ = true;  // after the bytes still held
      return;
    }
    DeliverEnd();
  }

  // The stream closed (either side, or the connection): the exchange gives everything back.
  void OnClose(bool reset_by_peer) {
    reset_ = true;  // gone: nothing more is submitted for it
    if (!finished_ && !x_.idle()) {
      x_.Abandon(reset_by_peer ? "client reset stream" : "stream closed");
    }
    finished_ = true;
    if (!held_in_.empty()) {
      // The stream is gone; its unacknowledged bytes still hold the connection's window.
      nghttp2_session_consume_connection(s_.ng_, held_in_.size());
      held_in_.clear();
    }
    x_.OnClosed();
  }

  // ---- Downstream ----
  std::string_view protocol() const override { return "HTTP/2.0"; }
  bool closing() const override { return reset_ || s_.conn_.closing(); }
  size_t queued() const override { return body_.queued(); }
  bool WriteBlocked() override { return queued() > core::Conn::kHighWater; }

  bool WriteInterim(const MessageHead& head) override {
    H2HeadScratch& scratch = ThreadHeadScratch();
    BuildClientResponseFields(head, Framing::kNone, false, {}, HeadEdits{}, &scratch.store,
                              &scratch.fields);
    return SubmitHeaders(scratch, /*end_stream=*/false, /*final=*/false);
  }
  void WriteContinue() override {
    const nghttp2_nv nv = Nv(":status", "100");
    nghttp2_submit_headers(s_.ng_, NGHTTP2_FLAG_NONE, id_, nullptr, &nv, 1, nullptr);
    s_.conn_.WantFlush();
  }
  // RFC 8441 §5: the backend's 101 opens the tunnel as a 200 whose DATA carry the backend's
  // bytes; its WebSocket accept answered torii's key, not the client's, and stays behind.
  int WriteSwitchingProtocols(const MessageHead& head, std::string_view extra) override {
    if (!tunnel_ || reset_) {
      return 0;
    }
    static const std::string kHandshakeOnly[] = {"sec-websocket-accept"};
    MessageHead opened = head;
    opened.status = 200;
    opened.reason = "OK";
    HeadEdits edits;
    edits.remove = kHandshakeOnly;
    H2HeadScratch& scratch = ThreadHeadScratch();
    BuildClientResponseFields(opened, Framing::kUntilClose, false, extra, edits, &scratch.store,
                              &scratch.fields);
    return SubmitHeaders(scratch, /*end_stream=*/false, /*final=*/true) ? 200 : 0;
  }
  void EndTunnel(bool abort) override {
    if (abort) {
      Reset(NGHTTP2_CANCEL);
      return;
    }
    WriteEnd({});  // END_STREAM once the backend's last bytes are out
    Finished();
  }
  void WriteHead(const MessageHead& head, ResponseBody body, bool head_request, bool* /*close*/,
                 std::string_view extra, const HeadEdits& edits) override {
    H2HeadScratch& scratch = ThreadHeadScratch();
    BuildClientResponseFields(head,
                              body == ResponseBody::kLength ? Framing::kContentLength
                              : body == ResponseBody::kUnknown
                                  ? Framing::kUntilClose  // DATA frames end it
                                  : Framing::kNone,
                              head_request, extra, edits, &scratch.store, &scratch.fields);
    SubmitHeaders(scratch, head_request || body == ResponseBody::kNone, /*final=*/true);
  }
  void WriteBody(std::string_view bytes, bool /*lend*/) override {
    if (reset_ || no_body_ || bytes.empty()) {
      return;
    }
    body_.Append(bytes);
    Resume();
  }
  void WriteStoredBody(std::string_view bytes, const std::shared_ptr<const void>& owner) override {
    if (reset_ || no_body_ || bytes.empty()) {
      return;
    }
    body_.AppendPinned(bytes, owner);
    Resume();
  }
  bool WriteEnd(std::span<const HeaderView> trailers) override {
    body_.End(trailers);
    Resume();
    return false;
  }
  size_t WriteLocalReply(int status, bool /*close*/, std::string_view extra, std::string_view body,
                         std::string_view content_type) override {
    std::array<char, 64> text;
    const std::string_view sent = content_type.empty() ? LocalReplyText(status, &text) : body;
    H2HeadScratch& scratch = ThreadHeadScratch();
    BuildLocalReplyFields(status, extra, sent.size(),
                          content_type.empty() ? "text/plain" : content_type, &scratch.store,
                          &scratch.fields);
    const bool no_body = head_request_ || sent.empty();
    if (!no_body) {
      body_.Append(sent);
    }
    body_.End({});
    SubmitHeaders(scratch, no_body, /*final=*/true);
    return sent.size();
  }

  void SetTimer(uint64_t ms) override {
    deadline_ms_ = s_.ctx_.worker().now_ms() + ms;
    s_.ArmAt(deadline_ms_);
  }
  void ClearTimer() override { deadline_ms_ = 0; }
  // Request DATA is held back by not acknowledging it (the stream's window closes); nothing to
  // pause on the connection, which other streams share.
  void PauseReading() override {}
  void ResumeReading() override {}
  // The exchange takes client bytes again (or the tunnel opened): what was held goes, then
  // the client's end if it came meanwhile.
  void Continue() override {
    if (!held_in_.empty() && !Waiting()) {
      std::string bytes = std::move(held_in_);
      held_in_.clear();
      Consume(bytes.size());
      x_.OnRequestBody(bytes);
    }
    if (end_held_ && held_in_.empty() && !Waiting() && !x_.idle()) {
      end_held_ = false;
      DeliverEnd();
    }
  }
  void Finished() override {
    finished_ = true;
    DropHeldRequest();
    // A response that ended before the request did: the rest of the request is not wanted
    // (RST_STREAM NO_ERROR once the response is out, RFC 9113 §8.1).
    reset_after_response_ = !remote_done_;
    s_.conn_.WantFlush();
  }
  void CloseAfterFlush() override { Reset(NGHTTP2_INTERNAL_ERROR); }
  void Close() override { Reset(NGHTTP2_INTERNAL_ERROR); }
  void Abort() override { Reset(NGHTTP2_CANCEL); }

  Exchange& exchange() { return x_; }
  uint64_t deadline_ms() const { return deadline_ms_; }
  // Between the stream's first HEADERS frame and the end of its header block, the timer is
  // header_timeout (the exchange's own timers come after).
  void AwaitHead(uint64_t ms) {
    awaiting_head_ = true;
    deadline_ms_ = s_.ctx_.worker().now_ms() + ms;
  }
  bool awaiting_head() const { return awaiting_head_; }
  bool finished() const { return finished_; }
  void clear_deadline() { deadline_ms_ = 0; }
  bool reset_after_response() const { return reset_after_response_; }

  // nghttp2's data source: what the response queue holds.
  ssize_t Read(size_t length, uint32_t* flags) { return body_.Read(s_.ng_, id_, length, flags); }
  H2BodyQueue& body() { return body_; }
  int32_t id() const { return id_; }

 private:
  // Submits the head BuildClientResponseFields left in `scratch`.
  bool SubmitHeaders(H2HeadScratch& scratch, bool end_stream, bool final) {
    if (reset_) {
      return false;
    }
    std::vector<nghttp2_nv>& nv = scratch.nv;
    nv.clear();
    AppendNv(scratch.fields, s_.cfg().request_id_header, &nv);
    int rv;
    if (!final) {
      rv = nghttp2_submit_headers(s_.ng_, NGHTTP2_FLAG_NONE, id_, nullptr, nv.data(), nv.size(),
                                  nullptr);
    } else if (end_stream) {
      no_body_ = true;
      body_.Clear(kKeptBuffer);
      rv = nghttp2_submit_response(s_.ng_, id_, nv.data(), nv.size(), nullptr);
    } else {
      nghttp2_data_provider provider;
      provider.source.ptr = this;
      provider.read_callback = &H2Session::ReadBody;
      rv = nghttp2_submit_response(s_.ng_, id_, nv.data(), nv.size(), &provider);
    }
    s_.conn_.WantFlush();
    return rv == 0;
  }
  // The request's trailer fields as views into trailer_store_ (complete once the stream ended).
  std::span<const HeaderView> Trailers() {
    trailer_views_.clear();
    const std::string_view store(trailer_store_);
    for (size_t i = 0; i < trailer_fields_.size(); ++i) {
      const auto [at, name] = trailer_fields_[i];
      const size_t end =
          i + 1 < trailer_fields_.size() ? trailer_fields_[i + 1].first : store.size();
      trailer_views_.push_back(
          HeaderView{store.substr(at, name), store.substr(at + name, end - at - name)});
    }
    return trailer_views_;
  }
  // The exchange takes no client bytes now: it holds the request (a limit's delay, early
  // data, a backend behind), or the stream is an extended CONNECT (RFC 8441) whose tunnel is
  // not open yet.
  bool Waiting() const { return x_.held() || (tunnel_ && !x_.tunnel()); }
  // Client bytes wait, unacknowledged (the stream's window bounds them), while the exchange
  // does and behind bytes already waiting.
  bool Holds() const { return Waiting() || !held_in_.empty(); }
  // The client's END_STREAM to the exchange: the request's end, or the tunnel's client side.
  void DeliverEnd() {
    if (tunnel_) {
      x_.EndTunnel("client closed", /*abort=*/false);
    } else {
      x_.OnRequestEnd(false, Trailers());
    }
  }
  void Resume() {
    body_.Resume(s_.ng_, id_);
    s_.conn_.WantFlush();
  }
  void Consume(size_t n) {
    nghttp2_session_consume(s_.ng_, id_, n);
    s_.conn_.WantFlush();
  }
  // Request DATA held back for an exchange that no longer wants it: acknowledged, so the
  // client's windows (the connection's too) open again for its other streams.
  void DropHeldRequest() {
    if (!held_in_.empty()) {
      Consume(held_in_.size());
      held_in_.clear();
    }
    end_held_ = false;
  }
  void Reset(uint32_t code) {
    if (reset_) {
      return;
    }
    reset_ = true;
    finished_ = true;
    DropHeldRequest();
    nghttp2_submit_rst_stream(s_.ng_, NGHTTP2_FLAG_NONE, id_, code);
    s_.conn_.WantFlush();
  }

  H2Session& s_;
  int32_t id_;
  Exchange x_;
  H2RequestFields fields_;  // the request head as it arrives
  uint64_t body_bytes_ = 0;
  uint64_t deadline_ms_ = 0;   // the exchange's timer (0: none)
  std::string held_in_;        // request DATA the exchange is not taking yet (unacknowledged)
  H2BodyQueue body_;           // the response body for nghttp2 to frame
  std::string trailer_store_;  // the request trailers' names and values, back to back
  std::vector<std::pair<uint32_t, uint32_t>> trailer_fields_;  // each: where, name length
  std::vector<HeaderView> trailer_views_;                      // Trailers()
  size_t trailer_bytes_ = 0;
  bool trailers_too_large_ = false;
  bool head_request_ = false;
  bool awaiting_head_ = false;  // HEADERS begun, the header block not complete yet
  bool remote_done_ = false;    // END_STREAM from the client
  bool end_held_ = false;       // ... while request bytes were still held
  bool finished_ = false;       // the exchange is over (or the stream was reset by us)
  bool reset_ = false;
  bool reset_after_response_ = false;
  bool no_body_ = false;  // the response has no DATA (HEAD, 204, 304, ...)
  bool tunnel_ = false;   // an extended CONNECT (RFC 8441): DATA both ways are a tunnel's
};

// =============================================================================================
// H2Session

H2Session::H2Session(ProxyContext& ctx, core::Conn& conn, ClientConn client)
    : ctx_(ctx), conn_(conn), client_(std::move(client)), reset_budget_(kResetBurst) {
  client_.host = this;
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &OnFrameSend);
  nghttp2_session_callbacks_set_send_data_callback(cbs, &SendData);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Request DATA is acknowledged as the exchange takes it (Stream::Consume).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  // Backstops behind torii's own rapid-reset budget; CONTINUATION floods; the header block.
  nghttp2_option_set_stream_reset_rate_limit(opt, 2 * static_cast<uint64_t>(kResetBurst),
                                             static_cast<uint64_t>(kResetRate));
  nghttp2_option_set_max_continuations(opt, 16);
  nghttp2_option_set_no_closed_streams(opt, 1);
  const ProxyLimits& l = cfg().limits;
  nghttp2_session_server_new3(&ng_, cbs, this, opt, memory_.mem());
  memory_.NoteSessionMade();
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l.max_concurrent_streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(l.header_bytes)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
      // RFC 8441: WebSocket (and the other upgrades routes tunnel) by extended CONNECT.
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, settings,
                          std::size(settings) - (cfg().upgrades ? 0 : 1));
  nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  reset_refill_ms_ = ctx_.worker().now_ms();
  idle_since_ms_ = ctx_.worker().now_ms();
  ctx_.stats().h2_connections++;
  conn_.WantFlush();
  ArmTimer();
}

H2Session::~H2Session() {
  streams_.clear();
  spare_.clear();
  nghttp2_session_del(ng_);
}

H2Session::Stream* H2Session::Find(int32_t id) {
  for (const std::unique_ptr<Stream>& st : streams_) {
    if (st->id() == id) {
      return st.get();
    }
  }
  return nullptr;
}

Exchange* H2Session::FindExchange(uint32_t id) {
  Stream* st = Find(static_cast<int32_t>(id));
  return st != nullptr ? &st->exchange() : nullptr;
}

Exchange* H2Session::FindWaiter(uint64_t ticket) {
  for (const std::unique_ptr<Stream>& st : streams_) {
    if (st->exchange().waiter_ticket() == ticket) {
      return &st->exchange();
    }
  }
  return nullptr;
}

int H2Session::OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* s = static_cast<H2Session*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  if (s->goaway_ || s->streams_.size() >= s->cfg().limits.max_concurrent_streams) {
    // Over SETTINGS_MAX_CONCURRENT_STREAMS (before the client saw it), or shutting down.
    nghttp2_submit_rst_stream(s->ng_, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  std::unique_ptr<Stream> st;
  if (s->spare_.empty()) {
    st = std::make_unique<Stream>(*s, frame->hd.stream_id);
  } else {
    st = std::move(s->spare_.back());
    s->spare_.pop_back();
    st->Reuse(frame->hd.stream_id);
  }
  st->AwaitHead(s->cfg().limits.header_timeout_ms);
  s->spares_trimmed_ = false;
  s->awaiting_.push_back(frame->hd.stream_id);  // its header_timeout (Rearm)
  s->streams_.push_back(std::move(st));
  return 0;
}

int H2Session::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t /*flags*/,
                        void* user) {
  auto* s = static_cast<H2Session*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  Stream* st = s->Find(frame->hd.stream_id);
  if (st == nullptr) {
    return 0;
  }
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    st->AddField(n, v);
  } else {
    st->AddTrailer(n, v);  // trailing HEADERS (nghttp2 refuses a second header block otherwise)
  }
  return 0;
}

int H2Session::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* s = static_cast<H2Session*>(user);
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      Stream* st = s->Find(frame->hd.stream_id);
      if (st == nullptr) {
        return 0;
      }
      const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        st->DispatchHead(end);
      } else if (end) {
        st->OnRemoteEnd();  // trailers end the request
      }
      return 0;
    }
    case NGHTTP2_DATA:
      if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        if (Stream* st = s->Find(frame->hd.stream_id)) {
          st->OnRemoteEnd();
        }
      }
      return 0;
    case NGHTTP2_RST_STREAM:
      // Rapid reset is streams opened and cancelled while torii works on them; a reset of a
      // stream already answered (or unknown: a peer's reply to frames that crossed) costs
      // nothing and is not counted.
      if (Stream* st = s->Find(frame->hd.stream_id); st != nullptr && !st->finished()) {
        s->NoteClientReset();
      }
      return 0;
    default:
      return 0;
  }
}

int H2Session::OnDataChunk(nghttp2_session*, uint8_t /*flags*/, int32_t stream_id,
                           const uint8_t* data, size_t len, void* user) {
  auto* s = static_cast<H2Session*>(user);
  Stream* st = s->Find(stream_id);
  if (st == nullptr) {
    nghttp2_session_consume(s->ng_, stream_id, len);
    return 0;
  }
  st->OnData(std::string_view(reinterpret_cast<const char*>(data), len));
  return 0;
}

int H2Session::OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
  auto* s = static_cast<H2Session*>(user);
  auto it = std::find_if(s->streams_.begin(), s->streams_.end(),
                         [&](const std::unique_ptr<Stream>& st) { return st->id() == stream_id; });
  if (it == s->streams_.end()) {
    return 0;
  }
  if (error_code != NGHTTP2_NO_ERROR) {
    s->ctx_.stats().h2_resets++;
  }
  // Called from nghttp2_session_mem_recv / mem_send only (OnRecv, Flush): no exchange is on
  // the stack, so the stream can go now.
  std::unique_ptr<Stream> st = std::move(*it);
  *it = std::move(s->streams_.back());  // (order plays no part)
  s->streams_.pop_back();
  st->OnClose(error_code != NGHTTP2_NO_ERROR);
  if (s->spare_.size() < kSpareStreams) {
    st->Park();
    s->spare_.push_back(std::move(st));
  }
  if (s->streams_.empty()) {
    s->idle_since_ms_ = s->ctx_.worker().now_ms();
  }
  return 0;
}

int H2Session::OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* s = static_cast<H2Session*>(user);
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    Stream* st = s->Find(frame->hd.stream_id);
    if (st != nullptr && st->reset_after_response()) {
      nghttp2_submit_rst_stream(s->ng_, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
  }
  return 0;
}

ssize_t H2Session::ReadBody(nghttp2_session*, int32_t /*stream_id*/, uint8_t* /*buf*/,
                            size_t length, uint32_t* data_flags, nghttp2_data_source* source,
                            void* /*user*/) {
  return static_cast<Stream*>(source->ptr)->Read(length, data_flags);
}

int H2Session::SendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                        size_t length, nghttp2_data_source* source, void* user) {
  auto* s = static_cast<H2Session*>(user);
  auto* st = static_cast<Stream*>(source->ptr);
  bool drained = false;
  H2BodyQueue::SendDataFrame(s->conn_, *frame, framehd, length, st->body(), &drained);
  if (drained) {
    s->writable_.push_back(st->id());  // its exchange may go on (OnWritable)
  }
  return 0;
}

void H2Session::NoteClientReset() {
  const uint64_t now = ctx_.worker().now_ms();
  reset_budget_ =
      std::min(kResetBurst,
               reset_budget_ + static_cast<double>(now - reset_refill_ms_) * kResetRate / 1000.0);
  reset_refill_ms_ = now;
  reset_budget_ -= 1;
  if (reset_budget_ < 0 && !goaway_) {
    spdlog::warn("client {}: HTTP/2 streams reset faster than {}/s: GOAWAY", client_.peer,
                 kResetRate);
    ctx_.stats().h2_calm++;
    goaway_ = true;
    nghttp2_session_terminate_session(ng_, NGHTTP2_ENHANCE_YOUR_CALM);
    AbandonAll("rapid reset");
  }
}

void H2Session::OnRecv(core::Conn& conn, std::span<const char> data) {
  const ssize_t n =
      nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(data.data()), data.size());
  if (n < 0) {
    // A connection error nghttp2 could not answer itself (bad preface, flood): end it.
    spdlog::debug("client {}: HTTP/2: {}", client_.peer, nghttp2_strerror(static_cast<int>(n)));
    AbandonAll("protocol error");
    conn.Close();
    return;
  }
  conn.WantFlush();
  Rearm();
}

void H2Session::Flush() {
  for (int round = 0; round < 8; ++round) {
    if (!SendFrames(ng_, conn_)) {
      AbandonAll("protocol error");
      conn_.Close();
      return;
    }
    if (writable_.empty() || conn_.closing()) {
      break;
    }
    // Streams whose queue drained: their exchanges may go on (resume a paused backend, serve
    // more of a cached body), which queues more to send.
    std::vector<int32_t> ids;
    ids.swap(writable_);
    for (int32_t id : ids) {
      if (Stream* st = Find(id)) {
        st->exchange().OnWritable();
      }
    }
  }
  MaybeFinish();
  if (!conn_.closing()) {
    Rearm();  // streams may have ended (idle from now) or begun
  }
}

void H2Session::MaybeFinish() {
  if (conn_.closing()) {
    return;
  }
  if (!nghttp2_session_want_read(ng_) && !nghttp2_session_want_write(ng_)) {
    conn_.CloseAfterFlush();  // GOAWAY both ways, or a connection error: nothing more to do
    return;
  }
  if (goaway_ && streams_.empty() && !nghttp2_session_want_write(ng_)) {
    conn_.CloseAfterFlush();
  }
}

void H2Session::OnFlush(core::Conn& /*conn*/) { Flush(); }

void H2Session::OnTransportReady(core::Conn& /*conn*/) {
  // Streams that came in early data may wait for this; each may end (and go) as it resumes.
  std::vector<int32_t> ids;
  ids.reserve(streams_.size());
  for (const std::unique_ptr<Stream>& st : streams_) {
    ids.push_back(st->id());
  }
  for (int32_t id : ids) {
    if (Stream* st = Find(id)) {
      st->exchange().OnHandshakeDone();
    }
  }
  Flush();
}

void H2Session::OnWritable(core::Conn& /*conn*/) { Flush(); }

void H2Session::ArmAt(uint64_t at) {
  if (armed_ms_ == 0 || at < armed_ms_) {
    armed_ms_ = at;
    conn_.SetTimer(at);
  }
}

void H2Session::Rearm() {
  const bool idle = streams_.empty();
  if (idle != idle_listed_) {
    idle_listed_ = idle;
    // An idle connection may make room at the connection limit (Worker eviction).
    conn_.SetIdle(idle ? core::Conn::Idle::kKeepAlive : core::Conn::Idle::kNo);
    if (idle) {
      ArmAt(IdleDue());
    }
  }
  for (int32_t id : awaiting_) {
    if (Stream* st = Find(id); st != nullptr && st->awaiting_head()) {
      ArmAt(st->deadline_ms());
    }
  }
  awaiting_.clear();
  if (armed_ms_ == 0) {
    ArmTimer();
  }
}

uint64_t H2Session::IdleDue() const {
  const uint64_t end = idle_since_ms_ + cfg().limits.idle_timeout_ms;
  return spares_trimmed_ ? end : std::min(end, idle_since_ms_ + kSpareTrimMs);
}

void H2Session::TrimSpares() {
  spares_trimmed_ = true;
  spare_.clear();
  spare_.shrink_to_fit();
  if (!nghttp2_session_want_write(ng_)) {
    memory_.ReleaseIdlePages();
  }
}

void H2Session::ArmTimer() {
  uint64_t due = 0;
  for (const std::unique_ptr<Stream>& st : streams_) {
    if (st->deadline_ms() != 0 && (due == 0 || st->deadline_ms() < due)) {
      due = st->deadline_ms();
    }
  }
  const bool idle = streams_.empty();
  if (idle) {
    const uint64_t at = IdleDue();
    due = due == 0 ? at : std::min(due, at);
  }
  if (idle != idle_listed_) {
    idle_listed_ = idle;
    // An idle connection may make room at the connection limit (Worker eviction).
    conn_.SetIdle(idle ? core::Conn::Idle::kKeepAlive : core::Conn::Idle::kNo);
  }
  if (due == armed_ms_) {
    return;  // already armed for it (or cleared)
  }
  armed_ms_ = due;
  if (due != 0) {
    conn_.SetTimer(due);
  } else {
    conn_.ClearTimer();
  }
}

void H2Session::OnTimer(core::Conn& conn) {
  const uint64_t now = ctx_.worker().now_ms();
  armed_ms_ = 0;  // it fired
  // The exchanges whose timer is due; collected first, as an exchange may set its timer again.
  std::vector<int32_t> due;
  for (const std::unique_ptr<Stream>& st : streams_) {
    if (st->deadline_ms() != 0 && st->deadline_ms() <= now) {
      due.push_back(st->id());
    }
  }
  for (int32_t id : due) {
    Stream* st = Find(id);
    if (st == nullptr || st->deadline_ms() == 0 || st->deadline_ms() > now) {
      continue;
    }
    st->clear_deadline();
    if (st->awaiting_head()) {
      // A header block left unfinished (slow or missing CONTINUATION): nothing else may be
      // sent on the connection meanwhile, so it ends (slowloris, HTTP/2 flavour).
      spdlog::debug("client {}: HTTP/2 header block not complete within header_timeout",
                    client_.peer);
      goaway_ = true;
      nghttp2_session_terminate_session(ng_, NGHTTP2_PROTOCOL_ERROR);
      AbandonAll("header timeout");
      Flush();
      conn.CloseAfterFlush();
      return;
    }
    st->exchange().OnTimer();
  }
  if (streams_.empty() && !spares_trimmed_ && now >= idle_since_ms_ + kSpareTrimMs) {
    TrimSpares();
  }
  if (streams_.empty() && now >= idle_since_ms_ + cfg().limits.idle_timeout_ms) {
    // Idle: GOAWAY (NO_ERROR, the last stream we processed), then close.
    goaway_ = true;
    nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    Flush();
    conn.CloseAfterFlush();
    return;
  }
  conn.WantFlush();
  ArmTimer();
}

void H2Session::AbandonAll(std::string_view note) {
  for (const std::unique_ptr<Stream>& st : streams_) {
    st->exchange().Abandon(note);
  }
}

void H2Session::OnEof(core::Conn& conn) {
  client_.peer_eof = true;
  AbandonAll("client closed");
  conn.Close();
}

void H2Session::OnError(core::Conn& conn, core::Error /*error*/) {
  AbandonAll("client reset");
  conn.Close();
}

void H2Session::OnDrain(core::Conn& conn) {
  // Graceful shutdown: GOAWAY with the last stream we processed; the streams in flight finish.
  client_.draining = true;
  if (!goaway_) {
    goaway_ = true;
    nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
  }
  conn.WantFlush();
}

void H2Session::OnClosed(core::Conn& /*conn*/) {
  for (const std::unique_ptr<Stream>& st : streams_) {
    st->OnClose(/*reset_by_peer=*/false);
  }
  streams_.clear();
}

}  // namespace torii::http
