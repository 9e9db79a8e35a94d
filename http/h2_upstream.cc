// http/h2_upstream.cc: see h2_upstream.h.
#include "http/h2_upstream.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "base/text.h"
#include "http/exchange.h"
#include "http/h2_body.h"
#include "http/serialize.h"

namespace torii::http {

namespace {

// The connection-level receive window: many streams' responses in flight at once (each
// stream's own window stays at the protocol's 64 KiB, returned as the exchange takes bytes).
constexpr int32_t kConnectionWindow = 8 << 20;
// Ended streams a connection keeps for its next ones (their objects and small buffers).
constexpr size_t kSpareStreams = 128;

}  // namespace

// =============================================================================================
// One stream: the Upstream of one exchange.

class H2UpstreamConn::Stream final : public Upstream {
 public:
  explicit Stream(H2UpstreamConn& c) : c_(c) {}
  ~Stream() { EndCount(); }

  // Takes on exchange `p.id` (a new stream, or a spare one of an ended stream).
  void Start(const StreamParams& p, bool reused) {
    client_ = p.client;
    head_request_ = p.head_request;
    holds_slot_ = p.holds_slot;
    request_ended_ = p.end_stream;
    reused_ = reused;
    response_timeout_ms_ = p.response_timeout_ms;
    c_.gen_->picker(c_.pool_).OnRequestStart(c_.backend_);
    counted_ = true;
  }
  // Ended: kept as a spare for a later stream, small buffers kept.
  void Recycle() {
    EndCount();
    id_ = 0;
    client_.reset();
    deadline_ms_ = 0;
    body_.Clear(kKeptBuffer);
    ClearFields();
    unacked_ = 0;
    paused_ = released_ = head_done_ = response_done_ = request_sent_ = too_large_ = false;
    malformed_ = false;
  }

  void set_id(int32_t id) { id_ = id; }
  int32_t id() const { return id_; }

  // ---- Upstream ----
  void WriteRequestBody(std::string_view bytes, bool /*chunked*/, std::string*) override {
    if (released_ || request_ended_ || bytes.empty()) {
      return;
    }
    body_.Append(bytes);
    Resume();
  }
  void EndRequestBody(bool /*chunked*/, std::span<const HeaderView> trailers) override {
    if (released_ || request_ended_) {
      return;
    }
    body_.End(trailers);
    request_ended_ = true;
    Resume();
  }
  void set_request_complete(bool /*complete*/) override {}  // END_STREAM says it
  bool WriteBlocked() const override { return body_.queued() > core::Conn::kHighWater; }
  void PauseResponse() override { paused_ = true; }
  void ResumeResponse() override {
    paused_ = false;
    if (GiveBack()) {
      c_.self_->WantFlush();
    }
  }
  void Release(bool reusable) override {
    client_.reset();
    released_ = true;
    EndCount();
    GiveBack();
    if (!response_done_ || !request_sent_) {
      // The exchange no longer wants the rest either way: the stream ends here (NO_ERROR
      // after a complete response, RFC 9113 §8.1; CANCEL otherwise).
      c_.codec_.Reset(id_, reusable && response_done_ ? H2Error::kNoError : H2Error::kCancel);
    }
    c_.self_->WantFlush();
  }
  bool reused() const override { return reused_; }

  // ---- From the connection ----
  Exchange* client() { return client_.Resolve(c_.ctx_.worker()); }
  bool released() const { return released_; }
  bool response_started() const { return head_done_; }
  uint64_t deadline_ms() const { return deadline_ms_; }
  void set_deadline(uint64_t ms) { deadline_ms_ = ms; }
  void Touch() { deadline_ms_ = c_.ctx_.worker().now_ms() + response_timeout_ms_; }

