// cache/policy.h: the decisions of an RFC 9111 *shared* cache, as free functions over plain data.
//
// Owns: whether a response may be stored (§3), building the stored Entry's metadata (§3.1,
// §4.2.1), Vary matching and the normalisation of the request fields Vary selects on (§4.1),
// age and freshness (§4.2), whether a stored response may be served, served stale or must be
// validated (§4.2.4, §5.2, RFC 5861), answering a client's conditional request (RFC 9110
// §13.1.2-3, §13.2.2), validating a stored response (§4.3.1) and freshening it with a 304
// (§3.2, §4.3.4), and invalidation after unsafe methods (§4.4).
//
// Time is Unix seconds passed in by the caller (an injected clock), never read here.
//
// Decisions taken where the RFC leaves a choice (each also noted at its function):
//  - Only GET responses are stored; HEAD responses never become the GET entry (a GET entry may
//    answer a HEAD: the caller's choice). Requests with Range are not stored, nor is any 206.
//  - Any final status may be stored (RFC 9111 §3) except 206 and 304, but only with the
//    freshness information below: an error (a status that is not heuristically cacheable) needs
//    explicit freshness (s-maxage, max-age, Expires) from the origin, or `public` with a
//    validator, or negative_ttl for 404/410. So an error an attacker provokes at an origin that
//    does not mark its errors cacheable is never pinned in the cache (cache poisoning by errors:
//    CPDoS), and torii's own error pages never reach the store.
//  - A response needs some freshness information to be stored: explicit (s-maxage, max-age,
//    Expires), or heuristic (a heuristically cacheable status, or `public`, with a valid
//    Last-Modified or an ETag; with only an ETag its lifetime is 0 and each use revalidates), or
//    options.negative_ttl (404/410) or options.default_ttl (200).
//  - Request `no-store` stops storing, not serving: RFC 9111 §5.2.1.5 forbids storing the
//    request or its response, and a stored response may still answer it.
//  - Request directives (no-cache, max-age, min-fresh, max-stale) are honoured as the RFC asks;
//    a caller that wants to ignore clients' Cache-Control passes a Request with an empty cc.
//  - `immutable` (RFC 8246) changes nothing here: it is advice to clients, and a request
//    no-cache must still be validated by a shared cache (§5.2.1.4).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_control.h"
#include "cache/entry.h"

