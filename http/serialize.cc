// http/serialize.cc: see serialize.h.
#include "http/serialize.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

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
  return Listed<std::string_view>(kDropped, name) || name.find('_') != std::string_view::npos;
}

void AppendHeader(std::string* out, std::string_view name, std::string_view value) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}


}  // namespace

bool IsDroppedResponseHeader(std::string_view name) {
  static constexpr std::string_view kDropped[] = {
      "connection", "keep-alive",     "proxy-connection", "te",     "transfer-encoding",
      "trailer",    "content-length", "upgrade",          "proxy-authenticate"};
  return Listed<std::string_view>(kDropped, name);
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
    AppendHeader(out, t.name, t.value);
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
  AppendHeader(out, "Host", host);
  // Our hop goes after the client's last Via line (RFC 9110 §7.6.3), or in a Via of its own.
  const HeaderView* last_via = nullptr;
  for (const HeaderView& h : req.headers) {
    if (EqualsIgnoreCase(h.name, "via") && !NamedInConnection(req.headers, h.name)) {
      last_via = &h;
    }
  }
  for (const HeaderView& h : req.headers) {
    if (IsDroppedRequestHeader(h.name) || NamedInConnection(req.headers, h.name)) {
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
    AppendHeader(out, h.name, h.value);
  }
  const bool have_via = last_via != nullptr;
  AppendHeader(out, "X-Forwarded-For", forwarded_for);
  AppendHeader(out, "X-Forwarded-Proto", proto);
  if (!forwarded_host.empty()) {
    AppendHeader(out, "X-Forwarded-Host", forwarded_host);
  }
  out->append(edits.add);
  if (!have_via) {
    AppendHeader(out, "Via", "1.1 torii");
  }
  if (framing == Framing::kChunked) {
    AppendHeader(out, "Transfer-Encoding", "chunked");
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

namespace {

// Whether a Vary value already names Accept-Encoding (or is "*", which covers everything).
bool VaryCoversAcceptEncoding(std::string_view vary) {
  while (!vary.empty()) {
    const std::string_view item = base::TrimOws(base::PopField(&vary, ','));
    if (item == "*" || EqualsIgnoreCase(item, "accept-encoding")) {
      return true;
    }
  }
  return false;
}

}  // namespace

void BuildClientResponseHead(const MessageHead& resp, Framing framing, bool head_request,
                             bool close, uint8_t client_minor, std::string_view extra,
                             const HeadEdits& edits, std::string* out) {
  out->append(client_minor >= 1 ? "HTTP/1.1 " : "HTTP/1.0 ");
  AppendDecimal(out, resp.status);
  out->push_back(' ');
  // Our own reason phrase: a backend's (possibly huge or odd) one is not forwarded.
  out->append(ReasonPhrase(resp.status));
  out->append("\r\n");
  bool vary_done = !edits.vary_accept_encoding;
  for (const HeaderView& h : resp.headers) {
    if (IsDroppedResponseHeader(h.name) || NamedInConnection(resp.headers, h.name)) {
      continue;
    }
    if (Listed(edits.remove, h.name)) {
      continue;
    }
    if ((!edits.content_encoding.empty() || edits.drop_content_encoding) &&
        EqualsIgnoreCase(h.name, "content-encoding")) {
      continue;  // replaced below (or gone: the body was decoded)
    }
    if (!vary_done && EqualsIgnoreCase(h.name, "vary")) {
      vary_done = true;
      if (!VaryCoversAcceptEncoding(h.value)) {
        out->append(h.name);
        out->append(": ");
        out->append(h.value);
        out->append(h.value.empty() ? "Accept-Encoding\r\n" : ", Accept-Encoding\r\n");
        continue;
      }
    }
    if (edits.weaken_etag && EqualsIgnoreCase(h.name, "etag") && !h.value.starts_with("W/")) {
      out->append(h.name);
      out->append(": W/");
      out->append(h.value);
      out->append("\r\n");
      continue;
    }
    AppendHeader(out, h.name, h.value);
  }
  if (!edits.content_encoding.empty()) {
    out->append("Content-Encoding: ");
    out->append(edits.content_encoding);
    out->append("\r\n");
  }
  if (!vary_done) {
    out->append("Vary: Accept-Encoding\r\n");
  }
  if (framing == Framing::kContentLength ||
      ((head_request || resp.status == 304) && resp.has_content_length)) {
    out->append("Content-Length: ");
    AppendDecimal(out, resp.content_length);
    out->append("\r\n");
  } else if (framing == Framing::kChunked) {
    out->append("Transfer-Encoding: chunked\r\n");
  } else if (framing == Framing::kNone && !head_request && resp.status >= 200 &&
             resp.status != 204 && resp.status != 304) {
    out->append("Content-Length: 0\r\n");
  }
  out->append(extra);
  if (close) {
    out->append("Connection: close\r\n");
  } else if (client_minor == 0) {
    out->append("Connection: keep-alive\r\n");
  }
  out->append("\r\n");
}

std::string_view BuildLocalReply(int status, bool close, std::string_view extra,
                                 std::string_view body, std::string_view content_type,
                                 std::string* out) {
  out->append("HTTP/1.1 ");
  AppendDecimal(out, static_cast<uint64_t>(status));
  out->push_back(' ');
  out->append(ReasonPhrase(status));
  out->append("\r\nServer: torii\r\nContent-Type: ");
  out->append(content_type);
  out->append("\r\nContent-Length: ");
  AppendDecimal(out, body.size());
  out->append("\r\n");
  if (status == 503) {
    out->append("Retry-After: 1\r\n");
  }
  out->append(extra);
  out->append(close ? "Connection: close\r\n\r\n" : "\r\n");
  const size_t body_at = out->size();
  out->append(body);
  return std::string_view(*out).substr(body_at);
}

std::string_view BuildLocalReply(int status, bool close, std::string_view extra,
                                 std::string* out) {
  // The body is the status line's text: "503 Service Unavailable\n".
  char text[64];
  const std::string_view reason = ReasonPhrase(status);
  const int n = std::snprintf(text, sizeof(text), "%d %.*s\n", status,
                              static_cast<int>(reason.size()), reason.data());
  return BuildLocalReply(status, close, extra,
                         std::string_view(text, static_cast<size_t>(std::max(n, 0))),
                         "text/plain", out);
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
