// tests/http/proxy_protocol_test.cc: the PROXY protocol header, v1 and v2 (http/proxy_protocol.h):
// every accepted form, each malformed one refused, headers split at every byte, and what torii
// writes read back by its own parser.
#include "http/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>
#include <tuple>
#include <vector>

namespace torii::http {
namespace {

using Result = ProxyHeader::Result;
using namespace std::string_literals;

std::string Text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    port = ntohs(in6->sin6_port);
  }
  return std::string(buf) + "/" + std::to_string(port);
}

const std::string kSig = "\r\n\r\n\0\r\nQUIT\n"s;

TEST(ProxyProtocol, V1) {
  const std::string tail = "GET / HTTP/1.1\r\n";
  ProxyHeader h = ParseProxyHeader("PROXY TCP4 203.0.113.9 192.0.2.1 56324 443\r\n" + tail);
  ASSERT_EQ(h.result, Result::kOk) << h.error;
  EXPECT_EQ(h.length, 44u);
  EXPECT_FALSE(h.local);
  EXPECT_EQ(Text(h.source), "203.0.113.9/56324");
  EXPECT_EQ(Text(h.dest), "192.0.2.1/443");
  h = ParseProxyHeader("PROXY TCP6 2001:db8::9 ::1 65535 0\r\n");
  ASSERT_EQ(h.result, Result::kOk) << h.error;
  EXPECT_EQ(Text(h.source), "2001:db8::9/65535");
  EXPECT_EQ(Text(h.dest), "::1/0");
  h = ParseProxyHeader("PROXY UNKNOWN\r\n");
  ASSERT_EQ(h.result, Result::kOk);
  EXPECT_TRUE(h.local);
  h = ParseProxyHeader("PROXY UNKNOWN ffff:f...f ffff:f...f 65535 65535\r\nx");
  ASSERT_EQ(h.result, Result::kOk);
  EXPECT_EQ(h.length, 49u);
}

TEST(ProxyProtocol, V1Refused) {
  for (const std::string& bad : std::vector<std::string>{
           "PROXY TCP4 203.0.113.9 192.0.2.1 56324\r\n",        // a field missing
           "PROXY TCP4 203.0.113.9 192.0.2.1 56324 443 7\r\n",  // one too many
           "PROXY TCP4 203.0.113.9  192.0.2.1 56324 443\r\n",   // two spaces
           "PROXY TCP4 2001:db8::9 192.0.2.1 1 2\r\n",          // family mismatch
           "PROXY TCP6 203.0.113.9 ::1 1 2\r\n",
           "PROXY TCP4 203.0.113.09 192.0.2.1 1 2\r\n",  // not inet_pton's form
           "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",     // port range
           "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",        // leading zero
           "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",         // bare LF
           "PROXY TCP4 1.2.3.4\0\0 5.6.7.8 1 2\r\n"s,  // NUL ends inet_pton early
           "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
           "GET / HTTP/1.1\r\n",              // no header at all
           "PROXY " + std::string(120, 'A'),  // longer than 107 bytes
       }) {
    EXPECT_EQ(ParseProxyHeader(bad).result, Result::kError) << bad;
  }
}

std::string V2(uint8_t ver_cmd, uint8_t fam, const std::string& body) {
  std::string out = kSig;
  out.push_back(static_cast<char>(ver_cmd));
  out.push_back(static_cast<char>(fam));
  out.push_back(static_cast<char>(body.size() >> 8));
  out.push_back(static_cast<char>(body.size() & 0xff));
  return out + body;
}

TEST(ProxyProtocol, V2) {
  // INET: 203.0.113.9:56324 → 192.0.2.1:443, then a TLV (skipped), then the request.
  const std::string inet = "\xcb\x00\x71\x09\xc0\x00\x02\x01\xdc\x04\x01\xbb"s;
  const std::string tlv =
      "\x04\x00\x03"
      "abc"s;
  ProxyHeader h = ParseProxyHeader(V2(0x21, 0x11, inet + tlv) + "GET");
  ASSERT_EQ(h.result, Result::kOk) << h.error;
  EXPECT_EQ(h.length, 16u + 12 + 6);
  EXPECT_EQ(Text(h.source), "203.0.113.9/56324");
  EXPECT_EQ(Text(h.dest), "192.0.2.1/443");
  std::string six(36, '\0');
  six[15] = 1;       // ::1
  six[16] = '\x20';  // 2001:db8::
  six[17] = '\x01';
  six[18] = '\x0d';
  six[19] = '\xb8';
  six[32] = '\x00';
  six[33] = '\x50';  // 80
  six[35] = '\x51';  // 81
  h = ParseProxyHeader(V2(0x21, 0x21, six));
  ASSERT_EQ(h.result, Result::kOk) << h.error;
  EXPECT_EQ(Text(h.source), "::1/80");
  EXPECT_EQ(Text(h.dest), "2001:db8::/81");
  // LOCAL, UNSPEC and UNIX: no client named.
  EXPECT_TRUE(ParseProxyHeader(V2(0x20, 0x00, "")).local);
  EXPECT_TRUE(ParseProxyHeader(V2(0x21, 0x00, "")).local);
  EXPECT_TRUE(ParseProxyHeader(V2(0x21, 0x31, std::string(216, 'x'))).local);
}

