// http/h2_codec.cc: see h2_codec.h.
#include "http/h2_codec.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "base/text.h"
#include "http/h1_parser.h"

namespace torii::http {

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113 §6).
constexpr uint8_t kData = 0x0;
constexpr uint8_t kHeaders = 0x1;
constexpr uint8_t kPriority = 0x2;
constexpr uint8_t kRstStream = 0x3;
constexpr uint8_t kSettings = 0x4;
constexpr uint8_t kPushPromise = 0x5;
constexpr uint8_t kPing = 0x6;
constexpr uint8_t kGoaway = 0x7;
constexpr uint8_t kWindowUpdate = 0x8;
constexpr uint8_t kContinuation = 0x9;

// Flags.
constexpr uint8_t kEndStream = 0x1;
constexpr uint8_t kAck = 0x1;
constexpr uint8_t kEndHeaders = 0x4;
constexpr uint8_t kPadded = 0x8;
constexpr uint8_t kPriorityFlag = 0x20;

// The frames torii accepts are at most SETTINGS_MAX_FRAME_SIZE's initial value: it never
// raises it.
constexpr uint32_t kMaxFrame = 16384;
constexpr int64_t kMaxWindow = 0x7fffffff;
constexpr int32_t kStreamWindow = 65535;  // each stream's receive window (never changed)
// A header block: at most this many bytes of fragments and CONTINUATION frames (a flood of
// empty or tiny CONTINUATIONs costs the peer nothing and must end).
constexpr uint32_t kMaxBlockBytes = 256 * 1024;
constexpr uint32_t kMaxContinuations = 32;
// Answers to the peer's PING and SETTINGS frames waiting in the output while the host cannot
// write (the peer does not read): a peer that floods them fails the connection rather than
// growing the output.
constexpr size_t kMaxReplies = 64 * 1024;