  // A field of a response head or of its trailers. The codec checked its syntax (":status" is
  // the only pseudo-field it lets through) and bounds the block's size by the header list it
  // advertises (2 × header_bytes); their number is bounded here.
  void AddField(std::string_view name, std::string_view value) {
    if (name == ":status") {
      uint16_t st = 0;
      std::from_chars(value.data(), value.data() + value.size(), st);
      status_ = st;
      return;
    }
    if (fields_.size() >= 2 * c_.cfg().limits.header_count) {
      too_large_ = true;
      return;
    }
    fields_.push_back({static_cast<uint32_t>(text_.size()), static_cast<uint32_t>(name.size()),
                       static_cast<uint32_t>(value.size())});
    text_.append(name);
    text_.append(value);
  }

  // A header block ended: the response head (interim or final), or its trailers.
  void OnHeaders(bool end_stream) {
    Touch();
    if (too_large_) {
      Fail(UpstreamFailure::kBadResponse);
      return;
    }
    BuildViews();
    if (head_done_) {
      Done(views_);  // trailers (the codec made sure they end the stream)
      return;
    }
    MessageHead head;
    head.status = status_;
    head.reason = ReasonPhrase(status_);
    head.headers = views_;
    if (status_ >= 100 && status_ < 200) {
      if (Exchange* x = client(); x != nullptr && status_ == 103) {
        x->OnUpstreamInterim(head);
      }
      ClearFields();
      return;
    }
    head_done_ = true;
    uint64_t length = 0;
    bool has_length = false;
    for (const HeaderView& h : views_) {
      if (h.name == "content-length") {
        has_length = std::from_chars(h.value.data(), h.value.data() + h.value.size(), length).ec ==
                     std::errc();
      }
    }
    head.has_content_length = has_length;
    head.content_length = length;
    if (head_request_ || status_ == 204 || status_ == 304) {
      head.framing = Framing::kNone;
    } else if (has_length) {
      head.framing = length > 0 ? Framing::kContentLength : Framing::kNone;
    } else {
      head.framing = end_stream ? Framing::kNone : Framing::kChunked;  // ends with the stream
    }
    if (Exchange* x = client()) {
      x->OnUpstreamHead(*this, head);
    }
    ClearFields();
    if (end_stream) {
      Done({});
    }
  }

  void OnData(std::string_view bytes) {
    Touch();
    Exchange* x = released_ ? nullptr : client();
    if (x != nullptr) {
      x->OnUpstreamBody(*this, bytes);
    }
    // Acknowledged as the client takes it; held back (the backend's window closes) while the
    // exchange has paused the response. A released stream's bytes are simply dropped.
    if (paused_ && !released_) {
      unacked_ += bytes.size();
    } else {
      c_.codec_.Consume(id_, bytes.size());
    }
  }

  void OnDataEnd() { Done({}); }

  // The stream failed: its exchange hears why (once), and the stream is reset.
  void Fail(UpstreamFailure why) {
    if (!released_) {
      c_.codec_.Reset(id_, H2Error::kCancel);
      c_.self_->WantFlush();
      Detach(why);
    }
  }
  // The response broke HTTP/2's rules: the codec resets the stream, and its close is a bad
  // response (502, a mark against the backend), not a connection that went away.
  void MarkMalformed() { malformed_ = true; }
  // The stream closed: an exchange still attached hears it as a failure.
  void OnClosed(H2Error code) {
    if (code == H2Error::kRefusedStream && !released_) {
      c_.ctx_.stats().h2_up_refused++;
    }
    Detach(malformed_ ? (head_done_ ? UpstreamFailure::kTruncated : UpstreamFailure::kBadResponse)
           : code == H2Error::kRefusedStream ? UpstreamFailure::kRefused
           : head_done_                      ? UpstreamFailure::kTruncated
                                             : UpstreamFailure::kClosedEarly);
  }
  // The connection is lost under the stream: once the response began, a truncation.
  void OnLost(UpstreamFailure why) {
    const bool before_connect =
        why == UpstreamFailure::kConnectFailed || why == UpstreamFailure::kConnectTimeout;
    Detach(head_done_ && !before_connect ? UpstreamFailure::kTruncated : why);
  }

