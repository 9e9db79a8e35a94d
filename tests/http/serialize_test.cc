// tests/http/serialize_test.cc: the heads torii writes (http/serialize.cc). Requests are parsed
// with the real H1Parser first, as the session does, so the serialiser sees the same views it
// sees in production; outputs are parsed back to check that they are single, well-formed heads.
// A mutation test feeds thousands of corrupted requests through parse → serialise → re-parse
// and checks that nothing a client sends can split a header line (BAD-INPUTS H2, S18, H3).
#include "http/serialize.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "base/text.h"
#include "http/h1_parser.h"

namespace torii::http {
namespace {

using namespace std::string_literals;
using Event = H1Parser::Event;

// A request or response parsed by H1Parser; the head's views point into `bytes`.
struct Parsed {
  std::string bytes;
  std::unique_ptr<H1Parser> parser;
  int error = 0;
  bool head = false;
  const MessageHead& h() const { return parser->head(); }
};

std::unique_ptr<Parsed> Parse(std::string bytes, H1Parser::Kind kind = H1Parser::Kind::kRequest,
                              bool request_was_head = false) {
  auto p = std::make_unique<Parsed>();
  p->bytes = std::move(bytes);
  p->parser = std::make_unique<H1Parser>(kind, H1Parser::Limits{});
  p->parser->set_request_was_head(request_was_head);
  for (int i = 0; i < 4; ++i) {
    const H1Parser::Step s = p->parser->Next(p->bytes.data(), p->bytes.size());
    if (s.event == Event::kHead) {
      p->head = true;
      break;
    }
    if (s.event == Event::kError) {
      p->error = p->parser->error_status();
      break;
    }
    if (s.event == Event::kNeedMore) {
      break;
    }
  }
  return p;
}

// The lines of a head (without the final empty line); the first is the start line.
std::vector<std::string> Lines(std::string_view head) {
  std::vector<std::string> lines;
  EXPECT_TRUE(head.ends_with("\r\n\r\n")) << "head does not end with an empty line";
  head.remove_suffix(std::min<size_t>(head.size(), 4));
  size_t pos = 0;
  for (;;) {
    const size_t end = head.find("\r\n", pos);
    lines.emplace_back(head.substr(pos, end == std::string_view::npos ? head.npos : end - pos));
    if (end == std::string_view::npos) {
      break;
    }
    pos = end + 2;
  }
  return lines;
}

// (name, value) of every header line of `head`.
std::vector<std::pair<std::string, std::string>> Headers(std::string_view head) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::vector<std::string> lines = Lines(head);
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    EXPECT_NE(colon, std::string::npos) << "header line without a colon: " << lines[i];
    if (colon == std::string::npos) {
      continue;
    }
    std::string value = lines[i].substr(colon + 1);
    EXPECT_TRUE(value.empty() || value.front() == ' ') << lines[i];
    if (!value.empty()) {
      value.erase(0, 1);
    }
    out.emplace_back(lines[i].substr(0, colon), value);
  }
  return out;
}

int Count(const std::vector<std::pair<std::string, std::string>>& headers, std::string_view name) {
  int n = 0;
  for (const auto& h : headers) {
    n += EqualsIgnoreCase(h.first, name) ? 1 : 0;
  }
  return n;
}

std::optional<std::string> Get(const std::vector<std::pair<std::string, std::string>>& headers,
                               std::string_view name) {
  for (const auto& h : headers) {
    if (EqualsIgnoreCase(h.first, name)) {
      return h.second;
    }
  }
  return std::nullopt;
}

std::string Upstream(const Parsed& p, std::string_view host = "example.com",
                     std::string_view client_ip = "192.0.2.7") {
  std::string out = "stale bytes that must be cleared";
  BuildUpstreamRequestHead(p.h(), host, p.h().target, client_ip, p.h().framing, &out);
  return out;
}

// ============================================================================================
// BuildUpstreamRequestHead

// The request line is "METHOD target HTTP/1.1" (whatever the client's minor version), Host is
// the given one, first, exactly once, and end-to-end headers are kept in order.
TEST(UpstreamHeadTest, RequestLineHostAndEndToEndHeaders) {
  auto p = Parse(
      "GET /a?b=1 HTTP/1.0\r\nHost: client.example\r\nAccept: */*\r\n"
      "X-One: 1\r\nCookie: c=d\r\n\r\n");
  ASSERT_TRUE(p->head) << p->error;
  const std::string out = Upstream(*p, "backend.example:8080");
  const std::vector<std::string> lines = Lines(out);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[0], "GET /a?b=1 HTTP/1.1");
  EXPECT_EQ(lines[1], "Host: backend.example:8080");
  const auto h = Headers(out);
  EXPECT_EQ(Count(h, "host"), 1);
  EXPECT_EQ(Get(h, "accept"), "*/*");
  EXPECT_EQ(Get(h, "x-one"), "1");
  EXPECT_EQ(Get(h, "cookie"), "c=d");
  EXPECT_EQ(out.find("stale"), std::string::npos) << "output buffer not cleared";
}

// Hop-by-hop headers (RFC 9110 §7.6.1) are dropped, in any letter case, as are the headers
// the client names in Connection (with OWS and several Connection headers).
TEST(UpstreamHeadTest, DropsHopByHopAndConnectionNamed) {
  auto p = Parse(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret ,x-other\r\n"
      "connection: X-Third\r\nKEEP-ALIVE: timeout=5\r\nProxy-Connection: keep-alive\r\n"
      "TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nProxy-Authorization: Basic x\r\n"
      "Expect: 100-continue\r\nX-Secret: 1\r\nX-Other: 2\r\nX-Third: 3\r\n"
      "X-Kept: 4\r\n\r\n");
  ASSERT_TRUE(p->head) << p->error;
  const auto h = Headers(Upstream(*p));
  for (const char* name :
       {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
        "proxy-authorization", "expect", "x-secret", "x-other", "x-third"}) {
    EXPECT_EQ(Count(h, name), 0) << name << " was forwarded";
  }
  EXPECT_EQ(Get(h, "x-kept"), "4");
}

