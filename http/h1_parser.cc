// http/h1_parser.cc: see h1_parser.h.
#include "http/h1_parser.h"

#include <algorithm>
#include <cstring>

namespace torii::http {

namespace {

constexpr uint32_t kMaxChunkExtBytes = 4096;

H1Parser& Self(llhttp_t* p) { return *static_cast<H1Parser*>(p->data); }

// A Transfer-Encoding value made only of codings we know but do not implement.
bool OnlyKnownCodings(std::string_view v) {
  while (!v.empty()) {
    const std::string_view item = base::TrimOws(base::PopField(&v, ','));
    if (!(EqualsIgnoreCase(item, "gzip") || EqualsIgnoreCase(item, "deflate") ||
          EqualsIgnoreCase(item, "compress") || EqualsIgnoreCase(item, "x-gzip") ||
          EqualsIgnoreCase(item, "x-compress"))) {
      return false;
    }
  }
  return true;
}

}  // namespace

namespace {

bool CleanBytes(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7F) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool IsCleanValue(std::string_view s) {
  // A word with no byte below 0x20 and none equal to 0x7F is clean (the tests never miss one;
  // a borrow may flag a clean byte only above a flagged one). A flagged word (a tab, or a real
  // control character) is looked at byte by byte.
  return base::word::AllWords(s, [&](uint64_t w, size_t at, size_t n) {
    return (base::word::Below(w, 0x20) | base::word::Equal(w, 0x7F)) == 0 ||
           CleanBytes(s.substr(at, n));
  });
}

const llhttp_settings_t& H1Parser::Settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &H1Parser::OnMessageBegin;
    s.on_url = &H1Parser::OnUrl;
    s.on_status = &H1Parser::OnStatus;
    s.on_method = &H1Parser::OnMethod;
    s.on_header_field = &H1Parser::OnHeaderField;
    s.on_header_value = &H1Parser::OnHeaderValue;
    s.on_header_field_complete = &H1Parser::OnHeaderFieldComplete;
    s.on_header_value_complete = &H1Parser::OnHeaderValueComplete;
    s.on_url_complete = &H1Parser::OnUrlComplete;
    s.on_headers_complete = &H1Parser::OnHeadersComplete;
    s.on_body = &H1Parser::OnBody;
    s.on_message_complete = &H1Parser::OnMessageComplete;
    s.on_chunk_header = &H1Parser::OnChunkHeader;
    s.on_chunk_extension_name = &H1Parser::OnChunkExt;
    s.on_chunk_extension_value = &H1Parser::OnChunkExt;
    s.on_chunk_complete = &H1Parser::OnChunkComplete;
    return s;
  }();
  return settings;
}

H1Parser::H1Parser(Kind kind, const Limits& limits) { Init(kind, limits); }

void H1Parser::Init(Kind kind, const Limits& limits) {
  kind_ = kind;
  limits_ = limits;
  llhttp_init(&parser_, kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &Settings());
  parser_.data = this;
  base_ = nullptr;
  consumed_ = 0;
  error_status_ = 0;
  error_reason_ = "";
  paused_ = false;
  tail_ = 0;
  request_was_head_ = false;
  Reset();
}

void H1Parser::Reset() {
  head_.method = {};
  head_.target = {};
  head_.method_id = 0;
  head_.status = 0;
  head_.reason = {};
  head_.version_minor = 1;
  head_.headers = {};
  head_.framing = Framing::kNone;
  head_.content_length = 0;
  head_.keep_alive = true;
  head_.upgrade = false;
  head_.has_content_length = false;
  storage_->clear();
  trailer_text_.clear();
  trailer_fields_.clear();
  trailer_views_.clear();
  method_off_ = method_len_ = target_off_ = target_len_ = reason_off_ = reason_len_ = 0;
  head_start_ = static_cast<uint32_t>(consumed_);
  version_patched_ = false;
  body_span_ = {};
  body_seen_ = 0;
  chunk_ext_bytes_ = 0;
  started_ = false;
  head_done_ = false;
  head_reported_ = false;
  url_done_ = false;
  in_field_ = false;
  in_value_ = false;
  message_done_ = false;
  must_close_ = false;
  pending_ = Event::kNeedMore;
}