uint32_t Read32(const char* p) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(p[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(p[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(p[2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(p[3]));
}

void Put32(uint32_t v, std::string* out) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}

// A frame header (RFC 9113 §4.1) at `h`: 9 bytes.
void PutFrameHeader(char* h, uint32_t length, uint8_t type, uint8_t flags, int32_t id) {
  const auto sid = static_cast<uint32_t>(id);
  h[0] = static_cast<char>(length >> 16);
  h[1] = static_cast<char>(length >> 8);
  h[2] = static_cast<char>(length);
  h[3] = static_cast<char>(type);
  h[4] = static_cast<char>(flags);
  h[5] = static_cast<char>((sid >> 24) & 0x7f);
  h[6] = static_cast<char>(sid >> 16);
  h[7] = static_cast<char>(sid >> 8);
  h[8] = static_cast<char>(sid);
}

// HPACK's integer with an N-bit prefix (RFC 7541 §5.1), the first byte's high bits `first`,
// written at `p`; returns the end (at most 6 bytes for a 32-bit value).
char* PutInt(uint32_t v, int prefix_bits, uint8_t first, char* p) {
  const uint32_t max = (1u << prefix_bits) - 1;
  if (v < max) {
    *p++ = static_cast<char>(first | v);
    return p;
  }
  *p++ = static_cast<char>(first | max);
  v -= max;
  while (v >= 128) {
    *p++ = static_cast<char>(0x80 | (v & 0x7f));
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

// `n` bytes (sizeof(T) to twice that) as two overlapping words of type T: a copy of a short
// string without a call to memcpy.
template <typename T>
void CopyTwoWords(char* dst, const char* src, size_t n) {
  T a;
  T b;
  std::memcpy(&a, src, sizeof(T));
  std::memcpy(&b, src + n - sizeof(T), sizeof(T));
  std::memcpy(dst, &a, sizeof(T));
  std::memcpy(dst + n - sizeof(T), &b, sizeof(T));
}

// A raw string literal (H = 0). Most names and values are short: up to 16 bytes are copied
// as two overlapping words (or halves).
[[gnu::always_inline]] inline char* PutString(std::string_view s, char* p) {
  p = PutInt(static_cast<uint32_t>(s.size()), 7, 0x00, p);
  const size_t n = s.size();
  const char* src = s.data();
  if (n >= 8 && n <= 16) {
    CopyTwoWords<uint64_t>(p, src, n);
  } else if (n >= 4 && n < 8) {
    CopyTwoWords<uint32_t>(p, src, n);
  } else if (n < 4) {
    for (size_t i = 0; i < n; ++i) {
      p[i] = src[i];
    }
  } else {
    std::memcpy(p, src, n);
  }
  return p + n;
}

// RFC 7541 Appendix A: the index of a static table entry with this name (the first of its
// name), or 0.
uint32_t StaticNameIndex(std::string_view n) {
  if (n.empty()) {
    return 0;
  }
  switch (n[0]) {
    case ':':
      return n == ":authority" ? 1
             : n == ":method"  ? 2
             : n == ":path"    ? 4
             : n == ":scheme"  ? 6
             : n == ":status"  ? 8
                               : 0;
    case 'a':
      return n == "accept-charset"                ? 15
             : n == "accept-encoding"             ? 16
             : n == "accept-language"             ? 17
             : n == "accept-ranges"               ? 18
             : n == "accept"                      ? 19
             : n == "access-control-allow-origin" ? 20
             : n == "age"                         ? 21
             : n == "allow"                       ? 22
             : n == "authorization"               ? 23
                                                  : 0;
    case 'c':
      return n == "cache-control"         ? 24
             : n == "content-disposition" ? 25
             : n == "content-encoding"    ? 26
             : n == "content-language"    ? 27
             : n == "content-length"      ? 28
             : n == "content-location"    ? 29
             : n == "content-range"       ? 30
             : n == "content-type"        ? 31
             : n == "cookie"              ? 32
                                          : 0;
    case 'd':
      return n == "date" ? 33 : 0;
    case 'e':
      return n == "etag" ? 34 : n == "expect" ? 35 : n == "expires" ? 36 : 0;
    case 'f':
      return n == "from" ? 37 : 0;
    case 'h':
      return n == "host" ? 38 : 0;
    case 'i':
      return n == "if-match"              ? 39
             : n == "if-modified-since"   ? 40
             : n == "if-none-match"       ? 41
             : n == "if-range"            ? 42
             : n == "if-unmodified-since" ? 43
                                          : 0;
    case 'l':
      return n == "last-modified" ? 44 : n == "link" ? 45 : n == "location" ? 46 : 0;
    case 'm':
      return n == "max-forwards" ? 47 : 0;
    case 'p':
      return n == "proxy-authenticate" ? 48 : n == "proxy-authorization" ? 49 : 0;
    case 'r':
      return n == "range"         ? 50
             : n == "referer"     ? 51
             : n == "refresh"     ? 52
             : n == "retry-after" ? 53
                                  : 0;
    case 's':
      return n == "server"                      ? 54
             : n == "set-cookie"                ? 55
             : n == "strict-transport-security" ? 56
                                                : 0;
    case 't':
      return n == "transfer-encoding" ? 57 : 0;
    case 'u':
      return n == "user-agent" ? 58 : 0;
    case 'v':
      return n == "vary" ? 59 : n == "via" ? 60 : 0;
    case 'w':
      return n == "www-authenticate" ? 61 : 0;
    default:
      return 0;
  }
}

// The static table entries whose value a request often has (index, or 0).
uint32_t StaticPairIndex(std::string_view n, std::string_view v) {
  if (n == ":method") {
    return v == "GET" ? 2 : v == "POST" ? 3 : 0;
  }
  if (n == ":path") {
    return v == "/" ? 4 : v == "/index.html" ? 5 : 0;
  }
  if (n == ":scheme") {
    return v == "http" ? 6 : v == "https" ? 7 : 0;
  }
  return 0;
}

bool Sensitive(std::string_view n) {
  return n == "authorization" || n == "proxy-authorization" || n == "cookie";
}

}  // namespace

bool H2ValidName(std::string_view n) {
  // A tchar that is not an uppercase letter (RFC 9113 §8.2.1). A word of lowercase letters,
  // digits and '-' alone (most names) passes as a whole; any other word is looked at byte by
  // byte.
  static constexpr std::array<bool, 256> kNameChar = [] {
    std::array<bool, 256> t{};
    for (int c = 0; c < 256; ++c) {
      t[c] = base::IsTchar(static_cast<char>(c)) && !(c >= 'A' && c <= 'Z');
    }
    return t;
  }();
  namespace word = base::word;
  return !n.empty() && word::AllWords(n, [&](uint64_t w, size_t at, size_t len) {
    if ((word::InRange(w, 'a', 'z') | word::InRange(w, '0', '9') | word::InRange(w, '-', '-')) ==
        word::kHigh) {
      return true;
    }
    for (char c : n.substr(at, len)) {
      if (!kNameChar[static_cast<unsigned char>(c)]) {
        return false;
      }
    }
    return true;
  });
}

bool H2ValidValue(std::string_view v) {
  if (!v.empty() &&
      (v.front() == ' ' || v.front() == '\t' || v.back() == ' ' || v.back() == '\t')) {
    return false;
  }
  return IsCleanValue(v);  // no control character but HTAB, no DEL: as on HTTP/1.1
}

bool H2ForbiddenField(std::string_view n, std::string_view v) {
  // serialize.h's list of connection-specific fields: the one every codec drops.
  return IsConnectionSpecificField(n) || (n == "te" && v != "trailers");
}

void EncodeHeaderBlock(std::span<const H2OutField> fields, bool table_update, std::string* out) {
  // At most: the update byte, and per field a type byte, two integers of 6 bytes, the strings.
  size_t bound = 1;
  for (const H2OutField& f : fields) {
    bound += 13 + f.name.size() + f.value.size();
  }
  const size_t start = out->size();
  out->resize_and_overwrite(start + bound, [&](char* buf, size_t) {
    char* p = buf + start;
    if (table_update) {
      *p++ = 0x20;  // dynamic table size update: 0 (RFC 7541 §6.3)
    }
    for (const H2OutField& f : fields) {
      if (const uint32_t pair = StaticPairIndex(f.name, f.value)) {
        *p++ = static_cast<char>(0x80 | pair);  // indexed field (§6.1)
        continue;
      }
      // Literal without indexing (§6.2.2, 0000xxxx) or never indexed (§6.2.3, 0001xxxx).
      const uint8_t first = Sensitive(f.name) ? 0x10 : 0x00;
      if (const uint32_t name = StaticNameIndex(f.name)) {
        p = PutInt(name, 4, first, p);
      } else {
        *p++ = static_cast<char>(first);
        p = PutString(f.name, p);
      }
      p = PutString(f.value, p);
    }
    return static_cast<size_t>(p - buf);
  });
}

H2Codec::H2Codec(Role role, Host& host, const Settings& settings)
    : host_(host), settings_(settings), role_(role) {
  // SETTINGS: no push; the header list torii takes; no RFC 7540 priorities; a server's
  // stream limit and extended CONNECT.
  std::pair<uint16_t, uint32_t> params[5] = {
      {0x2, 0}, {0x6, settings_.max_header_list}, {0x9, 1}, {0x3, settings_.max_streams}, {0x8, 1}};
  size_t count = 3;
  if (role_ == Role::kClient) {
    out_.append(kPreface);
    table_update_due_ = true;  // the first block says our table is 0 (EncodeHeaderBlock)
  } else {
    preface_left_ = kPreface.size();
    count = settings_.connect_protocol ? 5 : 4;
  }
  WriteFrameHeader(static_cast<uint32_t>(6 * count), kSettings, 0, 0);
  for (size_t i = 0; i < count; ++i) {
    out_.push_back(static_cast<char>(params[i].first >> 8));
    out_.push_back(static_cast<char>(params[i].first));
    Put32(params[i].second, &out_);
  }
  if (settings_.connection_window > kStreamWindow) {
    WindowUpdate(0, static_cast<uint32_t>(settings_.connection_window - kStreamWindow));
    recv_window_ = settings_.connection_window;
  }
}

H2Codec::~H2Codec() = default;

H2Codec::Stream* H2Codec::Find(int32_t id) {
  // The calls for one frame or one message come for the same stream, one after another: the
  // last one found is remembered (a hash look-up divides by the bucket count).
  if (id == found_id_ && found_ != nullptr) {
    return found_;
  }
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return nullptr;
  }
  found_id_ = id;
  found_ = &it->second;
  return found_;
}

H2Codec::Stream& H2Codec::OpenStream(int32_t id) {
  max_opened_ = id;
  Stream& s = streams_[id];
  s.send_window = peer_initial_window_;
  s.recv_window = kStreamWindow;
  return s;
}

void H2Codec::WriteFrameHeader(uint32_t length, uint8_t type, uint8_t flags, int32_t id) {
  char h[9];
  PutFrameHeader(h, length, type, flags, id);
  out_.append(h, 9);
}

void H2Codec::WindowUpdate(int32_t id, uint32_t increment) {
  WriteFrameHeader(4, kWindowUpdate, 0, id);
  Put32(increment, &out_);
}

bool H2Codec::Fail(H2Error code, std::string why) {
  if (!failed_) {
    failed_ = true;
    failure_ = std::move(why);
    // The last stream the peer opened that we took (a client's own numbering: none).
    Goaway(code, last_taken_);
  }
  return false;
}

void H2Codec::RegularField(int32_t id, Stream& s, std::string_view name, std::string_view value) {
  s.saw_regular = true;
  if (!H2ValidName(name) || !H2ValidValue(value) || H2ForbiddenField(name, value)) {
    s.malformed = true;
    return;
  }
  if (name == "content-length" && block_ == Block::kHead) {
    uint64_t n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (s.content_length_seen || ec != std::errc() || end != value.data() + value.size() ||
        value.empty() || n > static_cast<uint64_t>(INT64_MAX)) {
      s.malformed = true;
      return;
    }
    s.content_length_seen = true;
    s.content_length = static_cast<int64_t>(n);
  }
  host_.OnField(id, name, value);
}

void H2Codec::BlockDone(int32_t id, Stream& s) {
  if (block_end_stream_) {
    s.remote_ended = true;
  }
  host_.OnHeaders(id, block_end_stream_);
  if (block_end_stream_) {
    if (Stream* again = Find(id)) {  // (the host may have reset it meanwhile)
      MaybeClose(id, *again);
    }
  }
}

void H2Codec::Trim() {
  if (out_.empty()) {
    std::string().swap(out_);
  }
  if (in_.empty()) {
    std::string().swap(in_);
  }
  std::string().swap(block_scratch_);
  if (block_id_ == 0) {
    std::string().swap(block_in_);
  }
  hpack_.Trim();
  if (streams_.empty()) {
    std::unordered_map<int32_t, Stream>().swap(streams_);
    found_ = nullptr;
  }
  if (closed_.empty()) {
    closed_.shrink_to_fit();
  }
}

std::vector<std::pair<int32_t, H2Error>> H2Codec::TakeClosed() {
  std::vector<std::pair<int32_t, H2Error>> closed;
  closed.swap(closed_);
  return closed;
}

void H2Codec::TakeClosed(std::vector<std::pair<int32_t, H2Error>>* into) {
  into->clear();
  into->swap(closed_);
}

// ---- Sending ----

void H2Codec::WriteHeaders(int32_t id, std::span<const H2OutField> fields, bool end_stream) {
  // Encoded straight after a frame header left blank, filled in once the length is known.
  const size_t at = out_.size();
  out_.append(9, '\0');
  EncodeHeaderBlock(fields, table_update_due_, &out_);
  table_update_due_ = false;
  const size_t length = out_.size() - at - 9;
  const uint8_t end = end_stream ? kEndStream : 0;
  if (length <= peer_max_frame_) {
    PutFrameHeader(out_.data() + at, static_cast<uint32_t>(length), kHeaders, kEndHeaders | end,
                   id);
    return;
  }
  // Larger than a frame: HEADERS, then CONTINUATION frames.
  std::string& block = block_scratch_;
  block.assign(out_, at + 9, length);
  out_.resize(at);
  std::string_view rest = block;
  uint8_t type = kHeaders;
  do {
    const size_t n = std::min<size_t>(rest.size(), peer_max_frame_);
    uint8_t flags = n == rest.size() ? kEndHeaders : 0;
    if (type == kHeaders) {
      flags |= end;
    }
    WriteFrameHeader(static_cast<uint32_t>(n), type, flags, id);
    out_.append(rest.substr(0, n));
    rest.remove_prefix(n);
    type = kContinuation;
  } while (!rest.empty());
}

size_t H2Codec::Sendable(int32_t stream) {
  const Stream* s = Find(stream);
  if (failed_ || s == nullptr || s->local_ended) {
    return 0;
  }
  const int64_t w = std::min(send_window_, s->send_window);
  return w <= 0 ? 0 : static_cast<size_t>(std::min<int64_t>(w, peer_max_frame_));
}

std::array<char, 9> H2Codec::DataHeader(int32_t stream, size_t n, bool end_stream) {
  send_window_ -= static_cast<int64_t>(n);
  if (Stream* s = Find(stream)) {
    s->send_window -= static_cast<int64_t>(n);
    if (end_stream) {
      s->local_ended = true;
      MaybeClose(stream, *s);
    }
  }
  std::array<char, 9> h;
  PutFrameHeader(h.data(), static_cast<uint32_t>(n), kData, end_stream ? kEndStream : 0, stream);
  return h;
}

void H2Codec::SendTrailers(int32_t stream, std::span<const H2OutField> fields) {
  Stream* s = Find(stream);
  if (s == nullptr || s->local_ended || failed_) {
    return;
  }
  WriteHeaders(stream, fields, /*end_stream=*/true);
  s->local_ended = true;
  MaybeClose(stream, *s);
}

void H2Codec::Reset(int32_t stream, H2Error code) {
  if (failed_ || Find(stream) == nullptr) {
    return;
  }
  WriteReset(stream, code);
  CloseStream(stream, code);
}

void H2Codec::WriteReset(int32_t stream, H2Error code) {
  WriteFrameHeader(4, kRstStream, 0, stream);
  Put32(static_cast<uint32_t>(code), &out_);
}

void H2Codec::Ping() {
  WriteFrameHeader(8, kPing, 0, 0);
  out_.append(8, '\0');
}

void H2Codec::Goaway(H2Error code, int32_t last_stream) {
  WriteFrameHeader(8, kGoaway, 0, 0);
  Put32(static_cast<uint32_t>(last_stream), &out_);
  Put32(static_cast<uint32_t>(code), &out_);
}

void H2Codec::CloseStream(int32_t id, H2Error code) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  if (data_stream_ == &it->second) {
    data_stream_ = nullptr;  // the rest of this DATA frame is dropped
  }
  if (found_ == &it->second) {
    found_ = nullptr;
  }
  streams_.erase(it);
  closed_.emplace_back(id, code);
}

void H2Codec::MaybeClose(int32_t id, Stream& s) {
  if (s.local_ended && s.remote_ended) {
    CloseStream(id, H2Error::kNoError);
  }
}

void H2Codec::Malformed(int32_t id, H2Error code) {
  if (Find(id) != nullptr) {
    host_.OnMalformed(id);
  }
  StreamError(id, code);
}

void H2Codec::StreamError(int32_t id, H2Error code) {
  if (Find(id) != nullptr) {
    host_.OnStreamError(id);
  }
  Reset(id, code);
}

void H2Codec::Consume(int32_t stream, size_t n) {
  if (failed_ || n == 0) {
    return;
  }
  unacked_ += static_cast<uint32_t>(n);
  if (unacked_ >= static_cast<uint32_t>(settings_.connection_window / 2)) {
    WindowUpdate(0, unacked_);
    recv_window_ += unacked_;
    unacked_ = 0;
  }
  Stream* s = Find(stream);
  if (s == nullptr || s->remote_ended) {
    return;  // nothing more comes on it: its window no longer matters
  }
  s->unacked += static_cast<uint32_t>(n);
  if (s->unacked >= kStreamWindow / 2) {
    WindowUpdate(stream, s->unacked);
    s->recv_window += static_cast<int32_t>(s->unacked);
    s->unacked = 0;
  }
}

// ---- Receiving ----

bool H2Codec::Receive(std::string_view bytes) {
  size_t taken = 0;
  return Receive(bytes, SIZE_MAX, &taken);
}

bool H2Codec::Receive(std::string_view bytes, size_t output_limit, size_t* taken) {
  *taken = bytes.size();  // all of them, unless it stops early
  if (failed_) {
    return false;
  }
  if (out_.empty()) {
    reply_bytes_ = 0;  // the host wrote every answer out
  }
  if (preface_left_ > 0) {
    // A client's connection begins with the preface (RFC 9113 §3.4), then its SETTINGS.
    const size_t n = std::min(bytes.size(), preface_left_);
    if (bytes.substr(0, n) != kPreface.substr(kPreface.size() - preface_left_, n)) {
      failed_ = true;  // not HTTP/2: nothing to answer in its framing
      failure_ = "no client preface";
      return false;
    }
    preface_left_ -= n;
    bytes.remove_prefix(n);
  }
  while (!bytes.empty()) {
    if (state_ == State::kHeader && in_.empty() && out_.size() > output_limit) {
      *taken -= bytes.size();
      break;
    }
    if (state_ == State::kData) {
      // DATA payload, delivered as it comes: the pad length, the data, the padding.
      if (pad_pending_) {
        pad_pending_ = false;
        const auto pad = static_cast<uint8_t>(bytes[0]);
        bytes.remove_prefix(1);
        --data_left_;
        if (pad > data_left_) {
          return Fail(H2Error::kProtocol, "DATA padding longer than the frame");
        }
        pad_left_ = pad;
        padding_ = 1u + pad;
      } else if (data_left_ > pad_left_) {
        const size_t n = std::min<size_t>(bytes.size(), data_left_ - pad_left_);
        const std::string_view chunk = bytes.substr(0, n);
        bytes.remove_prefix(n);
        data_left_ -= static_cast<uint32_t>(n);
        if (!DataBytes(chunk)) {
          return false;
        }
      } else {
        const size_t n = std::min<size_t>(bytes.size(), pad_left_);
        bytes.remove_prefix(n);
        data_left_ -= static_cast<uint32_t>(n);
        pad_left_ -= static_cast<uint32_t>(n);
      }
      if (data_left_ == 0 && !DataDone()) {
        return false;
      }
      continue;
    }
    // A frame header (9 bytes), then for all but DATA the whole payload.
    const size_t want = state_ == State::kHeader ? 9 : length_;
    std::string_view frame;
    if (in_.empty() && bytes.size() >= want) {
      frame = bytes.substr(0, want);
      bytes.remove_prefix(want);
    } else {
      const size_t n = std::min(bytes.size(), want - in_.size());
      in_.append(bytes.substr(0, n));
      bytes.remove_prefix(n);
      if (in_.size() < want) {
        return true;
      }
      frame = in_;
    }
    if (state_ == State::kHeader) {
      length_ = (static_cast<uint32_t>(static_cast<uint8_t>(frame[0])) << 16) |
                (static_cast<uint32_t>(static_cast<uint8_t>(frame[1])) << 8) |
                static_cast<uint32_t>(static_cast<uint8_t>(frame[2]));
      type_ = static_cast<uint8_t>(frame[3]);
      flags_ = static_cast<uint8_t>(frame[4]);
      id_ = static_cast<int32_t>(Read32(frame.data() + 5) & 0x7fffffff);
      in_.clear();
      if (length_ > kMaxFrame) {
        return Fail(H2Error::kFrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE");
      }
      if (!preface_settings_ && (type_ != kSettings || (flags_ & kAck) != 0)) {
        return Fail(H2Error::kProtocol, "the peer's preface is not SETTINGS");
      }
      if (block_id_ != 0 && (type_ != kContinuation || id_ != block_id_)) {
        return Fail(H2Error::kProtocol, "a header block interrupted");
      }
      if (type_ == kData) {
        if (!OnDataStart(flags_, id_, length_)) {
          return false;
        }
        continue;
      }
      state_ = State::kPayload;
      if (length_ > 0) {
        continue;
      }
      frame = std::string_view();
    }
    state_ = State::kHeader;
    const bool ok = OnFrame(type_, flags_, id_, frame);
    in_.clear();
    if (!ok || failed_) {
      return false;
    }
    if (reply_bytes_ > kMaxReplies) {
      return Fail(H2Error::kEnhanceYourCalm, "PING or SETTINGS flood");
    }
  }
  return !failed_;
}

bool H2Codec::OnDataStart(uint8_t flags, int32_t id, uint32_t length) {
  if (id == 0) {
    return Fail(H2Error::kProtocol, "DATA on stream 0");
  }
  if (!Known(id)) {
    return Fail(H2Error::kProtocol, "DATA on a stream never opened");
  }
  // Flow control counts the whole payload, padding included (RFC 9113 §6.9.1).
  if (length > recv_window_) {
    return Fail(H2Error::kFlowControl, "DATA beyond the connection window");
  }
  recv_window_ -= length;
  flags_ = flags;
  id_ = id;
  data_left_ = length;
  pad_left_ = 0;
  padding_ = 0;
  pad_pending_ = (flags & kPadded) != 0;
  state_ = State::kData;
  if (pad_pending_ && length == 0) {
    return Fail(H2Error::kFrameSize, "padded DATA without its pad length");
  }
  data_stream_ = Find(id);
  Stream* s = data_stream_;
  if (s != nullptr && s->remote_ended) {
    data_stream_ = nullptr;  // after END_STREAM: dropped (and given back)
    StreamError(id, H2Error::kStreamClosed);  // RFC 9113 §5.1, half-closed (remote)
  } else if (s != nullptr && static_cast<int64_t>(length) > s->recv_window) {
    data_stream_ = nullptr;
    Malformed(id, H2Error::kFlowControl);
  } else if (s != nullptr && !s->final_head) {
    data_stream_ = nullptr;
    Malformed(id);  // DATA before the response head
  } else if (s != nullptr) {
    s->recv_window -= static_cast<int32_t>(length);
  }
  if (length == 0 && !DataDone()) {
    return false;
  }
  return !failed_;
}

bool H2Codec::DataBytes(std::string_view bytes) {
  Stream* s = data_stream_;
  if (s != nullptr) {
    s->received += bytes.size();
    if (s->content_length >= 0 && s->received > static_cast<uint64_t>(s->content_length)) {
      data_stream_ = nullptr;
      Malformed(id_);  // more than its Content-Length
      s = nullptr;
    }
  }
  if (s == nullptr) {
    Consume(0, bytes.size());  // nobody takes them: back to the connection window
    return !failed_;
  }
  host_.OnData(id_, bytes);
  return !failed_;
}

bool H2Codec::DataDone() {
  state_ = State::kHeader;
  Stream* s = data_stream_;
  data_stream_ = nullptr;
  if (padding_ > 0) {
    Consume(s != nullptr ? id_ : 0, padding_);  // never delivered: given back at once
  }
  if (s == nullptr || (flags_ & kEndStream) == 0) {
    return !failed_;
  }
  if (s->content_length >= 0 && s->received != static_cast<uint64_t>(s->content_length)) {
    Malformed(id_);  // fewer bytes than its Content-Length
    return !failed_;
  }
  s->remote_ended = true;
  host_.OnDataEnd(id_);
  if (Stream* again = Find(id_)) {
    MaybeClose(id_, *again);
  }
  return !failed_;
}

bool H2Codec::OnFrame(uint8_t type, uint8_t flags, int32_t id, std::string_view p) {
  switch (type) {
    case kHeaders:
      return OnHeadersFrame(flags, id, p);
    case kContinuation:
      if (block_id_ == 0) {
        return Fail(H2Error::kProtocol, "CONTINUATION without HEADERS");
      }
      if (++continuations_ > kMaxContinuations) {
        return Fail(H2Error::kEnhanceYourCalm, "too many CONTINUATION frames");
      }
      return OnHeaderFragment(p, (flags & kEndHeaders) != 0);
    case kSettings:
      return OnSettingsFrame(flags, id, p);
    case kPing:
      if (id != 0) {
        return Fail(H2Error::kProtocol, "PING on a stream");
      }
      if (p.size() != 8) {
        return Fail(H2Error::kFrameSize, "PING not 8 bytes");
      }
      if ((flags & kAck) != 0) {
        host_.OnPingAck();
      } else {
        WriteFrameHeader(8, kPing, kAck, 0);
        out_.append(p);
        reply_bytes_ += 17;
      }
      return true;
    case kGoaway: {
      if (id != 0) {
        return Fail(H2Error::kProtocol, "GOAWAY on a stream");
      }
      if (p.size() < 8) {
        return Fail(H2Error::kFrameSize, "GOAWAY shorter than 8 bytes");
      }
      const auto last = static_cast<int32_t>(Read32(p.data()) & 0x7fffffff);
      goaway_received_ = true;
      // Streams above the last id never reached the application: refused (safe to retry).
      // (A client's GOAWAY names the server's streams: there are none.)
      std::vector<int32_t> refused;
      for (const auto& [sid, s] : streams_) {
        if (sid > last && role_ == Role::kClient) {
          refused.push_back(sid);
        }
      }
      std::sort(refused.begin(), refused.end());
      for (int32_t sid : refused) {
        CloseStream(sid, H2Error::kRefusedStream);
      }
      host_.OnGoaway();
      return true;
    }
    case kRstStream: {
      if (id == 0) {
        return Fail(H2Error::kProtocol, "RST_STREAM on stream 0");
      }
      if (p.size() != 4) {
        return Fail(H2Error::kFrameSize, "RST_STREAM not 4 bytes");
      }
      if (!Known(id)) {
        return Fail(H2Error::kProtocol, "RST_STREAM on a stream never opened");
      }
      if (Find(id) != nullptr) {
        host_.OnReset(id);
        CloseStream(id, static_cast<H2Error>(Read32(p.data())));
      }
      return true;
    }
    case kWindowUpdate: {
      if (p.size() != 4) {
        return Fail(H2Error::kFrameSize, "WINDOW_UPDATE not 4 bytes");
      }
      const uint32_t inc = Read32(p.data()) & 0x7fffffff;
      if (id == 0) {
        if (inc == 0) {
          return Fail(H2Error::kProtocol, "WINDOW_UPDATE of 0");
        }
        send_window_ += inc;
        if (send_window_ > kMaxWindow) {
          return Fail(H2Error::kFlowControl, "connection window above 2^31-1");
        }
        return true;
      }
      if (!Known(id)) {
        return Fail(H2Error::kProtocol, "WINDOW_UPDATE on a stream never opened");
      }
      Stream* s = Find(id);
      if (s == nullptr) {
        return true;  // closed here already
      }
      if (inc == 0) {
        StreamError(id, H2Error::kProtocol);
        return true;
      }
      s->send_window += inc;
      if (s->send_window > kMaxWindow) {
        StreamError(id, H2Error::kFlowControl);
      }
      return true;
    }
    case kPriority:
      if (id == 0) {
        return Fail(H2Error::kProtocol, "PRIORITY on stream 0");
      }
      if (p.size() != 5) {
        StreamError(id, H2Error::kFrameSize);
      }
      return true;  // priorities are not acted on
    case kPushPromise:
      return Fail(H2Error::kProtocol, "PUSH_PROMISE though push is off (or from a client)");
    default:
      return true;  // unknown frame types are ignored (RFC 9113 §4.1)
  }
}

bool H2Codec::OnSettingsFrame(uint8_t flags, int32_t id, std::string_view p) {
  if (id != 0) {
    return Fail(H2Error::kProtocol, "SETTINGS on a stream");
  }
  if ((flags & kAck) != 0) {
    if (!p.empty()) {
      return Fail(H2Error::kFrameSize, "SETTINGS ACK with a payload");
    }
    settings_acked_ = true;
    return true;
  }
  if (p.size() % 6 != 0) {
    return Fail(H2Error::kFrameSize, "SETTINGS not a multiple of 6 bytes");
  }
  int64_t initial_window = -1;  // SETTINGS_INITIAL_WINDOW_SIZE, if the frame has one
  for (size_t i = 0; i < p.size(); i += 6) {
    const uint16_t param =
        static_cast<uint16_t>((static_cast<uint8_t>(p[i]) << 8) | static_cast<uint8_t>(p[i + 1]));
    const uint32_t v = Read32(p.data() + i + 2);
    switch (param) {
      case 0x1:  // HEADER_TABLE_SIZE: our encoder's table is 0, announced once more
        if (v != peer_table_size_) {
          peer_table_size_ = v;
          table_update_due_ = true;
        }
        break;
      case 0x2:  // ENABLE_PUSH: a server may only say 0 (torii never pushes)
        if (v > 1 || (v != 0 && role_ == Role::kClient)) {
          return Fail(H2Error::kProtocol, "SETTINGS_ENABLE_PUSH out of range");
        }
        break;
      case 0x3:
        peer_max_streams_ = v;
        break;
      case 0x4:  // INITIAL_WINDOW_SIZE: the last one of the frame is applied, below
        if (v > kMaxWindow) {
          return Fail(H2Error::kFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1");
        }
        initial_window = v;
        break;
      case 0x5:
        if (v < 16384 || v > 16777215) {
          return Fail(H2Error::kProtocol, "SETTINGS_MAX_FRAME_SIZE out of range");
        }
        peer_max_frame_ = v;
        break;
      default:
        break;  // MAX_HEADER_LIST_SIZE is advisory; unknown settings are ignored
    }
  }
  if (initial_window >= 0 && initial_window != peer_initial_window_) {
    // Every open stream's window moves by the difference: one pass over the streams per
    // frame, however many times the frame repeats the setting.
    const int64_t delta = initial_window - peer_initial_window_;
    for (auto& [sid, s] : streams_) {
      s.send_window += delta;
      if (s.send_window > kMaxWindow) {
        return Fail(H2Error::kFlowControl, "a stream window above 2^31-1");
      }
    }
    peer_initial_window_ = static_cast<uint32_t>(initial_window);
  }
  WriteFrameHeader(0, kSettings, kAck, 0);
  reply_bytes_ += 9 + p.size();  // what the peer sent: an ACK costs it as much
  preface_settings_ = true;
  settings_received_ = true;
  host_.OnSettings();
  return true;
}

bool H2Codec::OnHeadersFrame(uint8_t flags, int32_t id, std::string_view p) {
  if (id == 0) {
    return Fail(H2Error::kProtocol, "HEADERS on stream 0");
  }
  if ((flags & kPadded) != 0) {
    if (p.empty() || static_cast<uint8_t>(p[0]) >= p.size()) {
      return Fail(H2Error::kProtocol, "HEADERS padding longer than the frame");
    }
    p = p.substr(1, p.size() - 1 - static_cast<uint8_t>(p[0]));
  }
  if ((flags & kPriorityFlag) != 0) {
    if (p.size() < 5) {
      return Fail(H2Error::kFrameSize, "HEADERS priority fields missing");
    }
    p.remove_prefix(5);
  }
  block_end_stream_ = (flags & kEndStream) != 0;
  if (!BeginBlock(id, block_end_stream_, &block_)) {
    return false;
  }
  block_id_ = id;
  block_bytes_ = 0;
  block_list_ = 0;
  continuations_ = 0;
  return OnHeaderFragment(p, (flags & kEndHeaders) != 0);
}

bool H2Codec::OnHeaderFragment(std::string_view fragment, bool end_headers) {
  block_bytes_ += static_cast<uint32_t>(fragment.size());
  if (block_bytes_ > kMaxBlockBytes) {
    return Fail(H2Error::kEnhanceYourCalm, "header block too large");
  }
  if (!end_headers) {
    block_in_.append(fragment);  // CONTINUATION frames are due: decoded once the last is in
    return true;
  }
  std::string_view block = fragment;
  if (!block_in_.empty()) {
    block_in_.append(fragment);
    block = block_in_;
  }
  const int32_t id = block_id_;
  const bool ok = hpack_.Decode(block, *this);  // the fields: Field()
  block_in_.clear();
  if (!ok) {
    return Fail(H2Error::kCompression, std::string("HPACK: ") + hpack_.error());
  }
  block_id_ = 0;
  EndBlock(id);
  return !failed_;
}

void H2Codec::Field(std::string_view name, std::string_view value) {
  if (block_ == Block::kIgnored) {
    return;  // decoded all the same, for the table to follow the peer's
  }
  // What the block decodes to is bounded as advertised (RFC 9113 §6.5.2's accounting): a few
  // bytes of table references can stand for megabytes of fields.
  block_list_ += static_cast<uint64_t>(name.size()) + value.size() + 32;
  CheckField(block_id_, name, value, block_list_);
}

}  // namespace torii::http
