// tests/http/router_test.cc: route matching (http/router.cc). Plain data in, an index out: host
// patterns (exact, "*.suffix", "*"), path prefixes, first match wins, no match is nullopt (a
// 404, never "the first pool", BAD-INPUTS R8).
#include "http/router.h"

#include <re2/re2.h>
#include <llhttp.h>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace torii::http {
namespace {

RouteSpec Route(std::string host, std::string prefix, uint32_t pool = 0) {
  RouteSpec r;
  r.host = std::move(host);
  r.path_prefix = std::move(prefix);
  r.pool = pool;
  return r;
}

// An exact host pattern matches only that host.
TEST(RouterTest, ExactHost) {
  const std::vector<RouteSpec> routes = {Route("api.example.com", "/")};
  EXPECT_EQ(MatchRoute(routes, "api.example.com", "/"), 0u);
  EXPECT_EQ(MatchRoute(routes, "api.example.com", "/x/y?z"), 0u);
  EXPECT_EQ(MatchRoute(routes, "example.com", "/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "xapi.example.com", "/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "a.api.example.com", "/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "api.example.com.evil", "/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "", "/"), std::nullopt);
}

// "*.suffix" matches any host with at least one label before the suffix, not the bare suffix
// and not a host that merely ends with the same characters.
TEST(RouterTest, WildcardSuffix) {
  const std::vector<RouteSpec> routes = {Route("*.example.com", "/")};
  EXPECT_EQ(MatchRoute(routes, "a.example.com", "/"), 0u);
  EXPECT_EQ(MatchRoute(routes, "a.b.example.com", "/"), 0u);
  EXPECT_EQ(MatchRoute(routes, "example.com", "/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, ".example.com", "/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "badexample.com", "/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "a.example.com.evil", "/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "a.example.org", "/"), std::nullopt);
}

// "*" matches every host, the empty one included.
TEST(RouterTest, StarMatchesAnyHost) {
  const std::vector<RouteSpec> routes = {Route("*", "/")};
  EXPECT_EQ(MatchRoute(routes, "anything.test", "/"), 0u);
  EXPECT_EQ(MatchRoute(routes, "127.0.0.1", "/a"), 0u);
  EXPECT_EQ(MatchRoute(routes, "", "/"), 0u);
}

// The path must start with the route's prefix; a query string does not get in the way.
TEST(RouterTest, PathPrefix) {
  const std::vector<RouteSpec> routes = {Route("*", "/api/")};
  EXPECT_EQ(MatchRoute(routes, "h", "/api/"), 0u);
  EXPECT_EQ(MatchRoute(routes, "h", "/api/v1/users?id=3"), 0u);
  EXPECT_EQ(MatchRoute(routes, "h", "/api"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "h", "/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "h", "/static/api/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "h", "/API/"), std::nullopt);  // paths are case-sensitive
  EXPECT_EQ(MatchRoute(routes, "h", ""), std::nullopt);
}

// Routes are tried in order and the first match wins, even when a later one is more specific.
TEST(RouterTest, FirstMatchWins) {
  const std::vector<RouteSpec> routes = {
      Route("api.example.com", "/v2/", 10),
      Route("*.example.com", "/", 11),
      Route("api.example.com", "/", 12),
      Route("*", "/static/", 13),
      Route("*", "/", 14),
  };
  EXPECT_EQ(MatchRoute(routes, "api.example.com", "/v2/x"), 0u);
  EXPECT_EQ(MatchRoute(routes, "api.example.com", "/v1/x"), 1u);  // not 2: 1 comes first
  EXPECT_EQ(MatchRoute(routes, "www.example.com", "/static/a.css"), 1u);
  EXPECT_EQ(MatchRoute(routes, "other.test", "/static/a.css"), 3u);
  EXPECT_EQ(MatchRoute(routes, "other.test", "/x"), 4u);
  EXPECT_EQ(MatchRoute(routes, "example.com", "/"), 4u);
}

// No matching route (or no routes at all) gives nullopt, never a default index.
TEST(RouterTest, NoMatchIsNullopt) {
  EXPECT_EQ(MatchRoute({}, "a", "/"), std::nullopt);
  const std::vector<RouteSpec> routes = {Route("a.test", "/"), Route("*.b.test", "/x")};
  EXPECT_EQ(MatchRoute(routes, "c.test", "/"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "q.b.test", "/y"), std::nullopt);
  EXPECT_EQ(MatchRoute(routes, "q.b.test", "/x"), 1u);
}

}  // namespace
}  // namespace torii::http

