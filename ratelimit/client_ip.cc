// ratelimit/client_ip.cc: RealClient (client_ip.h).
#include "ratelimit/client_ip.h"

#include "base/text.h"

namespace torii::ratelimit {
namespace {

}  // namespace

IpAddr RealClient(const IpAddr& peer, std::string_view xff, const IpList& trusted) {
  if (!trusted.Contains(peer)) {
    return peer;
  }
  IpAddr last_good = peer;
  std::string_view rest = xff;
  while (!rest.empty()) {
    const size_t comma = rest.rfind(',');
    const std::string_view hop =
        base::TrimOws(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    if (hop.empty()) {
      continue;
    }
    std::optional<IpAddr> addr = ParseIp(hop);
    if (!addr) {
      return last_good;
    }
    if (!trusted.Contains(*addr)) {
      return *addr;
    }
    last_good = *addr;
  }
  return last_good;
}

}  // namespace torii::ratelimit