  void NoteConnected() {
    Touch();
    if (Exchange* x = released_ ? nullptr : client()) {
      x->NoteUpstreamConnected();
    }
  }

  H2BodyQueue& body() { return body_; }
  bool request_sent() const { return request_sent_; }
  void mark_request_sent() { request_sent_ = true; }

 private:
  struct Field {
    uint32_t at;
    uint32_t name;
    uint32_t value;
  };
  void Resume() { c_.QueueBody(id_); }
  void BuildViews() {
    views_.clear();
    const std::string_view text = text_;
    for (const Field& f : fields_) {
      views_.push_back(HeaderView{text.substr(f.at, f.name), text.substr(f.at + f.name, f.value)});
    }
  }
  void ClearFields() {
    text_.clear();
    fields_.clear();
    views_.clear();
    status_ = 0;
  }
  void Done(std::span<const HeaderView> trailers) {
    if (response_done_) {
      return;
    }
    response_done_ = true;
    Exchange* x = released_ ? nullptr : client();
    if (x == nullptr) {
      return;
    }
    x->OnUpstreamDone(/*reusable=*/true, trailers);  // the exchange releases the stream
  }
  // The response bytes held back while the client was slow, acknowledged to the backend now
  // (WINDOW_UPDATE as the codec decides). True when there were some.
  bool GiveBack() {
    if (unacked_ == 0) {
      return false;
    }
    c_.codec_.Consume(id_, unacked_);
    unacked_ = 0;
    return true;
  }
  // Lets go of the exchange (once), which hears `why`.
  void Detach(UpstreamFailure why) {
    GiveBack();  // the stream takes no more, but the connection carries others
    if (released_) {
      return;
    }
    released_ = true;
    Exchange* x = client();
    client_.reset();
    EndCount();
    if (x != nullptr) {
      x->OnUpstreamFailed(why, reused_);
    }
  }
  void EndCount() {
    if (counted_) {
      counted_ = false;
      c_.gen_->picker(c_.pool_).OnRequestEnd(c_.backend_);
    }
    if (holds_slot_) {
      holds_slot_ = false;
      c_.gen_->ReleaseSlot(c_.pool_, c_.backend_);
    }
  }

  static constexpr size_t kKeptBuffer = 16 * 1024;

