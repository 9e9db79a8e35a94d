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

bool RewriteTarget(const RouteSpec& route, std::string_view target, std::string* out) {
  std::string_view rest;
  std::string_view head;
  if (target.empty() || target.front() != '/') {
    return false;  // "*"
  }
  if (route.has_replace_prefix && target.starts_with(route.path_prefix)) {
    head = route.replace_prefix;
    rest = target.substr(route.path_prefix.size());
  } else if (!route.strip_prefix.empty() && target.starts_with(route.strip_prefix)) {
    rest = target.substr(route.strip_prefix.size());
  } else {
    return false;
  }
  out->assign(head);
  if (out->empty()) {
    if (rest.empty() || rest.front() != '/') {
      out->push_back('/');  // "/api" stripped from "/api" or "/api?x": the root
    }
  } else if (out->back() == '/' && !rest.empty() && rest.front() == '/') {
    rest.remove_prefix(1);  // "/v2/" + "/users": one slash
  }
  out->append(rest);
  return true;
}

}  // namespace torii::http
