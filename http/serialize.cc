// http/serialize.cc: see serialize.h.
#include "http/serialize.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <type_traits>

#include "base/name_set.h"
#include "base/text.h"

namespace torii::http {

namespace {

// `name` is one of `names` (lowercase), compared ignoring case.
template <typename Name>
bool Listed(std::span<const Name> names, std::string_view name) {
  for (const Name& n : names) {
    if (EqualsIgnoreCase(name, n)) {
      return true;
    }
  }
  return false;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) plus the ones torii rewrites itself.
bool IsDroppedRequestHeader(std::string_view name) {
  static constexpr std::string_view kDropped[] = {"connection",
                                                  "keep-alive",
                                                  "proxy-connection",
                                                  "te",
                                                  "transfer-encoding",
                                                  "content-length",
                                                  "upgrade",
                                                  "trailer",
                                                  "expect",
                                                  "host",
                                                  "x-forwarded-for",
                                                  "x-forwarded-proto",
                                                  "x-forwarded-host",
                                                  "forwarded",
                                                  "x-real-ip",
                                                  "proxy-authorization",
                                                  "x-forwarded-scheme",
                                                  "x-original-url",
                                                  "x-rewrite-url",
                                                  "x-http-method-override",
                                                  "client-cert",
                                                  "client-cert-chain"};
  static constexpr base::NameSet<std::size(kDropped)> kSet(kDropped);
  return kSet.Contains(name) || name.find('_') != std::string_view::npos;
}

// Whether any of `headers` is a Connection field (most messages have none: then no field is
// named in one, and NamedInConnection need not be asked for each).
bool HasConnectionField(std::span<const HeaderView> headers) {
  for (const HeaderView& h : headers) {
    if (EqualsIgnoreCase(h.name, "connection")) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool IsDroppedResponseHeader(std::string_view name) {
  static constexpr std::string_view kDropped[] = {
      "connection", "keep-alive",     "proxy-connection", "te",     "transfer-encoding",
      "trailer",    "content-length", "upgrade",          "proxy-authenticate"};
  static constexpr base::NameSet<std::size(kDropped)> kSet(kDropped);
  return kSet.Contains(name);
}

bool IsConnectionSpecificField(std::string_view name) {
  static constexpr std::string_view kNames[] = {"connection", "keep-alive", "proxy-connection",
                                                "transfer-encoding", "upgrade"};
  static constexpr base::NameSet<std::size(kNames)> kSet(kNames);
  return kSet.Contains(name);
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

bool NamedInConnection(std::span<const HeaderView> headers, std::string_view name) {
  for (const HeaderView& h : headers) {
    if (!EqualsIgnoreCase(h.name, "connection")) {
      continue;
    }
    std::string_view v = h.value;
    while (!v.empty()) {
      if (EqualsIgnoreCase(base::TrimOws(base::PopField(&v, ',')), name)) {
        return true;
      }
    }
  }
  return false;
}

void AppendChunkHeader(size_t size, std::string* out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), size, 16);
  out->append(buf, static_cast<size_t>(end - buf));
  out->append("\r\n");
}

bool IsForwardedTrailer(std::string_view name) {
  // RFC 9110 §6.5.1: fields that frame, route, authenticate or control a message, or that
  // describe its content, belong in the head; a recipient must not merge them from trailers.
  // Some backends merge trailers anyway, so none of those (nor the forwarding fields torii
  // writes itself) may pass as a trailer.
  static constexpr std::string_view kHeadOnly[] = {"age",
                                                   "authorization",
                                                   "cache-control",
                                                   "content-encoding",
                                                   "content-range",
                                                   "content-type",
                                                   "content-location",
                                                   "cookie",
                                                   "date",
                                                   "etag",
                                                   "expires",
                                                   "last-modified",
                                                   "location",
                                                   "max-forwards",
                                                   "pragma",
                                                   "range",
                                                   "retry-after",
                                                   "set-cookie",
                                                   "vary",
                                                   "via",
                                                   "www-authenticate",
                                                   "early-data",
                                                   "x-request-id"};
  return !name.empty() && name.front() != ':' && !IsDroppedRequestHeader(name) &&
         !IsDroppedResponseHeader(name) && !EqualsIgnoreCase(name.substr(0, 3), "if-") &&
         !Listed<std::string_view>(kHeadOnly, name);
}

void KeepTrailers(std::span<const HeaderView> trailers, std::span<const std::string> allow,
                  std::vector<HeaderView>* kept) {
  kept->clear();
  for (const HeaderView& t : trailers) {
    if (Listed(allow, t.name) && IsForwardedTrailer(t.name)) {
      kept->push_back(t);
    }
  }
}

void AppendLastChunk(std::span<const HeaderView> trailers, std::string* out) {
  out->append("0\r\n");
  for (const HeaderView& t : trailers) {
    base::AppendField(out, t.name, t.value);
  }
  out->append("\r\n");
}

void BuildUpstreamRequestHead(const MessageHead& req, std::string_view host,
                              std::string_view target, std::string_view forwarded_for,
                              Framing framing, std::string* out, std::string_view proto,
                              std::string_view forwarded_host, const UpstreamHeadEdits& edits) {
  out->clear();
  out->append(req.method);
  out->push_back(' ');
  out->append(target);
  out->append(" HTTP/1.1\r\n");
  base::AppendField(out, "Host", host);
  // Our hop goes after the client's last Via line (RFC 9110 §7.6.3), or in a Via of its own.
  const bool connection = HasConnectionField(req.headers);
  const HeaderView* last_via = nullptr;
  for (const HeaderView& h : req.headers) {
    if (EqualsIgnoreCase(h.name, "via") &&
        !(connection && NamedInConnection(req.headers, h.name))) {
      last_via = &h;
    }
  }
  for (const HeaderView& h : req.headers) {
    if (IsDroppedRequestHeader(h.name) || (connection && NamedInConnection(req.headers, h.name))) {
      continue;
    }
    if (Listed(edits.remove, h.name)) {
      continue;
    }
    if (&h == last_via) {
      out->append(h.name);
      out->append(": ");
      out->append(h.value);
      out->append(", 1.1 torii\r\n");
      continue;
    }
    base::AppendField(out, h.name, h.value);
  }
  const bool have_via = last_via != nullptr;
  base::AppendField(out, "X-Forwarded-For", forwarded_for);
  base::AppendField(out, "X-Forwarded-Proto", proto);
  if (!forwarded_host.empty()) {
    base::AppendField(out, "X-Forwarded-Host", forwarded_host);
  }
  out->append(edits.add);
  if (!have_via) {
    base::AppendField(out, "Via", "1.1 torii");
  }
  if (framing == Framing::kChunked) {
    base::AppendField(out, "Transfer-Encoding", "chunked");
  } else if (framing == Framing::kContentLength) {
    out->append("Content-Length: ");
    AppendDecimal(out, req.content_length);
    out->append("\r\n");
  } else if (req.method_id == HTTP_POST || req.method_id == HTTP_PUT ||
             req.method_id == HTTP_PATCH) {
    // An empty body stated explicitly, so the backend does not wait for one.
    out->append("Content-Length: 0\r\n");
  }
  out->append("\r\n");
}

void BuildClientResponseHead(const MessageHead& resp, Framing framing, bool head_request,
                             bool close, uint8_t client_minor, std::string_view extra,
                             std::string* out) {
  BuildClientResponseHead(resp, framing, head_request, close, client_minor, extra, HeadEdits{},
                          out);
}

bool VaryCoversAcceptEncoding(std::string_view vary) {
  while (!vary.empty()) {
    const std::string_view item = base::TrimOws(base::PopField(&vary, ','));
    if (item == "*" || EqualsIgnoreCase(item, "accept-encoding")) {
      return true;
    }
  }
  return false;
}

namespace {

// Where WriteResponseHead puts a response head: HTTP/1.1 text for the wire.
class TextHead {
 public:
  TextHead(std::string* out, bool close, uint8_t minor, bool title_case = false)
      : out_(*out), close_(close), minor_(minor), title_case_(title_case) {}

  void Reserve(size_t n) { out_.reserve(out_.size() + n); }
  void Status(int status) {
    out_.append(minor_ >= 1 ? "HTTP/1.1 " : "HTTP/1.0 ");
    AppendDecimal(&out_, static_cast<uint64_t>(status));
    out_.push_back(' ');
    // Our own reason phrase: a backend's (possibly huge or odd) one is not forwarded.
    out_.append(ReasonPhrase(status));
    out_.append("\r\n");
  }
  // A field of the message, named as its sender spelled it; its value is `a` then `b`.
  void Field(std::string_view name, std::string_view a, std::string_view b = {}) {
    const size_t at = out_.size();
    out_.resize(at + name.size() + a.size() + b.size() + 4);
    char* p = out_.data() + at;
    p = title_case_ ? PutTitleCase(p, name) : Put(p, name);
    *p++ = ':';
    *p++ = ' ';
    p = Put(p, a);
    p = Put(p, b);
    *p++ = '\r';
    *p = '\n';
  }
  // One of torii's own fields: `name` as HTTP/1.1 spells it (`lower`: as HTTP/2 must).
  void Own(std::string_view name, std::string_view /*lower*/, std::string_view value) {
    Field(name, value);
  }
  void Own(std::string_view name, std::string_view /*lower*/, uint64_t value) {
    out_.append(name);
    out_.append(": ");
    AppendDecimal(&out_, value);
    out_.append("\r\n");
  }
  // Pre-serialised "Name: value\r\n" lines.
  void Lines(std::string_view lines) { out_.append(lines); }
  void End() {
    if (close_) {
      out_.append("Connection: close\r\n");
    } else if (minor_ == 0) {
      out_.append("Connection: keep-alive\r\n");
    }
    out_.append("\r\n");
  }

 private:
  static char* Put(char* p, std::string_view s) {
    if (!s.empty()) {
      std::memcpy(p, s.data(), s.size());
    }
    return p + s.size();
  }
  // "content-type" as "Content-Type": each letter that starts a word in upper case.
  static char* PutTitleCase(char* p, std::string_view s) {
    bool start = true;
    for (char c : s) {
      *p++ = start && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
      start = c == '-';
    }
    return p;
  }

  std::string& out_;
  bool close_;
  uint8_t minor_;
  bool title_case_;  // the message's names are lowercase: HTTP/1.1 capitalises them
};

// HTTP/2 fields: names lowercased, connection-specific fields left out. What the message's
// own bytes do not hold (a lowercased name, a merged value, a number) is kept in `store`.
class FieldsHead {
 public:
  FieldsHead(std::string* store, std::vector<H2Field>* out) : store_(*store), out_(*out) {
    store_.clear();
    out_.clear();
  }

  void Reserve(size_t n) { store_.reserve(n); }
  void Status(int status) {
    char digits[12];
    const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), status);
    out_.push_back(H2Field{":status", Keep(std::string_view(digits, end - digits))});
  }
  void Field(std::string_view name, std::string_view a, std::string_view b = {}) {
    // In the list before the value is kept: a Keep that moved the store re-bases it too.
    out_.push_back(H2Field{Lower(name), a});
    if (!b.empty()) {
      out_.back().value = Keep(a, b);
    }
  }
  void Own(std::string_view /*name*/, std::string_view lower, std::string_view value) {
    if (lower != "transfer-encoding") {  // HTTP/2 frames the body itself
      out_.push_back(H2Field{lower, value});
    }
  }
  void Own(std::string_view /*name*/, std::string_view lower, uint64_t value) {
    char digits[24];
    const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
    out_.push_back(H2Field{lower, Keep(std::string_view(digits, end - digits))});
  }
  void Lines(std::string_view lines) {
    while (!lines.empty()) {
      const size_t eol = lines.find("\r\n");
      const std::string_view line = lines.substr(0, eol);
      lines = eol == std::string_view::npos ? std::string_view() : lines.substr(eol + 2);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        continue;
      }
      const std::string_view name = line.substr(0, colon);
      if (!IsConnectionSpecificField(name)) {
        Field(name, base::TrimOws(line.substr(colon + 1)));
      }
    }
  }
  void End() {}

