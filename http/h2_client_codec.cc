// http/h2_client_codec.cc: see h2_client_codec.h.
#include "http/h2_client_codec.h"

#include <cstdint>

namespace torii::http {

int32_t H2ClientCodec::Open(std::span<const H2OutField> fields, bool end_stream) {
  if (failed_ || goaway_received_ || next_id_ <= 0) {
    return 0;
  }
  const int32_t id = next_id_;
  next_id_ = id < 0x7fffffff - 2 ? id + 2 : -1;  // 2^31 - 1 is the last id
  Stream& s = OpenStream(id);
  s.local_ended = end_stream;
  for (const H2OutField& f : fields) {
    if (f.name == ":method") {
      s.head_request = f.value == "HEAD";
      break;
    }
  }
  WriteHeaders(id, fields, end_stream);
  return id;
}

bool H2ClientCodec::BeginBlock(int32_t id, bool end_stream, Block* block) {
  if (!Known(id)) {
    return Fail(H2Error::kProtocol, "HEADERS on a stream never opened");
  }
  Stream* s = Find(id);
  if (s == nullptr || s->remote_ended) {
    // A stream closed here (reset, or ended both ways): frames that crossed ours are dropped.
    // One the backend had ended while torii's side is still open (a request body still going
    // after a complete response) is a stream error (RFC 9113 §5.1, half-closed (remote)).
    if (s != nullptr) {
      StreamError(id, H2Error::kStreamClosed);
    }
    *block = Block::kIgnored;  // decoded all the same: the table must follow the peer's
    return true;
  }
  s->saw_regular = false;
  if (s->final_head) {
    *block = Block::kTrailers;
    if (!end_stream) {
      s->malformed = true;  // trailers must end the stream
    }
  } else {
    *block = Block::kHead;
    s->status = 0;
  }
  return true;
}

void H2ClientCodec::CheckField(int32_t id, std::string_view name, std::string_view value,
                               uint64_t list) {
  Stream* found = Find(id);
  if (found == nullptr || found->malformed) {
    return;
  }
  Stream& s = *found;
  if (list > settings_.max_header_list) {
    // What the block decodes to is bounded as advertised (RFC 9113 §6.5.2's accounting): a
    // few bytes of table references can stand for megabytes of fields.
    s.malformed = true;
    return;
  }
  if (!name.empty() && name[0] == ':') {
    // Only :status, once, first, and never in trailers.
    if (name != ":status" || block_ != Block::kHead || s.status != 0 || s.saw_regular ||
        value.size() != 3 || value[0] < '1' || value[0] > '5' || value[1] < '0' || value[1] > '9' ||
        value[2] < '0' || value[2] > '9') {
      s.malformed = true;
      return;
    }
    s.status =
        static_cast<uint16_t>((value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0'));
    if (s.status == 101) {
      s.malformed = true;  // no protocol switch in HTTP/2 (RFC 9113 §8.6)
      return;
    }
    host_.OnField(id, name, value);
    return;
  }
  RegularField(id, s, name, value);
}

void H2ClientCodec::EndBlock(int32_t id) {
  Stream* s = Find(id);
  if (block_ == Block::kIgnored || s == nullptr) {
    return;
  }
  if (block_ == Block::kHead) {
    if (s->status == 0) {
      s->malformed = true;
    } else if (s->status < 200 && block_end_stream_) {
      s->malformed = true;  // an interim response cannot end the stream
    }
  }
  if (s->malformed) {
    Malformed(id);
    return;
  }
  if (block_ == Block::kHead && s->status >= 200) {
    s->final_head = true;
    if (s->head_request || s->status == 204 || s->status == 304) {
      s->content_length = 0;  // no body, whatever Content-Length says
    }
    if (block_end_stream_ && s->content_length > 0) {
      Malformed(id);  // a length promised, no body sent
      return;
    }
  } else if (block_ == Block::kHead) {
    s->content_length = -1;
    s->content_length_seen = false;
  }
  if (block_ == Block::kTrailers && s->content_length >= 0 &&
      s->received != static_cast<uint64_t>(s->content_length)) {
    Malformed(id);  // fewer bytes than its Content-Length
    return;
  }
  BlockDone(id, *s);
}

}  // namespace torii::http
