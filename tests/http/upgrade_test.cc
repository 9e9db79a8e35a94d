// tests/http/upgrade_test.cc: which upgrade requests are tunnelled (http/upgrade.h). Requests
// go through the real H1Parser first, so the decision sees the heads the session sees.
#include "http/upgrade.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "http/h1_parser.h"

namespace torii::http {
namespace {

const std::vector<std::string> kWebSocket = {"websocket"};

// The decision for `request` (a complete head) on a route tunnelling `allowed`.
std::optional<std::string> Decide(std::string request,
                                  const std::vector<std::string>& allowed = kWebSocket) {
  H1Parser parser(H1Parser::Kind::kRequest, H1Parser::Limits{});
  const H1Parser::Step step = parser.Next(request.data(), request.size());
  EXPECT_EQ(step.event, H1Parser::Event::kHead) << request;
  if (step.event != H1Parser::Event::kHead) {
    return std::nullopt;
  }
  const auto value = TunnelledUpgrade(parser.head(), allowed);
  return value ? std::optional<std::string>(std::string(*value)) : std::nullopt;
}

std::string Request(std::string fields, std::string method = "GET", std::string version = "1.1") {
  return method + " /chat HTTP/" + version + "\r\nHost: a\r\n" + fields + "\r\n";
}

TEST(TunnelledUpgrade, WebSocketHandshake) {
  EXPECT_EQ(Decide(Request("Upgrade: websocket\r\nConnection: Upgrade\r\n")), "websocket");
  // Case and list forms: Connection names several tokens; the protocol's case is kept.
  EXPECT_EQ(Decide(Request("Connection: keep-alive, upgrade\r\nUpgrade: WebSocket\r\n")),
            "WebSocket");
  EXPECT_EQ(Decide(Request("Upgrade: websocket/13\r\nConnection: upgrade\r\n")), "websocket/13");
}

// Not an upgrade torii tunnels: the request goes on without it.
TEST(TunnelledUpgrade, Refused) {
  // Upgrade not named in Connection (hop-by-hop: it was not meant for us).
  EXPECT_EQ(Decide(Request("Upgrade: websocket\r\n")), std::nullopt);
  // A protocol the route does not list, h2c, or one of several not listed.
  EXPECT_EQ(Decide(Request("Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                           "HTTP2-Settings: AAMAAABkAAQAAP__\r\n")),
            std::nullopt);
  EXPECT_EQ(Decide(Request("Upgrade: websocket, foo\r\nConnection: Upgrade\r\n")), std::nullopt);
  EXPECT_EQ(Decide(Request("Upgrade: websocket\r\nConnection: Upgrade\r\n"), {}), std::nullopt);
  // Two Upgrade fields; an empty one.
  EXPECT_EQ(Decide(Request("Upgrade: websocket\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")),
            std::nullopt);
  EXPECT_EQ(Decide(Request("Upgrade: \r\nConnection: Upgrade\r\n")), std::nullopt);
  // Not a GET without a body on HTTP/1.1.
  EXPECT_EQ(
      Decide(Request("Upgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 0\r\n", "POST")),
      std::nullopt);
  EXPECT_EQ(Decide(Request("Upgrade: websocket\r\nConnection: Upgrade\r\n", "GET", "1.0")),
            std::nullopt);
}

// Several protocols offered, all listed: forwarded as offered (the backend picks).
TEST(TunnelledUpgrade, SeveralListed) {
  const std::vector<std::string> both = {"websocket", "foo"};
  EXPECT_EQ(Decide(Request("Upgrade: foo/2, websocket\r\nConnection: Upgrade\r\n"), both),
            "foo/2, websocket");
}

// RFC 6455 §1.3's worked example, and keys of the form §4.1 asks for.
TEST(WebSocketHandshake, AcceptAnswersTheKey) {
  EXPECT_EQ(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const std::string a = NewWebSocketKey();
  const std::string b = NewWebSocketKey();
  EXPECT_EQ(a.size(), 24u);  // 16 bytes in base64
  EXPECT_EQ(a.substr(22), "==");
  EXPECT_NE(a, b);
  EXPECT_NE(WebSocketAccept(a), WebSocketAccept(b));
}

}  // namespace
}  // namespace torii::http