// S18: header names with an underscore are dropped (Content_Length never reaches the origin).
TEST(UpstreamHeadTest, S18_DropsUnderscoreNames) {
  auto p = Parse(
      "POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 36\r\nX_Forwarded_For: 1.2.3.4\r\n"
      "_: x\r\nX-Ok: y\r\nContent-Length: 2\r\n\r\nab");
  ASSERT_TRUE(p->head) << p->error;
  const std::string out = Upstream(*p);
  EXPECT_EQ(out.find('_'), std::string::npos) << out;
  const auto h = Headers(out);
  EXPECT_EQ(Get(h, "x-ok"), "y");
  EXPECT_EQ(Get(h, "content-length"), "2");
}

// H3/K2: client-sent X-Forwarded-*, Forwarded, X-Real-IP and the other unkeyed override headers
// are dropped; torii's own X-Forwarded-For (the socket peer) and X-Forwarded-Proto appear once.
TEST(UpstreamHeadTest, H3_ReplacesForwardingHeaders) {
  auto p = Parse(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-proto: https\r\n"
      "X-Forwarded-Host: evil\r\nForwarded: for=1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\n"
      "X-Forwarded-Scheme: https\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\n"
      "X-HTTP-Method-Override: DELETE\r\n\r\n");
  ASSERT_TRUE(p->head) << p->error;
  const std::string out = Upstream(*p, "a", "10.1.2.3");
  const auto h = Headers(out);
  EXPECT_EQ(Count(h, "x-forwarded-for"), 1);
  EXPECT_EQ(Get(h, "x-forwarded-for"), "10.1.2.3");
  EXPECT_EQ(Count(h, "x-forwarded-proto"), 1);
  EXPECT_EQ(Get(h, "x-forwarded-proto"), "http");
  for (const char* name : {"x-forwarded-host", "forwarded", "x-real-ip", "x-forwarded-scheme",
                           "x-original-url", "x-rewrite-url", "x-http-method-override"}) {
    EXPECT_EQ(Count(h, name), 0) << name;
  }
  EXPECT_EQ(out.find("1.2.3.4"), std::string::npos);
  EXPECT_EQ(out.find("evil"), std::string::npos);
}

// Via: added as "1.1 torii" when absent; appended to the client's Via when present (one line).
TEST(UpstreamHeadTest, ViaAddedOrAppended) {
  auto plain = Parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(plain->head);
  auto h = Headers(Upstream(*plain));
  EXPECT_EQ(Count(h, "via"), 1);
  EXPECT_EQ(Get(h, "via"), "1.1 torii");
  auto with_via = Parse("GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 fred, 1.1 p.example\r\n\r\n");
  ASSERT_TRUE(with_via->head);
  h = Headers(Upstream(*with_via));
  EXPECT_EQ(Count(h, "via"), 1);
  EXPECT_EQ(Get(h, "via"), "1.0 fred, 1.1 p.example, 1.1 torii");
}

// Via with several Via header lines from the client: their hops are kept in order and torii's
// own hop is recorded once, at the end (RFC 9110 §7.6.3), not once per client line.
TEST(UpstreamHeadTest, ViaHopAddedOnceWithSeveralViaLines) {
  auto p = Parse("GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 fred\r\nVia: 1.1 p.example\r\n\r\n");
  ASSERT_TRUE(p->head);
  const std::string out = Upstream(*p);
  size_t ours = 0;
  for (size_t pos = out.find("1.1 torii"); pos != std::string::npos;
       pos = out.find("1.1 torii", pos + 1)) {
    ++ours;
  }
  EXPECT_EQ(ours, 1u) << out;
  EXPECT_LT(out.find("1.0 fred"), out.find("1.1 p.example"));
  EXPECT_LT(out.find("1.1 p.example"), out.rfind("1.1 torii"));
}