  H2UpstreamConn& c_;
  int32_t id_ = 0;
  ExchangeRef client_;
  bool head_request_ = false;
  bool holds_slot_ = false;
  bool request_ended_ = false;  // the request body's end is queued (or there is none)
  bool reused_ = false;
  uint64_t response_timeout_ms_ = 0;
  uint64_t deadline_ms_ = 0;
  H2BodyQueue body_;  // the request body, framed as the windows allow (SendBodies)
  std::string text_;  // the response head's (or trailers') names and values, back to back
  std::vector<Field> fields_;
  std::vector<HeaderView> views_;
  size_t unacked_ = 0;  // response DATA held unacknowledged while paused
  uint16_t status_ = 0;
  bool counted_ = false;
  bool paused_ = false;
  bool released_ = false;
  bool head_done_ = false;
  bool response_done_ = false;
  bool request_sent_ = false;
  bool too_large_ = false;
  bool malformed_ = false;  // the codec found the response malformed (OnMalformed)
};

// =============================================================================================
// H2UpstreamConn

H2UpstreamConn::H2UpstreamConn(ProxyContext& ctx, std::shared_ptr<Generation> gen, uint32_t pool,
                               uint32_t backend)
    : ctx_(ctx),
      gen_(std::move(gen)),
      pool_(pool),
      backend_(backend),
      codec_(*this, H2ClientCodec::Settings{.max_header_list = static_cast<uint32_t>(
                                                2 * gen_->config().limits.header_bytes),
                                            .connection_window = kConnectionWindow}) {
  idle_since_ms_ = ctx_.worker().now_ms();
}

H2UpstreamConn::~H2UpstreamConn() {
  streams_.clear();
  spare_.clear();
}

core::Conn* H2UpstreamConn::FindWithRoom(core::Worker& worker, Generation& gen, uint32_t pool,
                                         uint32_t backend) {
  std::vector<core::ConnRef>& list = gen.shared(pool, backend);
  for (size_t i = 0; i < list.size();) {
    core::Conn* c = worker.Resolve(list[i]);
    if (c == nullptr || c->closing()) {
      list[i] = list.back();
      list.pop_back();
      continue;
    }
    if (static_cast<H2UpstreamConn*>(c->handler())->HasRoom()) {
      return c;
    }
    ++i;
  }
  return nullptr;
}

void H2UpstreamConn::Register(core::Conn& self) {
  self_ = &self;
  ctx_.stats().h2_up_connections++;
  shared_ = true;
  gen_->shared(pool_, backend_).push_back(self.ref());
  self.WantFlush();  // the connection preface and SETTINGS
}

bool H2UpstreamConn::Rehome(std::shared_ptr<Generation> gen, uint32_t pool, uint32_t backend) {
  if (draining_ || failed_ || !shared_) {
    return false;
  }
  gen_ = std::move(gen);
  pool_ = pool;
  backend_ = backend;
  return true;
}

void H2UpstreamConn::Unshare() {
  if (!shared_) {
    return;
  }
  shared_ = false;
  std::vector<core::ConnRef>& list = gen_->shared(pool_, backend_);
  const core::ConnRef me = self_->ref();
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].slot == me.slot && list[i].gen == me.gen) {
      list[i] = list.back();
      list.pop_back();
      return;
    }
  }
}

bool H2UpstreamConn::HasRoom() const {
  if (draining_ || failed_ || !shared_) {
    return false;
  }
  // Before this connection's SETTINGS, what the backend said on an earlier one (a new
  // connection is opened when the others are full: it must not overshoot the same limit).
  const uint32_t peer =
      settings_seen_ ? codec_.peer_max_streams() : gen_->h2_peer_streams(pool_, backend_);
  return streams_.size() < std::min(peer, cfg().pools[pool_].max_streams);
}

H2UpstreamConn::Stream* H2UpstreamConn::Find(int32_t id) {
  if (last_ != nullptr && last_->id() == id) {
    return last_;
  }
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return nullptr;
  }
  last_ = it->second.get();
  return last_;
}

Upstream* H2UpstreamConn::FindUpstream(uint32_t stream) {
  Stream* st = Find(static_cast<int32_t>(stream));
  return st != nullptr && !st->released() ? st : nullptr;
}

uint32_t H2UpstreamConn::Open(core::Conn& self, const StreamParams& params, std::string* head) {
  self_ = &self;
  H2HeadScratch& scratch = ThreadHeadScratch();
  RequestFields(head, cfg().pools[pool_].tls ? "https" : "http", &scratch.fields);
  if (scratch.fields.empty()) {
    return 0;
  }
  const int32_t id = codec_.Open(scratch.fields, params.end_stream);
  if (id == 0) {
    if (!codec_.failed() && !codec_.goaway_received()) {
      draining_ = true;  // stream ids spent: the next exchanges open another connection
      Unshare();
    }
    return 0;
  }
  std::unique_ptr<Stream> st;
  if (spare_.empty()) {
    st = std::make_unique<Stream>(*this);
  } else {
    st = std::move(spare_.back());
    spare_.pop_back();
  }
  st->Start(params, /*reused=*/opened_ > 0);
  st->set_id(id);
  if (params.end_stream) {
    st->mark_request_sent();
  }
  const uint64_t deadline = ctx_.worker().now_ms() +
                            (connected_ ? params.response_timeout_ms : params.connect_timeout_ms);
  st->set_deadline(deadline);
  streams_.emplace(id, std::move(st));
  ++opened_;
  ctx_.stats().h2_up_streams++;
  self.SetIdle(core::Conn::Idle::kNo);
  self.WantFlush();
  ArmAt(deadline);
  return static_cast<uint32_t>(id);
}