int H1Parser::Fail(int status, const char* reason) {
  if (error_status_ == 0) {
    error_status_ = status;
    error_reason_ = reason;
  }
  return HPE_USER;
}

void H1Parser::Extend(uint32_t& off, uint32_t& len, const char* at, size_t n) {
  const auto pos = static_cast<uint32_t>(at - base_);
  if (len == 0 && off == 0) {
    off = pos;
    len = static_cast<uint32_t>(n);
  } else if (off + len == pos) {
    len += static_cast<uint32_t>(n);
  } else {
    // Non-contiguous pieces of one field: llhttp skipped bytes inside it, which happens only
    // for obs-fold (the buffer itself is contiguous). RFC 9112 §5.2: reject.
    Fail(kind_ == Kind::kRequest ? 400 : 502, "obs-fold");
  }
}

H1Parser::Step H1Parser::Next(const char* buf, size_t len) {
  if (error_status_ != 0) {
    return Step{Event::kError, {}};
  }
  if (message_done_) {
    if (!head_reported_) {
      head_reported_ = true;
      return Step{Event::kHead, {}};
    }
    if (pending_ == Event::kDone) {
      pending_ = Event::kNeedMore;
      return Step{Event::kDone, {}};
    }
    Reset();
  }
  base_ = buf;
  // A parser paused at the end of a body span may complete the message without new input
  // (Content-Length reached), so it runs even on an empty remainder.
  if (consumed_ >= len && !paused_) {
    return Step{Event::kNeedMore, {}};
  }
  if (paused_) {
    llhttp_resume(&parser_);
    paused_ = false;
  }
  pending_ = Event::kNeedMore;
  body_span_ = {};
  const char* start = buf + consumed_;
  const llhttp_errno_t err = llhttp_execute(&parser_, start, len - consumed_);
  if (error_status_ != 0) {
    return Step{Event::kError, {}};
  }
  const auto note_tail = [&](size_t upto) {
    // The last two bytes the parser consumed, across calls (the caller may erase them).
    for (size_t i = upto >= consumed_ + 2 ? upto - 2 : consumed_; i < upto; ++i) {
      tail_ = static_cast<uint16_t>((tail_ << 8) | static_cast<unsigned char>(buf[i]));
    }
  };
  switch (err) {
    case HPE_OK:
      note_tail(len);
      consumed_ = len;
      if (!head_done_ && len - head_start_ > limits_.header_bytes) {
        const bool line = kind_ == Kind::kRequest && !url_done_;
        Fail(kind_ == Kind::kResponse ? 502 : (line ? 414 : 431),
             line ? "request line too long" : "header section too large");
        return Step{Event::kError, {}};
      }
      return Step{Event::kNeedMore, {}};
    case HPE_PAUSED:
    case HPE_PAUSED_UPGRADE: {
      paused_ = err == HPE_PAUSED;
      note_tail(static_cast<size_t>(llhttp_get_error_pos(&parser_) - buf));
      consumed_ = static_cast<size_t>(llhttp_get_error_pos(&parser_) - buf);
      if (pending_ == Event::kDone && head_.framing == Framing::kChunked &&
          tail_ != (('\r' << 8) | '\n')) {
        // llhttp accepts a bare LF ending the last chunk or the trailer section ("0\r\n\n");
        // RFC 9112 requires CRLF, and a lenient reading is a smuggling vector (C3).
        Fail(kind_ == Kind::kRequest ? 400 : 502, "bare LF in chunked framing");
        return Step{Event::kError, {}};
      }
      if (err == HPE_PAUSED_UPGRADE) {
        // An Upgrade request completed: torii does not tunnel, and nothing after it is parsed.
        message_done_ = true;
        must_close_ = true;
        pending_ = Event::kDone;
      }
      if ((pending_ == Event::kHead || pending_ == Event::kDone) && !head_reported_) {
        // llhttp accepts a bare LF after the start line and at the end of the head; RFC
        // 9112 §2.2 lets a recipient do so, but torii must read exactly what its peers read.
        const char* p = buf + head_start_;
        const char* end = buf + consumed_;
        while ((p = static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(end - p)))) !=
               nullptr) {
          if (p == buf + head_start_ || p[-1] != '\r') {
            Fail(kind_ == Kind::kRequest ? 400 : 502, "bare LF in head");
            return Step{Event::kError, {}};
          }
          ++p;
        }
        head_reported_ = true;
        if (pending_ == Event::kDone) {
          return Step{Event::kHead, {}};
        }
      }
      const Event e = pending_;
      if (e == Event::kDone) {
        pending_ = Event::kNeedMore;
      }
      return Step{e, e == Event::kBody ? body_span_ : std::string_view{}};
    }
    default:
      if (kind_ == Kind::kResponse) {
        Fail(502, llhttp_errno_name(err));
      } else if (err == HPE_INVALID_TRANSFER_ENCODING && !head_done_) {
        Fail(501, llhttp_errno_name(err));
      } else if (err == HPE_INVALID_CHUNK_SIZE &&
                 std::string_view(llhttp_get_error_reason(&parser_)) == "Chunk size overflow") {
        Fail(413, "chunk size over the body limit");  // C2: 17+ hex digits
      } else if (err == HPE_INVALID_VERSION && IsOtherHttpVersion(buf, len)) {
        Fail(505, "HTTP version not supported");
      } else {
        Fail(400, llhttp_errno_name(err));
      }
      return Step{Event::kError, {}};
  }
}

