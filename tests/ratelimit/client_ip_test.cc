// tests/ratelimit/client_ip_test.cc: RealClient (ratelimit/client_ip.h): X-Forwarded-For is
// believed only through trusted proxies, walked from the right.
#include "ratelimit/client_ip.h"

#include <gtest/gtest.h>

namespace torii::ratelimit {
namespace {

IpAddr Ip(std::string_view text) { return ParseIp(text).value(); }

IpList Trusted() {
  IpList list;
  for (std::string_view c : {"10.0.0.0/8", "2001:db8:ffff::/48", "::1"}) {
    list.Add(ParseCidr(c, nullptr).value());
  }
  return list;
}

// A peer that is not a trusted proxy is the client, whatever XFF says (spoofing ignored).
TEST(RealClientTest, UntrustedPeerIgnoresXff) {
  const IpList trusted = Trusted();
  EXPECT_EQ(RealClient(Ip("203.0.113.9"), "1.1.1.1", trusted), Ip("203.0.113.9"));
  EXPECT_EQ(RealClient(Ip("203.0.113.9"), "10.0.0.1, 1.1.1.1", trusted), Ip("203.0.113.9"));
  EXPECT_EQ(RealClient(Ip("2001:db8::5"), "1.1.1.1", trusted), Ip("2001:db8::5"));
}

// Behind a trusted proxy the client is the right-most untrusted hop; hops to its left (which
// the client itself may have written) are ignored.
TEST(RealClientTest, TrustedPeerGivesRightMostUntrustedHop) {
  const IpList trusted = Trusted();
  const IpAddr peer = Ip("10.0.0.2");
  EXPECT_EQ(RealClient(peer, "198.51.100.7", trusted), Ip("198.51.100.7"));
  EXPECT_EQ(RealClient(peer, "6.6.6.6, 198.51.100.7, 10.0.0.3", trusted), Ip("198.51.100.7"));
  // Repeated headers joined with "," read the same as one list.
  EXPECT_EQ(RealClient(peer, "6.6.6.6,198.51.100.7,10.0.0.3", trusted), Ip("198.51.100.7"));
  // No header: the peer.
  EXPECT_EQ(RealClient(peer, "", trusted), peer);
}

// Every hop trusted: the left-most one.
TEST(RealClientTest, AllTrustedGivesLeftMost) {
  const IpList trusted = Trusted();
  EXPECT_EQ(RealClient(Ip("10.0.0.2"), "10.0.0.5, 10.0.0.4", trusted), Ip("10.0.0.5"));
}

// A hop that is not an address stops the walk at the last good hop (or the peer).
TEST(RealClientTest, GarbageHopStopsTheWalk) {
  const IpList trusted = Trusted();
  const IpAddr peer = Ip("10.0.0.2");
  EXPECT_EQ(RealClient(peer, "198.51.100.7, garbage, 10.0.0.3", trusted), Ip("10.0.0.3"));
  EXPECT_EQ(RealClient(peer, "198.51.100.7, unknown", trusted), peer);
  EXPECT_EQ(RealClient(peer, "198.51.100.7:4711", trusted), peer);  // ports are not XFF
  EXPECT_EQ(RealClient(peer, "[2001:db8::1]", trusted), peer);
  EXPECT_EQ(RealClient(peer, "1.2.3.4 5.6.7.8", trusted), peer);
}

// Spaces, tabs and empty list elements are not hops.
TEST(RealClientTest, ListSyntaxIsTolerated) {
  const IpList trusted = Trusted();
  EXPECT_EQ(RealClient(Ip("10.0.0.2"), " 198.51.100.7 ,, \t10.0.0.3\t, ", trusted),
            Ip("198.51.100.7"));
  EXPECT_EQ(RealClient(Ip("10.0.0.2"), ",,,", trusted), Ip("10.0.0.2"));
}

// IPv6 peers and hops, and mapped hops read as IPv4.
TEST(RealClientTest, Ipv6) {
  const IpList trusted = Trusted();
  EXPECT_EQ(RealClient(Ip("2001:db8:ffff::1"), "2001:db8::42, 2001:db8:ffff::2", trusted),
            Ip("2001:db8::42"));
  EXPECT_EQ(RealClient(Ip("::1"), "2001:db8::42", trusted), Ip("2001:db8::42"));
  EXPECT_EQ(RealClient(Ip("::1"), "::ffff:198.51.100.7", trusted), Ip("198.51.100.7"));
  // A mapped peer is its IPv4 address, so 10.0.0.0/8 trusts it.
  EXPECT_EQ(RealClient(Ip("::ffff:10.0.0.2"), "198.51.100.7", trusted), Ip("198.51.100.7"));
  // A v4 hop between v6 proxies.
  EXPECT_EQ(RealClient(Ip("::1"), "198.51.100.7, 2001:db8:ffff::9", trusted), Ip("198.51.100.7"));
}

// An empty trusted list trusts nobody.
TEST(RealClientTest, EmptyTrustedListTrustsNobody) {
  EXPECT_EQ(RealClient(Ip("10.0.0.2"), "198.51.100.7", IpList{}), Ip("10.0.0.2"));
}

}  // namespace
}  // namespace torii::ratelimit
