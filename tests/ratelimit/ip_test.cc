// tests/ratelimit/ip_test.cc: address parsing, CIDRs, masking, key hashes and IpList
// (ratelimit/ip.h), and the keyed hash under them (ratelimit/hash.h).
#include "ratelimit/ip.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "ratelimit/hash.h"

namespace torii::ratelimit {
namespace {

IpAddr Ip(std::string_view text) {
  std::optional<IpAddr> a = ParseIp(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddr{});
}

Cidr Net(std::string_view text) {
  std::string why;
  std::optional<Cidr> c = ParseCidr(text, &why);
  EXPECT_TRUE(c.has_value()) << text << ": " << why;
  return c.value_or(Cidr{});
}

// The core of the keyed hash is SipHash: check the 2-4 variant against the reference vectors
// (Aumasson & Bernstein, key 00..0f), so the 1-3 variant built from the same rounds is sound.
TEST(SipHashTest, MatchesTheReferenceVectors) {
  uint8_t msg[15];
  for (int i = 0; i < 15; ++i) {
    msg[i] = static_cast<uint8_t>(i);
  }
  const uint64_t k0 = 0x0706050403020100ull;
  const uint64_t k1 = 0x0f0e0d0c0b0a0908ull;
  EXPECT_EQ((base::SipHash<2, 4>(k0, k1, msg, 15)), 0xa129ca6149be45e5ull);
  EXPECT_EQ((base::SipHash<2, 4>(k0, k1, msg, 0)), 0x726fdb47dd0e0e31ull);
}

// HashKey is deterministic within the process and separates different text.
TEST(SipHashTest, HashKeyIsStableAndSeparates) {
  EXPECT_EQ(HashKey("api-key-1"), HashKey("api-key-1"));
  EXPECT_NE(HashKey("api-key-1"), HashKey("api-key-2"));
  EXPECT_NE(HashKey(""), HashKey(std::string_view("\0", 1)));
}

// Dotted quads and the usual IPv6 forms parse to their bytes.
TEST(ParseIpTest, AcceptsIpv4AndIpv6) {
  IpAddr a = Ip("10.0.0.1");
  EXPECT_EQ(a.family, 4);
  EXPECT_EQ(a.bytes[0], 10);
  EXPECT_EQ(a.bytes[3], 1);
  for (int i = 4; i < 16; ++i) {
    EXPECT_EQ(a.bytes[i], 0);
  }
  EXPECT_EQ(Ip("0.0.0.0").family, 4);
  EXPECT_EQ(Ip("255.255.255.255").bytes[3], 255);

  IpAddr loop = Ip("::1");
  EXPECT_EQ(loop.family, 6);
  EXPECT_EQ(loop.bytes[15], 1);
  EXPECT_EQ(Ip("::").family, 6);
  IpAddr doc = Ip("2001:db8::1");
  EXPECT_EQ(doc.family, 6);
  EXPECT_EQ(doc.bytes[0], 0x20);
  EXPECT_EQ(doc.bytes[1], 0x01);
  EXPECT_EQ(doc.bytes[2], 0x0d);
  EXPECT_EQ(doc.bytes[3], 0xb8);
  EXPECT_EQ(doc.bytes[15], 1);
  EXPECT_EQ(Ip("2001:DB8::1"), doc);
  EXPECT_EQ(Ip("2001:0db8:0000:0000:0000:0000:0000:0001"), doc);
  EXPECT_EQ(Ip("1:2:3:4:5:6:7:8").bytes[15], 8);
}

// ::ffff:a.b.c.d (and its hex spelling) is the IPv4 address, so a dual-stack client has one key.
TEST(ParseIpTest, MappedIpv6IsIpv4) {
  EXPECT_EQ(Ip("::ffff:1.2.3.4"), Ip("1.2.3.4"));
  EXPECT_EQ(Ip("::FFFF:0102:0304"), Ip("1.2.3.4"));
  EXPECT_EQ(Ip("::ffff:1.2.3.4").family, 4);
  // IPv4-compatible (deprecated) and NAT64 addresses are not mapped: they stay IPv6.
  EXPECT_EQ(Ip("::1.2.3.4").family, 6);
  EXPECT_EQ(Ip("64:ff9b::1.2.3.4").family, 6);
}

// Anything but a bare address is refused: ports, brackets, zones, prefixes, shorthand, space.
TEST(ParseIpTest, RefusesMalformedText) {
  for (std::string_view bad :
       {"",           "1.2.3",      "1.2.3.4.5",  "256.1.1.1", "1.2.3.-1",
        "01.2.3.4",   "1.2.3.04",   "0x0a.0.0.1", "10.1",      " 1.2.3.4",
        "1.2.3.4 ",   "1.2.3.4:80", "[::1]",      "[::1]:80",  "::1%eth0",
        "fe80::1%1",  "1::2::3",    "12345::",    "gggg::",    "1:2:3:4:5:6:7:8:9",
        "1.2.3.4/24", "::/0",       "localhost",  "unknown",   ":::"}) {
    EXPECT_FALSE(ParseIp(bad).has_value()) << "'" << bad << "'";
  }
  // An embedded NUL must not let the prefix before it pass.
  EXPECT_FALSE(ParseIp(std::string_view("1.2.3.4\0junk", 12)).has_value());
  EXPECT_FALSE(ParseIp(std::string(100, '1')).has_value());
}

// Raw socket bytes: 4 → IPv4, 16 → IPv6 unless mapped, other lengths → family 0.
TEST(IpFromBytesTest, FollowsTheSocketAddressLength) {
  const uint8_t v4[4] = {192, 0, 2, 1};
  EXPECT_EQ(IpFromBytes(v4), Ip("192.0.2.1"));
  uint8_t mapped[16] = {};
  mapped[10] = 0xff;
  mapped[11] = 0xff;
  mapped[12] = 192;
  mapped[13] = 0;
  mapped[14] = 2;
  mapped[15] = 1;
  EXPECT_EQ(IpFromBytes(mapped), Ip("192.0.2.1"));
  uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8};
  v6[15] = 1;
  EXPECT_EQ(IpFromBytes(v6), Ip("2001:db8::1"));
  const uint8_t odd[5] = {};
  EXPECT_EQ(IpFromBytes(odd).family, 0);
}

// Log form: canonical text for both families, "-" for none.
TEST(IpToStringTest, PrintsCanonicalText) {
  EXPECT_EQ(ToString(Ip("10.0.0.1")), "10.0.0.1");
  EXPECT_EQ(ToString(Ip("2001:0DB8:0:0::1")), "2001:db8::1");
  EXPECT_EQ(ToString(Ip("::ffff:10.0.0.1")), "10.0.0.1");
  EXPECT_EQ(ToString(IpAddr{}), "-");
}

// Networks with a prefix, and bare addresses as /32 and /128.
TEST(ParseCidrTest, AcceptsNetworksAndBareAddresses) {
  EXPECT_EQ(Net("10.0.0.0/8"), (Cidr{Ip("10.0.0.0"), 8}));
  EXPECT_EQ(Net("0.0.0.0/0"), (Cidr{Ip("0.0.0.0"), 0}));
  EXPECT_EQ(Net("192.168.1.7/32"), (Cidr{Ip("192.168.1.7"), 32}));
  EXPECT_EQ(Net("10.1.2.3"), (Cidr{Ip("10.1.2.3"), 32}));
  EXPECT_EQ(Net("::/0"), (Cidr{Ip("::"), 0}));
  EXPECT_EQ(Net("::1/128"), (Cidr{Ip("::1"), 128}));
  EXPECT_EQ(Net("::1"), (Cidr{Ip("::1"), 128}));
  EXPECT_EQ(Net("2001:db8::/32"), (Cidr{Ip("2001:db8::"), 32}));
  EXPECT_EQ(Net("10.0.0.0/08"), (Cidr{Ip("10.0.0.0"), 8}));
}

// A mapped network of /96 or longer is the IPv4 network 96 bits shorter.
TEST(ParseCidrTest, MappedNetworksBecomeIpv4) {
  EXPECT_EQ(Net("::ffff:10.0.0.0/104"), (Cidr{Ip("10.0.0.0"), 8}));
  EXPECT_EQ(Net("::ffff:0:0/96"), (Cidr{Ip("0.0.0.0"), 0}));
  EXPECT_EQ(Net("::ffff:1.2.3.4"), (Cidr{Ip("1.2.3.4"), 32}));
}

// Bad addresses, bad prefixes and host bits below the prefix are refused with a reason.
TEST(ParseCidrTest, RefusesBadInputWithAReason) {
  struct Case {
    std::string_view text;
    std::string_view why_has;
  };
  for (const Case& c : std::vector<Case>{
           {"", "not an IP address"},
           {"abc/8", "not an IP address"},
           {"10.0.0/8", "not an IP address"},
           {"[::1]/128", "not an IP address"},
           {"10.0.0.0/33", "0..32"},
           {"::/129", "0..128"},
           {"10.0.0.0/", "0..32"},
           {"10.0.0.0/-1", "0..32"},
           {"10.0.0.0/+8", "0..32"},
           {"10.0.0.0/8a", "0..32"},
           {"10.0.0.0/ 8", "0..32"},
           {"10.0.0.0/0008", "0..32"},
           {"10.0.0.0/8/8", "0..32"},
           {"10.0.0.1/8", "10.0.0.0/8"},
           {"192.168.1.1/24", "host bits"},
           {"2001:db8::1/32", "2001:db8::/32"},
           {"::1/0", "host bits"},
           {"::ffff:10.0.0.0/80", "host bits"},
       }) {
    std::string why;
    EXPECT_FALSE(ParseCidr(c.text, &why).has_value()) << c.text;
    EXPECT_NE(why.find(c.why_has), std::string::npos) << c.text << ": " << why;
  }
  EXPECT_FALSE(ParseCidr("10.0.0.1/8", nullptr).has_value());  // `why` is optional
}

// MaskPrefix keeps the top `prefix` bits; a prefix at or above the width keeps everything.
TEST(MaskPrefixTest, ZeroesTheBitsBelowThePrefix) {
  const IpAddr a = Ip("10.1.2.3");
  EXPECT_EQ(MaskPrefix(a, 24), Ip("10.1.2.0"));
  EXPECT_EQ(MaskPrefix(a, 16), Ip("10.1.0.0"));
  EXPECT_EQ(MaskPrefix(a, 20), Ip("10.1.0.0"));
  EXPECT_EQ(MaskPrefix(Ip("10.1.255.3"), 20), Ip("10.1.240.0"));
  EXPECT_EQ(MaskPrefix(a, 0), Ip("0.0.0.0"));
  EXPECT_EQ(MaskPrefix(a, 32), a);
  EXPECT_EQ(MaskPrefix(a, 255), a);
  EXPECT_EQ(MaskPrefix(a, 64), a);  // above IPv4's width: whole

  const IpAddr b = Ip("2001:db8:1:2:3:4:5:6");
  EXPECT_EQ(MaskPrefix(b, 64), Ip("2001:db8:1:2::"));
  EXPECT_EQ(MaskPrefix(b, 48), Ip("2001:db8:1::"));
  EXPECT_EQ(MaskPrefix(b, 127), Ip("2001:db8:1:2:3:4:5:6"));
  EXPECT_EQ(MaskPrefix(Ip("2001:db8::7"), 127), Ip("2001:db8::6"));
  EXPECT_EQ(MaskPrefix(b, 0), Ip("::"));
  EXPECT_EQ(MaskPrefix(b, 128), b);
  EXPECT_EQ(MaskPrefix(IpAddr{}, 8), IpAddr{});
}

// client_ip/24: the same /24 is one key, a different /24 another; full keys separate hosts.
TEST(HashIpTest, SameNetworkSameKey) {
  EXPECT_EQ(HashIp(Ip("10.1.2.3"), 24), HashIp(Ip("10.1.2.200"), 24));
  EXPECT_NE(HashIp(Ip("10.1.2.3"), 24), HashIp(Ip("10.1.3.3"), 24));
  EXPECT_NE(HashIp(Ip("10.1.2.3"), 255), HashIp(Ip("10.1.2.4"), 255));
  EXPECT_EQ(HashIp(Ip("10.1.2.3"), 255), HashIp(Ip("10.1.2.3"), 255));
  EXPECT_EQ(HashIp(Ip("10.1.2.3"), 32), HashIp(Ip("10.1.2.3"), 255));
  EXPECT_EQ(HashIp(Ip("::ffff:10.1.2.3"), 255), HashIp(Ip("10.1.2.3"), 255));
  // The prefix is part of the key: 10.1.2.0 as a /24 and as a host are different keys.
  EXPECT_NE(HashIp(Ip("10.1.2.0"), 24), HashIp(Ip("10.1.2.0"), 32));
  // The family too: 0.0.0.0/0 and ::/0.
  EXPECT_NE(HashIp(Ip("10.1.2.3"), 0), HashIp(Ip("2001:db8::1"), 0));

  EXPECT_EQ(HashIp(Ip("2001:db8:1:2::1"), 64), HashIp(Ip("2001:db8:1:2:ffff::9"), 64));
  EXPECT_NE(HashIp(Ip("2001:db8:1:2::1"), 64), HashIp(Ip("2001:db8:1:3::1"), 64));
  EXPECT_EQ(HashIp(Ip("2001:db8::1"), 128), HashIp(Ip("2001:db8::1"), 255));
  EXPECT_NE(HashIp(Ip("2001:db8::1"), 255), HashIp(Ip("2001:db8::2"), 255));
}

// Every IPv4 host of a /16 gets a distinct full key (no collisions among 65536).
TEST(HashIpTest, NoCollisionsAcrossASlash16) {
  std::vector<uint64_t> keys;
  IpAddr a = Ip("172.16.0.0");
  for (int i = 0; i < 65536; ++i) {
    a.bytes[2] = static_cast<uint8_t>(i >> 8);
    a.bytes[3] = static_cast<uint8_t>(i);
    keys.push_back(HashIp(a, 255));
  }
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(std::adjacent_find(keys.begin(), keys.end()), keys.end());
}

// IPv4 CIDRs match their hosts only, and never an IPv6 address.
TEST(IpListTest, MatchesIpv4Networks) {
  IpList list;
  EXPECT_TRUE(list.empty());
  EXPECT_FALSE(list.Contains(Ip("10.0.0.1")));
  list.Add(Net("10.0.0.0/8"));
  list.Add(Net("192.168.1.0/24"));
  list.Add(Net("203.0.113.7"));
  EXPECT_FALSE(list.empty());
  EXPECT_EQ(list.size(), 3u);
  EXPECT_TRUE(list.Contains(Ip("10.0.0.0")));
  EXPECT_TRUE(list.Contains(Ip("10.255.255.255")));
  EXPECT_TRUE(list.Contains(Ip("192.168.1.77")));
  EXPECT_TRUE(list.Contains(Ip("203.0.113.7")));
  EXPECT_TRUE(list.Contains(Ip("::ffff:10.9.9.9")));
  EXPECT_FALSE(list.Contains(Ip("11.0.0.0")));
  EXPECT_FALSE(list.Contains(Ip("9.255.255.255")));
  EXPECT_FALSE(list.Contains(Ip("192.168.2.1")));
  EXPECT_FALSE(list.Contains(Ip("203.0.113.8")));
  EXPECT_FALSE(list.Contains(Ip("::a00:1")));  // ::10.0.0.1 is IPv6
  EXPECT_FALSE(list.Contains(IpAddr{}));
}

// IPv6 CIDRs, including a /128 host, match only inside.
TEST(IpListTest, MatchesIpv6Networks) {
  IpList list;
  list.Add(Net("2001:db8::/32"));
  list.Add(Net("::1/128"));
  EXPECT_TRUE(list.Contains(Ip("2001:db8::")));
  EXPECT_TRUE(list.Contains(Ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(list.Contains(Ip("::1")));
  EXPECT_FALSE(list.Contains(Ip("::2")));
  EXPECT_FALSE(list.Contains(Ip("::")));
  EXPECT_FALSE(list.Contains(Ip("2001:db9::")));
  EXPECT_FALSE(list.Contains(Ip("2001:db7:ffff::")));
  EXPECT_FALSE(list.Contains(Ip("127.0.0.1")));
}

// /0 covers its whole family and only that family.
TEST(IpListTest, SlashZeroCoversOneFamily) {
  IpList v4;
  v4.Add(Net("0.0.0.0/0"));
  EXPECT_TRUE(v4.Contains(Ip("0.0.0.0")));
  EXPECT_TRUE(v4.Contains(Ip("255.255.255.255")));
  EXPECT_FALSE(v4.Contains(Ip("::1")));
  IpList v6;
  v6.Add(Net("::/0"));
  EXPECT_TRUE(v6.Contains(Ip("::")));
  EXPECT_TRUE(v6.Contains(Ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(v6.Contains(Ip("1.2.3.4")));
}

// Overlapping and adjacent CIDRs merge without losing or inventing addresses.
TEST(IpListTest, OverlapsAndNeighboursMerge) {
  IpList list;
  list.Add(Net("10.0.0.0/9"));
  list.Add(Net("10.128.0.0/9"));
  list.Add(Net("10.1.0.0/16"));  // inside the first
  list.Add(Net("12.0.0.0/8"));
  EXPECT_EQ(list.size(), 4u);
  EXPECT_TRUE(list.Contains(Ip("10.127.255.255")));
  EXPECT_TRUE(list.Contains(Ip("10.128.0.0")));
  EXPECT_FALSE(list.Contains(Ip("11.0.0.0")));
  EXPECT_TRUE(list.Contains(Ip("12.0.0.1")));
  EXPECT_FALSE(list.Contains(Ip("13.0.0.0")));
}

// Thousands of random CIDRs of both families (enough to take the batched-merge path) answer
// exactly like a linear scan.
TEST(IpListTest, AgreesWithALinearScan) {
  std::mt19937_64 rng(7);
  std::vector<Cidr> cidrs;
  IpList list;
  auto random_addr = [&](uint8_t family) {
    IpAddr a;
    a.family = family;
    const int n = family == 4 ? 4 : 16;
    for (int i = 0; i < n; ++i) {
      a.bytes[i] = static_cast<uint8_t>(rng());
    }
    if (family == 6) {
      a.bytes[0] = 0x20;  // keep clear of the mapped range
    }
    return a;
  };
  // 5000 IPv4 CIDRs of /20../32 barely overlap, so the IPv4 ranges pass 4096 and later
  // additions take the batched (pending) path.
  for (int i = 0; i < 6000; ++i) {
    const uint8_t family = i % 6 == 0 ? 6 : 4;
    const uint8_t prefix =
        family == 4 ? static_cast<uint8_t>(20 + rng() % 13) : static_cast<uint8_t>(rng() % 129);
    Cidr c{MaskPrefix(random_addr(family), prefix), prefix};
    cidrs.push_back(c);
    list.Add(c);
  }
  EXPECT_EQ(list.size(), cidrs.size());
  auto linear = [&](const IpAddr& a) {
    for (const Cidr& c : cidrs) {
      if (c.addr.family == a.family && MaskPrefix(a, c.prefix) == c.addr) {
        return true;
      }
    }
    return false;
  };
  int hits = 0;
  for (int i = 0; i < 1000; ++i) {
    IpAddr a;
    if (i % 2 == 0) {
      // Inside a listed CIDR (its first, last or a random host).
      const Cidr& c = cidrs[rng() % cidrs.size()];
      a = c.addr;
      const uint8_t width = a.family == 4 ? 32 : 128;
      for (uint32_t bit = c.prefix; bit < width; ++bit) {
        if ((i / 2) % 3 == 1 || ((i / 2) % 3 == 2 && (rng() & 1))) {
          a.bytes[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
        }
      }
    } else {
      a = random_addr(i % 3 == 0 ? 6 : 4);
    }
    const bool want = linear(a);
    hits += want ? 1 : 0;
    ASSERT_EQ(list.Contains(a), want) << ToString(a);
  }
  EXPECT_GE(hits, 500);
}

}  // namespace
}  // namespace torii::ratelimit

namespace torii::ratelimit {
namespace {

TEST(IpFromSockaddrTest, FamiliesAndMappedAddresses) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(8080);
  inet_pton(AF_INET, "10.1.2.3", &v4.sin_addr);
  EXPECT_EQ(IpFromSockaddr(reinterpret_cast<const sockaddr*>(&v4)), *ParseIp("10.1.2.3"));
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::7", &v6.sin6_addr);
  EXPECT_EQ(IpFromSockaddr(reinterpret_cast<const sockaddr*>(&v6)), *ParseIp("2001:db8::7"));
  inet_pton(AF_INET6, "::ffff:192.0.2.9", &v6.sin6_addr);  // a dual-stack listener's IPv4 peer
  EXPECT_EQ(IpFromSockaddr(reinterpret_cast<const sockaddr*>(&v6)).family, 4);
  EXPECT_EQ(IpFromSockaddr(reinterpret_cast<const sockaddr*>(&v6)), *ParseIp("192.0.2.9"));
  sockaddr_storage other{};
  other.ss_family = AF_UNIX;
  EXPECT_EQ(IpFromSockaddr(reinterpret_cast<const sockaddr*>(&other)).family, 0);
}

}  // namespace
}  // namespace torii::ratelimit