bool H1Parser::IsOtherHttpVersion(const char* buf, size_t len) const {
  // The request line's last token is "HTTP/d.d" with a major version other than 1 (llhttp's
  // strict mode refuses e.g. HTTP/3.0 itself, before torii can answer 505).
  const std::string_view view(buf + head_start_, len - head_start_);
  const std::string_view line = view.substr(0, view.find('\r'));
  const size_t sp = line.rfind(' ');
  if (sp == std::string_view::npos) {
    return false;
  }
  const std::string_view v = line.substr(sp + 1);
  return v.size() == 8 && v.starts_with("HTTP/") && v[5] >= '0' && v[5] <= '9' && v[5] != '1' &&
         v[6] == '.' && v[7] >= '0' && v[7] <= '9';
}

H1Parser::Step H1Parser::Next(char* buf, size_t len) {
  if (kind_ == Kind::kRequest && !head_done_ && !version_patched_ && !message_done_) {
    // RFC 9112 §2.3: a higher minor version of HTTP/1 is processed as HTTP/1.1 (R2). llhttp's
    // strict mode refuses "HTTP/1.2", so the digit is rewritten before llhttp reads it.
    const size_t from = consumed_ > head_start_ ? head_start_ : consumed_;
    const std::string_view view(buf + from, len - from);
    const size_t eol = view.find('\n');
    const std::string_view line = view.substr(0, eol);
    const size_t sp = line.rfind(' ');
    if (sp != std::string_view::npos && line.substr(sp + 1).starts_with("HTTP/1.") &&
        line.size() >= sp + 9) {
      const size_t digit = from + sp + 8;
      if (buf[digit] >= '2' && buf[digit] <= '9' && digit >= consumed_) {
        buf[digit] = '1';
      }
      version_patched_ = true;
    }
  }
  return Next(static_cast<const char*>(buf), len);
}

H1Parser::Step H1Parser::Finish() {
  if (head_done_ && !message_done_ && head_.framing == Framing::kUntilClose) {
    message_done_ = true;
    must_close_ = true;
    head_reported_ = true;
    return Step{Event::kDone, {}};
  }
  Fail(502, started_ ? "truncated message" : "closed before any byte");
  return Step{Event::kError, {}};
}

int H1Parser::OnMessageBegin(llhttp_t* p) {
  Self(p).started_ = true;
  return 0;
}

int H1Parser::OnUrl(llhttp_t* p, const char* at, size_t len) {
  H1Parser& s = Self(p);
  s.Extend(s.target_off_, s.target_len_, at, len);
  if (s.target_off_ + s.target_len_ - s.head_start_ > s.limits_.header_bytes) {
    return s.Fail(414, "request target too long");
  }
  return s.error_status_ != 0 ? HPE_USER : 0;
}