 private:
  std::string_view Lower(std::string_view name) {
    if (!base::HasUpperAscii(name)) {
      return name;  // already lowercase (an HTTP/2 backend's, or torii's own)
    }
    const std::string_view kept = Keep(name);  // the store's last bytes
    for (size_t i = store_.size() - kept.size(); i < store_.size(); ++i) {
      store_[i] = base::LowerAscii(store_[i]);
    }
    return kept;
  }
  // `a` then `b`, copied into the store. The store was reserved for all a head keeps; should
  // it grow anyway, the views already taken into it follow it to its new place.
  std::string_view Keep(std::string_view a, std::string_view b = {}) {
    const char* old = store_.data();
    const size_t old_size = store_.size();
    store_.append(a);
    store_.append(b);
    if (store_.data() != old) {
      for (H2Field& f : out_) {
        f.name = Rebased(f.name, old, old_size);
        f.value = Rebased(f.value, old, old_size);
      }
    }
    return std::string_view(store_).substr(old_size);
  }
  std::string_view Rebased(std::string_view v, const char* old, size_t old_size) const {
    const std::less_equal<const char*> le;
    if (!v.empty() && le(old, v.data()) && le(v.data() + v.size(), old + old_size)) {
      return std::string_view(store_.data() + (v.data() - old), v.size());
    }
    return v;
  }