// Exactly one framing header, of torii's choosing: Content-Length as plain decimal (S6:
// "0002" → "2"), Transfer-Encoding: chunked, none for a body-less GET, and Content-Length: 0
// for a body-less POST/PUT/PATCH.
TEST(UpstreamHeadTest, ExactlyOneFramingHeader) {
  auto cl = Parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0002\r\n\r\nab");
  ASSERT_TRUE(cl->head) << cl->error;
  auto h = Headers(Upstream(*cl));
  EXPECT_EQ(Count(h, "content-length"), 1);
  EXPECT_EQ(Get(h, "content-length"), "2");
  EXPECT_EQ(Count(h, "transfer-encoding"), 0);

  auto chunked = Parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n");
  ASSERT_TRUE(chunked->head) << chunked->error;
  h = Headers(Upstream(*chunked));
  EXPECT_EQ(Count(h, "transfer-encoding"), 1);
  EXPECT_EQ(Get(h, "transfer-encoding"), "chunked");
  EXPECT_EQ(Count(h, "content-length"), 0);

  auto get = Parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(get->head);
  h = Headers(Upstream(*get));
  EXPECT_EQ(Count(h, "content-length"), 0);
  EXPECT_EQ(Count(h, "transfer-encoding"), 0);

  for (const char* method : {"POST", "PUT", "PATCH"}) {
    auto empty = Parse(std::string(method) + " / HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_TRUE(empty->head);
    h = Headers(Upstream(*empty));
    EXPECT_EQ(Count(h, "content-length"), 1) << method;
    EXPECT_EQ(Get(h, "content-length"), "0") << method;
  }

  // A large length stays exact.
  auto big = Parse("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 000012345678901\r\n\r\n");
  ASSERT_TRUE(big->head) << big->error;
  h = Headers(Upstream(*big));
  EXPECT_EQ(Get(h, "content-length"), "12345678901");
}

// The framing argument wins over the client's headers (the session may re-chunk).
TEST(UpstreamHeadTest, FramingArgumentDecides) {
  auto cl = Parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_TRUE(cl->head);
  std::string out;
  BuildUpstreamRequestHead(cl->h(), "a", "/", "1.1.1.1", Framing::kChunked, &out);
  const auto h = Headers(out);
  EXPECT_EQ(Count(h, "content-length"), 0);
  EXPECT_EQ(Get(h, "transfer-encoding"), "chunked");
}

// ============================================================================================
// BuildClientResponseHead

std::string ClientHead(const Parsed& resp, Framing framing, bool head_request, bool close,
                       uint8_t minor, std::string_view extra = "") {
  std::string out;
  BuildClientResponseHead(resp.h(), framing, head_request, close, minor, extra, &out);
  return out;
}

// The status line carries torii's own reason phrase (never the backend's) and the client's
// version; end-to-end headers are kept, hop-by-hop and Connection-named ones dropped.
TEST(ClientHeadTest, StatusLineAndHeaders) {
  auto r = Parse(
      "HTTP/1.1 200 Totally Fine\r\nContent-Type: text/plain\r\nConnection: X-Hop\r\n"
      "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nProxy-Authenticate: x\r\n"
      "Trailer: X-T\r\nSet-Cookie: a=b\r\nContent-Length: 5\r\n\r\nhello",
      H1Parser::Kind::kResponse);
  ASSERT_TRUE(r->head) << r->error;
  const std::string out = ClientHead(*r, Framing::kContentLength, false, false, 1);
  const std::vector<std::string> lines = Lines(out);
  EXPECT_EQ(lines[0], "HTTP/1.1 200 OK");
  const auto h = Headers(out);
  EXPECT_EQ(Get(h, "content-type"), "text/plain");
  EXPECT_EQ(Get(h, "set-cookie"), "a=b");
  for (const char* name :
       {"x-hop", "keep-alive", "upgrade", "proxy-authenticate", "trailer", "connection"}) {
    EXPECT_EQ(Count(h, name), 0) << name;
  }
  EXPECT_EQ(Count(h, "content-length"), 1);
  EXPECT_EQ(Get(h, "content-length"), "5");
  EXPECT_EQ(Lines(ClientHead(*r, Framing::kContentLength, false, false, 0))[0], "HTTP/1.0 200 OK");
}

// Framing per mode: Content-Length N, Transfer-Encoding: chunked, or nothing (close-delimited);
// a body-less 200 gets Content-Length: 0; 204 and 304 get none.
TEST(ClientHeadTest, FramingPerMode) {
  auto r =
      Parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", H1Parser::Kind::kResponse);
  ASSERT_TRUE(r->head);
  auto h = Headers(ClientHead(*r, Framing::kChunked, false, false, 1));
  EXPECT_EQ(Count(h, "transfer-encoding"), 1);
  EXPECT_EQ(Get(h, "transfer-encoding"), "chunked");
  EXPECT_EQ(Count(h, "content-length"), 0);

  h = Headers(ClientHead(*r, Framing::kUntilClose, false, true, 0));
  EXPECT_EQ(Count(h, "transfer-encoding"), 0);
  EXPECT_EQ(Count(h, "content-length"), 0);
  EXPECT_EQ(Get(h, "connection"), "close");

  auto empty = Parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", H1Parser::Kind::kResponse);
  ASSERT_TRUE(empty->head);
  h = Headers(ClientHead(*empty, Framing::kNone, false, false, 1));
  EXPECT_EQ(Count(h, "content-length"), 1);
  EXPECT_EQ(Get(h, "content-length"), "0");

  auto r204 = Parse("HTTP/1.1 204 No Content\r\n\r\n", H1Parser::Kind::kResponse);
  ASSERT_TRUE(r204->head);
  h = Headers(ClientHead(*r204, Framing::kNone, false, false, 1));
  EXPECT_EQ(Count(h, "content-length"), 0);
  EXPECT_EQ(Count(h, "transfer-encoding"), 0);

  auto r304 = Parse("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", H1Parser::Kind::kResponse);
  ASSERT_TRUE(r304->head);
  h = Headers(ClientHead(*r304, Framing::kNone, false, false, 1));
  EXPECT_EQ(Count(h, "content-length"), 0);
  EXPECT_EQ(Get(h, "etag"), "\"x\"");
}

// A response to HEAD keeps the backend's Content-Length (it describes the GET body) and sends
// no body framing of its own; same for a 304 that carried one.
TEST(ClientHeadTest, HeadKeepsContentLength) {
  auto r = Parse("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", H1Parser::Kind::kResponse,
                 /*request_was_head=*/true);
  ASSERT_TRUE(r->head) << r->error;
  ASSERT_EQ(r->h().framing, Framing::kNone);
  auto h = Headers(ClientHead(*r, Framing::kNone, /*head_request=*/true, false, 1));
  EXPECT_EQ(Count(h, "content-length"), 1);
  EXPECT_EQ(Get(h, "content-length"), "1234");
  EXPECT_EQ(Count(h, "transfer-encoding"), 0);

  auto r304 =
      Parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 77\r\n\r\n", H1Parser::Kind::kResponse);
  ASSERT_TRUE(r304->head);
  h = Headers(ClientHead(*r304, Framing::kNone, false, false, 1));
  EXPECT_EQ(Count(h, "content-length"), 1);
  EXPECT_EQ(Get(h, "content-length"), "77");
}

// Connection: an HTTP/1.0 client gets "keep-alive" when the connection stays open; any client
// gets "close" when it closes; an HTTP/1.1 client that stays gets no Connection header.
TEST(ClientHeadTest, ConnectionHeader) {
  auto r = Parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                 H1Parser::Kind::kResponse);
  ASSERT_TRUE(r->head);
  auto h = Headers(ClientHead(*r, Framing::kContentLength, false, /*close=*/false, 0));
  EXPECT_EQ(Count(h, "connection"), 1);
  EXPECT_EQ(Get(h, "connection"), "keep-alive");
  h = Headers(ClientHead(*r, Framing::kContentLength, false, /*close=*/true, 0));
  EXPECT_EQ(Count(h, "connection"), 1);
  EXPECT_EQ(Get(h, "connection"), "close");
  h = Headers(ClientHead(*r, Framing::kContentLength, false, /*close=*/true, 1));
  EXPECT_EQ(Count(h, "connection"), 1);
  EXPECT_EQ(Get(h, "connection"), "close");
  h = Headers(ClientHead(*r, Framing::kContentLength, false, /*close=*/false, 1));
  EXPECT_EQ(Count(h, "connection"), 0);
}

