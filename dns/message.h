// dns/message.h: the DNS wire format (RFC 1035) of the answers torii reads.
//
// Pure functions, no I/O: dns/resolver.h hands the raw response of a query (c-ares does the
// sending, retries and the TCP fallback) to ParseAnswer(), which returns what discovery needs:
// the addresses or SRV targets of the name asked, and how long that answer may be kept. Every
// byte comes from the network, so every length and offset is checked; a malformed message is
// an error, never a crash or a read past the end.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace torii::dns {

// The record types torii asks for or follows.
enum class Type : uint16_t { kA = 1, kCname = 5, kSoa = 6, kAaaa = 28, kSrv = 33 };

// An IPv4 (AF_INET, bytes[0..3]) or IPv6 (AF_INET6, all 16 bytes) address.
struct IpAddress {
  int family = 0;
  std::array<uint8_t, 16> bytes{};
  // "10.0.0.1", "2001:db8::1" (inet_ntop's form).
  std::string ToString() const;
  auto operator<=>(const IpAddress&) const = default;
};

// One SRV record (RFC 2782). `target` is lowercase, without the trailing dot.
struct SrvTarget {
  uint16_t priority = 0;
  uint16_t weight = 0;
  uint16_t port = 0;
  std::string target;
  auto operator<=>(const SrvTarget&) const = default;
};

struct Answer {
  // NXDOMAIN (the name does not exist) or NODATA (NOERROR without a record of the type asked,
  // RFC 2308 §2.2): no addresses / targets, and `ttl` is the negative caching time.
  bool negative = false;
  bool nxdomain = false;
  // A / AAAA queries: the addresses of the name, after following CNAMEs in the answer section
  // (at most 8 in a chain). Sorted, without duplicates.
  std::vector<IpAddress> addresses;
  // SRV queries: the records of the name (after CNAMEs). Sorted, without duplicates. A single
  // record with target "." (RFC 2782: the service is decidedly not available) reads as NODATA.
  std::vector<SrvTarget> srv;
  // How long this answer may be kept, in seconds: the least TTL of the records used (the CNAME
  // chain included); for a negative answer min(SOA TTL, SOA MINIMUM) of the SOA record in the
  // authority section (RFC 2308 §5), or nullopt when there is none. TTLs with the top bit set
  // read as 0 (RFC 2181 §8).
  std::optional<uint32_t> ttl;
};

// Parses the response `msg` to a query for `name` (case-insensitive, with or without a
// trailing dot) of `type` (kA, kAaaa or kSrv). Errors (text for the log): a message that is
// truncated or malformed (bad label or compression pointer, pointer loop, record past the end),
// not a response (QR clear), whose question is not `name` / `type`, or whose RCODE is neither
// NOERROR nor NXDOMAIN (SERVFAIL, REFUSED, ...: the resolver failed, the answer says nothing
// about the name).
std::expected<Answer, std::string> ParseAnswer(std::span<const uint8_t> msg, std::string_view name,
                                               Type type);

}  // namespace torii::dns
