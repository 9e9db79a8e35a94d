// ratelimit/client_ip.cc: RealClient (client_ip.h).
#include "ratelimit/client_ip.h"

namespace torii::ratelimit {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

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
        Trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
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