int H1Parser::OnUrlComplete(llhttp_t* p) {
  Self(p).url_done_ = true;
  return 0;
}

int H1Parser::OnMethod(llhttp_t* p, const char* at, size_t len) {
  H1Parser& s = Self(p);
  s.started_ = true;
  s.Extend(s.method_off_, s.method_len_, at, len);
  return 0;
}

int H1Parser::OnStatus(llhttp_t* p, const char* at, size_t len) {
  H1Parser& s = Self(p);
  s.Extend(s.reason_off_, s.reason_len_, at, len);
  if (s.reason_off_ + s.reason_len_ - s.head_start_ > s.limits_.header_bytes) {
    return s.Fail(502, "status line too long");
  }
  return 0;
}

int H1Parser::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  H1Parser& s = Self(p);
  if (s.head_done_) {
    // Trailer section: copied aside (the caller's buffer moves on with the body), bounded as
    // a head is, never merged into it.
    if (!s.in_field_) {
      s.trailer_fields_.push_back(
          FieldOffsets{static_cast<uint32_t>(s.trailer_text_.size()), 0, 0, 0});
      s.in_field_ = true;
    }
    return s.AppendTrailer(s.trailer_fields_.back().name_len, at, len);
  }
  if (!s.in_field_) {
    s.storage_->fields.push_back(FieldOffsets{});
    s.in_field_ = true;
  }
  FieldOffsets& f = s.storage_->fields.back();
  s.Extend(f.name_off, f.name_len, at, len);
  if (f.name_off + f.name_len - s.head_start_ > s.limits_.header_bytes) {
    return s.Fail(s.kind_ == Kind::kRequest ? 431 : 502, "header section too large");
  }
  return s.error_status_ != 0 ? HPE_USER : 0;
}

int H1Parser::OnHeaderFieldComplete(llhttp_t* p) {
  H1Parser& s = Self(p);
  if (s.head_done_) {
    const int bad = s.kind_ == Kind::kRequest ? 400 : 502;
    if (!s.in_field_) {
      return s.Fail(bad, "empty trailer name");
    }
    s.in_field_ = false;
    FieldOffsets& f = s.trailer_fields_.back();
    if (!IsToken(std::string_view(s.trailer_text_).substr(f.name_off, f.name_len))) {
      return s.Fail(bad, "invalid trailer name");
    }
    if (s.trailer_fields_.size() > s.limits_.header_count) {
      return s.Fail(bad, "too many trailer fields");
    }
    f.value_off = static_cast<uint32_t>(s.trailer_text_.size());
    return 0;
  }
  if (!s.in_field_) {
    // on_header_field is not called for an empty name.
    s.storage_->fields.push_back(FieldOffsets{});
  }
  s.in_field_ = false;
  if (s.storage_->fields.back().name_len == 0) {
    return s.Fail(s.kind_ == Kind::kRequest ? 400 : 502, "empty header name");
  }
  if (s.storage_->fields.size() > s.limits_.header_count) {
    return s.Fail(s.kind_ == Kind::kRequest ? 431 : 502, "too many headers");
  }
  return 0;
}

int H1Parser::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  H1Parser& s = Self(p);
  if (s.head_done_) {
    return s.trailer_fields_.empty()
               ? s.Fail(s.kind_ == Kind::kRequest ? 400 : 502, "trailer value without a name")
               : s.AppendTrailer(s.trailer_fields_.back().value_len, at, len);
  }
  if (s.storage_->fields.empty()) {
    return s.Fail(s.kind_ == Kind::kRequest ? 400 : 502, "value without a name");
  }
  FieldOffsets& f = s.storage_->fields.back();
  s.Extend(f.value_off, f.value_len, at, len);
  if (f.value_off + f.value_len - s.head_start_ > s.limits_.header_bytes) {
    return s.Fail(s.kind_ == Kind::kRequest ? 431 : 502, "header section too large");
  }
  return s.error_status_ != 0 ? HPE_USER : 0;
}