// ---- What the codec reports ----

void H2UpstreamConn::OnField(int32_t stream, std::string_view name, std::string_view value) {
  if (Stream* st = Find(stream)) {
    st->AddField(name, value);
  }
}

void H2UpstreamConn::OnHeaders(int32_t stream, bool end_stream) {
  if (Stream* st = Find(stream)) {
    st->OnHeaders(end_stream);
  }
}

void H2UpstreamConn::OnData(int32_t stream, std::string_view bytes) {
  Stream* st = Find(stream);
  if (st == nullptr) {
    codec_.Consume(stream, bytes.size());
    return;
  }
  st->OnData(bytes);
}

void H2UpstreamConn::OnDataEnd(int32_t stream) {
  if (Stream* st = Find(stream)) {
    st->OnDataEnd();
  }
}

void H2UpstreamConn::OnMalformed(int32_t stream) {
  if (Stream* st = Find(stream)) {
    st->MarkMalformed();
  }
}

void H2UpstreamConn::OnSettings() {
  settings_seen_ = true;
  gen_->h2_peer_streams(pool_, backend_) = codec_.peer_max_streams();
}

void H2UpstreamConn::OnGoaway() {
  // No new stream here; those above its last stream id are closed by the codec as refused.
  draining_ = true;
  Unshare();
}

void H2UpstreamConn::ProcessClosed() {
  for (const auto& [id, code] : codec_.TakeClosed()) {
    CloseStream(id, code);
  }
}

void H2UpstreamConn::CloseStream(int32_t id, H2Error code) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  // Off the map before its exchange hears of it (a retry may open another stream here).
  std::unique_ptr<Stream> st = std::move(it->second);
  streams_.erase(it);
  if (last_ == st.get()) {
    last_ = nullptr;
  }
  if (streams_.empty()) {
    idle_since_ms_ = ctx_.worker().now_ms();
    ArmAt(idle_since_ms_ + cfg().pools[pool_].keepalive_timeout_ms);
  }
  st->OnClosed(code);
  if (spare_.size() < kSpareStreams) {
    st->Recycle();
    spare_.push_back(std::move(st));
  }
}

void H2UpstreamConn::QueueBody(int32_t id) {
  if (std::find(sending_.begin(), sending_.end(), id) == sending_.end()) {
    sending_.push_back(id);
  }
  if (self_ != nullptr) {
    self_->WantFlush();
  }
}

void H2UpstreamConn::Emit(bool closing) {
  std::string& out = codec_.output();
  if (out.empty() || self_->closing()) {
    out.clear();
    return;
  }
  if (self_->WriteBlocked() && !closing) {
    // A backend that does not read: what it makes torii answer (PING, SETTINGS) waits in the
    // codec, which gives up on the connection past its bound (a flood), until OnWritable.
    return;
  }
  self_->Write(out);
  out.clear();
}

void H2UpstreamConn::SendBodies() {
  for (size_t i = 0; i < sending_.size();) {
    const int32_t id = sending_[i];
    Stream* st = Find(id);
    bool keep = false;
    while (st != nullptr && !st->released() && !st->request_sent()) {
      if (self_->closing() || self_->WriteBlocked()) {
        keep = true;  // OnWritable brings it back
        break;
      }
      bool drained = false;
      const BodyStep step = SendBodyStep(codec_, id, st->body(), *self_, &drained);
      if (drained) {
        writable_.push_back(id);  // its exchange may read its client again
      }
      if (step == BodyStep::kSent) {
        continue;
      }
      if (step == BodyStep::kEnded) {
        st->mark_request_sent();
      }
      keep = step == BodyStep::kBlocked;  // the windows closed: a WINDOW_UPDATE brings it back
      break;                              // kWaiting: more comes with the next WriteRequestBody
    }
    if (keep) {
      ++i;
    } else {
      sending_[i] = sending_.back();
      sending_.pop_back();
    }
  }
}

