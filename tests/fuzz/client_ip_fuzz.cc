// tests/fuzz/client_ip_fuzz.cc: addresses, CIDR lists and X-Forwarded-For (BAD-INPUTS H3).
//
// Input: lines. The first is a trusted CIDR list (comma-separated), the second the peer, the
// rest one X-Forwarded-For value. The oracle:
//  - an address that parses prints to text that parses back to the same address;
//  - a CIDR that parses contains its own address, and the list built from the CIDRs contains
//    every one of them;
//  - the real client is the peer when the peer is not trusted, and otherwise the peer or an
//    address that appears in X-Forwarded-For.
#include <string>
#include <string_view>
#include <vector>

#include "base/text.h"
#include "ratelimit/client_ip.h"
#include "ratelimit/ip.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "client_ip_fuzz";

}  // namespace

int FuzzClientIp(const uint8_t* data, size_t size) {
  Input in(data, size);
  const std::string_view cidrs = in.Until('\n', 4096);
  const std::string_view peer_text = in.Until('\n', 256);
  const std::string_view xff = in.Rest();
  int checked = 0;
  ratelimit::IpList trusted;
  std::vector<ratelimit::Cidr> added;
  std::string_view rest = cidrs;
  while (!rest.empty() && added.size() < 256) {
    const size_t comma = rest.find(',');
    const std::string_view item = base::TrimOws(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (auto c = ratelimit::ParseCidr(item, nullptr)) {
      trusted.Add(*c);
      added.push_back(*c);
    }
  }
  for (const ratelimit::Cidr& c : added) {
    if (!trusted.Contains(c.addr)) {
      Violation(kName, "a CIDR list does not contain an address it was given",
                ratelimit::ToString(c.addr));
    }
    ++checked;
  }
  const std::optional<ratelimit::IpAddr> peer = ratelimit::ParseIp(peer_text);
  if (!peer) {
    return checked;
  }
  const std::string printed = ratelimit::ToString(*peer);
  if (ratelimit::ParseIp(printed) != peer) {
    Violation(kName, "an address does not round-trip through text", printed);
  }
  const ratelimit::IpAddr client = ratelimit::RealClient(*peer, xff, trusted);
  if (!trusted.Contains(*peer)) {
    if (client != *peer) {
      Violation(kName, "believed X-Forwarded-For from an untrusted peer", xff);
    }
    return checked + 1;
  }
  if (client != *peer) {
    bool named = false;
    std::string_view hops = xff;
    while (!named) {
      const size_t comma = hops.find(',');
      if (auto a = ratelimit::ParseIp(base::TrimOws(hops.substr(0, comma)))) {
        named = *a == client;
      }
      if (comma == std::string_view::npos) {
        break;
      }
      hops.remove_prefix(comma + 1);
    }
    if (!named) {
      Violation(kName, "the client is neither the peer nor a hop", ratelimit::ToString(client));
    }
  }
  return checked + 1;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzClientIp)
