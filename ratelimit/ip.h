// ratelimit/ip.h: client addresses as plain values: parsing, prefixes, key hashes, CIDR lists.
//
// Owns: IpAddr (IPv4 or IPv6, no port, no zone), ParseIp/ParseCidr over text, MaskPrefix and
// HashIp for keys like `client_ip/24`, and IpList, an any-match set of CIDRs for allow/deny
// lists and `trusted_proxies`.
//
// One rule runs through the file: an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack
// socket reports for an IPv4 client) is the IPv4 address. ParseIp, IpFromBytes and ParseCidr
// (for ::ffff:0:0/96 and longer) all return family 4, so a client has one key and one list
// match however it reached us. The families are otherwise separate: `::/0` matches every IPv6
// address and no IPv4 one; `0.0.0.0/0` the reverse.
//
// Leaves out: sockets and sockaddr (the caller fills IpAddr from what accept() gave it, e.g.
// with IpFromBytes), ports, zone ids (fe80::1%eth0 is refused), and IPv4 shorthand that
// inet_aton accepts but no proxy writes (10.1, 0x0a.0.0.1, leading zeros).
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace torii::ratelimit {

struct IpAddr {
  uint8_t family = 0;               // 4 or 6; 0 = none (a default-constructed value)
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 in bytes[0..3], the rest zero

  friend bool operator==(const IpAddr&, const IpAddr&) = default;
};

// "10.0.0.1", "::1", "2001:db8::1" (no brackets, no port, no surrounding space). IPv4 is four
// decimal parts without leading zeros. ::ffff:a.b.c.d (or ::ffff:0a00:1) comes back as family
// 4. nullopt for anything else.
std::optional<IpAddr> ParseIp(std::string_view text);

// An address from the raw bytes a socket gives: 4 bytes (sin_addr) → IPv4; 16 bytes
// (sin6_addr) → IPv6, or IPv4 when mapped. Any other length → family 0.
IpAddr IpFromBytes(std::span<const uint8_t> bytes);
// The same from a socket address (AF_INET or AF_INET6; the port is ignored). Family 0 for any
// other family.
IpAddr IpFromSockaddr(const sockaddr* sa);

// For logs: "10.0.0.1", "2001:db8::1" (RFC 5952 form); "-" for family 0.
std::string ToString(const IpAddr& a);

struct Cidr {
  IpAddr addr;
  uint8_t prefix = 0;  // 0..32 for IPv4, 0..128 for IPv6

  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// "10.0.0.0/8", "2001:db8::/32", "::1/128"; a bare address is /32 or /128. The prefix is 1-3
// decimal digits within the family's width. Refused, with a reason in `why` (may be null):
// anything ParseIp refuses, a bad prefix, and host bits set below the prefix ("10.0.0.1/8":
// a typo for 10.0.0.0/8 or for 10.0.0.1/32, so the config says which instead of guessing).
// "::ffff:10.0.0.0/104" is the IPv4 CIDR 10.0.0.0/8.
std::optional<Cidr> ParseCidr(std::string_view text, std::string* why);

// `a` with every bit below `prefix` zeroed. A prefix at or above the family's width (32, 128;
// 255 by convention) leaves the address whole. Family 0 comes back unchanged.
IpAddr MaskPrefix(const IpAddr& a, uint8_t prefix);

// The key of `a` masked to `prefix_or_255_for_full` bits: equal for two addresses of the same
// network at that prefix, different (up to 64-bit collisions, which the keyed hash makes
// unpredictable; hash.h) otherwise. The family and the effective prefix are hashed too, so
// 10.0.0.0/24 and 10.0.0.0/32 are different keys, and /32 equals 255 for IPv4.
uint64_t HashIp(const IpAddr& a, uint8_t prefix_or_255_for_full);

// Any-match set of CIDRs. Each family is kept as sorted, merged, disjoint address ranges, so
// Contains() is one binary search however the CIDRs overlap (plus a scan of at most
// kPendingMax - 1 recent additions not merged yet). Build it once (config load), then share it
// read-only between threads: Contains() is const and touches no shared mutable state; Add()
// must not race with anything.
class IpList {
 public:
  // Adds `cidr` (bits below its prefix are ignored). A family-0 address is ignored. While a
  // family holds fewer than 4096 ranges each addition is merged at once (O(n)), so lists of
  // that size have nothing pending; beyond, additions are merged kPendingMax at a time, so
  // building n entries costs O(n² / kPendingMax) (100k entries: well under a second).
  void Add(const Cidr& cidr);

  // True when `a` lies in any CIDR added. False for family 0.
  bool Contains(const IpAddr& a) const;

  bool empty() const { return size_ == 0; }
  // CIDRs added (duplicates and overlaps counted as given), not the merged ranges.
  size_t size() const { return size_; }

  static constexpr size_t kPendingMax = 32;

 private:
  using U128 = unsigned __int128;
  template <class T>
  struct Range {
    T lo;
    T hi;  // inclusive
  };

  template <class T>
  static void Merge(std::vector<Range<T>>* ranges, std::vector<Range<T>>* pending);
  template <class T>
  static bool Find(const std::vector<Range<T>>& ranges, const std::vector<Range<T>>& pending,
                   T key);

  std::vector<Range<uint32_t>> v4_;
  std::vector<Range<uint32_t>> v4_pending_;
  std::vector<Range<U128>> v6_;
  std::vector<Range<U128>> v6_pending_;
  size_t size_ = 0;
};

}  // namespace torii::ratelimit