// ---- The connection ----

void H2UpstreamConn::Flush() {
  if (self_ == nullptr) {
    return;
  }
  for (int round = 0; round < 8; ++round) {
    Emit();
    SendBodies();
    Emit();
    ProcessClosed();
    if (writable_.empty() || self_->closing()) {
      break;
    }
    std::vector<int32_t> ids;
    ids.swap(writable_);
    for (int32_t id : ids) {
      if (Stream* st = Find(id); st != nullptr && !st->released()) {
        if (Exchange* x = st->client()) {
          x->OnUpstreamWritable();
        }
      }
    }
  }
  MaybeClose();
  if (!self_->closing() && armed_ms_ == 0) {
    ArmTimer();
  }
}

void H2UpstreamConn::MaybeClose() {
  if (self_->closing()) {
    return;
  }
  if (codec_.failed()) {
    Unshare();
    FailAll(UpstreamFailure::kBadResponse);
    return;
  }
  if (draining_ && streams_.empty()) {
    Unshare();
    Emit(/*closing=*/true);  // the last RST_STREAM or GOAWAY, held while the queue was full
    self_->CloseAfterFlush();
  }
}

void H2UpstreamConn::FailAll(UpstreamFailure why) {
  if (failed_) {
    return;
  }
  failed_ = true;
  Unshare();
  std::vector<std::unique_ptr<Stream>> streams;
  for (auto& [id, st] : streams_) {
    streams.push_back(std::move(st));
  }
  streams_.clear();
  last_ = nullptr;
  if (self_ != nullptr && !self_->closing()) {
    self_->Close();
  }
  for (auto& st : streams) {
    st->OnLost(why);
  }
}

void H2UpstreamConn::ArmAt(uint64_t at) {
  if (armed_ms_ == 0 || at < armed_ms_) {
    armed_ms_ = at;
    self_->SetTimer(at);
  }
}

void H2UpstreamConn::ArmTimer() {
  uint64_t due = 0;
  for (auto& [id, st] : streams_) {
    if (!st->released() && st->deadline_ms() != 0 && (due == 0 || st->deadline_ms() < due)) {
      due = st->deadline_ms();
    }
  }
  if (streams_.empty()) {
    const uint64_t at = idle_since_ms_ + cfg().pools[pool_].keepalive_timeout_ms;
    due = due == 0 ? at : std::min(due, at);
  } else if (connected_) {
    // Liveness: a PING after PingInterval() of silence, the connection's end after as long
    // again without an answer.
    const uint64_t at = (ping_sent_ms_ != 0 ? ping_sent_ms_ : last_recv_ms_) + PingInterval();
    due = due == 0 ? at : std::min(due, at);
  }
  if (due == armed_ms_) {
    return;
  }
  armed_ms_ = due;
  if (due != 0) {
    self_->SetTimer(due);
  } else {
    self_->ClearTimer();
  }
}

void H2UpstreamConn::OnConnected(core::Conn& self, core::Result<void> result) {
  self_ = &self;
  if (!result) {
    FailAll(UpstreamFailure::kConnectFailed);
    return;
  }
  connected_ = true;
  last_recv_ms_ = ctx_.worker().now_ms();
  std::vector<int32_t> ids;
  for (auto& [id, st] : streams_) {
    ids.push_back(id);
  }
  for (int32_t id : ids) {
    if (Stream* st = Find(id)) {
      st->NoteConnected();
    }
  }
  self.WantFlush();
  ArmTimer();
}