  std::string& store_;
  std::vector<H2Field>& out_;
};

// The response's own fields, as `edits` changes them, into `out`. Returns whether a Vary
// naming Accept-Encoding is among them (or none was asked for).
template <typename Out>
bool WriteResponseFields(const MessageHead& resp, const HeadEdits& edits, Out& out) {
  const bool connection = HasConnectionField(resp.headers);
  bool vary_done = !edits.vary_accept_encoding;
  for (const HeaderView& h : resp.headers) {
    // A name that is empty or a pseudo-header's can only come from a bug upstream of here
    // (parsers hand over tokens): never passed on, in either protocol.
    if (h.name.empty() || h.name.front() == ':' || IsDroppedResponseHeader(h.name) ||
        (connection && NamedInConnection(resp.headers, h.name))) {
      continue;
    }
    if (!edits.remove.empty() && Listed(edits.remove, h.name)) {
      continue;
    }
    if ((!edits.content_encoding.empty() || edits.drop_content_encoding) &&
        EqualsIgnoreCase(h.name, "content-encoding")) {
      continue;  // replaced below (or gone: the body was decoded)
    }
    if (!vary_done && EqualsIgnoreCase(h.name, "vary")) {
      vary_done = true;
      if (!VaryCoversAcceptEncoding(h.value)) {
        out.Field(h.name, h.value, h.value.empty() ? "Accept-Encoding" : ", Accept-Encoding");
        continue;
      }
    }
    if (edits.weaken_etag && EqualsIgnoreCase(h.name, "etag") && !h.value.starts_with("W/")) {
      out.Field(h.name, "W/", h.value);
      continue;
    }
    out.Field(h.name, h.value);
  }
  return vary_done;
}

// Whether `edits.rendered` stands for what WriteResponseFields would write of `resp` under
// `edits`: it was rendered with title case and no other edit, so nothing else may be edited
// but a Vary that must name Accept-Encoding where the fields' Vary (the first the loop would
// see) already does. Sets `*vary_done` as WriteResponseFields would return it.
bool RenderedApplies(const MessageHead& resp, const HeadEdits& edits, bool* vary_done) {
  if (edits.rendered.empty() || !edits.title_case || !edits.remove.empty() ||
      !edits.content_encoding.empty() || edits.drop_content_encoding || edits.weaken_etag) {
    return false;
  }
  *vary_done = true;
  if (!edits.vary_accept_encoding) {
    return true;
  }
  const bool connection = HasConnectionField(resp.headers);
  for (const HeaderView& h : resp.headers) {
    if (EqualsIgnoreCase(h.name, "vary") &&
        !(connection && NamedInConnection(resp.headers, h.name))) {
      return VaryCoversAcceptEncoding(h.value);  // else the loop rewrites it
    }
  }
  *vary_done = false;  // no Vary: the line is added after the fields
  return true;
}

// The response head for the client, into `out` (TextHead or FieldsHead).
template <typename Out>
void WriteResponseHead(const MessageHead& resp, Framing framing, bool head_request,
                       std::string_view extra, const HeadEdits& edits, Out& out) {
  bool vary_done = false;
  const bool rendered = std::is_same_v<Out, TextHead> && RenderedApplies(resp, edits, &vary_done);
  size_t size = 128 + extra.size() + edits.content_encoding.size();
  if (rendered) {
    size += edits.rendered.size();
  } else {
    for (const HeaderView& h : resp.headers) {
      size += h.name.size() + h.value.size() + 4;
    }
  }
  out.Reserve(size);
  out.Status(resp.status);
  if (rendered) {
    out.Lines(edits.rendered);
  } else {
    vary_done = WriteResponseFields(resp, edits, out);
  }
  if (!edits.content_encoding.empty()) {
    out.Own("Content-Encoding", "content-encoding", edits.content_encoding);
  }
  if (!vary_done) {
    out.Own("Vary", "vary", "Accept-Encoding");
  }
  if (framing == Framing::kContentLength ||
      ((head_request || resp.status == 304) && resp.has_content_length)) {
    out.Own("Content-Length", "content-length", resp.content_length);
  } else if (framing == Framing::kChunked) {
    out.Own("Transfer-Encoding", "transfer-encoding", "chunked");
  } else if (framing == Framing::kNone && !head_request && resp.status >= 200 &&
             resp.status != 204 && resp.status != 304) {
    out.Own("Content-Length", "content-length", uint64_t{0});
  }
  out.Lines(extra);
  out.End();
}

}  // namespace

