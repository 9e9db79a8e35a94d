// tests/http/h2_fields_test.cc: HTTP/2 fields to the exchange's request head and back
// (http/h2_fields.h).
#include "http/h2_fields.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/serialize.h"

namespace torii::http {
namespace {

H2RequestFields Fields(std::vector<std::pair<std::string, std::string>> list,
                       uint64_t max_bytes = 16384, uint32_t max_count = 100) {
  H2RequestFields f(max_bytes, max_count);
  for (const auto& [n, v] : list) {
    f.Add(n, v);
  }
  return f;
}

std::vector<std::string> Values(const MessageHead& h, std::string_view name) {
  std::vector<std::string> out;
  for (const HeaderView& hv : h.headers) {
    if (hv.name == name) {
      out.emplace_back(hv.value);
    }
  }
  return out;
}

TEST(H2RequestFields, BuildsTheHeadTheExchangeTakes) {
  H2RequestFields f = Fields({{":method", "GET"},
                              {":scheme", "https"},
                              {":path", "/a?b=1"},
                              {":authority", "example.com:8443"},
                              {"accept", "*/*"},
                              {"cookie", "a=1"},
                              {"x-y", "z"},
                              {"cookie", "b=2"}});
  MessageHead h;
  ASSERT_FALSE(f.Build(/*end_stream=*/true, 1 << 20, &h));
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.method_id, HTTP_GET);
  EXPECT_EQ(h.target, "/a?b=1");
  EXPECT_EQ(h.version_major, 2);
  EXPECT_EQ(h.framing, Framing::kNone);
  // :authority becomes Host; the cookie crumbs are one field again (RFC 9113 §8.2.3).
  EXPECT_EQ(Values(h, "host"), std::vector<std::string>{"example.com:8443"});
  EXPECT_EQ(Values(h, "cookie"), std::vector<std::string>{"a=1; b=2"});
  EXPECT_EQ(Values(h, "x-y"), std::vector<std::string>{"z"});
  EXPECT_TRUE(Values(h, ":scheme").empty());
}

TEST(H2RequestFields, BodyFraming) {
  MessageHead h;
  H2RequestFields open = Fields({{":method", "POST"}, {":path", "/"}, {":authority", "a"}});
  ASSERT_FALSE(open.Build(/*end_stream=*/false, 100, &h));
  EXPECT_EQ(h.framing, Framing::kChunked);  // a length known only at its end

  H2RequestFields sized =
      Fields({{":method", "POST"}, {":path", "/"}, {":authority", "a"}, {"content-length", "42"}});
  ASSERT_FALSE(sized.Build(false, 100, &h));
  EXPECT_EQ(h.framing, Framing::kContentLength);
  EXPECT_EQ(h.content_length, 42u);

  // Declared larger than body_bytes: 413 before any DATA is read.
  const auto refusal = sized.Build(false, 41, &h);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->status, 413);
}

// RFC 8441: an extended CONNECT is the HTTP/1.1 upgrade it stands for, so the exchange applies
// the same upgrade rules (http/upgrade.h) to it.
TEST(H2RequestFields, ExtendedConnectIsAnUpgrade) {
  H2RequestFields f = Fields({{":method", "CONNECT"},
                              {":protocol", "websocket"},
                              {":scheme", "https"},
                              {":path", "/chat?room=1"},
                              {":authority", "example.com"},
                              {"sec-websocket-version", "13"},
                              {"sec-websocket-key", "from the client"},
                              {"sec-websocket-protocol", "chat"}});
  MessageHead h;
  ASSERT_FALSE(f.Build(/*end_stream=*/false, 1 << 20, &h));
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.method_id, HTTP_GET);
  EXPECT_EQ(h.target, "/chat?room=1");
  EXPECT_EQ(h.framing, Framing::kNone);  // DATA are the tunnel's, not a body
  EXPECT_TRUE(h.upgrade);
  EXPECT_TRUE(h.connect_protocol);
  EXPECT_EQ(Values(h, "connection"), std::vector<std::string>{"upgrade"});
  EXPECT_EQ(Values(h, "upgrade"), std::vector<std::string>{"websocket"});
  EXPECT_EQ(Values(h, "host"), std::vector<std::string>{"example.com"});
  EXPECT_EQ(Values(h, "sec-websocket-protocol"), std::vector<std::string>{"chat"});
  // The backend's handshake is torii's: a key from the client has no meaning over HTTP/2.
  EXPECT_TRUE(Values(h, "sec-websocket-key").empty());

  // A plain CONNECT is not an upgrade (the exchange refuses it: 501).
  H2RequestFields plain = Fields({{":method", "CONNECT"}, {":authority", "example.com:443"}});
  ASSERT_FALSE(plain.Build(false, 1 << 20, &h));
  EXPECT_EQ(h.method_id, HTTP_CONNECT);
  EXPECT_FALSE(h.upgrade);
  EXPECT_FALSE(h.connect_protocol);

  // :protocol on another method, or a tunnel with a length: malformed.
  H2RequestFields get =
      Fields({{":method", "GET"}, {":protocol", "websocket"}, {":path", "/"}, {":authority", "a"}});
  ASSERT_TRUE(get.Build(false, 1 << 20, &h));
  EXPECT_EQ(get.Build(false, 1 << 20, &h)->status, 400);
  H2RequestFields sized = Fields({{":method", "CONNECT"},
                                  {":protocol", "websocket"},
                                  {":path", "/"},
                                  {":authority", "a"},
                                  {"content-length", "5"}});
  ASSERT_TRUE(sized.Build(false, 1 << 20, &h));
  EXPECT_EQ(sized.Build(false, 1 << 20, &h)->status, 400);
}