// Route-configured extra lines are included verbatim, and the result parses as one response.
TEST(ClientHeadTest, ExtraLinesAndReparse) {
  auto r = Parse("HTTP/1.1 404 Nope\r\nContent-Length: 3\r\n\r\nno!", H1Parser::Kind::kResponse);
  ASSERT_TRUE(r->head);
  const std::string out = ClientHead(*r, Framing::kContentLength, false, false, 1,
                                     "X-Route: a\r\nServer-Timing: up;dur=1\r\n");
  const auto h = Headers(out);
  EXPECT_EQ(Get(h, "x-route"), "a");
  EXPECT_EQ(Get(h, "server-timing"), "up;dur=1");
  auto again = Parse(out + "no!", H1Parser::Kind::kResponse);
  ASSERT_TRUE(again->head) << again->error;
  EXPECT_EQ(again->h().status, 404);
  EXPECT_EQ(again->h().reason, "Not Found");
  EXPECT_EQ(again->h().content_length, 3u);
}

// ============================================================================================
// BuildLocalReply

// A local reply is one complete response: our status and reason, a Content-Length equal to the
// body it returns, Connection: close when closing, and Retry-After on 503.
TEST(LocalReplyTest, ContentLengthMatchesBody) {
  for (int status : {400, 404, 408, 413, 414, 421, 429, 431, 500, 501, 502, 503, 504, 505}) {
    for (bool close : {false, true}) {
      std::string out = "prefix|";  // appends
      const std::string_view body = BuildLocalReply(status, close, &out);
      ASSERT_TRUE(out.starts_with("prefix|"));
      const std::string reply = out.substr(7);
      ASSERT_TRUE(reply.ends_with(body));
      EXPECT_EQ(body, std::to_string(status) + " " + std::string(ReasonPhrase(status)) + "\n");
      const size_t head_end = reply.find("\r\n\r\n");
      ASSERT_NE(head_end, std::string::npos);
      const std::string head = reply.substr(0, head_end + 4);
      EXPECT_EQ(reply.size(), head.size() + body.size()) << "bytes after the body";
      const auto h = Headers(head);
      EXPECT_EQ(Lines(head)[0],
                "HTTP/1.1 " + std::to_string(status) + " " + std::string(ReasonPhrase(status)));
      EXPECT_EQ(Get(h, "content-length"), std::to_string(body.size())) << status;
      EXPECT_EQ(Count(h, "content-length"), 1);
      EXPECT_EQ(Count(h, "retry-after"), status == 503 ? 1 : 0) << status;
      EXPECT_EQ(Get(h, "connection"), close ? std::optional<std::string>("close") : std::nullopt);
      // And a strict parser agrees: one response, its body, nothing left over.
      auto p = Parse(reply, H1Parser::Kind::kResponse);
      ASSERT_TRUE(p->head) << status << " error " << p->error;
      EXPECT_EQ(p->h().status, status);
      EXPECT_EQ(p->h().content_length, body.size());
    }
  }
}

// A local reply whose status has no content (a route's `return = { status = 204 }`, a 304)
// goes without a body, Content-Type or Content-Length, whatever body it was given: a strict
// parser finds the response complete at its head, nothing after it. The same as HTTP/2 fields.
TEST(LocalReplyTest, NoContentStatusesHaveNoBody) {
  for (int status : {204, 304}) {
    std::string out;
    const std::string_view body =
        BuildLocalReply(status, false, "X-A: 1\r\n", "text", "text/plain", &out);
    EXPECT_TRUE(body.empty()) << status;
    EXPECT_TRUE(out.ends_with("\r\n\r\n")) << out;
    const auto h = Headers(out);
    EXPECT_EQ(Count(h, "content-length"), 0) << status;
    EXPECT_EQ(Count(h, "content-type"), 0) << status;
    EXPECT_EQ(Get(h, "x-a"), std::optional<std::string>("1"));
    std::string plain;
    EXPECT_TRUE(BuildLocalReply(status, false, &plain).empty()) << status;
    std::string store;
    std::vector<H2Field> fields;
    BuildLocalReplyFields(status, {}, 0, "text/plain", &store, &fields);
    for (const H2Field& f : fields) {
      EXPECT_NE(f.name, "content-length") << status;
      EXPECT_NE(f.name, "content-type") << status;
    }
  }
}

// ReasonPhrase knows the statuses torii sends and never returns an empty phrase.
TEST(LocalReplyTest, ReasonPhrases) {
  EXPECT_EQ(ReasonPhrase(200), "OK");
  EXPECT_EQ(ReasonPhrase(413), "Content Too Large");
  EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(ReasonPhrase(503), "Service Unavailable");
  EXPECT_FALSE(ReasonPhrase(299).empty());
  EXPECT_FALSE(ReasonPhrase(999).empty());
}