TEST(ProxyProtocol, V2Refused) {
  const std::string inet(12, '\1');
  EXPECT_EQ(ParseProxyHeader(V2(0x11, 0x11, inet)).result, Result::kError);  // version 1
  EXPECT_EQ(ParseProxyHeader(V2(0x22, 0x11, inet)).result, Result::kError);  // command 2
  EXPECT_EQ(ParseProxyHeader(V2(0x21, 0x12, inet)).result, Result::kError);  // DGRAM
  EXPECT_EQ(ParseProxyHeader(V2(0x21, 0x41, inet)).result, Result::kError);  // family 4
  EXPECT_EQ(ParseProxyHeader(V2(0x21, 0x11, inet.substr(0, 11))).result, Result::kError);
  EXPECT_EQ(ParseProxyHeader(V2(0x21, 0x21, std::string(35, '\1'))).result, Result::kError);
  // A length beyond the bound is refused at once, before the bytes arrive.
  std::string huge = kSig + "\x21\x11\xff\xff"s;
  EXPECT_EQ(ParseProxyHeader(huge).result, Result::kError);
  // A near miss of the signature.
  std::string sig = V2(0x21, 0x11, inet);
  sig[6] = 'X';
  EXPECT_EQ(ParseProxyHeader(sig).result, Result::kError);
}

// Every prefix of a valid header asks for more; the whole of it parses.
TEST(ProxyProtocol, SplitAnywhere) {
  for (const std::string& whole : {"PROXY TCP4 203.0.113.9 192.0.2.1 56324 443\r\n"s,
                                   V2(0x21, 0x11, std::string(12, '\1') + "\x04\x00\x01z"s)}) {
    for (size_t n = 0; n < whole.size(); ++n) {
      EXPECT_EQ(ParseProxyHeader(whole.substr(0, n)).result, Result::kNeedMore) << n;
    }
    EXPECT_EQ(ParseProxyHeader(whole).result, Result::kOk);
  }
}

sockaddr_storage Addr(int family, const char* text, uint16_t port) {
  sockaddr_storage ss{};
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, text, &in->sin_addr);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    inet_pton(AF_INET6, text, &in6->sin6_addr);
  }
  return ss;
}

// What torii sends to backends reads back as the same addresses, in both versions.
TEST(ProxyProtocol, WrittenHeadersRoundTrip) {
  for (int version : {1, 2}) {
    for (const auto& [family, src, dst] : {std::tuple{AF_INET, "198.51.100.7", "10.0.0.1"},
                                           std::tuple{AF_INET6, "2001:db8::7", "fe80::1"}}) {
      const sockaddr_storage s = Addr(family, src, 40000);
      const sockaddr_storage d = Addr(family, dst, 8443);
      std::string out;
      AppendProxyHeader(version, reinterpret_cast<const sockaddr*>(&s),
                        reinterpret_cast<const sockaddr*>(&d), &out);
      const ProxyHeader h = ParseProxyHeader(out);
      ASSERT_EQ(h.result, Result::kOk) << version << " " << h.error;
      EXPECT_EQ(h.length, out.size());
      EXPECT_EQ(Text(h.source), std::string(src) + "/40000");
      EXPECT_EQ(Text(h.dest), std::string(dst) + "/8443");
    }
    std::string local;
    AppendLocalProxyHeader(version, &local);
    const ProxyHeader h = ParseProxyHeader(local);
    ASSERT_EQ(h.result, Result::kOk);
    EXPECT_TRUE(h.local);
    EXPECT_EQ(h.length, local.size());
  }
}

}  // namespace
}  // namespace torii::http