namespace torii::http {
namespace {

RouteSpec Rewriting(std::string prefix, std::string strip, std::string replace = "",
                    bool has_replace = false) {
  RouteSpec r;
  r.path_prefix = std::move(prefix);
  r.strip_prefix = std::move(strip);
  r.replace_prefix = std::move(replace);
  r.has_replace_prefix = has_replace;
  return r;
}

std::string Rewritten(const RouteSpec& r, std::string_view target) {
  std::string out = "unchanged";
  return RewriteTarget(r, target, &out) ? out : "unchanged";
}

// strip_prefix removes a leading prefix; what is left always starts with '/'; the query stays.
TEST(RewriteTest, StripPrefix) {
  const RouteSpec r = Rewriting("/api/", "/api");
  EXPECT_EQ(Rewritten(r, "/api/users?x=1"), "/users?x=1");
  EXPECT_EQ(Rewritten(r, "/api"), "/");
  EXPECT_EQ(Rewritten(r, "/api?x=1"), "/?x=1");
  EXPECT_EQ(Rewritten(r, "/apiv2/x"), "/v2/x");  // a prefix, not a segment (as nginx)
  EXPECT_EQ(Rewritten(r, "/other"), "unchanged");
  EXPECT_EQ(Rewritten(r, "*"), "unchanged");
}

// replace_prefix swaps the matched path_prefix, with one slash at the seam.
TEST(RewriteTest, ReplacePrefix) {
  EXPECT_EQ(Rewritten(Rewriting("/api/", "", "/v2/", true), "/api/users?x"), "/v2/users?x");
  EXPECT_EQ(Rewritten(Rewriting("/api", "", "/v2", true), "/api/users"), "/v2/users");
  EXPECT_EQ(Rewritten(Rewriting("/api", "", "/v2", true), "/api"), "/v2");
  EXPECT_EQ(Rewritten(Rewriting("/api", "", "/v2/", true), "/api/users"), "/v2/users");
  EXPECT_EQ(Rewritten(Rewriting("/api/", "", "/", true), "/api/users"), "/users");
  EXPECT_EQ(Rewritten(Rewriting("/", "", "/app/", true), "/x?q"), "/app/x?q");
  // No rewrite configured.
  EXPECT_EQ(Rewritten(Rewriting("/api/", ""), "/api/users"), "unchanged");
}

// regex_rewrite: every match in the path is substituted (groups by \\N); the query is never
// rewritten and stays; a result that lost its leading '/' gets it back.
TEST(RewriteTest, Regex) {
  RouteSpec r = Rewriting("/", "");
  r.rewrite_regex = std::make_shared<const re2::RE2>("^/u/([0-9]+)/(\\w+)$");
  r.rewrite_substitution = "/users/\\2/\\1";
  EXPECT_EQ(Rewritten(r, "/u/42/posts?u=1"), "/users/posts/42?u=1");
  EXPECT_EQ(Rewritten(r, "/u/x/posts"), "unchanged");
  EXPECT_EQ(Rewritten(r, "*"), "unchanged");
  r.rewrite_regex = std::make_shared<const re2::RE2>("/v1/");
  r.rewrite_substitution = "/v2/";
  EXPECT_EQ(Rewritten(r, "/v1/a/v1/b?q=/v1/"), "/v2/a/v2/b?q=/v1/");
  r.rewrite_regex = std::make_shared<const re2::RE2>("^/strip");
  r.rewrite_substitution = "";
  EXPECT_EQ(Rewritten(r, "/strip"), "/");
  EXPECT_EQ(Rewritten(r, "/stripped"), "/ped");
}

}  // namespace
}  // namespace torii::http

