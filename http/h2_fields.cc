// http/h2_fields.cc: see h2_fields.h.
#include "http/h2_fields.h"

#include <llhttp.h>

#include <bit>
#include <charconv>
#include <cstring>

#include "base/text.h"

namespace torii::http {

void H2RequestFields::Clear() {
  bytes_ = 0;
  count_ = 0;
  too_large_ = false;
  malformed_ = false;
  method_.clear();
  path_.clear();
  authority_.clear();
  protocol_.clear();
  store_.clear();
  fields_.clear();
  views_.clear();
  cookie_.clear();
}

void H2RequestFields::Add(std::string_view name, std::string_view value) {
  bytes_ += name.size() + value.size() + 32;  // RFC 9113 §6.5.2's accounting
  if (bytes_ > max_bytes_ || ++count_ > max_count_) {
    too_large_ = true;
  }
  if (too_large_) {
    return;  // nothing more is kept: the request is answered 431
  }
  if (name.empty()) {
    malformed_ = true;  // the codec lets none through; never trusted to hold either
    return;
  }
  if (!name.empty() && name.front() == ':') {
    std::string* slot = name == ":method"      ? &method_
                        : name == ":path"      ? &path_
                        : name == ":authority" ? &authority_
                        : name == ":protocol"  ? &protocol_
                                               : nullptr;
    if (slot != nullptr) {
      slot->assign(value);
    }
    return;  // :scheme plays no part: the listener says whether the client used TLS
  }
  fields_.push_back(Field{static_cast<uint32_t>(store_.size()), static_cast<uint32_t>(name.size()),
                          static_cast<uint32_t>(value.size())});
  store_.append(name);
  store_.append(value);
}

std::optional<H2RequestFields::Refusal> H2RequestFields::Build(bool end_stream, uint64_t max_body,
                                                               MessageHead* head) {
  if (too_large_) {
    return Refusal{431, "request header fields too large"};
  }
  if (malformed_) {
    return Refusal{400, "empty field name"};
  }
  const std::optional<uint8_t> method = MethodId(method_);
  if (!method) {
    return Refusal{501, "unknown method"};
  }
  MessageHead& h = *head;
  h = MessageHead{};
  h.method = method_;
  h.method_id = *method;
  h.target = path_;
  h.version_major = 2;
  h.version_minor = 1;  // the exchange applies HTTP/1.1's rules (a Host is required)
  h.keep_alive = true;
  h.framing = end_stream ? Framing::kNone : Framing::kChunked;
  views_.clear();
  cookie_.clear();
  // RFC 8441: the codec lets :protocol through only on a CONNECT with :scheme and :path, once
  // torii's SETTINGS enabled it. Its DATA are the tunnel's bytes, not a body.
  const bool tunnel = !protocol_.empty();
  if (tunnel) {
    if (*method != HTTP_CONNECT || path_.empty()) {
      return Refusal{400, "malformed extended CONNECT"};
    }
    h.method = "GET";
    h.method_id = HTTP_GET;
    h.framing = Framing::kNone;
    h.upgrade = true;
    h.connect_protocol = true;
    views_.push_back(HeaderView{"connection", "upgrade"});
    views_.push_back(HeaderView{"upgrade", protocol_});
  }
  std::optional<std::string_view> host;
  for (const Field& f : fields_) {
    const std::string_view name(store_.data() + f.at, f.name);
    const std::string_view value(store_.data() + f.at + f.name, f.value);
    if (name == "cookie") {
      if (!cookie_.empty()) {
        cookie_.append("; ");
      }
      cookie_.append(value);
      continue;
    }
    if (name == "host") {
      if (host) {
        return Refusal{400, "duplicate Host"};
      }
      host = value;
    } else if (tunnel && (name == "content-length" || name == "sec-websocket-key")) {
      // A tunnel has no length, and its WebSocket handshake with the backend is torii's own
      // (an HTTP/2 client sends no key: RFC 8441 §5).
      if (name == "content-length") {
        return Refusal{400, "Content-Length on an extended CONNECT"};
      }
      continue;
    } else if (name == "content-length") {
      uint64_t n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
          h.has_content_length) {
        return Refusal{400, "bad Content-Length"};
      }
      h.has_content_length = true;
      h.content_length = n;
      h.framing = end_stream ? Framing::kNone : Framing::kContentLength;
    }
    views_.push_back(HeaderView{name, value});
  }
  if (!cookie_.empty()) {
    views_.push_back(HeaderView{"cookie", cookie_});
  }
  if (!authority_.empty()) {
    if (host && !base::EqualsIgnoreCase(*host, authority_)) {
      return Refusal{400, "Host differs from :authority"};
    }
    if (!host) {
      views_.push_back(HeaderView{"host", authority_});
    }
  }
  if (h.framing == Framing::kContentLength && h.content_length > max_body) {
    return Refusal{413, "request body too large"};
  }
  h.headers = views_;
  return std::nullopt;
}

