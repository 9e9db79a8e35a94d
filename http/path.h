// http/path.h: normalisation of a request path before routing and access decisions.
//
// torii decides on the path it forwards: the route, the access lists, the rate limit key, the
// cache key and the upstream request line all see the normalised path, so a spelling that a
// backend would read as /admin (/%61dmin, //admin, /./admin, /x/../admin) is /admin here too:
// no other spelling slips past an access rule or into a different cache key (web cache
// deception). What it does, in one pass and in place (nothing grows):
//  - percent-decodes unreserved characters (RFC 3986 §2.3: ALPHA DIGIT - . _ ~) and
//    uppercases the hex digits of every other escape (§6.2.2.1, §6.2.2.2);
//  - removes dot segments, also encoded ones (%2E), per §5.2.4 ("/a/b/../c" → "/a/c",
//    ".." above the root stays at the root);
//  - merges runs of '/' into one when `merge_slashes` (nginx's merge_slashes, on by default
//    in both; Envoy's merge_slashes is off by default);
//  - refuses what backends disagree about: an encoded '/' (%2F) or '\' (%5C), since some
//    servers decode them into separators (Envoy's path_with_escaped_slashes_action), an
//    encoded NUL (%00), a malformed escape, a raw backslash, and overlong UTF-8 escapes
//    (%C0%AE is '.' to a lax decoder). The listener may allow %2F/%5C and %00 (kept encoded).
// The query (from the first '?') is left as it is: it is neither routed on nor decoded.
// Like Envoy's normalize_path and unlike nginx (which decodes every escape for matching but
// forwards the original bytes), the backend receives exactly the path that was matched.
#pragma once

#include <cstdint>
#include <string>

namespace torii::http {

struct PathOptions {
  bool merge_slashes = true;
  bool allow_encoded_slash = false;  // %2F and %5C pass (uppercased, still encoded)
  bool allow_encoded_nul = false;    // %00 passes (still encoded)
};

enum class PathError : uint8_t {
  kNone,
  kBadEscape,     // '%' not followed by two hex digits
  kEncodedSlash,  // %2F or %5C, not allowed on this listener
  kEncodedNul,    // %00, not allowed on this listener
  kBackslash,     // a raw '\' in the path
  kOverlongUtf8,  // an escaped byte sequence that is never valid UTF-8 (overlong or > U+10FFFF)
};

// The log reason for a refused path ("" for kNone).
const char* ToString(PathError error);

// Normalises the path of an origin-form target ("/path[?query]", starting with '/') in place.
// Returns kNone with *target normalised (unchanged when it already was), or the reason the
// request must be refused with 400 (*target is then unspecified).
PathError NormalizePath(std::string* target, const PathOptions& options);

}  // namespace torii::http
