// cache/cache_control.h: the Cache-Control field (RFC 9111 §5.2, RFC 5861, RFC 8246), parsed.
//
// Owns: CacheControl, the directives of one request's or one response's Cache-Control fields,
// and ParseCacheControl(), which reads one field value into it, accumulating across the
// several fields a message may carry.
//
// Parsing is hostile-input safe: one pass over the value (O(n)), no allocation, no exceptions.
// Directive names are case-insensitive; arguments may be tokens or quoted-strings (with
// backslash escapes), as RFC 9111 §5.2 asks recipients to accept both forms; empty list
// elements (",,,") and unknown directives are ignored. Where the RFC leaves a choice, the
// parser takes the conservative reading, so a malformed field can only make the cache do less:
//  - delta-seconds above 2^31 clamp to 2^31 (kMaxDeltaSeconds, RFC 9111 §1.2.2);
//  - an invalid argument (missing, negative, not digits, junk after it) to max-age or
//    s-maxage reads as 0, i.e. stale (RFC 9111 §4.2.1 encourages treating invalid freshness as
//    stale); an invalid argument to a directive that grants something (max-stale, min-fresh,
//    stale-while-revalidate, stale-if-error) drops that occurrence;
//  - a directive that restricts (no-store, no-cache, private, must-revalidate, ...) applies
//    whatever follows its name; one that relaxes (public, immutable) counts only when spelled
//    exactly, without an argument;
//  - no-cache and private with field names ("no-cache=\"Set-Cookie\"") are taken unqualified:
//    the whole response, not just the named fields;
//  - a directive given several times keeps its most conservative value: the smallest for
//    max-age, s-maxage, max-stale, stale-while-revalidate and stale-if-error, the largest for
//    min-fresh; a valued max-stale beats a bare one.
//
// Leaves out: Pragma (policy.h folds `Pragma: no-cache` into a request's CacheControl), which
// fields to read (policy.h's helpers take header lists), and every decision made from the
// directives (policy.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace torii::cache {

// RFC 9111 §1.2.2: a delta-seconds too large to represent is taken as 2^31.
inline constexpr int64_t kMaxDeltaSeconds = int64_t{1} << 31;

// The directives of a request's or a response's Cache-Control fields. Each delta-seconds
// directive is present or absent; its value, in seconds, is at most kMaxDeltaSeconds (so it
// fits uint32_t and keeps the struct small: it is stored in every Entry). Request-only and
// response-only directives share the struct; the policy reads the ones that apply.
struct CacheControl {
  std::optional<uint32_t> max_age;                 // request and response
  std::optional<uint32_t> s_maxage;                // response
  std::optional<uint32_t> max_stale;               // request, with a value
  std::optional<uint32_t> min_fresh;               // request
  std::optional<uint32_t> stale_while_revalidate;  // response (RFC 5861 §3)
  std::optional<uint32_t> stale_if_error;          // request and response (RFC 5861 §4)
  bool max_stale_any = false;  // request "max-stale" without a value: any staleness will do
  bool no_store = false;
  bool no_cache = false;  // also set by no-cache with field names
  bool private_ = false;  // also set by private with field names
  bool public_ = false;
  bool must_revalidate = false;
  bool proxy_revalidate = false;
  bool no_transform = false;
  bool only_if_cached = false;  // request
  bool immutable = false;       // response (RFC 8246)
  // Read from a targeted field (RFC 9213, policy.h): the response's Expires is then ignored.
  bool targeted = false;

  friend bool operator==(const CacheControl&, const CacheControl&) = default;
};

// Parses one Cache-Control field value into `cc`, adding to what earlier fields of the same
// message put there (call it once per field line, in order; the result does not depend on the
// order). Never fails: what it cannot read it ignores or reads conservatively (file comment).
// `cc` must not be null. `malformed`, when given, is set when some element was not a
// directive as RFC 9111 §5.2 spells one (no name, junk after it, an unterminated quoted
// string): what it meant is unknown, and a reader that must not guess (compression's BREACH
// guard) can take it as a refusal. It is never cleared.
void ParseCacheControl(std::string_view value, CacheControl* cc, bool* malformed = nullptr);

}  // namespace torii::cache
