// http/h2_session.cc: see h2_session.h.
#include "http/h2_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "base/text.h"
#include "http/h2_body.h"
#include "http/h2_fields.h"
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
// kSpareTrimMs (a client's requests come in bursts: between two, a connection is idle).
constexpr size_t kSpareStreams = 32;
constexpr uint64_t kSpareTrimMs = 1000;
// The buffers a spare stream keeps.
constexpr size_t kKeptBuffer = 16 * 1024;
// Frames held for a client that does not read (Emit) past which nothing more is read from it.
constexpr size_t kHeldOutput = 64 * 1024;

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
        reset_after_response_ = no_body_ = tunnel_ = scheduled_ = response_sent_ = false;
  }

  // ---- The request, from the codec ----
  void AddField(std::string_view name, std::string_view value) { fields_.Add(name, value); }
  // A field of the request's trailing HEADERS (the codec checked it as RFC 9113 §8.2 says),
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
      s_.codec_.Consume(0, held_in_.size());
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
    if (reset_) {
      return;
    }
    const H2OutField status[] = {{":status", "100"}};
    s_.codec_.SendHeaders(id_, status, /*end_stream=*/false);
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
      Reset(H2Error::kCancel);
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
    const std::string_view sent = StatusHasNoContent(status) ? std::string_view()
                                  : content_type.empty()     ? LocalReplyText(status, &text)
                                                             : body;
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
    if (response_sent_) {
      ResponseSent();
    }
    s_.conn_.WantFlush();
  }
  void CloseAfterFlush() override { Reset(H2Error::kInternal); }
  void Close() override { Reset(H2Error::kInternal); }
  void Abort() override { Reset(H2Error::kCancel); }

  Exchange& exchange() { return x_; }
  uint64_t deadline_ms() const { return deadline_ms_; }
  // Between the stream's HEADERS and the end of its header block (the connection's
  // header_timeout covers it: H2Session::Rearm).
  void AwaitHead() { awaiting_head_ = true; }
  bool awaiting_head() const { return awaiting_head_; }
  // The decoded head or trailers passed the header list bound: 431 (or the trailers' 431).
  void TooLarge() {
    if (awaiting_head_) {
      fields_.MarkTooLarge();
    } else {
      trailers_too_large_ = true;
    }
  }
  bool finished() const { return finished_; }
  void clear_deadline() { deadline_ms_ = 0; }
  H2BodyQueue& body() { return body_; }
  int32_t id() const { return id_; }
  bool reset() const { return reset_; }
  // In the session's sending_ list (Schedule), or taken off it.
  bool scheduled() const { return scheduled_; }
  void set_scheduled(bool on) { scheduled_ = on; }
  // The response's END_STREAM went out (on its HEADERS, last DATA or trailers).
  void ResponseSent() {
    response_sent_ = true;
    if (reset_after_response_ && !reset_) {
      reset_ = true;
      s_.codec_.Reset(id_, H2Error::kNoError);
    }
  }

 private:
  // Sends the head BuildClientResponseFields left in `scratch`.
  bool SubmitHeaders(H2HeadScratch& scratch, bool end_stream, bool final) {
    if (reset_) {
      return false;
    }
    if (final && end_stream) {
      no_body_ = true;
      body_.Clear(kKeptBuffer);
    }
    const bool sent = s_.codec_.SendHeaders(id_, scratch.fields, end_stream);
    if (sent && final && end_stream) {
      ResponseSent();
    } else if (sent && final) {
      s_.Schedule(id_);  // its body (or its end) follows as DATA
    }
    s_.conn_.WantFlush();
    return sent;
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
    if (!no_body_ && !response_sent_) {
      s_.Schedule(id_);
    }
    s_.conn_.WantFlush();
  }
  void Consume(size_t n) {
    s_.codec_.Consume(id_, n);
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
  void Reset(H2Error code) {
    if (reset_) {
      return;
    }
    reset_ = true;
    finished_ = true;
    DropHeldRequest();
    s_.codec_.Reset(id_, code);
    s_.conn_.WantFlush();
  }

  H2Session& s_;
  int32_t id_;
  Exchange x_;
  H2RequestFields fields_;  // the request head as it arrives
  uint64_t body_bytes_ = 0;
  uint64_t deadline_ms_ = 0;   // the exchange's timer (0: none)
  std::string held_in_;        // request DATA the exchange is not taking yet (unacknowledged)
  H2BodyQueue body_;           // the response body, framed as the windows allow (SendBodies)
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
  bool scheduled_ = false;
  bool response_sent_ = false;  // END_STREAM sent
};

