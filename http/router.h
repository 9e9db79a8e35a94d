// http/router.h: which route a request belongs to (first match wins).
//
// Host patterns: exact ("api.example.com"), one-label wildcard suffix ("*.example.com",
// which matches "a.example.com" and "a.b.example.com" but not "example.com"), or "*". The
// host is compared without its port, case-insensitively (the caller lowercases it). The path
// matches by prefix on the request target (nginx's location prefix), exactly, or by an RE2
// expression on the whole path; a route may also require methods, request header fields and
// query parameters (each present, absent, equal or matching a regex). No match is a 404, never
// "the first pool": an unknown Host must not reach some backend by accident.
#pragma once

#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "http/h1_parser.h"
#include "http/proxy_config.h"

namespace torii::http {

// What routing reads of a request.
struct RouteRequest {
  std::string_view host;    // lowercase, without the port
  std::string_view target;  // the normalised origin-form target, query included
  uint8_t method = 1;       // llhttp method id (HTTP_GET)
  std::span<const HeaderView> headers;
};

// The first route whose host, path (prefix, exact or regex, on the path without the query),
// methods, header matchers and query matchers all hold; nullopt when none does.
std::optional<uint32_t> MatchRoute(const std::vector<RouteSpec>& routes, const RouteRequest& req);
// The same for a GET without header fields (tests, tools).
std::optional<uint32_t> MatchRoute(const std::vector<RouteSpec>& routes, std::string_view host,
                                   std::string_view path);

// The pool of a split route for a draw `r` in [0, route.split_total): the target whose
// cumulative weight range holds it.
uint32_t PickSplit(const RouteSpec& route, uint64_t r);

// The value of cookie `name` in the request's Cookie fields ("a=1; b=2", RFC 6265 §5.4), or
// nullopt.
std::optional<std::string_view> CookieValue(std::span<const HeaderView> headers,
                                            std::string_view name);

// The request target the backend gets on `route`: the client's normalised origin-form
// `target` with the route's strip_prefix removed from its front (when it starts with it), or
// the matched path_prefix replaced by replace_prefix, or every match of the route's
// regex_rewrite in the path replaced by its substitution (RE2::GlobalReplace, as Envoy); a path
// left empty becomes "/", and one that no longer starts with '/' gets one. The query is kept.
// Returns false (and leaves `out` alone) when the route rewrites nothing or the target is "*".
bool RewriteTarget(const RouteSpec& route, std::string_view target, std::string* out);

}  // namespace torii::http