std::optional<uint8_t> MethodId(std::string_view method) {
  struct Entry {
    std::string_view name;
    uint8_t id;
  };
  static constexpr Entry kMethods[] = {
#define TORII_METHOD(NUM, NAME, STRING) Entry{#STRING, NUM},
      HTTP_METHOD_MAP(TORII_METHOD)
#undef TORII_METHOD
  };
  for (const Entry& e : kMethods) {
    if (e.name == method) {
      return e.id;
    }
  }
  return std::nullopt;
}

namespace {

// Lowercases the name that starts at `p` in place, up to the ':' that ends it, and returns
// where that ':' is (nullptr if the line, which ends at `end`, has none). Eight bytes at a
// time: the first ':' is flagged exactly, and A-Z below it gain 0x20.
char* LowerNameToColon(char* p, char* end) {
  namespace word = base::word;
  for (; end - p >= 8; p += 8) {
    uint64_t w;
    std::memcpy(&w, p, sizeof(w));
    const uint64_t colon = word::Equal(w, ':');
    uint64_t upper = word::InRange(w, 'A', 'Z');
    if (colon != 0) {
      upper &= (colon & (~colon + 1)) - 1;  // only the bytes before the first ':'
    }
    if (upper != 0) {
      w |= upper >> 2;  // 0x80 >> 2 == 0x20: 'A' becomes 'a'
      std::memcpy(p, &w, sizeof(w));
    }
    if (colon != 0) {
      return p + std::countr_zero(colon) / 8;
    }
  }
  for (; p < end; ++p) {
    if (*p == ':') {
      return p;
    }
    *p = base::LowerAscii(*p);
  }
  return nullptr;
}

}  // namespace

void RequestFields(std::string* head, std::string_view scheme, std::vector<H2Field>* out) {
  out->clear();
  std::string& h = *head;
  // "METHOD target HTTP/1.1\r\n"
  const size_t line_end = h.find("\r\n");
  const size_t sp1 = h.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? std::string::npos : h.find(' ', sp1 + 1);
  if (line_end == std::string::npos || sp2 == std::string::npos || sp2 > line_end) {
    return;
  }
  const std::string_view text(h);
  out->push_back(H2Field{":method", text.substr(0, sp1)});
  out->push_back(H2Field{":scheme", scheme});
  out->push_back(H2Field{":authority", {}});  // the Host line's value, below
  out->push_back(H2Field{":path", text.substr(sp1 + 1, sp2 - sp1 - 1)});
  out->push_back(H2Field{"te", "trailers"});  // torii passes trailers on (gRPC requires it)
  // The "Name: value" lines (serialize.h writes them; no value holds a CR, so the first one
  // ends the line), up to the blank line: names lowercased in place, values trimmed.
  char* p = h.data() + line_end + 2;
  char* const end = h.data() + h.size();
  while (p < end && *p != '\r') {
    char* const eol = static_cast<char*>(std::memchr(p, '\r', static_cast<size_t>(end - p)));
    if (eol == nullptr) {
      break;
    }
    char* const colon = LowerNameToColon(p, eol);
    if (colon != nullptr && colon > p) {
      const std::string_view name(p, static_cast<size_t>(colon - p));
      const std::string_view value =
          base::TrimOws(std::string_view(colon + 1, static_cast<size_t>(eol - colon - 1)));
      if (name == "host") {
        (*out)[2].value = value;
      } else if (!IsConnectionSpecificField(name) && name != "te") {
        out->push_back(H2Field{name, value});
      }
    }
    p = eol + 2;
  }
}

}  // namespace torii::http
