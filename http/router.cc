// http/router.cc: see router.h.
#include "http/router.h"

namespace torii::http {

namespace {

bool HostMatches(std::string_view pattern, std::string_view host) {
  if (pattern == "*") {
    return true;
  }
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    const std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && host.ends_with(suffix);
  }
  return pattern == host;
}

}  // namespace

std::optional<uint32_t> MatchRoute(const std::vector<RouteSpec>& routes, std::string_view host,
                                   std::string_view path) {
  for (uint32_t i = 0; i < routes.size(); ++i) {
    const RouteSpec& r = routes[i];
    if (HostMatches(r.host, host) && path.starts_with(r.path_prefix)) {
      return i;
    }
  }
  return std::nullopt;
}

}  // namespace torii::http