// =============================================================================================
// H2Session

namespace {

H2Codec::Settings CodecSettings(const ProxyConfig& cfg) {
  H2Codec::Settings settings;
  settings.max_header_list = static_cast<uint32_t>(cfg.limits.header_bytes);
  settings.connection_window = kConnectionWindow;
  settings.max_streams = cfg.limits.max_concurrent_streams;
  // RFC 8441: WebSocket (and the other upgrades routes tunnel) by extended CONNECT.
  settings.connect_protocol = cfg.upgrades;
  return settings;
}

}  // namespace

H2Session::H2Session(ProxyContext& ctx, core::Conn& conn, ClientConn client)
    : ctx_(ctx),
      conn_(conn),
      client_(std::move(client)),
      codec_(*this, CodecSettings(ctx.config())),
      reset_budget_(kResetBurst) {
  client_.host = this;
  reset_refill_ms_ = ctx_.worker().now_ms();
  idle_since_ms_ = ctx_.worker().now_ms();
  ctx_.stats().h2_connections++;
  conn_.WantFlush();
  ArmTimer();
}

H2Session::~H2Session() {
  streams_.clear();
  spare_.clear();
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

// ---- The codec's events ----

void H2Session::OnBegin(int32_t id) {
  std::unique_ptr<Stream> st;
  if (spare_.empty()) {
    st = std::make_unique<Stream>(*this, id);
  } else {
    st = std::move(spare_.back());
    spare_.pop_back();
    st->Reuse(id);
  }
  st->AwaitHead();
  spares_trimmed_ = false;
  streams_.push_back(std::move(st));
}

void H2Session::OnField(int32_t id, std::string_view name, std::string_view value) {
  if (Stream* st = Find(id)) {
    if (st->awaiting_head()) {
      st->AddField(name, value);
    } else {
      st->AddTrailer(name, value);
    }
  }
}

void H2Session::OnHeaders(int32_t id, bool end_stream) {
  Stream* st = Find(id);
  if (st == nullptr || calm_) {
    return;  // (the connection is about to end: nothing more reaches a backend)
  }
  if (st->awaiting_head()) {
    st->DispatchHead(end_stream);
  } else if (end_stream) {
    st->OnRemoteEnd();  // trailers end the request
  }
}

void H2Session::OnData(int32_t id, std::string_view bytes) {
  if (Stream* st = Find(id)) {
    st->OnData(bytes);
  } else {
    codec_.Consume(id, bytes.size());
  }
}

void H2Session::OnDataEnd(int32_t id) {
  if (Stream* st = Find(id)) {
    st->OnRemoteEnd();
  }
}

void H2Session::OnReset(int32_t id) { NoteEarlyEnd(id); }

void H2Session::OnStreamError(int32_t id) { NoteEarlyEnd(id); }

void H2Session::NoteEarlyEnd(int32_t id) {
  // Rapid reset is streams opened and ended early while torii works on them: by the client's
  // RST_STREAM, or by a stream error it provoked (a malformed request, DATA after its
  // END_STREAM, a broken window). A stream already answered costs nothing, one the exchange
  // gave up is torii's doing: neither is counted.
  if (Stream* st = Find(id); st != nullptr && !st->finished() && !st->reset()) {
    NoteClientReset();
  }
}

void H2Session::OnTooLarge(int32_t id) {
  if (Stream* st = Find(id)) {
    st->TooLarge();
  }
}

void H2Session::ProcessClosed() {
  codec_.TakeClosed(&closed_);
  for (const auto& [id, code] : closed_) {
    auto it = std::find_if(streams_.begin(), streams_.end(),
                           [&](const std::unique_ptr<Stream>& st) { return st->id() == id; });
    if (it == streams_.end()) {
      continue;
    }
    if (code != H2Error::kNoError) {
      ctx_.stats().h2_resets++;
    }
    std::unique_ptr<Stream> st = std::move(*it);
    *it = std::move(streams_.back());  // (order plays no part)
    streams_.pop_back();
    st->OnClose(code != H2Error::kNoError);
    if (spare_.size() < kSpareStreams) {
      st->Park();
      spare_.push_back(std::move(st));
    }
    if (streams_.empty()) {
      idle_since_ms_ = ctx_.worker().now_ms();
    }
  }
}

void H2Session::NoteClientReset() {
  const uint64_t now = ctx_.worker().now_ms();
  reset_budget_ =
      std::min(kResetBurst,
               reset_budget_ + static_cast<double>(now - reset_refill_ms_) * kResetRate / 1000.0);
  reset_refill_ms_ = now;
  reset_budget_ -= 1;
  if (reset_budget_ < 0) {
    calm_ = true;  // acted on once Receive returns (OnRecv)
  }
}

void H2Session::Terminate(H2Error code, std::string_view note) {
  codec_.Goaway(code);
  AbandonAll(note);
  ProcessClosed();
  Emit(/*closing=*/true);
  conn_.CloseAfterFlush();
}

void H2Session::OnRecv(core::Conn& /*conn*/, std::span<const char> data) {
  const std::string_view bytes(data.data(), data.size());
  if (recv_paused_ || !unread_.empty()) {
    // Receive completions already in the ring when reading paused still come: kept, not
    // answered, until the client reads again (FeedHeld).
    unread_.append(bytes);
    return;
  }
  const size_t taken = Process(bytes);
  if (taken < bytes.size() && !conn_.closing()) {
    unread_.assign(bytes.substr(taken));  // OnFlush writes what is held, then goes on
  }
}

size_t H2Session::Process(std::string_view bytes) {
  size_t taken = 0;
  const bool ok = codec_.Receive(bytes, kHeldOutput, &taken);
  ProcessClosed();
  if (!ok) {
    // A connection error (bad preface, a frame breaking the protocol, a flood): the codec's
    // GOAWAY says why, if it could speak HTTP/2 at all (Terminate adds none to a failed codec).
    spdlog::debug("client {}: HTTP/2: {}", client_.peer, codec_.failure());
    Terminate(H2Error::kProtocol, "protocol error");
    return bytes.size();
  }
  if (calm_ && !codec_.goaway_sent()) {
    spdlog::warn("client {}: HTTP/2 streams reset faster than {}/s: GOAWAY", client_.peer,
                 kResetRate);
    ctx_.stats().h2_calm++;
    Terminate(H2Error::kEnhanceYourCalm, "rapid reset");
    return bytes.size();
  }
  conn_.WantFlush();
  Rearm();
  return taken;
}

void H2Session::FeedHeld() {
  while (!unread_.empty() && !recv_paused_ && !conn_.closing()) {
    unread_.erase(0, Process(unread_));
    Flush();  // writes the answers, or pauses reading again (Emit)
  }
  if (unread_.empty() || conn_.closing()) {
    std::string().swap(unread_);
    if (!recv_paused_ && !conn_.closing()) {
      conn_.ResumeRecv();
    }
  }
}

void H2Session::Emit(bool closing) {
  std::string& out = codec_.output();
  if (conn_.closing()) {
    out.clear();
    return;
  }
  if (!out.empty()) {
    if (conn_.WriteBlocked() && !closing) {
      // OnWritable brings it back. Meanwhile a client that sends and does not read would have
      // torii answer into this string without end (each bodiless response, each reset it
      // provokes): past kHeldOutput nothing more is read from it until it reads.
      if (out.size() > kHeldOutput && !recv_paused_) {
        recv_paused_ = true;
        conn_.PauseRecv();
      }
      return;
    }
    conn_.Write(out);
    out.clear();
  }
  if (recv_paused_ && !conn_.WriteBlocked()) {
    recv_paused_ = false;
    if (unread_.empty()) {
      conn_.ResumeRecv();
    } else {
      conn_.WantFlush();  // OnFlush feeds what was held first (not from inside a Flush)
    }
  }
}

void H2Session::Schedule(int32_t id) {
  Stream* st = Find(id);
  if (st != nullptr && !st->scheduled()) {
    st->set_scheduled(true);
    sending_.push_back(id);
  }
}

void H2Session::SendBodies() {
  // Passes over the list, one DATA frame per stream each, until every stream sent what it
  // has or waits for a window, or the connection is full: then the list turns so that the
  // stream that was next goes first next time.
  bool progress = true;
  while (progress && !sending_.empty()) {
    progress = false;
    for (size_t k = 0; k < sending_.size();) {
      if (conn_.closing() || conn_.WriteBlocked()) {
        std::rotate(sending_.begin(), sending_.begin() + static_cast<std::ptrdiff_t>(k),
                    sending_.end());
        return;
      }
      const int32_t id = sending_[k];
      Stream* st = Find(id);
      bool done = st == nullptr || st->reset() || !codec_.is_open(id);
      if (!done) {
        bool drained = false;
        switch (SendBodyStep(codec_, id, st->body(), conn_, &drained)) {
          case BodyStep::kWaiting:
            done = true;  // a later WriteBody or WriteEnd schedules it again
            break;
          case BodyStep::kBlocked:
            break;  // a WINDOW_UPDATE brings it back (Flush after Receive)
          case BodyStep::kSent:
            progress = true;
            break;
          case BodyStep::kEnded:
            st->ResponseSent();
            done = true;
            progress = true;
            break;
        }
        if (drained) {
          writable_.push_back(id);  // its exchange may go on (OnWritable)
        }
      }
      if (done) {
        if (st != nullptr) {
          st->set_scheduled(false);
        }
        sending_.erase(sending_.begin() + static_cast<std::ptrdiff_t>(k));
        continue;
      }
      ++k;
    }
  }
}

void H2Session::Flush() {
  for (int round = 0; round < 8; ++round) {
    Emit();
    SendBodies();
    Emit();
    ProcessClosed();
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
  // GOAWAY either way and nothing left to do: close once what is queued is out.
  if ((codec_.goaway_sent() || codec_.goaway_received()) && streams_.empty() &&
      codec_.output().empty()) {
    conn_.CloseAfterFlush();
  }
}

void H2Session::OnFlush(core::Conn& /*conn*/) {
  Flush();
  if (!unread_.empty() && !recv_paused_) {
    FeedHeld();
  }
}

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
  // A header block begun and not finished (slow or missing CONTINUATION): nothing else may be
  // sent on the connection meanwhile, so it gets header_timeout (slowloris, HTTP/2 flavour),
  // whatever stream it is on.
  if (!codec_.in_header_block()) {
    block_due_ms_ = 0;
  } else if (block_due_ms_ == 0) {
    block_due_ms_ = ctx_.worker().now_ms() + cfg().limits.header_timeout_ms;
    ArmAt(block_due_ms_);
  }
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
  streams_.shrink_to_fit();
  sending_.shrink_to_fit();
  writable_.shrink_to_fit();
  closed_.clear();
  closed_.shrink_to_fit();
  codec_.Trim();
}

void H2Session::ArmTimer() {
  uint64_t due = 0;
  for (const std::unique_ptr<Stream>& st : streams_) {
    if (st->deadline_ms() != 0 && (due == 0 || st->deadline_ms() < due)) {
      due = st->deadline_ms();
    }
  }
  if (block_due_ms_ != 0 && (due == 0 || block_due_ms_ < due)) {
    due = block_due_ms_;
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
  if (block_due_ms_ != 0 && now >= block_due_ms_ && codec_.in_header_block()) {
    spdlog::debug("client {}: HTTP/2 header block not complete within header_timeout",
                  client_.peer);
    Terminate(H2Error::kProtocol, "header timeout");
    return;
  }
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
    st->exchange().OnTimer();
  }
  if (streams_.empty() && !spares_trimmed_ && now >= idle_since_ms_ + kSpareTrimMs) {
    TrimSpares();
  }
  if (streams_.empty() && now >= idle_since_ms_ + cfg().limits.idle_timeout_ms) {
    // Idle: GOAWAY (NO_ERROR, the last stream we took), then close.
    codec_.Goaway(H2Error::kNoError);
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
  codec_.Goaway(H2Error::kNoError);
  conn.WantFlush();
}

void H2Session::OnClosed(core::Conn& /*conn*/) {
  for (const std::unique_ptr<Stream>& st : streams_) {
    st->OnClose(/*reset_by_peer=*/false);
  }
  streams_.clear();
}

}  // namespace torii::http
