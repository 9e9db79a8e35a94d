// http/h2_server_codec.cc: see h2_server_codec.h.
#include "http/h2_server_codec.h"

#include <cstdint>

#include "base/text.h"

namespace torii::http {

namespace {

// The request pseudo-fields (Stream::pseudo's bits).
constexpr uint8_t kMethod = 1;
constexpr uint8_t kScheme = 2;
constexpr uint8_t kAuthority = 4;
constexpr uint8_t kPath = 8;
constexpr uint8_t kProtocol = 16;

// RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool IsScheme(std::string_view v) {
  if (v.empty() || !base::IsAlpha(v[0])) {
    return false;
  }
  for (char c : v) {
    if (!base::IsAlpha(c) && !base::IsDigit(c) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

// RFC 3986 §3.2: userinfo, host (an IP literal's brackets too) and port characters.
bool IsAuthority(std::string_view v) {
  for (char c : v) {
    if (!base::IsAlpha(c) && !base::IsDigit(c) &&
        std::string_view("-._~!$&'()*+,;=:@[]%").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// A request target as sent: no control character, space or DEL (the path is normalised
// later, path.h); "*" or an absolute path.
bool IsPath(std::string_view v) {
  if (v.empty() || (v[0] != '/' && v != "*")) {
    return false;
  }
  for (char c : v) {
    const auto b = static_cast<uint8_t>(c);
    if (b <= 0x20 || b == 0x7f) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool H2ServerCodec::SendHeaders(int32_t stream, std::span<const H2OutField> fields,
                                bool end_stream) {
  Stream* s = Find(stream);
  if (failed_ || s == nullptr || s->local_ended) {
    return false;
  }
  WriteHeaders(stream, fields, end_stream);
  if (end_stream) {
    s->local_ended = true;
    MaybeClose(stream, *s);
  }
  return true;
}

void H2ServerCodec::Goaway(H2Error code) {
  if (failed_ || goaway_sent_) {
    return;
  }
  goaway_sent_ = true;
  H2Codec::Goaway(code, last_taken_);
}

void H2ServerCodec::Refuse(int32_t id, Block* block) {
  max_opened_ = id;  // frames that follow on it are dropped, not a connection error
  WriteReset(id, H2Error::kRefusedStream);
  *block = Block::kIgnored;
}

bool H2ServerCodec::BeginBlock(int32_t id, bool end_stream, Block* block) {
  if ((id & 1) == 0) {
    return Fail(H2Error::kProtocol, "HEADERS on a stream a client may not open");
  }
  if (id > max_opened_) {
    if (goaway_sent_) {
      Refuse(id, block);
      return true;
    }
    if (streams_.size() >= settings_.max_streams) {
      if (settings_acked_) {
        return Fail(H2Error::kProtocol, "streams over SETTINGS_MAX_CONCURRENT_STREAMS");
      }
      Refuse(id, block);  // the client may not have our SETTINGS yet
      return true;
    }
    OpenStream(id);
    last_taken_ = id;
    *block = Block::kHead;
    host_.OnBegin(id);
    return !failed_;
  }
  Stream* s = Find(id);
  if (s == nullptr || s->remote_ended) {
    // A stream closed here (reset, or answered and reset): the client's frames that crossed
    // ours are dropped; its block is decoded all the same, for the table to follow the peer's.
    // One the client had ended is a stream error (RFC 9113 §5.1, half-closed (remote)).
    if (s != nullptr) {
      StreamError(id, H2Error::kStreamClosed);
    }
    *block = Block::kIgnored;
    return true;
  }
  *block = Block::kTrailers;  // a request head's block ended before any other frame
  s->saw_regular = false;
  s->too_large = false;
  if (!end_stream) {
    s->malformed = true;  // trailers must end the stream
  }
  return true;
}

void H2ServerCodec::CheckField(int32_t id, std::string_view name, std::string_view value,
                               uint64_t list) {
  Stream* found = Find(id);
  if (found == nullptr || found->malformed || found->too_large) {
    return;
  }
  Stream& s = *found;
  if (list > settings_.max_header_list) {
    // A few bytes of table references can stand for megabytes of fields: past the bound they
    // are decoded (the table must follow the peer's) and no more.
    s.too_large = true;
    host_.OnTooLarge(id);
    return;
  }
  if (!name.empty() && name[0] == ':') {
    const uint8_t bit = name == ":method"                                   ? kMethod
                        : name == ":scheme"                                 ? kScheme
                        : name == ":authority"                              ? kAuthority
                        : name == ":path"                                   ? kPath
                        : name == ":protocol" && settings_.connect_protocol ? kProtocol
                                                                            : 0;
    bool ok = bit != 0 && block_ == Block::kHead && !s.saw_regular && (s.pseudo & bit) == 0;
    if (ok) {
      switch (bit) {
        case kMethod:
          ok = base::IsToken(value);
          s.connect = value == "CONNECT";
          s.options = value == "OPTIONS";
          s.head_request = value == "HEAD";
          break;
        case kScheme:
          ok = IsScheme(value);
          break;
        case kAuthority:
          ok = IsAuthority(value);
          break;
        case kPath:
          ok = IsPath(value);
          s.asterisk = value == "*";
          break;
        default:
          ok = base::IsToken(value);
          break;
      }
    }
    if (!ok) {
      s.malformed = true;
      return;
    }
    s.pseudo |= bit;
    host_.OnField(id, name, value);
    return;
  }
  RegularField(id, s, name, value);
}

void H2ServerCodec::EndBlock(int32_t id) {
  Stream* s = Find(id);
  if (block_ == Block::kIgnored || s == nullptr) {
    return;
  }
  if (block_ == Block::kHead && !s->malformed) {
    const uint8_t p = s->pseudo;
    if ((p & kMethod) == 0) {
      s->malformed = true;
    } else if (s->connect && (p & kProtocol) == 0) {
      // CONNECT (RFC 9113 §8.5): the authority to reach, no scheme or path.
      s->malformed = (p & kAuthority) == 0 || (p & (kScheme | kPath)) != 0;
    } else {
      // Every other request, an extended CONNECT (RFC 8441 §4) too: a scheme and a path.
      s->malformed = (p & (kScheme | kPath)) != (kScheme | kPath) ||
                     ((p & kProtocol) != 0 && !s->connect) || (s->asterisk && !s->options);
    }
    if (!s->malformed && block_end_stream_ && s->content_length > 0) {
      s->malformed = true;  // a length promised, no body sent
    }
  }
  if (block_ == Block::kTrailers && !s->malformed && s->content_length >= 0 &&
      s->received != static_cast<uint64_t>(s->content_length)) {
    s->malformed = true;  // fewer bytes than its Content-Length
  }
  if (s->malformed) {
    Malformed(id);
    return;
  }
  s->final_head = true;
  BlockDone(id, *s);
}

}  // namespace torii::http