namespace torii::http {
namespace {

std::shared_ptr<const re2::RE2> Re(const char* pattern) {
  return std::make_shared<const re2::RE2>(pattern);
}

FieldMatchSpec Field(std::string name, FieldMatchSpec::Kind kind, std::string value = "") {
  FieldMatchSpec m;
  m.name = std::move(name);
  m.kind = kind;
  m.value = std::move(value);
  if (kind == FieldMatchSpec::Kind::kRegex) {
    m.regex = Re(m.value.c_str());
  }
  return m;
}

std::optional<uint32_t> Match(const std::vector<RouteSpec>& routes, std::string_view target,
                              uint8_t method = HTTP_GET, std::vector<HeaderView> headers = {}) {
  return MatchRoute(routes, RouteRequest{"a.test", target, method, headers});
}

// path_exact and path_regex match the path without its query; the regex must match it whole.
TEST(RouterMatchTest, ExactAndRegexPaths) {
  std::vector<RouteSpec> routes(3);
  routes[0].path_exact = "/health";
  routes[1].path_regex = Re("/users/[0-9]+");
  routes[2].path_prefix = "/";
  EXPECT_EQ(Match(routes, "/health"), 0u);
  EXPECT_EQ(Match(routes, "/health?full=1"), 0u);
  EXPECT_EQ(Match(routes, "/healthz"), 2u);
  EXPECT_EQ(Match(routes, "/users/42"), 1u);
  EXPECT_EQ(Match(routes, "/users/42?x"), 1u);
  EXPECT_EQ(Match(routes, "/users/42/x"), 2u);
  EXPECT_EQ(Match(routes, "/x/users/42"), 2u);
}

// Methods, header and query matchers must all hold; otherwise the next route is tried.
TEST(RouterMatchTest, MethodsHeadersAndQuery) {
  std::vector<RouteSpec> routes(4);
  routes[0].methods = uint64_t{1} << HTTP_POST;
  routes[0].path_prefix = "/api/";
  routes[1].headers = {Field("x-canary", FieldMatchSpec::Kind::kExact, "1")};
  routes[2].query = {Field("v", FieldMatchSpec::Kind::kRegex, "2|3"),
                     Field("debug", FieldMatchSpec::Kind::kAbsent)};
  routes[3].path_prefix = "/";
  EXPECT_EQ(Match(routes, "/api/x", HTTP_POST), 0u);
  EXPECT_EQ(Match(routes, "/api/x", HTTP_GET), 3u);
  EXPECT_EQ(Match(routes, "/", HTTP_GET, {{"X-Canary", " 1 "}}), 1u);
  EXPECT_EQ(Match(routes, "/", HTTP_GET, {{"X-Canary", "0"}, {"x-canary", "1"}}), 1u);
  EXPECT_EQ(Match(routes, "/", HTTP_GET, {{"X-Canary", "yes"}}), 3u);
  EXPECT_EQ(Match(routes, "/p?v=2"), 2u);
  EXPECT_EQ(Match(routes, "/p?a=1&v=%33"), 2u);  // values are percent-decoded
  EXPECT_EQ(Match(routes, "/p?v=2&debug"), 3u);  // debug must be absent
  EXPECT_EQ(Match(routes, "/p?v=4"), 3u);
  EXPECT_EQ(Match(routes, "/p?vv=2"), 3u);
}

// A present/absent header matcher looks only at the name.
TEST(RouterMatchTest, PresentAndAbsentHeaders) {
  std::vector<RouteSpec> routes(2);
  routes[0].headers = {Field("authorization", FieldMatchSpec::Kind::kPresent),
                       Field("x-debug", FieldMatchSpec::Kind::kAbsent)};
  EXPECT_EQ(Match(routes, "/", HTTP_GET, {{"Authorization", ""}}), 0u);
  EXPECT_EQ(Match(routes, "/", HTTP_GET, {{"Authorization", "x"}, {"X-Debug", "1"}}), 1u);
  EXPECT_EQ(Match(routes, "/"), 1u);
}

}  // namespace
}  // namespace torii::http

namespace torii::http {
namespace {

// A draw in [0, total) lands in the cumulative weight range of one target; weight 0 never wins.
TEST(SplitTest, PickByCumulativeWeight) {
  RouteSpec r;
  r.split = {{/*pool=*/4, /*weight=*/95}, {/*pool=*/7, /*weight=*/0}, {/*pool=*/9, /*weight=*/5}};
  r.split_total = 100;
  EXPECT_EQ(PickSplit(r, 0), 4u);
  EXPECT_EQ(PickSplit(r, 94), 4u);
  EXPECT_EQ(PickSplit(r, 95), 9u);
  EXPECT_EQ(PickSplit(r, 99), 9u);
}

// Cookie values by name, with the RFC 6265 pair syntax; prefixes of names do not match.
TEST(SplitTest, CookieValue) {
  const std::vector<HeaderView> h = {{"Cookie", "a=1; pool=v2"}, {"cookie", "poolx=v9"}};
  EXPECT_EQ(CookieValue(h, "pool"), "v2");
  EXPECT_EQ(CookieValue(h, "a"), "1");
  EXPECT_EQ(CookieValue(h, "poolx"), "v9");
  EXPECT_EQ(CookieValue(h, "poo"), std::nullopt);
  EXPECT_EQ(CookieValue({}, "pool"), std::nullopt);
}

}  // namespace
}  // namespace torii::http