// AppendChunkHeader writes lowercase hex and CRLF, no extensions.
TEST(LocalReplyTest, ChunkHeader) {
  std::string out;
  AppendChunkHeader(0, &out);
  AppendChunkHeader(26, &out);
  AppendChunkHeader(0x100000, &out);
  EXPECT_EQ(out, "0\r\n1a\r\n100000\r\n");
}

// ============================================================================================
// ValidateHost

// Valid hosts (reg-name, IPv4, bracketed IPv6, optional port) give the host without the port.
TEST(ValidateHostTest, Valid) {
  const std::pair<const char*, const char*> cases[] = {
      {"example.com", "example.com"},
      {"a.b-c.d:8080", "a.b-c.d"},
      {"[::1]:80", "[::1]"},
      {"[::1]", "[::1]"},
      {"127.0.0.1", "127.0.0.1"},
      {"127.0.0.1:65535", "127.0.0.1"},
      {"EXAMPLE.Com", "EXAMPLE.Com"},
      {"localhost:1", "localhost"},
      {"[2001:db8::1]:443", "[2001:db8::1]"},
      {"x", "x"},
  };
  for (const auto& [in, want] : cases) {
    const std::optional<std::string_view> got = ValidateHost(in);
    ASSERT_TRUE(got.has_value()) << "'" << in << "' rejected";
    EXPECT_EQ(*got, want) << in;
  }
}

// Invalid hosts are refused: empty, lists, userinfo/paths, dot runs, leading dot, empty or
// over-long or non-numeric ports, bad IPv6 literals, spaces and control characters.
TEST(ValidateHostTest, Invalid) {
  const std::string cases[] = {
      "",
      "a,b",
      "a/b@c",
      "..",
      "a..b",
      ".a",
      "a:",
      "a:123456",
      "[zz]",
      "a b",
      "a@b",
      "a:8o",
      "a:-1",
      "a:80:90",
      "[::1",
      "[::1]x",
      "[::1]:",
      "[::1]:123456",
      "-a",
      "a%2fb",
      "a\\b",
      "a?b",
      "a#b",
      "[]",
      "a\tb",
      "a\rb",
      "a\nb",
      "a\x00"s
      "b",
      "a\x01",
      "a\x7f",
      "\x1b[31m",
      "a\xc3\xa9",
      std::string(300, 'a'),
      ":80",
  };
  for (const std::string& in : cases) {
    std::string shown;
    for (unsigned char c : in) {
      shown += (c >= 0x20 && c < 0x7F) ? std::string(1, static_cast<char>(c))
                                       : "\\x" + std::to_string(c);
    }
    EXPECT_FALSE(ValidateHost(in).has_value()) << "'" << shown << "' accepted";
  }
}

// ============================================================================================
// Mutation test: parse → serialise → re-parse

// Random mutations of valid requests (bytes inserted, deleted, replaced, lines duplicated,
// with CR, LF, NUL, ':' and friends over-represented): whenever the parser accepts the head,
// the upstream head has only clean "name: value" lines (no CR, LF, NUL or other CTL inside a
// line, token names, no underscore), exactly one Host and X-Forwarded-For, at most one framing
// header, and re-parses as exactly one request with the same method and target.
TEST(UpstreamHeadTest, MutatedRequestsNeverSplitHeaderLines) {
  const std::vector<std::string> seeds = {
      "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\n"
      "Accept: */*\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\n",
      "POST /form HTTP/1.1\r\nHost: a.example:8080\r\nContent-Type: text/plain\r\n"
      "Content-Length: 5\r\nX-Forwarded-For: 6.6.6.6\r\nVia: 1.0 x\r\n\r\nhello",
      "PUT /up HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\nX_Y: z\r\n"
      "Cookie: a=b; c=d\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\nX-Multi: a\tb\r\n\r\n",
  };
  const std::string specials = "\r\n\0:; \t,_\"\\\x01\x0b\x7f\x80\xff#?/@%"s;
  std::mt19937 rng(/*seed=*/20240601);
  int accepted = 0;
  constexpr int kIterations = 20000;
  for (int iter = 0; iter < kIterations; ++iter) {
    std::string req = seeds[rng() % seeds.size()];
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations && !req.empty(); ++m) {
      const size_t pos = rng() % req.size();
      const char ch =
          rng() % 3 == 0 ? static_cast<char>(rng() % 256) : specials[rng() % specials.size()];
      switch (rng() % 5) {
        case 0:
          req.insert(pos, 1, ch);
          break;
        case 1:
          req.erase(pos, 1);
          break;
        case 2:
          req[pos] = ch;
          break;
        case 3: {  // duplicate the line containing pos
          const size_t start = req.rfind('\n', pos);
          const size_t s = start == std::string::npos ? 0 : start + 1;
          const size_t e = req.find('\n', pos);
          if (e != std::string::npos) {
            req.insert(s, req.substr(s, e - s + 1));
          }
          break;
        }
        default: {  // insert a hostile header line
          const size_t line = req.find("\r\n");
          if (line != std::string::npos) {
            const std::string hostile[] = {"X-Inj: a\rb\r\n",
                                           "X-Inj: a\nX-Evil: 1\r\n",
                                           "X-Inj: a\0b\r\n"s,
                                           ": empty\r\n",
                                           "Transfer-Encoding: chunked\r\n",
                                           "Content-Length: 7\r\n",
                                           " folded\r\n",
                                           "Host: second\r\n",
                                           "X Y: sp\r\n"};
            req.insert(line + 2, hostile[rng() % std::size(hostile)]);
          }
          break;
        }
      }
    }
    auto p = Parse(req);
    if (!p->head) {
      continue;
    }
    ++accepted;
    const MessageHead& h = p->h();
    const std::string target =
        !h.target.empty() && h.target.front() == '/' ? std::string(h.target) : "/";
    std::string out;
    BuildUpstreamRequestHead(h, "backend.example", target, "192.0.2.1", h.framing, &out);
    SCOPED_TRACE("request: " + testing::PrintToString(req) +
                 "\nupstream: " + testing::PrintToString(out));
    ASSERT_TRUE(out.ends_with("\r\n\r\n"));
    const size_t head_end = out.find("\r\n\r\n");
    ASSERT_EQ(head_end + 4, out.size()) << "an empty line inside the head";
    const std::vector<std::string> lines = Lines(out);
    for (size_t i = 0; i < lines.size(); ++i) {
      for (unsigned char c : lines[i]) {
        ASSERT_FALSE(c == '\r' || c == '\n' || c == '\0' || (c < 0x20 && c != '\t') || c == 0x7F)
            << "control byte " << static_cast<int>(c) << " in line " << i;
      }
    }
    const auto headers = Headers(out);
    for (const auto& [name, value] : headers) {
      ASSERT_TRUE(IsToken(name)) << "bad header name '" << name << "'";
      ASSERT_EQ(name.find('_'), std::string::npos) << name;
    }
    ASSERT_EQ(Count(headers, "host"), 1);
    ASSERT_EQ(Count(headers, "x-forwarded-for"), 1);
    ASSERT_LE(Count(headers, "content-length") + Count(headers, "transfer-encoding"), 1);
    // The strict parser reads it back as one request, the same one.
    auto back = Parse(out);
    ASSERT_TRUE(back->head) << "re-parse failed with " << back->error;
    ASSERT_EQ(back->h().method, h.method);
    ASSERT_EQ(back->h().target, target);
    ASSERT_EQ(back->h().framing, h.framing);
    if (h.framing == Framing::kNone) {
      const H1Parser::Step s = back->parser->Next(back->bytes.data(), back->bytes.size());
      ASSERT_EQ(s.event, Event::kDone);
      ASSERT_EQ(back->parser->consumed(), back->bytes.size()) << "a second message follows";
    }
  }
  // The mutations must leave enough accepted requests to mean something.
  EXPECT_GT(accepted, kIterations / 20) << "only " << accepted << " mutated requests parsed";
  RecordProperty("accepted", accepted);
}

}  // namespace
}  // namespace torii::http