void H2UpstreamConn::OnRecv(core::Conn& self, std::span<const char> data) {
  self_ = &self;
  if (!codec_.Receive(std::string_view(data.data(), data.size()))) {
    spdlog::debug("upstream {}: HTTP/2: {}", cfg().pools[pool_].backends[backend_].name,
                  codec_.failure());
    ProcessClosed();         // streams a GOAWAY refused in the same bytes stay retryable
    Emit(/*closing=*/true);  // the GOAWAY that says why
    FailAll(UpstreamFailure::kBadResponse);
    return;
  }
  ProcessClosed();
  last_recv_ms_ = ctx_.worker().now_ms();
  ping_sent_ms_ = 0;  // any byte shows the peer alive
  if (!self.closing()) {
    self.WantFlush();
    if (armed_ms_ == 0) {
      ArmTimer();
    }
  }
}

uint64_t H2UpstreamConn::PingInterval() const {
  return std::max<uint64_t>(1000, cfg().pools[pool_].keepalive_timeout_ms / 2);
}

void H2UpstreamConn::OnEof(core::Conn& /*self*/) { FailAll(UpstreamFailure::kClosedEarly); }

void H2UpstreamConn::OnError(core::Conn& /*self*/, core::Error /*error*/) {
  FailAll(UpstreamFailure::kClosedEarly);
}

void H2UpstreamConn::OnTimer(core::Conn& self) {
  const uint64_t now = ctx_.worker().now_ms();
  armed_ms_ = 0;
  if (!connected_ && !streams_.empty()) {
    FailAll(UpstreamFailure::kConnectTimeout);
    return;
  }
  std::vector<int32_t> due;
  for (auto& [id, st] : streams_) {
    if (!st->released() && st->deadline_ms() != 0 && st->deadline_ms() <= now) {
      due.push_back(id);
    }
  }
  for (int32_t id : due) {
    if (Stream* st = Find(id)) {
      st->Fail(UpstreamFailure::kTimeout);
    }
  }
  if (!streams_.empty() && connected_) {
    if (ping_sent_ms_ != 0 && now >= ping_sent_ms_ + PingInterval()) {
      // Silent through a PING's round trip: the peer is gone (crashed host, lost route).
      spdlog::debug("upstream {}: HTTP/2 PING unanswered: connection dropped",
                    cfg().pools[pool_].backends[backend_].name);
      FailAll(UpstreamFailure::kClosedEarly);
      return;
    }
    if (ping_sent_ms_ == 0 && now >= last_recv_ms_ + PingInterval()) {
      codec_.Ping();
      ping_sent_ms_ = now;
    }
  }
  if (streams_.empty() && now >= idle_since_ms_ + cfg().pools[pool_].keepalive_timeout_ms) {
    // Idle past keepalive_timeout: GOAWAY, then close.
    Unshare();
    draining_ = true;
    codec_.Goaway(H2Error::kNoError);
    Flush();  // draining without streams: MaybeClose writes the GOAWAY and closes
    if (!self.closing()) {
      self.CloseAfterFlush();
    }
    return;
  }
  self.WantFlush();
  ArmTimer();
}

void H2UpstreamConn::OnWritable(core::Conn& /*self*/) { Flush(); }

void H2UpstreamConn::OnFlush(core::Conn& /*self*/) { Flush(); }

void H2UpstreamConn::OnDrain(core::Conn& self) {
  // Shutdown or reload: no new stream; the ones in flight finish, then GOAWAY and close.
  self_ = &self;
  draining_ = true;
  Unshare();
  if (streams_.empty()) {
    codec_.Goaway(H2Error::kNoError);
  }
  self.WantFlush();
}

void H2UpstreamConn::OnClosed(core::Conn& /*self*/) {
  Unshare();
  FailAll(UpstreamFailure::kClosedEarly);
}

}  // namespace torii::http