void BuildClientResponseHead(const MessageHead& resp, Framing framing, bool head_request,
                             bool close, uint8_t client_minor, std::string_view extra,
                             const HeadEdits& edits, std::string* out) {
  TextHead text(out, close, client_minor, edits.title_case);
  WriteResponseHead(resp, framing, head_request, extra, edits, text);
}

std::string RenderStoredFields(std::span<const HeaderView> headers) {
  std::string out;
  TextHead text(&out, /*close=*/false, /*minor=*/1, /*title_case=*/true);
  MessageHead head;
  head.headers = headers;
  HeadEdits edits;
  edits.title_case = true;
  WriteResponseFields(head, edits, text);
  return out;
}

void BuildClientResponseFields(const MessageHead& resp, Framing framing, bool head_request,
                               std::string_view extra, const HeadEdits& edits, std::string* store,
                               std::vector<H2Field>* out) {
  FieldsHead fields(store, out);
  WriteResponseHead(resp, framing, head_request, extra, edits, fields);
}

namespace {

// A local reply's head: torii's Server, the body's type and length, Retry-After on a 503.
template <typename Out>
void WriteLocalHead(int status, std::string_view extra, size_t body_size,
                    std::string_view content_type, Out& out) {
  out.Reserve(160 + extra.size() + content_type.size());
  out.Status(status);
  out.Own("Server", "server", "torii");
  if (!StatusHasNoContent(status)) {
    out.Own("Content-Type", "content-type", content_type);
    out.Own("Content-Length", "content-length", uint64_t{body_size});
  }
  if (status == 503) {
    out.Own("Retry-After", "retry-after", "1");
  }
  out.Lines(extra);
  out.End();
}

}  // namespace

