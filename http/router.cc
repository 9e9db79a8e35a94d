// http/router.cc: see router.h.
#include "http/router.h"

#include <re2/re2.h>

#include <string>

#include "base/text.h"

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

// Percent-decodes `in` into `out` (a query value as the application reads it; '+' is kept).
void Decode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    constexpr auto hex = base::HexDigitValue;
    if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out->push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else {
      out->push_back(in[i]);
    }
  }
}

bool ValueMatches(const FieldMatchSpec& m, std::string_view value) {
  switch (m.kind) {
    case FieldMatchSpec::Kind::kExact:
      return value == m.value;
    case FieldMatchSpec::Kind::kRegex:
      return RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *m.regex);
    case FieldMatchSpec::Kind::kPresent:
      return true;
    case FieldMatchSpec::Kind::kAbsent:
      return false;
  }
  return false;
}

// Header matchers: a field of that name must (not) be there; with a value or regex, some field
// of that name must match it.
bool HeadersMatch(const std::vector<FieldMatchSpec>& matchers, std::span<const HeaderView> headers) {
  for (const FieldMatchSpec& m : matchers) {
    bool found = false;
    bool matched = false;
    for (const HeaderView& h : headers) {
      if (EqualsIgnoreCase(h.name, m.name)) {
        found = true;
        matched = matched || ValueMatches(m, base::TrimOws(h.value));
      }
    }
    if (m.kind == FieldMatchSpec::Kind::kAbsent ? found : !matched) {
      return false;
    }
  }
  return true;
}

// Query matchers, over "a=1&b=2" (names compared exactly, values percent-decoded).
bool QueryMatches(const std::vector<FieldMatchSpec>& matchers, std::string_view query) {
  std::string decoded;
  for (const FieldMatchSpec& m : matchers) {
    bool found = false;
    bool matched = false;
    std::string_view rest = query;
    while (!rest.empty()) {
      const std::string_view pair = base::PopField(&rest, '&');
      const size_t eq = pair.find('=');
      const std::string_view name = pair.substr(0, eq);
      Decode(name, &decoded);
      if (decoded != m.name) {
        continue;
      }
      found = true;
      Decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), &decoded);
      matched = matched || ValueMatches(m, decoded);
    }
    if (m.kind == FieldMatchSpec::Kind::kAbsent ? found : !matched) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<uint32_t> MatchRoute(const std::vector<RouteSpec>& routes, const RouteRequest& req) {
  const size_t q = req.target.find('?');
  const std::string_view path = req.target.substr(0, q);
  const std::string_view query =
      q == std::string_view::npos ? std::string_view() : req.target.substr(q + 1);
  for (uint32_t i = 0; i < routes.size(); ++i) {
    const RouteSpec& r = routes[i];
    if (!HostMatches(r.host, req.host)) {
      continue;
    }
    if (r.path_regex) {
      if (!RE2::FullMatch(re2::StringPiece(path.data(), path.size()), *r.path_regex)) {
        continue;
      }
    } else if (!r.path_exact.empty()) {
      if (path != r.path_exact) {
        continue;
      }
    } else if (!req.target.starts_with(r.path_prefix)) {
      continue;
    }
    if (r.methods != 0 && (req.method >= 64 || (r.methods & (uint64_t{1} << req.method)) == 0)) {
      continue;
    }
    if (!HeadersMatch(r.headers, req.headers) || !QueryMatches(r.query, query)) {
      continue;
    }
    return i;
  }
  return std::nullopt;
}

std::optional<uint32_t> MatchRoute(const std::vector<RouteSpec>& routes, std::string_view host,
                                   std::string_view path) {
  return MatchRoute(routes, RouteRequest{host, path, 1, {}});
}

uint32_t PickSplit(const RouteSpec& route, uint64_t r) {
  for (const RouteSpec::SplitTarget& t : route.split) {
    if (r < t.weight) {
      return t.pool;
    }
    r -= t.weight;
  }
  return route.split.empty() ? route.pool : route.split.back().pool;
}

std::optional<std::string_view> CookieValue(std::span<const HeaderView> headers,
                                            std::string_view name) {
  for (const HeaderView& hv : headers) {
    if (!EqualsIgnoreCase(hv.name, "cookie")) {
      continue;
    }
    std::string_view rest = hv.value;
    while (!rest.empty()) {
      const std::string_view pair = base::TrimOws(base::PopField(&rest, ';'));
      if (pair.size() > name.size() && pair[name.size()] == '=' && pair.starts_with(name)) {
        return pair.substr(name.size() + 1);
      }
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
  if (route.rewrite_regex) {
    const size_t query = target.find('?');
    std::string path(target.substr(0, query));
    if (RE2::GlobalReplace(&path, *route.rewrite_regex, route.rewrite_substitution) == 0) {
      return false;
    }
    if (path.empty() || path.front() != '/') {
      out->assign("/");
    } else {
      out->clear();
    }
    out->append(path);
    if (query != std::string_view::npos) {
      out->append(target.substr(query));
    }
    return true;
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