int H1Parser::OnHeaderValueComplete(llhttp_t* p) {
  H1Parser& s = Self(p);
  s.in_value_ = false;
  if (s.head_done_ && !s.trailer_fields_.empty()) {
    const FieldOffsets& f = s.trailer_fields_.back();
    if (!IsCleanValue(std::string_view(s.trailer_text_).substr(f.value_off, f.value_len))) {
      return s.Fail(s.kind_ == Kind::kRequest ? 400 : 502, "control character in trailer value");
    }
  }
  return 0;
}

int H1Parser::AppendTrailer(uint32_t& len, const char* at, size_t n) {
  trailer_text_.append(at, n);
  len += static_cast<uint32_t>(n);
  if (trailer_text_.size() > limits_.header_bytes) {
    return Fail(kind_ == Kind::kRequest ? 431 : 502, "trailer section too large");
  }
  return 0;
}

int H1Parser::ValidateHead() {
  const bool req = kind_ == Kind::kRequest;
  const int bad = req ? 400 : 502;
  const char* b = base_;
  head_.version_minor = parser_.http_minor > 1 ? 1 : parser_.http_minor;
  if (req) {
    if (parser_.http_major == 0) {
      return Fail(400, "HTTP/0.9");
    }
    if (parser_.http_major != 1) {
      return Fail(505, "HTTP version not supported");
    }
    head_.method = std::string_view(b + method_off_, method_len_);
    head_.method_id = parser_.method;
    head_.target = std::string_view(b + target_off_, target_len_);
    if (head_.target.empty()) {
      return Fail(400, "empty request target");
    }
    if (head_.target.find('#') != std::string_view::npos) {
      return Fail(400, "fragment in request target");
    }
  } else {
    if (parser_.http_major != 1) {
      return Fail(502, "bad response version");
    }
    if (parser_.status_code < 100 || parser_.status_code > 599) {
      return Fail(502, "bad status code");
    }
    head_.status = parser_.status_code;
    head_.reason = std::string_view(b + reason_off_, reason_len_);
    if (!IsCleanValue(head_.reason)) {
      return Fail(502, "bad reason phrase");
    }
  }
  // Obs-fold anywhere in the head (a fold line starts with SP or HTAB). Extend() already
  // catches folds inside one value; this also catches a fold llhttp delivered contiguously.
  uint32_t head_end = head_start_;
  const std::vector<FieldOffsets>& fields = storage_->fields;
  for (const FieldOffsets& f : fields) {
    head_end = std::max(head_end, f.value_off + f.value_len);
    head_end = std::max(head_end, f.name_off + f.name_len);
  }
  const char* const end = b + head_end;
  for (const char* p = b + head_start_; p < end; ++p) {
    p = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (p == nullptr || p + 1 == end) {
      break;
    }
    if (p[1] == ' ' || p[1] == '\t') {
      return Fail(bad, "obs-fold");
    }
  }

  std::vector<HeaderView>& headers = storage_->headers;
  headers.clear();
  int te_count = 0;
  int cl_count = 0;
  std::string_view te;
  for (const FieldOffsets& f : fields) {
    HeaderView h{std::string_view(b + f.name_off, f.name_len),
                 base::TrimOws(std::string_view(b + f.value_off, f.value_len))};
    if (!IsToken(h.name)) {
      return Fail(bad, "invalid header name");
    }
    if (!IsCleanValue(h.value)) {
      return Fail(bad, "control character in header value");
    }
    if (EqualsIgnoreCase(h.name, "transfer-encoding")) {
      ++te_count;
      te = h.value;
    } else if (EqualsIgnoreCase(h.name, "content-length")) {
      ++cl_count;
    }
    headers.push_back(h);
  }
  head_.headers = headers;
  if (te_count > 1) {
    return Fail(bad, "duplicate Transfer-Encoding");
  }
  if (te_count == 1 && cl_count > 0) {
    return Fail(bad, "Content-Length with Transfer-Encoding");
  }
  if (cl_count > 1) {
    return Fail(bad, "duplicate Content-Length");
  }
  const bool chunked = te_count == 1 && EqualsIgnoreCase(te, "chunked");
  if (te_count == 1 && !chunked) {
    if (req && OnlyKnownCodings(te)) {
      return Fail(501, "unsupported transfer coding");
    }
    return Fail(bad, "invalid Transfer-Encoding");
  }
  if (req && chunked && parser_.http_minor == 0) {
    return Fail(400, "Transfer-Encoding in HTTP/1.0");
  }
  const bool has_cl = cl_count == 1;
  head_.has_content_length = has_cl;
  head_.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  if (req) {
    head_.upgrade = parser_.upgrade != 0;
    for (const HeaderView& h : head_.headers) {
      if (EqualsIgnoreCase(h.name, "upgrade")) {
        head_.upgrade = true;
      }
    }
    if (chunked) {
      head_.framing = Framing::kChunked;
    } else if (has_cl && parser_.content_length > 0) {
      head_.framing = Framing::kContentLength;
      head_.content_length = parser_.content_length;
      if (head_.content_length > limits_.body_bytes) {
        return Fail(413, "body too large");
      }
    }
    return 0;
  }
  const uint16_t st = head_.status;
  if (request_was_head_ || st < 200 || st == 204 || st == 304) {
    head_.framing = Framing::kNone;
    head_.content_length = has_cl ? parser_.content_length : 0;
    return 1;  // no body, whatever the headers say (B8)
  }
  if (chunked) {
    head_.framing = Framing::kChunked;
  } else if (has_cl) {
    head_.framing = parser_.content_length > 0 ? Framing::kContentLength : Framing::kNone;
    head_.content_length = parser_.content_length;
  } else {
    head_.framing = Framing::kUntilClose;
  }
  return 0;
}

