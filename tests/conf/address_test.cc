// tests/conf/address_test.cc: ParseSocketAddress() and SocketAddress (conf/address.cc):
// numeric IPv4/IPv6 with a port are accepted, everything else is refused with a reason, and
// ToString() reflects set_port().
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "conf/config.h"

namespace torii::conf {
namespace {

// Good addresses: family, port, normalized printing and the operator's text are all kept.
TEST(ParseSocketAddress, Accepts) {
  struct Case {
    std::string_view text;
    int family;
    uint16_t port;
    std::string_view printed;
  };
  const Case cases[] = {
      {"1.2.3.4:80", AF_INET, 80, "1.2.3.4:80"},
      {"127.0.0.1:8080", AF_INET, 8080, "127.0.0.1:8080"},
      {"0.0.0.0:0", AF_INET, 0, "0.0.0.0:0"},
      {"255.255.255.255:65535", AF_INET, 65535, "255.255.255.255:65535"},
      {"10.0.0.1:00080", AF_INET, 80, "10.0.0.1:80"},
      {"[::1]:8080", AF_INET6, 8080, "[::1]:8080"},
      {"[::]:0", AF_INET6, 0, "[::]:0"},
      {"[0:0:0:0:0:0:0:1]:443", AF_INET6, 443, "[::1]:443"},
      {"[FD00::12]:9000", AF_INET6, 9000, "[fd00::12]:9000"},
      {"[::ffff:1.2.3.4]:80", AF_INET6, 80, "[::ffff:1.2.3.4]:80"},
  };
  for (const Case& c : cases) {
    std::string why;
    std::optional<SocketAddress> address = ParseSocketAddress(c.text, &why);
    ASSERT_TRUE(address.has_value()) << c.text << ": " << why;
    EXPECT_EQ(address->family(), c.family) << c.text;
    EXPECT_EQ(address->port(), c.port) << c.text;
    EXPECT_EQ(address->ToString(), c.printed) << c.text;
    EXPECT_EQ(address->text, c.text);
    EXPECT_EQ(address->len, c.family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
  }
}

// Bad addresses are refused, each with a reason.
TEST(ParseSocketAddress, Refuses) {
  const std::string_view cases[] = {
      "",
      ":80",
      "1.2.3.4",
      "1.2.3.4:",
      "1.2.3.4:80x",
      "1.2.3.4:x80",
      "1.2.3.4:-1",
      "1.2.3.4:+80",
      "1.2.3.4:65536",
      "1.2.3.4:100000",
      "1.2.3.4: 80",
      " 1.2.3.4:80",
      "1.2.3:80",
      "1.2.3.4.5:80",
      "256.0.0.1:80",
      "localhost:80",
      "example.com:443",
      "::1:80",
      "[::1]",
      "[::1]80",
      "[::1]:",
      "[::1:80",
      "[]:80",
      "[1.2.3.4]:80",
      "[fe80::1%eth0]:80",
      "[::1]:80x",
      "[gggg::]:80",
      "1.2.3.4:80:90",
  };
  for (std::string_view text : cases) {
    std::string why;
    EXPECT_FALSE(ParseSocketAddress(text, &why).has_value()) << text;
    EXPECT_FALSE(why.empty()) << text;
  }
  // `why` is optional.
  EXPECT_FALSE(ParseSocketAddress("nope", nullptr).has_value());
}

// set_port() changes port() and ToString() (a port-0 listener after bind), but not `text`.
TEST(SocketAddress, SetPortUpdatesToString) {
  std::optional<SocketAddress> v4 = ParseSocketAddress("127.0.0.1:0", nullptr);
  ASSERT_TRUE(v4.has_value());
  v4->set_port(40123);
  EXPECT_EQ(v4->port(), 40123);
  EXPECT_EQ(v4->ToString(), "127.0.0.1:40123");
  EXPECT_EQ(v4->text, "127.0.0.1:0");
  const auto* in = reinterpret_cast<const sockaddr_in*>(&v4->storage);
  EXPECT_EQ(ntohs(in->sin_port), 40123);

  std::optional<SocketAddress> v6 = ParseSocketAddress("[::1]:0", nullptr);
  ASSERT_TRUE(v6.has_value());
  v6->set_port(65535);
  EXPECT_EQ(v6->port(), 65535);
  EXPECT_EQ(v6->ToString(), "[::1]:65535");
}

// A default SocketAddress has no family: port 0, empty text, set_port is a no-op.
TEST(SocketAddress, DefaultIsEmpty) {
  SocketAddress address;
  EXPECT_EQ(address.port(), 0);
  address.set_port(80);
  EXPECT_EQ(address.port(), 0);
  EXPECT_EQ(address.ToString(), "");
}

}  // namespace
}  // namespace torii::conf