namespace torii::http {
namespace {

// Compression's head edits: the coding replaces the backend's, Vary names Accept-Encoding
// exactly once (merged into the backend's Vary, left alone when it already covers it or is
// "*"), a strong ETag becomes weak and a weak one stays as it is.
TEST(ClientHeadTest, CompressionEdits) {
  auto r = Parse(
      "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nVary: Cookie\r\nETag: \"v1\"\r\n"
      "Content-Length: 5\r\n\r\nhello",
      H1Parser::Kind::kResponse);
  ASSERT_TRUE(r->head) << r->error;
  HeadEdits edits;
  edits.content_encoding = "br";
  edits.vary_accept_encoding = true;
  edits.weaken_etag = true;
  std::string out;
  BuildClientResponseHead(r->h(), Framing::kChunked, false, false, 1, "", edits, &out);
  auto h = Headers(out);
  EXPECT_EQ(Get(h, "content-encoding"), "br");
  EXPECT_EQ(Count(h, "vary"), 1);
  EXPECT_EQ(Get(h, "vary"), "Cookie, Accept-Encoding");
  EXPECT_EQ(Get(h, "etag"), "W/\"v1\"");
  EXPECT_EQ(Count(h, "content-length"), 0);
  EXPECT_EQ(Get(h, "transfer-encoding"), "chunked");

  for (const char* vary : {"accept-encoding", "Cookie, Accept-Encoding", "*"}) {
    auto v = Parse(std::string("HTTP/1.1 200 OK\r\nVary: ") + vary +
                       "\r\nETag: W/\"x\"\r\nContent-Length: 0\r\n\r\n",
                   H1Parser::Kind::kResponse);
    ASSERT_TRUE(v->head);
    out.clear();
    BuildClientResponseHead(v->h(), Framing::kChunked, false, false, 1, "", edits, &out);
    h = Headers(out);
    EXPECT_EQ(Count(h, "vary"), 1) << vary;
    EXPECT_EQ(Get(h, "vary"), vary);
    EXPECT_EQ(Get(h, "etag"), "W/\"x\"");
  }
  // No Vary at all: one is added. A backend's own coding is replaced, not duplicated.
  auto n = Parse("HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\nContent-Length: 0\r\n\r\n",
                 H1Parser::Kind::kResponse);
  ASSERT_TRUE(n->head);
  out.clear();
  BuildClientResponseHead(n->h(), Framing::kChunked, false, false, 1, "", edits, &out);
  h = Headers(out);
  EXPECT_EQ(Get(h, "vary"), "Accept-Encoding");
  EXPECT_EQ(Count(h, "content-encoding"), 1);
  EXPECT_EQ(Get(h, "content-encoding"), "br");
  // Decoded for the client: the backend's Content-Encoding is gone.
  HeadEdits decoded;
  decoded.drop_content_encoding = true;
  out.clear();
  BuildClientResponseHead(n->h(), Framing::kChunked, false, false, 1, "", decoded, &out);
  EXPECT_EQ(Count(Headers(out), "content-encoding"), 0);
}

// A stored response's names are lowercase: HTTP/1.1 clients get them capitalised as a backend
// would send them; added lines are written as they are.
TEST(ClientHeadTest, TitleCaseForLowercaseNames) {
  const HeaderView stored[] = {
      {"content-type", "text/plain"}, {"x-a-b", "1"}, {"etag", "\"v\""}, {"vary", "cookie"},
      {"www-authenticate", "Basic"},  {"-odd", "2"}};
  MessageHead resp;
  resp.status = 200;
  resp.headers = stored;
  resp.content_length = 3;
  HeadEdits edits;
  edits.title_case = true;
  edits.weaken_etag = true;
  edits.vary_accept_encoding = true;
  std::string out;
  BuildClientResponseHead(resp, Framing::kContentLength, false, false, 1, "x-added: yes\r\n", edits,
                          &out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A-B: 1\r\nEtag: W/\"v\"\r\n"
            "Vary: cookie, Accept-Encoding\r\nWww-Authenticate: Basic\r\n-Odd: 2\r\n"
            "Content-Length: 3\r\nx-added: yes\r\n\r\n");
}

// A hit's head given the fields rendered when the response was stored is the head the fields
// themselves give, whatever the edits (those the rendering cannot stand for: the fields are
// written from the message); and what the rendering leaves out (hop-by-hop fields, those
// named in Connection) stays out.
TEST(ClientHeadTest, RenderedStoredFieldsGiveTheSameHead) {
  const std::vector<std::vector<HeaderView>> heads = {
      {},
      {{"content-type", "text/plain"}, {"cache-control", "max-age=60"}, {"etag", "\"v1\""}},
      {{"content-type", "text/html"}, {"vary", "accept-encoding"}, {"x-a-b", "1"}},
      {{"vary", "*"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}},
      {{"connection", "x-hop"},
       {"x-hop", "1"},
       {"keep-alive", "5"},
       {"x_under", "2"},
       {"transfer-encoding", "chunked"},
       {"content-length", "99"},
       {"server", "s"}},
      {{"vary", "cookie"}, {"date", "Mon, 07 Dec 2026 06:00:00 GMT"}},  // a Vary to extend
  };
  const std::string removed[] = {"x-a-b"};
  for (size_t i = 0; i < heads.size(); ++i) {
    const std::string rendered = RenderStoredFields(heads[i]);
    for (int edit = 0; edit < 5; ++edit) {  // none, Vary, weak ETag, a removal, a coding
      for (const Framing framing : {Framing::kContentLength, Framing::kNone}) {
        MessageHead resp;
        resp.status = framing == Framing::kNone ? 304 : 200;
        resp.headers = heads[i];
        resp.content_length = 7;
        resp.has_content_length = framing == Framing::kContentLength;
        HeadEdits edits;
        edits.title_case = true;
        edits.vary_accept_encoding = edit == 1 || edit == 4;
        edits.weaken_etag = edit == 2 || edit == 4;
        if (edit == 3) {
          edits.remove = removed;
        }
        if (edit == 4) {
          edits.content_encoding = "gzip";
        }
        std::string vetted;
        BuildClientResponseHead(resp, framing, false, false, 1, "Age: 3\r\n", edits, &vetted);
        edits.rendered = rendered;
        std::string fast;
        BuildClientResponseHead(resp, framing, false, false, 1, "Age: 3\r\n", edits, &fast);
        EXPECT_EQ(fast, vetted) << "head " << i << " edit " << edit;
      }
    }
  }
  // A Vary named in Connection is not the fields' Vary: the added one still goes out.
  const HeaderView hop_vary[] = {{"connection", "vary"}, {"vary", "accept-encoding"}};
  MessageHead resp;
  resp.status = 200;
  resp.headers = hop_vary;
  resp.content_length = 0;
  HeadEdits edits;
  edits.title_case = true;
  edits.vary_accept_encoding = true;
  const std::string rendered = RenderStoredFields(hop_vary);
  edits.rendered = rendered;
  std::string out;
  BuildClientResponseHead(resp, Framing::kContentLength, false, false, 1, {}, edits, &out);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(RenderStoredFields(heads[4]), "X_under: 2\r\nServer: s\r\n");
  EXPECT_EQ(RenderStoredFields(heads[1]),
            "Content-Type: text/plain\r\nCache-Control: max-age=60\r\nEtag: \"v1\"\r\n");
}

// HTTP/2 clients get their fields from the message itself: a rendering is not for them.
TEST(ClientFieldsTest, RenderedFieldsAreForHttp1Only) {
  const HeaderView stored[] = {{"content-type", "text/plain"}, {"x-a", "1"}};
  MessageHead resp;
  resp.status = 200;
  resp.headers = stored;
  resp.content_length = 1;
  HeadEdits edits;
  edits.title_case = true;
  const std::string rendered = RenderStoredFields(stored);
  edits.rendered = rendered;
  std::string store;
  std::vector<H2Field> fields;
  BuildClientResponseFields(resp, Framing::kContentLength, false, {}, edits, &store, &fields);
  ASSERT_EQ(fields.size(), 4u);
  EXPECT_EQ(fields[1].name, "content-type");
  EXPECT_EQ(fields[2].name, "x-a");
  EXPECT_EQ(fields[3].name, "content-length");
}

// ============================================================================================
// BuildClientResponseFields: the same head as HTTP/2 fields

std::vector<std::pair<std::string, std::string>> Pairs(const std::vector<H2Field>& fields) {
  std::vector<std::pair<std::string, std::string>> got;
  for (const H2Field& f : fields) {
    got.emplace_back(f.name, f.value);
  }
  return got;
}

// The text head BuildClientResponseHead writes, read back as HTTP/2 fields: ":status", then
// each line's name lowercased, without the connection-specific fields.
std::vector<std::pair<std::string, std::string>> TextAsFields(std::string_view head) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::vector<std::string> lines = Lines(head);
  out.emplace_back(":status", lines[0].substr(9, 3));
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    std::string name = base::ToLowerAscii(lines[i].substr(0, colon));
    if (name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
        name == "transfer-encoding" || name == "upgrade") {
      continue;
    }
    out.emplace_back(name, std::string(base::TrimOws(lines[i].substr(colon + 1))));
  }
  return out;
}

