// cache/policy.cc: the shared-cache decisions (policy.h).
#include "cache/policy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <vector>

#include "base/text.h"
#include "cache/http_date.h"

namespace torii::cache {
namespace {

// ---------------------------------------------------------------------------------------------
// Text helpers.

bool IsOws(char c) { return c == ' ' || c == '\t'; }

// Calls fn(element) for each comma-separated element of `value`, trimmed, empty ones skipped.
template <class Fn>
void ForEachElement(std::string_view value, Fn fn) {
  while (!value.empty()) {
    const std::string_view element = base::TrimOws(base::PopField(&value, ','));
    if (!element.empty()) {
      fn(element);
    }
  }
}

// Field values are sent as they were received; a CR, LF or NUL in one would split the head.
bool SafeFieldValue(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// Header lists.

// The first field named `lower_name`, trimmed, or nullopt.
std::optional<std::string_view> FirstField(std::span<const HeaderView> headers,
                                           std::string_view lower_name) {
  for (const HeaderView& h : headers) {
    if (base::EqualsIgnoreCase(h.name, lower_name)) {
      return base::TrimOws(h.value);
    }
  }
  return std::nullopt;
}

size_t CountFields(std::span<const HeaderView> headers, std::string_view lower_name) {
  return static_cast<size_t>(std::count_if(headers.begin(), headers.end(), [&](const auto& h) {
    return base::EqualsIgnoreCase(h.name, lower_name);
  }));
}

std::vector<HeaderView> ViewsOf(const std::vector<Header>& headers) {
  std::vector<HeaderView> views;
  views.reserve(headers.size());
  for (const Header& h : headers) {
    views.push_back({h.name, h.value});
  }
  return views;
}

// Fields a shared cache never stores or updates (RFC 9111 §3.1): hop-by-hop (RFC 9110 §7.6.1)
// and the proxy's own authentication fields. (Fields named by Connection are the caller's to
// remove, together with Connection itself.)
bool NeverStored(std::string_view lower_name) {
  static constexpr std::array<std::string_view, 9> kNames = {
      "connection",         "keep-alive", "proxy-connection",   "te",
      "transfer-encoding",  "upgrade",    "proxy-authenticate", "proxy-authentication-info",
      "proxy-authorization"};
  return std::find(kNames.begin(), kNames.end(), lower_name) != kNames.end();
}

// Fields a 304 never replaces in a stored response (RFC 9111 §3.2): besides NeverStored(),
// Content-Length, the fields that describe the stored bytes (Content-Encoding, Content-Range)
// and Vary, which selected this stored variant. Set-Cookie is not taken unless allowed.
bool NeverUpdated(std::string_view lower_name, const Options& options) {
  return NeverStored(lower_name) || lower_name == "content-length" ||
         lower_name == "content-encoding" || lower_name == "content-range" ||
         lower_name == "vary" ||
         (lower_name == "set-cookie" && options.set_cookie != Options::SetCookie::kStore);
}

// Date and Age are kept as numbers in the Entry (date_value, age_value), not as stored fields.
bool KeptAsNumber(std::string_view lower_name) {
  return lower_name == "date" || lower_name == "age";
}

// ---------------------------------------------------------------------------------------------
// Numbers and dates.

// RFC 9111 §5.1: Age = delta-seconds, a singleton. A list (several members, or several Age
// lines, which are one list) is read by its first member, the rest discarded; a first member
// that is not a non-negative integer makes the field ignored (0), as "5x" does. Values past
// 2^31 read as 2^31 (§1.2.2).
int64_t AgeValue(std::span<const HeaderView> headers) {
  std::optional<std::string_view> first;
  for (const HeaderView& h : headers) {
    if (!first && base::EqualsIgnoreCase(h.name, "age")) {
      ForEachElement(h.value, [&](std::string_view member) {
        if (!first) {
          first = member;
        }
      });
    }
  }
  if (!first) {
    return 0;
  }
  int64_t v = 0;
  for (const char c : *first) {
    if (c < '0' || c > '9') {
      return 0;
    }
    v = std::min(v * 10 + (c - '0'), kMaxDeltaSeconds);
  }
  return v;
}

// The first Date field that is a valid HTTP-date.
std::optional<int64_t> DateValue(std::span<const HeaderView> headers, int64_t now) {
  for (const HeaderView& h : headers) {
    if (base::EqualsIgnoreCase(h.name, "date")) {
      if (std::optional<int64_t> t = ParseHttpDate(h.value, now)) {
        return t;
      }
    }
  }
  return std::nullopt;
}

int64_t NonNegative(int64_t v) { return v > 0 ? v : 0; }

// ---------------------------------------------------------------------------------------------
// Status codes.

// RFC 9110 §15.1: heuristically cacheable status codes.
bool HeuristicStatus(uint16_t status) {
  static constexpr std::array<uint16_t, 12> kStatuses = {200, 203, 204, 206, 300, 301,
                                                         308, 404, 405, 410, 414, 501};
  return std::find(kStatuses.begin(), kStatuses.end(), status) != kStatuses.end();
}

// The statuses this cache stores at all (RFC 9111 §3: any final status whose meaning it
// understands): 200-599 but 206 (partial content is never stored) and 304 (it only refreshes an
// entry). Whether one is stored then depends on its freshness information (Storable()).
bool StoredStatus(uint16_t status) {
  return status >= 200 && status <= 599 && status != 206 && status != 304;
}

bool IsNegative(uint16_t status) { return status == 404 || status == 410; }

// ---------------------------------------------------------------------------------------------
// Freshness.

std::optional<int64_t> ExplicitLifetime(const CacheControl& cc, std::span<const HeaderView> headers,
                                        int64_t date_value) {
  if (cc.s_maxage) {
    return *cc.s_maxage;
  }
  if (cc.max_age) {
    return *cc.max_age;
  }
  if (cc.targeted) {
    return std::nullopt;  // RFC 9213 §2.2: a targeted field replaces Expires too
  }
  const size_t expires_fields = CountFields(headers, "expires");
  if (expires_fields == 0) {
    return std::nullopt;
  }
  if (expires_fields > 1) {
    return 0;  // §4.2.1: several values; the response is considered stale
  }
  const std::optional<int64_t> expires = ParseHttpDate(*FirstField(headers, "expires"), date_value);
  return expires ? NonNegative(*expires - date_value) : 0;  // §5.3: invalid = in the past
}

// A Last-Modified field holding a valid HTTP-date (validity does not depend on `now`).
bool HasLastModified(std::span<const HeaderView> headers) {
  const std::optional<std::string_view> field = FirstField(headers, "last-modified");
  return field && ParseHttpDate(*field, 0).has_value();
}

// §4.2.2: fraction × (Date - Last-Modified), capped; nullopt without a usable Last-Modified.
std::optional<int64_t> HeuristicLifetime(std::span<const HeaderView> headers, int64_t date_value,
                                         const Options& options) {
  const std::optional<std::string_view> field = FirstField(headers, "last-modified");
  const std::optional<int64_t> modified = field ? ParseHttpDate(*field, date_value) : std::nullopt;
  if (!modified || *modified > date_value) {
    return std::nullopt;
  }
  const double cap = static_cast<double>(NonNegative(options.heuristic_max));
  const double h = options.heuristic_fraction * static_cast<double>(date_value - *modified);
  // NaN and negative fractions give 0; the cap keeps the cast in range.
  return (h > 0) ? static_cast<int64_t>(std::min(h, cap)) : 0;
}

// ---------------------------------------------------------------------------------------------
// Vary.

// The lowercased, sorted, deduplicated field names of every Vary field; *star when one is "*".
std::vector<std::string> VaryNames(std::span<const HeaderView> headers, bool* star) {
  std::vector<std::string> names;
  for (const HeaderView& h : headers) {
    if (!base::EqualsIgnoreCase(h.name, "vary")) {
      continue;
    }
    ForEachElement(h.value, [&](std::string_view name) {
      if (name == "*") {
        *star = true;
      } else {
        names.push_back(base::ToLowerAscii(name));
      }
    });
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

bool HasVaryStar(std::span<const HeaderView> headers) {
  bool star = false;
  for (const HeaderView& h : headers) {
    if (base::EqualsIgnoreCase(h.name, "vary")) {
      ForEachElement(h.value, [&](std::string_view name) { star = star || name == "*"; });
    }
  }
  return star;
}

// Content codings that select a variant, in the order NormaliseVaryValue() writes them.
constexpr std::array<std::string_view, 4> kCodings = {"br", "deflate", "gzip", "zstd"};
constexpr int kStar = static_cast<int>(kCodings.size());  // "*" in the q table below
constexpr int kNotListed = -1;

// RFC 9110 §12.4.2 qvalue: "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")], in thousandths.
std::optional<int> ParseQvalue(std::string_view s) {
  if (s.empty() || (s[0] != '0' && s[0] != '1') || s.size() > 5 || (s.size() > 1 && s[1] != '.')) {
    return std::nullopt;
  }
  int q = (s[0] - '0') * 1000;
  int scale = 100;
  for (size_t i = 2; i < s.size(); ++i, scale /= 10) {
    if (s[i] < '0' || s[i] > '9') {
      return std::nullopt;
    }
    q += (s[i] - '0') * scale;
  }
  return q <= 1000 ? std::optional<int>(q) : std::nullopt;
}

// One Accept-Encoding element: "coding *( OWS ; OWS param )". Returns the coding's index into
// kCodings, kStar, or nullopt when it is another coding or malformed; *q gets its weight.
std::optional<int> ParseCodingElement(std::string_view element, int* q) {
  const size_t semi = element.find(';');
  const std::string_view coding = base::TrimOws(element.substr(0, semi));
  *q = 1000;
  std::string_view params = semi == std::string_view::npos ? "" : element.substr(semi + 1);
  while (!params.empty()) {
    const std::string_view param = base::TrimOws(base::PopField(&params, ';'));
    const size_t eq = param.find('=');
    if (eq != std::string_view::npos &&
        base::EqualsIgnoreCase(base::TrimOws(param.substr(0, eq)), "q")) {
      const std::optional<int> parsed = ParseQvalue(base::TrimOws(param.substr(eq + 1)));
      if (!parsed) {
        return std::nullopt;
      }
      *q = *parsed;
    }
  }
  if (coding == "*") {
    return kStar;
  }
  const std::string_view name = base::EqualsIgnoreCase(coding, "x-gzip") ? "gzip" : coding;
  for (size_t i = 0; i < kCodings.size(); ++i) {
    if (base::EqualsIgnoreCase(name, kCodings[i])) {
      return static_cast<int>(i);
    }
  }
  return std::nullopt;
}

std::string NormaliseAcceptEncoding(std::string_view value) {
  std::array<int, kCodings.size() + 1> q;  // thousandths, or kNotListed
  q.fill(kNotListed);
  ForEachElement(value, [&](std::string_view element) {
    int weight;
    if (const std::optional<int> i = ParseCodingElement(element, &weight)) {
      q[*i] = q[*i] == kNotListed ? weight : std::min(q[*i], weight);
    }
  });
  std::string out;
  for (size_t i = 0; i < kCodings.size(); ++i) {
    const int weight = q[i] != kNotListed ? q[i] : q[kStar];
    if (weight > 0) {
      out.append(out.empty() ? "" : ",").append(kCodings[i]);
    }
  }
  return out;
}

// OWS trimmed at the ends and around commas; everything else as it was.
std::string NormaliseList(std::string_view value) {
  value = base::TrimOws(value);
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != ',') {
      out.push_back(value[i]);
      continue;
    }
    while (!out.empty() && IsOws(out.back())) {
      out.pop_back();
    }
    out.push_back(',');
    while (i + 1 < value.size() && IsOws(value[i + 1])) {
      ++i;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Entity tags (RFC 9110 §8.8.3).

// The opaque-tag of an entity-tag ("W/" dropped), for weak comparison.
std::string_view OpaqueTag(std::string_view etag) {
  return etag.starts_with("W/") ? etag.substr(2) : etag;
}

bool IsWeak(std::string_view etag) { return etag.starts_with("W/"); }

// Reads one entity-tag at the start of `s` ([W/] DQUOTE *etagc DQUOTE); returns its length, or 0
// when `s` does not start with one.
size_t EntityTagLength(std::string_view s) {
  const size_t open = s.starts_with("W/") ? 2 : 0;
  if (s.size() <= open || s[open] != '"') {
    return 0;
  }
  for (size_t i = open + 1; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"') {
      return i + 1;
    }
    if (c < 0x21 || c == 0x7f) {
      return 0;  // etagc is %x21 / %x23-7E / obs-text
    }
  }
  return 0;
}

// If-None-Match (RFC 9110 §13.1.2) against the stored `etag`, with weak comparison.
bool NoneMatchHits(std::string_view etag, std::string_view field) {
  field = base::TrimOws(field);
  if (field == "*") {
    return true;
  }
  if (etag.empty()) {
    return false;
  }
  bool hit = false;
  ForEachElement(field, [&](std::string_view member) {
    const size_t n = EntityTagLength(member);
    hit = hit || (n == member.size() && OpaqueTag(member) == OpaqueTag(etag));
  });
  return hit;
}

// §4.3.4: does the 304 describe the stored representation?
bool ValidatorsMatch(const Entry& old, std::span<const HeaderView> headers_304) {
  if (const std::optional<std::string_view> etag = FirstField(headers_304, "etag")) {
    if (old.etag.empty()) {
      return false;
    }
    if (!IsWeak(*etag)) {
      return !IsWeak(old.etag) && *etag == old.etag;  // strong comparison
    }
    return OpaqueTag(*etag) == OpaqueTag(old.etag);
  }
  const std::optional<std::string_view> modified = FirstField(headers_304, "last-modified");
  if (!modified || old.last_modified.empty()) {
    return true;
  }
  const std::optional<int64_t> a = ParseHttpDate(*modified, old.response_time);
  const std::optional<int64_t> b = ParseHttpDate(old.last_modified, old.response_time);
  return a && b ? *a == *b : *modified == old.last_modified;
}

// ---------------------------------------------------------------------------------------------
// Entry building, shared by BuildEntryMeta() and Refresh304().

// out->headers hold the stored fields without Date and Age; `received` are the fields of the
// response just received (its Date and Age). Fills the rest of the metadata.
void FinishMeta(std::span<const HeaderView> received, int64_t request_time, int64_t response_time,
                const Options& options, Entry* out) {
  out->request_time = request_time;
  out->response_time = response_time;
  out->date_value = DateValue(received, response_time).value_or(response_time);
  out->age_value = AgeValue(received);
  out->headers.push_back({"date", FormatHttpDate(out->date_value)});
  const std::vector<HeaderView> views = ViewsOf(out->headers);
  out->cc = ResponseCacheControl(views, options);
  const Freshness f = ComputeFreshness(out->status, out->cc, views, out->date_value, options);
  out->freshness_lifetime = f.lifetime;
  out->heuristic = f.heuristic;
  out->etag = std::string(FirstField(views, "etag").value_or(""));
  out->last_modified = std::string(FirstField(views, "last-modified").value_or(""));
}

// The most lenient stale-if-error window the response or the request grants, if any.
std::optional<int64_t> StaleIfErrorWindow(const CacheControl& response,
                                          const CacheControl& request) {
  if (!response.stale_if_error && !request.stale_if_error) {
    return std::nullopt;
  }
  return std::max<int64_t>(response.stale_if_error.value_or(0), request.stale_if_error.value_or(0));
}

// Whether the request's max-stale lets a response stale by `staleness` be served (§5.2.1.2).
bool MaxStaleAllows(const CacheControl& response, const CacheControl& request, int64_t staleness) {
  if (response.must_revalidate || response.proxy_revalidate || response.s_maxage) {
    return false;
  }
  return request.max_stale_any || (request.max_stale && staleness <= *request.max_stale);
}

bool StaleWhileRevalidateAllows(const CacheControl& response, int64_t staleness) {
  return response.stale_while_revalidate && !response.must_revalidate &&
         !response.proxy_revalidate && staleness < *response.stale_while_revalidate;
}

}  // namespace

CacheControl ResponseCacheControl(std::span<const HeaderView> headers) {
  CacheControl cc;
  for (const HeaderView& h : headers) {
    if (base::EqualsIgnoreCase(h.name, "cache-control")) {
      ParseCacheControl(h.value, &cc);
    }
  }
  return cc;
}

CacheControl ResponseCacheControl(std::span<const HeaderView> headers, const Options& options) {
  for (const std::string& name : options.targeted) {
    CacheControl cc;
    bool found = false;
    for (const HeaderView& h : headers) {
      if (base::EqualsIgnoreCase(h.name, name) &&
          h.value.find_first_not_of(" \t") != std::string_view::npos) {
        ParseCacheControl(h.value, &cc);
        found = true;
      }
    }
    if (found) {
      cc.targeted = true;
      return cc;
    }
  }
  return ResponseCacheControl(headers);
}

CacheControl RequestCacheControl(std::span<const HeaderView> headers) {
  if (CountFields(headers, "cache-control") > 0) {
    return ResponseCacheControl(headers);  // the same fold; Pragma is then ignored (§5.4)
  }
  CacheControl cc;
  for (const HeaderView& h : headers) {
    if (base::EqualsIgnoreCase(h.name, "pragma")) {
      ForEachElement(h.value, [&](std::string_view e) {
        cc.no_cache |= base::EqualsIgnoreCase(e, "no-cache");
      });
    }
  }
  return cc;
}

CacheControl RequestCacheControl(const HeaderSource& headers) {
  std::string value;
  std::vector<HeaderView> fields;
  if (headers.Get("cache-control", &value)) {
    fields.push_back({"cache-control", value});
  } else if (headers.Get("pragma", &value)) {
    fields.push_back({"pragma", value});
  }
  return RequestCacheControl(fields);
}

Request ReadRequest(std::string_view method, const HeaderSource& headers) {
  std::string ignored;
  Request req;
  req.method = method;
  req.has_authorization = headers.Get("authorization", &ignored);
  req.has_range = headers.Get("range", &ignored);
  req.cc = RequestCacheControl(headers);
  return req;
}

StoreDecision Storable(const Request& req, uint16_t status,
                       std::span<const HeaderView> response_headers, const Options& options) {
  if (req.method != "GET") {
    return {false, "method"};
  }
  if (req.has_range) {
    return {false, "range"};
  }
  if (!StoredStatus(status)) {
    return {false, "status"};
  }
  const CacheControl cc = ResponseCacheControl(response_headers, options);
  if (req.cc.no_store || cc.no_store) {
    return {false, "no-store"};
  }
  if (cc.private_) {
    return {false, "private"};
  }
  if (req.has_authorization && !cc.public_ && !cc.s_maxage && !cc.must_revalidate) {
    return {false, "authorization"};  // §3.5
  }
  if (CountFields(response_headers, "set-cookie") > 0) {
    const bool shared = cc.public_ || cc.s_maxage;
    if (options.set_cookie == Options::SetCookie::kBypass ||
        (options.set_cookie == Options::SetCookie::kStrip && !shared)) {
      return {false, "set-cookie"};
    }
  }
  if (HasVaryStar(response_headers)) {
    return {false, "vary-star"};
  }
  const bool explicit_freshness =
      cc.s_maxage || cc.max_age || (!cc.targeted && CountFields(response_headers, "expires") > 0);
  const bool heuristic = (HeuristicStatus(status) || cc.public_) &&
                         (!FirstField(response_headers, "etag").value_or("").empty() ||
                          HasLastModified(response_headers));
  const bool configured = (IsNegative(status) && options.negative_ttl > 0) ||
                          (status == 200 && options.default_ttl > 0);
  if (!explicit_freshness && !heuristic && !configured) {
    return {false, "no-freshness"};
  }
  return {true, "ok"};
}

Freshness ComputeFreshness(uint16_t status, const CacheControl& cc,
                           std::span<const HeaderView> response_headers, int64_t date_value,
                           const Options& options) {
  if (const std::optional<int64_t> lifetime = ExplicitLifetime(cc, response_headers, date_value)) {
    return {*lifetime, false};
  }
  if (IsNegative(status) && options.negative_ttl > 0) {
    return {options.negative_ttl, false};
  }
  if (HeuristicStatus(status) || cc.public_) {
    if (const std::optional<int64_t> h = HeuristicLifetime(response_headers, date_value, options)) {
      return {*h, true};
    }
  }
  if (status == 200 && options.default_ttl > 0) {
    return {options.default_ttl, false};
  }
  return {0, false};
}

void BuildEntryMeta(const Request& /*req*/, uint16_t status,
                    std::span<const HeaderView> response_headers,
                    const HeaderSource& request_headers, int64_t request_time,
                    int64_t response_time, const Options& options, Entry* out) {
  out->status = status;
  out->headers.clear();
  out->headers.reserve(response_headers.size() + 1);
  for (const HeaderView& h : response_headers) {
    std::string name = base::ToLowerAscii(h.name);
    const bool cookie =
        name == "set-cookie" && options.set_cookie != Options::SetCookie::kStore;
    if (!NeverStored(name) && !KeptAsNumber(name) && !cookie) {
      out->headers.push_back({std::move(name), std::string(h.value)});
    }
  }
  FinishMeta(response_headers, request_time, response_time, options, out);
  out->vary_star = false;
  out->vary.clear();
  std::string value;
  for (std::string& name : VaryNames(response_headers, &out->vary_star)) {
    Entry::VaryField field;
    field.has_value = request_headers.Get(name, &value);
    if (field.has_value) {
      field.value = NormaliseVaryValue(name, value);
    }
    field.name = std::move(name);
    out->vary.push_back(std::move(field));
  }
}

std::string NormaliseVaryValue(std::string_view lower_name, std::string_view value) {
  if (lower_name == "accept-encoding") {
    return NormaliseAcceptEncoding(value);
  }
  return NormaliseList(value);
}

bool VaryMatches(const Entry& entry, const HeaderSource& request) {
  if (entry.vary_star) {
    return false;
  }
  std::string value;
  for (const Entry::VaryField& field : entry.vary) {
    const bool has_value = request.Get(field.name, &value);
    if (has_value != field.has_value ||
        (has_value && NormaliseVaryValue(field.name, value) != field.value)) {
      return false;
    }
  }
  return true;
}

int64_t CurrentAge(const Entry& entry, int64_t now) {
  const int64_t apparent_age = NonNegative(entry.response_time - entry.date_value);
  const int64_t response_delay = NonNegative(entry.response_time - entry.request_time);
  const int64_t corrected_age_value = entry.age_value + response_delay;
  const int64_t corrected_initial_age = std::max(apparent_age, corrected_age_value);
  const int64_t resident_time = NonNegative(now - entry.response_time);
  return corrected_initial_age + resident_time;
}

Serve Evaluate(const Entry& entry, const Request& req, int64_t now) {
  const int64_t age = CurrentAge(entry, now);
  const Verdict validate = CanRevalidate(entry) ? Verdict::kRevalidate : Verdict::kMiss;
  if (entry.vary_star) {
    return {Verdict::kMiss, age};
  }
  if (entry.cc.no_cache || req.cc.no_cache) {
    return {validate, age};
  }
  if (req.cc.max_age && age > *req.cc.max_age) {
    return {validate, age};
  }
  const int64_t lifetime = entry.freshness_lifetime;
  if (req.cc.min_fresh && lifetime - age < *req.cc.min_fresh) {
    return {validate, age};
  }
  if (age < lifetime) {
    return {Verdict::kFresh, age};
  }
  const int64_t staleness = age - lifetime;
  if (MaxStaleAllows(entry.cc, req.cc, staleness)) {
    return {Verdict::kFresh, age};
  }
  if (StaleWhileRevalidateAllows(entry.cc, staleness)) {
    return {Verdict::kStaleWhileRevalidate, age};
  }
  return {validate, age};
}

bool StaleIfErrorAllowed(const Entry& entry, const Request& req, int64_t now) {
  if (entry.vary_star || entry.cc.must_revalidate || entry.cc.proxy_revalidate ||
      entry.cc.no_cache) {
    return false;
  }
  const std::optional<int64_t> window = StaleIfErrorWindow(entry.cc, req.cc);
  return window && CurrentAge(entry, now) - entry.freshness_lifetime < *window;
}

bool ClientNotModified(const Entry& entry, const HeaderSource& request) {
  if (entry.status < 200 || entry.status > 299) {
    return false;
  }
  std::string field;
  if (request.Get("if-none-match", &field)) {
    return NoneMatchHits(entry.etag, field);  // §13.2.2: If-Modified-Since is then ignored
  }
  if (!request.Get("if-modified-since", &field)) {
    return false;
  }
  const std::optional<int64_t> since = ParseHttpDate(field, entry.response_time);
  if (!since) {
    return false;  // §13.1.3: invalid, or several members (the combined value is no date)
  }
  std::optional<int64_t> modified;
  if (!entry.last_modified.empty()) {
    modified = ParseHttpDate(entry.last_modified, entry.response_time);
  }
  return modified.value_or(entry.date_value) <= *since;  // §4.3.2: Last-Modified, else Date
}

bool CanRevalidate(const Entry& entry) {
  return (!entry.etag.empty() && SafeFieldValue(entry.etag)) ||
         (!entry.last_modified.empty() && SafeFieldValue(entry.last_modified));
}

void AddValidators(const Entry& entry, std::string* head_lines) {
  if (!entry.etag.empty() && SafeFieldValue(entry.etag)) {
    head_lines->append("If-None-Match: ").append(entry.etag).append("\r\n");
  }
  if (!entry.last_modified.empty() && SafeFieldValue(entry.last_modified)) {
    head_lines->append("If-Modified-Since: ").append(entry.last_modified).append("\r\n");
  }
}

Refresh Refresh304(const Entry& old, std::span<const HeaderView> headers_304, int64_t request_time,
                   int64_t response_time, const Options& options, Entry* out) {
  if (!ValidatorsMatch(old, headers_304)) {
    return Refresh::kMismatch;
  }
  // The fields the 304 updates (in its order); each replaces every stored field of its name.
  std::vector<Header> updates;
  std::vector<std::string_view> updated_names;
  for (const HeaderView& h : headers_304) {
    std::string name = base::ToLowerAscii(h.name);
    if (!NeverUpdated(name, options) && !KeptAsNumber(name)) {
      updates.push_back({std::move(name), std::string(h.value)});
    }
  }
  for (const Header& h : updates) {
    updated_names.push_back(h.name);
  }
  std::sort(updated_names.begin(), updated_names.end());
  *out = Entry{};
  out->status = old.status;
  out->body = old.body;
  out->vary = old.vary;
  out->vary_star = old.vary_star;
  out->coding = old.coding;
  out->source_id = old.source_id;
  for (const Header& h : old.headers) {
    if (!KeptAsNumber(h.name) &&
        !std::binary_search(updated_names.begin(), updated_names.end(), h.name)) {
      out->headers.push_back(h);
    }
  }
  out->headers.insert(out->headers.end(), std::make_move_iterator(updates.begin()),
                      std::make_move_iterator(updates.end()));
  FinishMeta(headers_304, request_time, response_time, options, out);
  return out->cc.no_store || out->cc.private_ ? Refresh::kServeOnly : Refresh::kStore;
}

bool InvalidatesOnUnsafe(std::string_view method, uint16_t status) {
  const bool safe = method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE";
  return !safe && status >= 200 && status <= 399;
}

}  // namespace torii::cache