TEST(H2RequestFields, Refusals) {
  MessageHead h;
  auto status = [&](H2RequestFields f) {
    const auto r = f.Build(true, 100, &h);
    return r ? r->status : 0;
  };
  EXPECT_EQ(
      status(Fields(
          {{":method", "GET"}, {":path", "/"}, {":authority", "a.test"}, {"host", "b.test"}})),
      400);
  EXPECT_EQ(
      status(Fields(
          {{":method", "GET"}, {":path", "/"}, {":authority", "A.test"}, {"host", "a.TEST"}})),
      0);  // the same authority, spelt differently
  EXPECT_EQ(status(Fields({{":method", "GET"}, {":path", "/"}, {"host", "a"}, {"host", "b"}})),
            400);
  EXPECT_EQ(status(Fields({{":method", "BREW"}, {":path", "/"}, {":authority", "a"}})), 501);
  EXPECT_EQ(status(Fields({{":method", "POST"}, {":path", "/"}, {"content-length", "1x"}})), 400);
  EXPECT_EQ(status(Fields({{":method", "POST"}, {":path", "/"}, {"content-length", ""}})), 400);
  EXPECT_EQ(
      status(Fields(
          {{":method", "POST"}, {":path", "/"}, {"content-length", "1"}, {"content-length", "1"}})),
      400);
}

TEST(H2RequestFields, HeaderListBounds) {
  MessageHead h;
  // RFC 9113 §6.5.2: name + value + 32 per field.
  H2RequestFields big = Fields({{":method", "GET"}, {":path", "/"}, {"x", std::string(100, 'v')}},
                               /*max_bytes=*/150);
  ASSERT_TRUE(big.too_large());
  EXPECT_EQ(big.Build(true, 0, &h)->status, 431);
  std::vector<std::pair<std::string, std::string>> many = {{":method", "GET"}, {":path", "/"}};
  for (int i = 0; i < 10; ++i) {
    many.emplace_back("x" + std::to_string(i), "v");
  }
  EXPECT_EQ(Fields(many, 16384, /*max_count=*/11).Build(true, 0, &h)->status, 431);
  EXPECT_FALSE(Fields(many, 16384, /*max_count=*/12).Build(true, 0, &h));
}

TEST(MethodId, KnowsLlhttpsMethods) {
  EXPECT_EQ(MethodId("GET"), HTTP_GET);
  EXPECT_EQ(MethodId("PURGE"), HTTP_PURGE);
  EXPECT_EQ(MethodId("OPTIONS"), HTTP_OPTIONS);
  EXPECT_FALSE(MethodId("get"));  // methods are case-sensitive
  EXPECT_FALSE(MethodId(""));
}

using FieldPairs = std::vector<std::pair<std::string_view, std::string_view>>;

// `fields` from the `from`th on, as name/value pairs.
FieldPairs Pairs(const std::vector<H2Field>& fields, size_t from = 0) {
  FieldPairs out;
  for (size_t i = from; i < fields.size(); ++i) {
    out.emplace_back(fields[i].name, fields[i].value);
  }
  return out;
}

// A backend request head becomes HTTP/2 fields: pseudo-header fields first (Host as
// :authority), te: trailers, lowercase names, no connection-specific field.
TEST(RequestFields, FromTheSerialisedHead) {
  std::string head =
      "POST /svc/Call?x=1 HTTP/1.1\r\nHost: api.test:8080\r\nContent-Type: application/grpc\r\n"
      "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nTE: gzip\r\nVia: 1.1 torii\r\n"
      "Content-Length: 5\r\n\r\n";
  std::vector<H2Field> fields;
  RequestFields(&head, "https", &fields);
  EXPECT_EQ(Pairs(fields), (FieldPairs{{":method", "POST"},
                                       {":scheme", "https"},
                                       {":authority", "api.test:8080"},
                                       {":path", "/svc/Call?x=1"},
                                       {"te", "trailers"},
                                       {"content-type", "application/grpc"},
                                       {"via", "1.1 torii"},
                                       {"content-length", "5"}}));
  std::string bad = "GARBAGE";
  RequestFields(&bad, "http", &fields);
  EXPECT_TRUE(fields.empty());
}

// Names of any length are lowercased up to their colon only (eight bytes at a time, then the
// rest), bytes outside ASCII letters are left alone, and a line without a colon is skipped
// without touching the next one.
TEST(RequestFields, LowercasesNamesOfAnyLengthUpToTheColon) {
  std::string head =
      "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: A:B\r\nABCDEFGH: V\r\n"
      "ABCDEFG: Upper:Value\r\nX-ZZ@[`{\xc3\x89: Z\r\nNO COLON HERE AT ALL\r\n"
      "A-Very-Long-Field-Name-Of-Forty-Bytes-Xy: 1\r\nQ:  Trim \r\n\r\n";
  std::vector<H2Field> fields;
  RequestFields(&head, "http", &fields);
  EXPECT_EQ(fields[2].value, "h");
  EXPECT_EQ(Pairs(fields, 5), (FieldPairs{{"x-forwarded-for", "A:B"},
                                          {"abcdefgh", "V"},
                                          {"abcdefg", "Upper:Value"},
                                          {"x-zz@[`{\xc3\x89", "Z"},
                                          {"a-very-long-field-name-of-forty-bytes-xy", "1"},
                                          {"q", "Trim"}}));
}

}  // namespace
}  // namespace torii::http