TEST(ClientFieldsTest, FromTheMessage) {
  const HeaderView backend[] = {{"Content-Type", "text/plain"},
                                {":status", "999"},
                                {"", "nameless"},
                                {"Connection", "keep-alive, X-Hop"},
                                {"X-Hop", "1"},
                                {"Keep-Alive", "timeout=5"},
                                {"Set-Cookie", "a=1"},
                                {"set-cookie", "b=2"}};
  MessageHead resp;
  resp.status = 200;
  resp.headers = backend;
  resp.has_content_length = true;
  resp.content_length = 5;
  std::string store;
  std::vector<H2Field> fields;
  BuildClientResponseFields(resp, Framing::kContentLength, false, "X-Added: yes\r\n", {}, &store,
                            &fields);
  const std::vector<std::pair<std::string, std::string>> want = {
      {":status", "200"},    {"content-type", "text/plain"}, {"set-cookie", "a=1"},
      {"set-cookie", "b=2"}, {"content-length", "5"},        {"x-added", "yes"}};
  EXPECT_EQ(Pairs(fields), want);
  // Names already lowercase are not copied: the view is the message's own.
  EXPECT_EQ(fields[3].name.data(), backend[7].name.data());
}

// Lines torii adds may name connection-specific fields (a tunnel's Connection and Upgrade);
// framing is HTTP/2's own: none of them reaches an HTTP/2 client.
TEST(ClientFieldsTest, ConnectionSpecificFieldsNeverReachAClient) {
  MessageHead resp;
  resp.status = 101;
  std::string store;
  std::vector<H2Field> fields;
  BuildClientResponseFields(resp, Framing::kChunked, false,
                            "Connection: upgrade\r\nUpgrade: websocket\r\nProxy-Connection: x\r\n"
                            "Keep-Alive: 1\r\nX-Ok:  1 \r\nbroken line\r\n:\r\n",
                            {}, &store, &fields);
  EXPECT_EQ(Pairs(fields),
            (std::vector<std::pair<std::string, std::string>>{{":status", "101"}, {"x-ok", "1"}}));
}

