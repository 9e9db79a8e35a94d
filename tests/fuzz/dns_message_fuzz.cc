// tests/fuzz/dns_message_fuzz.cc: the DNS response parser (dns/message.h), which reads what a
// resolver on the network sent back.
//
// Input: one byte choosing the type asked (A, AAAA, SRV), then the message, the answer to a
// query for "app.test". The oracles, beyond never crashing or reading past the end:
//  - addresses and SRV targets come back sorted and without duplicates;
//  - an A answer holds only AF_INET addresses, an AAAA answer only AF_INET6 ones, and neither
//    holds SRV targets (nor an SRV answer addresses); SRV targets are non-empty, without a
//    trailing dot, and lowercase;
//  - a negative answer holds nothing; nxdomain implies negative; a positive answer has a TTL
//    and holds something;
//  - no TTL has the top bit set (RFC 2181 §8);
//  - the query name's case and trailing dot change nothing.
#include <sys/socket.h>

#include <algorithm>
#include <span>
#include <string>
#include <string_view>

#include "dns/message.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "dns_message_fuzz";

std::string_view Detail(std::span<const uint8_t> msg) {
  return std::string_view(reinterpret_cast<const char*>(msg.data()),
                          std::min<size_t>(msg.size(), 64));
}

template <class T>
bool SortedUnique(const std::vector<T>& v) {
  return std::adjacent_find(v.begin(), v.end(), [](const T& a, const T& b) { return !(a < b); }) ==
         v.end();
}

}  // namespace

int FuzzDnsMessage(const uint8_t* data, size_t size) {
  Input in(data, size);
  static constexpr dns::Type kTypes[] = {dns::Type::kA, dns::Type::kAaaa, dns::Type::kSrv};
  const dns::Type type = kTypes[in.Byte() % 3];
  const std::string_view rest = in.Rest();
  const std::span<const uint8_t> msg(reinterpret_cast<const uint8_t*>(rest.data()), rest.size());

  const auto parsed = dns::ParseAnswer(msg, "app.test", type);
  const auto again = dns::ParseAnswer(msg, "APP.Test.", type);
  if (parsed.has_value() != again.has_value() ||
      (parsed.has_value() && (parsed->addresses != again->addresses || parsed->srv != again->srv ||
                              parsed->ttl != again->ttl || parsed->negative != again->negative ||
                              parsed->nxdomain != again->nxdomain))) {
    Violation(kName, "the query name's case or trailing dot changed the answer", Detail(msg));
  }
  if (!parsed) {
    if (parsed.error().empty()) {
      Violation(kName, "an error without text", Detail(msg));
    }
    return 0;
  }
  const dns::Answer& a = *parsed;
  if (!SortedUnique(a.addresses) || !SortedUnique(a.srv)) {
    Violation(kName, "an answer not sorted or with duplicates", Detail(msg));
  }
  const int family = type == dns::Type::kA ? AF_INET : AF_INET6;
  for (const dns::IpAddress& ip : a.addresses) {
    if (type == dns::Type::kSrv || ip.family != family) {
      Violation(kName, "an address of a family the type does not give", Detail(msg));
    }
    if (ip.ToString().empty()) {
      Violation(kName, "an address inet_ntop cannot print", Detail(msg));
    }
  }
  for (const dns::SrvTarget& t : a.srv) {
    if (type != dns::Type::kSrv) {
      Violation(kName, "SRV targets in an address answer", Detail(msg));
    }
    if (t.target.empty() || t.target.back() == '.' || t.target.size() > 253 ||
        std::any_of(t.target.begin(), t.target.end(),
                    [](char c) { return c >= 'A' && c <= 'Z'; })) {
      Violation(kName, "an SRV target that is empty, too long, dotted or not lowercase", t.target);
    }
  }
  if (a.nxdomain && !a.negative) {
    Violation(kName, "NXDOMAIN without negative", Detail(msg));
  }
  if (a.negative && (!a.addresses.empty() || !a.srv.empty())) {
    Violation(kName, "a negative answer that holds records", Detail(msg));
  }
  if (!a.negative && (!a.ttl.has_value() || (a.addresses.empty() && a.srv.empty()))) {
    Violation(kName, "a positive answer without a TTL or without records", Detail(msg));
  }
  if (a.ttl.has_value() && (*a.ttl & 0x80000000u) != 0) {
    Violation(kName, "a TTL with the top bit set", Detail(msg));
  }
  return 1;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzDnsMessage)
