// tests/fuzz/proxy_protocol_fuzz.cc: the PROXY protocol header parser (http/proxy_protocol.h),
// which reads the first bytes of every connection on a proxy_protocol listener.
//
// The whole input is what the balancer sent. The oracle:
//  - a parsed header is no longer than the input nor than kMaxProxyHeader, and every prefix
//    of it asks for more bytes (a header is never complete early);
//  - kNeedMore only for inputs shorter than the longest header;
//  - the addresses of a parsed header, written again by torii (v1 and v2), parse back to the
//    same addresses and ports.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <string_view>

#include "http/proxy_protocol.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "proxy_protocol_fuzz";

bool SameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  const size_t len = a.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  return a.ss_family == b.ss_family && std::memcmp(&a, &b, len) == 0;
}

}  // namespace

int FuzzProxyProtocol(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const http::ProxyHeader h = http::ParseProxyHeader(in);
  using Result = http::ProxyHeader::Result;
  if (h.result == Result::kNeedMore) {
    if (size >= http::kMaxProxyHeader) {
      Violation(kName, "more bytes asked for past the longest header", in.substr(0, 64));
    }
    return 0;
  }
  if (h.result == Result::kError) {
    return 0;
  }
  if (h.length == 0 || h.length > size || h.length > http::kMaxProxyHeader) {
    Violation(kName, "header length out of bounds", in.substr(0, 64));
  }
  for (size_t n : {size_t{0}, h.length / 2, h.length - 1}) {
    if (http::ParseProxyHeader(in.substr(0, n)).result != Result::kNeedMore) {
      Violation(kName, "a prefix of a header did not ask for more", in.substr(0, n));
    }
  }
  if (!h.local) {
    for (int version : {1, 2}) {
      std::string out;
      http::AppendProxyHeader(version, reinterpret_cast<const sockaddr*>(&h.source),
                              reinterpret_cast<const sockaddr*>(&h.dest), &out);
      const http::ProxyHeader back = http::ParseProxyHeader(out);
      if (back.result != Result::kOk || back.length != out.size() || back.local ||
          !SameAddress(back.source, h.source) || !SameAddress(back.dest, h.dest)) {
        Violation(kName, "a written header does not read back the same", out);
      }
    }
  }
  return 1;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzProxyProtocol)