// Every response, edit and framing gives the same fields whichever protocol carries them:
// the text head read back as fields equals the fields built directly.
TEST(ClientFieldsTest, SameHeadAsTheText) {
  const std::string responses[] = {
      "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nVary: Cookie\r\nETag: \"v1\"\r\n"
      "Content-Length: 5\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nvary: accept-encoding\r\netag: W/\"x\"\r\nserver: be\r\n"
      "Content-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n"
      "Content-Length: 99\r\nDate: Mon, 07 Dec 2026 00:00:00 GMT\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nVary:\r\nX-Empty:\r\nTrailer: X-T\r\nUpgrade: h2c\r\n\r\n",
      "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
  };
  HeadEdits compress;
  compress.content_encoding = "zstd";
  compress.vary_accept_encoding = true;
  compress.weaken_etag = true;
  HeadEdits decode;
  decode.drop_content_encoding = true;
  static const std::string kRemove[] = {"server", "x-empty"};
  HeadEdits remove;
  remove.remove = kRemove;
  HeadEdits title;
  title.title_case = true;
  const HeadEdits edits[] = {HeadEdits{}, compress, decode, remove, title};
  const std::string_view extras[] = {"", "X-Cache: HIT\r\nAge: 3\r\nRetry-After: 1\r\n"};
  int cases = 0;
  for (const std::string& text : responses) {
    auto r = Parse(text, H1Parser::Kind::kResponse);
    ASSERT_TRUE(r->head) << text;
    for (const HeadEdits& e : edits) {
      for (std::string_view extra : extras) {
        for (Framing framing : {Framing::kContentLength, Framing::kUntilClose, Framing::kNone}) {
          for (bool head_request : {false, true}) {
            std::string wire;
            BuildClientResponseHead(r->h(), framing, head_request, /*close=*/false, 1, extra, e,
                                    &wire);
            std::string store;
            std::vector<H2Field> fields;
            BuildClientResponseFields(r->h(), framing, head_request, extra, e, &store, &fields);
            EXPECT_EQ(Pairs(fields), TextAsFields(wire)) << wire;
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 5 * 5 * 2 * 3 * 2);
}

// Trailer fields pass on unless they belong in a head (RFC 9110 §6.5.1) or are hop-by-hop or
// torii's own forwarding fields.
TEST(TrailerTest, WhatPassesOn) {
  for (std::string_view ok : {"grpc-status", "Grpc-Message", "x-checksum", "server-timing"}) {
    EXPECT_TRUE(IsForwardedTrailer(ok)) << ok;
  }
  for (std::string_view no : {"content-length",
                              "Transfer-Encoding",
                              "host",
                              "authorization",
                              "set-cookie",
                              "cookie",
                              "content-type",
                              "content-encoding",
                              "cache-control",
                              "x-forwarded-for",
                              "forwarded",
                              "connection",
                              "te",
                              "trailer",
                              "if-match",
                              "If-None-Match",
                              "client-cert",
                              "x_under",
                              ":status",
                              "",
                              "location",
                              "vary"}) {
    EXPECT_FALSE(IsForwardedTrailer(no)) << no;
  }
}

// A route keeps the trailers it lists, except those never forwarded; the last chunk carries them.
TEST(TrailerTest, KeptAndLastChunk) {
  std::string out;
  AppendLastChunk({}, &out);
  EXPECT_EQ(out, "0\r\n\r\n");
  const HeaderView fields[] = {
      {"Grpc-Status", "0"}, {"Set-Cookie", "a=b"}, {"X-Sum", "1"}, {"X-Other", "2"}};
  const std::string allow[] = {"grpc-status", "set-cookie", "x-sum"};
  std::vector<HeaderView> kept;
  KeepTrailers(fields, allow, &kept);
  ASSERT_EQ(kept.size(), 2u);
  out.clear();
  AppendLastChunk(kept, &out);
  EXPECT_EQ(out, "0\r\nGrpc-Status: 0\r\nX-Sum: 1\r\n\r\n");
  KeepTrailers(fields, {}, &kept);
  EXPECT_TRUE(kept.empty());
}

}  // namespace
}  // namespace torii::http