int H1Parser::OnHeadersComplete(llhttp_t* p) {
  H1Parser& s = Self(p);
  s.head_done_ = true;
  const int rc = s.ValidateHead();
  if (rc < 0 || s.error_status_ != 0) {
    return HPE_USER;
  }
  if (rc == 1) {
    // Skip the body: llhttp goes straight to on_message_complete, which pauses.
    s.pending_ = Event::kHead;
    return 1;
  }
  s.pending_ = Event::kHead;
  return HPE_PAUSED;
}

int H1Parser::OnBody(llhttp_t* p, const char* at, size_t len) {
  H1Parser& s = Self(p);
  if (len == 0) {
    return 0;  // llhttp flushes an open body span at the end of every execute, even empty
  }
  s.body_seen_ += len;
  s.body_span_ = std::string_view(at, len);
  s.pending_ = Event::kBody;
  return HPE_PAUSED;
}

int H1Parser::OnChunkHeader(llhttp_t* p) {
  H1Parser& s = Self(p);
  s.chunk_ext_bytes_ = 0;
  // C2: refuse a chunk that cannot fit in the remaining body budget, before reading it.
  if (s.kind_ == Kind::kRequest && p->content_length > s.limits_.body_bytes - s.body_seen_) {
    return s.Fail(413, "chunk exceeds body limit");
  }
  return 0;
}

int H1Parser::OnChunkExt(llhttp_t* p, const char* /*at*/, size_t len) {
  H1Parser& s = Self(p);
  s.chunk_ext_bytes_ += static_cast<uint32_t>(len);
  if (s.chunk_ext_bytes_ > kMaxChunkExtBytes) {
    return s.Fail(s.kind_ == Kind::kRequest ? 400 : 502, "chunk extension too long");
  }
  return 0;
}

int H1Parser::OnChunkComplete(llhttp_t* p) {
  Self(p).chunk_ext_bytes_ = 0;
  return 0;
}

int H1Parser::OnMessageComplete(llhttp_t* p) {
  H1Parser& s = Self(p);
  s.message_done_ = true;
  for (const FieldOffsets& f : s.trailer_fields_) {
    const std::string_view text = s.trailer_text_;
    s.trailer_views_.push_back(HeaderView{text.substr(f.name_off, f.name_len),
                                          base::TrimOws(text.substr(f.value_off, f.value_len))});
  }
  s.must_close_ = llhttp_should_keep_alive(p) == 0 || s.head_.framing == Framing::kUntilClose ||
                  s.head_.upgrade;
  s.pending_ = Event::kDone;
  return HPE_PAUSED;
}

}  // namespace torii::http