std::string_view BuildLocalReply(int status, bool close, std::string_view extra,
                                 std::string_view body, std::string_view content_type,
                                 std::string* out) {
  if (StatusHasNoContent(status)) {
    body = {};
  }
  TextHead text(out, close, /*minor=*/1);
  WriteLocalHead(status, extra, body.size(), content_type, text);
  const size_t body_at = out->size();
  out->append(body);
  return std::string_view(*out).substr(body_at);
}

std::string_view LocalReplyText(int status, std::array<char, 64>* buf) {
  const std::string_view reason = ReasonPhrase(status);
  const int n = std::snprintf(buf->data(), buf->size(), "%d %.*s\n", status,
                              static_cast<int>(reason.size()), reason.data());
  // snprintf returns the length it wanted: never more than what the buffer holds.
  return std::string_view(buf->data(),
                          static_cast<size_t>(std::clamp(n, 0, static_cast<int>(buf->size()) - 1)));
}

std::string_view BuildLocalReply(int status, bool close, std::string_view extra, std::string* out) {
  std::array<char, 64> text;
  return BuildLocalReply(status, close, extra, LocalReplyText(status, &text), "text/plain", out);
}

void BuildLocalReplyFields(int status, std::string_view extra, size_t body_size,
                           std::string_view content_type, std::string* store,
                           std::vector<H2Field>* out) {
  FieldsHead fields(store, out);
  WriteLocalHead(status, extra, body_size, content_type, fields);
}

std::optional<std::string_view> ValidateHost(std::string_view host) {
  if (host.empty() || host.size() > 255) {
    return std::nullopt;
  }
  std::string_view name = host;
  std::string_view port;
  if (host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos || close < 3) {
      return std::nullopt;
    }
    for (char c : host.substr(1, close - 1)) {
      const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                      (c >= 'A' && c <= 'F') || c == ':' || c == '.';
      if (!ok) {
        return std::nullopt;
      }
    }
    name = host.substr(0, close + 1);
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return std::nullopt;
      }
      port = rest.substr(1);
      if (port.empty()) {
        return std::nullopt;
      }
    }
  } else {
    const size_t colon = host.find(':');
    if (colon != std::string_view::npos) {
      name = host.substr(0, colon);
      port = host.substr(colon + 1);
      if (port.empty()) {
        return std::nullopt;
      }
    }
    if (name.empty() || name.front() == '.' || name.front() == '-') {
      return std::nullopt;
    }
    char prev = 0;
    for (char c : name) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
      if (!ok || (c == '.' && prev == '.')) {
        return std::nullopt;
      }
      prev = c;
    }
  }
  if (port.size() > 5) {
    return std::nullopt;
  }
  for (char c : port) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
  }
  return name;
}

}  // namespace torii::http