namespace torii::cache {

// A route's cache policy knobs. Negative values read as 0.
struct Options {
  // Responses carrying Set-Cookie (RFC 9111 §3 lets a shared cache store them; a cookie is
  // usually one client's):
  enum class SetCookie : uint8_t {
    kStrip,   // stored only when the origin marked them for shared caches (public or
              // s-maxage), and without their Set-Cookie fields: the client that fetched the
              // response gets its cookie, later clients none
    kBypass,  // never stored
    kStore,   // stored with the cookie and replayed to every client (site-wide cookies only)
  };
  SetCookie set_cookie = SetCookie::kStrip;
  // Seconds of freshness given to a 404 or 410 that has no explicit freshness (s-maxage,
  // max-age, Expires); it takes precedence over heuristic freshness. 0 = none.
  int64_t negative_ttl = 0;
  // Heuristic freshness (RFC 9111 §4.2.2): this fraction of (Date - Last-Modified), capped at
  // heuristic_max seconds, for heuristically cacheable responses without explicit freshness.
  double heuristic_fraction = 0.1;
  int64_t heuristic_max = 86400;
  // Seconds of freshness given to a 200 with no freshness information at all (no explicit
  // freshness, no Last-Modified). 0 = such a response is not stored unless it has an ETag (then
  // it is stored stale and revalidated on each use).
  int64_t default_ttl = 0;
  // Targeted Cache-Control fields (RFC 9213), lowercase, in priority order: the first one a
  // response carries with a non-empty value replaces its Cache-Control and Expires for this
  // cache's decisions (downstream caches still get every field unchanged). torii acts as a
  // CDN, so CDN-Cache-Control by default.
  std::vector<std::string> targeted{"cdn-cache-control"};
};

// The facts about a request that the decisions read. `method` is case-sensitive (RFC 9110
// §9.1) and must stay valid while the Request is used.
struct Request {
  std::string_view method;
  bool has_authorization = false;
  bool has_range = false;
  CacheControl cc;  // the request's Cache-Control, with Pragma folded in (RequestCacheControl)
};

// Folds every Cache-Control field of a response (names compared case-insensitively).
CacheControl ResponseCacheControl(std::span<const HeaderView> headers);
// The directives this cache obeys (RFC 9213 §2.2): the first field of options.targeted the
// response carries with a non-empty value (every line of it folded, `targeted` set), else
// every Cache-Control field.
CacheControl ResponseCacheControl(std::span<const HeaderView> headers, const Options& options);

// Folds every Cache-Control field of a request; when there is none, `Pragma: no-cache` reads
// as Cache-Control: no-cache (RFC 9111 §5.4).
CacheControl RequestCacheControl(std::span<const HeaderView> headers);
CacheControl RequestCacheControl(const HeaderSource& headers);

// A Request from a method and the request's header fields (Authorization, Range,
// Cache-Control, Pragma). `method` must outlive the result.
Request ReadRequest(std::string_view method, const HeaderSource& headers);

// Storable()'s answer. `reason` is a static string naming the first rule that refused ("ok"
// when store is true): "method", "range", "status", "no-store", "private", "authorization",
// "set-cookie", "vary-star", "no-freshness".
struct StoreDecision {
  bool store;
  const char* reason;
};

// RFC 9111 §3 for a shared cache, with the choices in the file comment: may the response
// (`status`, `response_headers`) to `req` be stored? Rules, in the order they are checked:
// method GET; no Range in the request; a status in the stored set (206 and errors never);
// no no-store in request or response; no private; a request with Authorization only when the
// response has public, s-maxage or must-revalidate (§3.5); no Set-Cookie unless
// options.set_cookie allows it (kStrip: public or s-maxage); no Vary: *; some freshness
// information (file comment).
StoreDecision Storable(const Request& req, uint16_t status,
                       std::span<const HeaderView> response_headers, const Options& options);

// A freshness lifetime and where it came from.
struct Freshness {
  int64_t lifetime = 0;
  bool heuristic = false;  // from Last-Modified (RFC 9111 §4.2.2)
};

// RFC 9111 §4.2.1, first match wins: s-maxage; max-age; Expires - Date (an invalid Expires, or
// several Expires fields, mean already expired: 0; never negative); for 404/410
// options.negative_ttl when > 0; heuristic, when the status is heuristically cacheable or `cc`
// has public, and Last-Modified is valid and not after Date: heuristic_fraction × (Date -
// Last-Modified), capped at heuristic_max; for 200 options.default_ttl; else 0. `date_value` is
// the response's Date (or its arrival time when it has none).
Freshness ComputeFreshness(uint16_t status, const CacheControl& cc,
                           std::span<const HeaderView> response_headers, int64_t date_value,
                           const Options& options);

// Fills `out` for a response Storable() accepted, except body, id, coding, source_id and
// charge (left as they are). `response_headers` are the response's end-to-end fields (the caller
// removed hop-by-hop ones; those and Proxy-Authenticate / -Authentication-Info / -Authorization
// are skipped here too, §3.1). Stored names are lowercased. Age is not stored as a field (it is
// age_value; the caller writes the current Age when serving); Date is stored once, as an
// IMF-fixdate of date_value, which is the response's first valid Date or, without one,
// response_time (RFC 9110 §6.6.1: a recipient adds the Date a response lacks). vary holds the
// fields named by every Vary field (lowercased, deduplicated, sorted) with the value
// `request_headers` carries for each, normalised by NormaliseVaryValue(). `req` is not read
// (kept for symmetry with Storable()). `out` must not be null.
void BuildEntryMeta(const Request& req, uint16_t status,
                    std::span<const HeaderView> response_headers,
                    const HeaderSource& request_headers, int64_t request_time,
                    int64_t response_time, const Options& options, Entry* out);

// The form of a request field's value that Vary matching compares (RFC 9111 §4.1 allows
// normalising; it must map every spelling of one meaning to one value, so odd spellings can
// neither bypass the cache nor multiply its variants). `lower_name` is the field name,
// lowercased. Work and output are O(value.size()); never fails.
//  - accept-encoding: the sorted set of content codings among br, deflate, gzip, zstd that the
//    value accepts (q > 0), comma-separated ("br,gzip"); x-gzip counts as gzip; "*" accepts the
//    codings not listed; a coding listed twice keeps its lowest q; elements with an invalid
//    q or coding are ignored; identity and other codings are left out (they select no variant
//    of ours). "" when none is accepted.
//  - any other field: OWS trimmed at both ends and around commas; case and all else kept.
std::string NormaliseVaryValue(std::string_view lower_name, std::string_view value);

// Whether `request` selects the stored response `entry` (RFC 9111 §4.1): false for Vary: *;
// otherwise each Vary field must be absent from both requests, or present in both with equal
// normalised values. True when the entry has no Vary.
bool VaryMatches(const Entry& entry, const HeaderSource& request);

// RFC 9111 §4.2.3, at `now`: apparent_age = max(0, response_time - date_value);
// response_delay = response_time - request_time; corrected_age_value = age_value +
// response_delay; corrected_initial_age = max(apparent_age, corrected_age_value);
// resident_time = now - response_time; current_age = corrected_initial_age + resident_time.
// A clock that ran backwards (a negative delay or resident time) counts as 0; never negative.
int64_t CurrentAge(const Entry& entry, int64_t now);

enum class Verdict : uint8_t {
  kFresh,                 // serve the stored response as is (fresh, or stale within max-stale)
  kStaleWhileRevalidate,  // serve it now, and revalidate it in the background (RFC 5861 §3)
  kRevalidate,            // validate it first: forward with AddValidators() (it has validators)
  kMiss,                  // unusable without the origin and no validator: fetch in full (it may
                          // still answer an origin failure: StaleIfErrorAllowed())
};

struct Serve {
  Verdict verdict;
  int64_t age;  // CurrentAge(entry, now), for the Age field
};

// Whether the stored `entry` (already selected by VaryMatches()) may answer `req` at `now`.
// Fresh means current_age < freshness_lifetime (§4.2). In order:
//  - Vary: * → kMiss;
//  - response or request no-cache → validate (§5.2.2.4, §5.2.1.4);
//  - request max-age: current_age must be <= it, else validate (§5.2.1.1);
//  - request min-fresh: lifetime - age must be >= it, else validate (§5.2.1.3);
//  - fresh → kFresh;
//  - stale by s <= request max-stale (or bare max-stale) → kFresh, unless the response has
//    must-revalidate, proxy-revalidate or s-maxage (which implies proxy-revalidate in a shared
//    cache) (§5.2.1.2, §5.2.2.2, §5.2.2.8, §5.2.2.10);
//  - stale by s < stale-while-revalidate (a window of that many seconds) → kStaleWhileRevalidate,
//    unless must-revalidate or proxy-revalidate (s-maxage does not block it: an origin sending
//    both asked for both);
//  - else validate.
// "Validate" is kRevalidate when the entry has a validator (CanRevalidate()), kMiss otherwise.
// Request only-if-cached is the caller's: answer 504 for anything but kFresh (§5.2.1.7).
Serve Evaluate(const Entry& entry, const Request& req, int64_t now);

// RFC 5861 §4: after an origin failure (5xx, connection error, timeout), may the stale `entry`
// answer `req`? Yes when it is stale by less than the response's or the request's
// stale-if-error (the larger window), and the response has neither must-revalidate,
// proxy-revalidate nor no-cache (RFC 9111 §4.2.4 forbids stale use then).
bool StaleIfErrorAllowed(const Entry& entry, const Request& req, int64_t now);

// Whether the stored `entry` lets the cache answer the client's conditional GET/HEAD with 304
// (RFC 9111 §4.3.2, RFC 9110 §13.2.2; the caller checks the method and that the entry may be
// served). If-Match and If-Unmodified-Since are the origin's and are not evaluated here.
// If-None-Match, when present, decides alone: "*", or any listed entity-tag weakly equal to the
// entry's ETag (§8.8.3.2) → true; a list with no match or nothing valid → false. Otherwise
// If-Modified-Since: a single valid HTTP-date no earlier than the entry's Last-Modified (else its
// Date) → true; absent or invalid → false. Only 2xx entries are ever answered 304.
bool ClientNotModified(const Entry& entry, const HeaderSource& request);

// Whether the entry has a validator AddValidators() would send (an ETag or a Last-Modified,
// free of CR, LF and NUL).
bool CanRevalidate(const Entry& entry);

// Appends the validation preconditions for `entry` (RFC 9111 §4.3.1) to `head_lines`:
// "If-None-Match: <etag>\r\n" and "If-Modified-Since: <last-modified>\r\n", each when the entry
// has it (both when it has both). Values are sent as the origin wrote them. The caller drops the
// client's own If-None-Match / If-Modified-Since first.
void AddValidators(const Entry& entry, std::string* head_lines);

enum class Refresh : uint8_t {
  kStore,      // `out` is the freshened response: it replaces `old` and answers the request
  kServeOnly,  // `out` answers this request, but the 304 made it private or no-store: drop `old`
  kMismatch,   // the 304 validates another representation (§4.3.4): `out` is untouched; do not
               // use `old` without fetching it again in full
};

// RFC 9111 §4.3.4 / §3.2: freshens the stored `old` with the 304 (`headers_304`) that answered
// the conditional request sent at `request_time`, received at `response_time`. The 304 applies
// when its ETag equals old's (strongly when it is strong, weakly when weak), else when its
// Last-Modified equals old's, or when it carries neither. `out` then gets old's status, body
// (the same shared string), Vary, coding and source_id; id and charge 0; old's header fields with
// each field the 304 carries replaced by the 304's, except those never updated: Content-Length,
// Content-Encoding, Content-Range, Transfer-Encoding and other hop-by-hop fields, Vary (the
// stored variant depends on them), and Set-Cookie unless options.set_cookie is kStore; and date,
// age, Cache-Control, ETag, Last-Modified and freshness recomputed from the merged fields as
// BuildEntryMeta() does. `out` must not be null and must not be `old`.
[[nodiscard]] Refresh Refresh304(const Entry& old, std::span<const HeaderView> headers_304,
                                 int64_t request_time, int64_t response_time,
                                 const Options& options, Entry* out);

// RFC 9111 §4.4: does a response with `status` to `method` invalidate the stored responses
// for its target URI (and the caller's Location / Content-Location of the same origin)? True
// for a 2xx or 3xx answer to any method but GET, HEAD, OPTIONS and TRACE (methods whose
// safety is unknown count as unsafe).
bool InvalidatesOnUnsafe(std::string_view method, uint16_t status);

}  // namespace torii::cache
