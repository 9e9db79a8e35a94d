// tests/cache/policy_test.cc: the shared-cache decisions (cache/policy.h) with an injected
// clock: storability, freshness lifetime, age, serving verdicts, stale-if-error, client
// conditionals, validators, Vary normalisation and matching, 304 refresh, invalidation.
#include "cache/policy.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cache/http_date.h"

namespace torii::cache {
namespace {

constexpr int64_t kT = 1700000000;  // Tue, 14 Nov 2023 22:13:20 GMT: "now" of most tests

// A request's header fields as http/ would expose them: names compared case-insensitively,
// several fields of one name combined with ", ".
class FakeHeaders : public HeaderSource {
 public:
  FakeHeaders() = default;
  FakeHeaders(std::initializer_list<std::pair<std::string, std::string>> fields)
      : fields_(fields) {}
  bool Get(std::string_view lower_name, std::string* out) const override {
    bool found = false;
    for (const auto& [name, value] : fields_) {
      if (Lower(name) == lower_name) {
        *out = found ? *out + ", " + value : value;
        found = true;
      }
    }
    return found;
  }

 private:
  static std::string Lower(std::string s) {
    for (char& c : s) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
  }
  std::vector<std::pair<std::string, std::string>> fields_;
};

// Response header fields; the strings are owned here so the views stay valid.
class Fields {
 public:
  Fields(std::initializer_list<std::pair<std::string, std::string>> fields) : owned_(fields) {
    for (const auto& [name, value] : owned_) {
      views_.push_back({name, value});
    }
  }
  Fields(const Fields&) = delete;  // the views point into owned_
  Fields& operator=(const Fields&) = delete;
  std::span<const HeaderView> span() const { return views_; }
  operator std::span<const HeaderView>() const { return views_; }

 private:
  std::vector<std::pair<std::string, std::string>> owned_;
  std::vector<HeaderView> views_;
};

std::string Date(int64_t t) { return FormatHttpDate(t); }

CacheControl Cc(std::string_view value) {
  CacheControl cc;
  ParseCacheControl(value, &cc);
  return cc;
}

Request Get(std::string_view cc = "", bool authorization = false) {
  return Request{"GET", authorization, false, Cc(cc)};
}

// =============================================================================================
// Request facts.

// Pragma: no-cache counts only when the request has no Cache-Control (RFC 9111 §5.4).
TEST(PolicyRequestTest, PragmaNoCacheOnlyWithoutCacheControl) {
  EXPECT_TRUE(RequestCacheControl(FakeHeaders{{"Pragma", "no-cache"}}).no_cache);
  EXPECT_TRUE(RequestCacheControl(FakeHeaders{{"Pragma", "foo, No-Cache"}}).no_cache);
  EXPECT_FALSE(RequestCacheControl(FakeHeaders{{"Pragma", "no-cachex"}}).no_cache);
  const CacheControl both =
      RequestCacheControl(FakeHeaders{{"Pragma", "no-cache"}, {"Cache-Control", "max-age=5"}});
  EXPECT_FALSE(both.no_cache);
  EXPECT_EQ(both.max_age, 5u);

  const Fields span_only_pragma{{"PRAGMA", "no-cache"}};
  EXPECT_TRUE(RequestCacheControl(span_only_pragma.span()).no_cache);
  const Fields span_both{{"pragma", "no-cache"}, {"cache-control", "max-stale"}};
  EXPECT_FALSE(RequestCacheControl(span_both.span()).no_cache);
  EXPECT_TRUE(RequestCacheControl(span_both.span()).max_stale_any);
  // Several Cache-Control fields are folded.
  const Fields two{{"Cache-Control", "max-age=9"}, {"cache-control", "min-fresh=3"}};
  EXPECT_EQ(RequestCacheControl(two.span()).max_age, 9u);
  EXPECT_EQ(RequestCacheControl(two.span()).min_fresh, 3u);
}

// ReadRequest notes Authorization, Range and the request's directives.
TEST(PolicyRequestTest, ReadRequestFillsTheFacts) {
  const Request plain = ReadRequest("GET", FakeHeaders{{"Accept", "*/*"}});
  EXPECT_EQ(plain.method, "GET");
  EXPECT_FALSE(plain.has_authorization);
  EXPECT_FALSE(plain.has_range);
  EXPECT_FALSE(plain.cc.no_cache);
  const Request r = ReadRequest(
      "HEAD",
      FakeHeaders{{"Authorization", "Basic x"}, {"Range", "bytes=0-1"}, {"Pragma", "no-cache"}});
  EXPECT_EQ(r.method, "HEAD");
  EXPECT_TRUE(r.has_authorization);
  EXPECT_TRUE(r.has_range);
  EXPECT_TRUE(r.cc.no_cache);
}

// =============================================================================================
// Storable (RFC 9111 §3).

struct StoreCase {
  const char* name;
  Request req;
  uint16_t status;
  Fields headers;
  Options options;
  bool store;
  std::string_view reason;
};

Options WithNegativeTtl(int64_t ttl) {
  Options o;
  o.negative_ttl = ttl;
  return o;
}

Options WithDefaultTtl(int64_t ttl) {
  Options o;
  o.default_ttl = ttl;
  return o;
}

Options BypassingCookies() {
  Options o;
  o.set_cookie = Options::SetCookie::kBypass;
  return o;
}

Options StoringCookies() {
  Options o;
  o.set_cookie = Options::SetCookie::kStore;
  return o;
}

// Every rule, and the reason it reports.
TEST(PolicyStorableTest, Table) {
  const std::string lm = Date(kT - 1000);
  const Request head{"HEAD", false, false, {}};
  const Request post{"POST", false, false, {}};
  const Request lower_get{"get", false, false, {}};
  const Request ranged{"GET", false, true, {}};
  const StoreCase cases[] = {
      {"max-age", Get(), 200, {{"Cache-Control", "max-age=60"}}, {}, true, "ok"},
      {"head", head, 200, {{"Cache-Control", "max-age=60"}}, {}, false, "method"},
      {"post", post, 200, {{"Cache-Control", "max-age=60"}}, {}, false, "method"},
      {"method case", lower_get, 200, {{"Cache-Control", "max-age=60"}}, {}, false, "method"},
      {"range request", ranged, 200, {{"Cache-Control", "max-age=60"}}, {}, false, "range"},
      {"206", Get(), 206, {{"Cache-Control", "max-age=60"}}, {}, false, "status"},
      // Any final status with explicit freshness is stored (RFC 9111 §3, issue #17); an error
      // without it is not (CPDoS, K4).
      {"500 max-age", Get(), 500, {{"Cache-Control", "max-age=60"}}, {}, true, "ok"},
      {"502 public", Get(), 502, {{"Cache-Control", "public, max-age=60"}}, {}, true, "ok"},
      {"503 s-maxage", Get(), 503, {{"Cache-Control", "s-maxage=60"}}, {}, true, "ok"},
      {"501 last-mod", Get(), 501, {{"Last-Modified", lm}}, {}, true, "ok"},
      {"400 max-age", Get(), 400, {{"Cache-Control", "max-age=60"}}, {}, true, "ok"},
      {"431 max-age", Get(), 431, {{"Cache-Control", "max-age=60"}}, {}, true, "ok"},
      {"403 expires", Get(), 403, {{"Expires", Date(kT + 60)}}, {}, true, "ok"},
      {"299 max-age", Get(), 299, {{"Cache-Control", "max-age=60"}}, {}, true, "ok"},
      {"599 max-age", Get(), 599, {{"Cache-Control", "max-age=60"}}, {}, true, "ok"},
      {"500 bare", Get(), 500, {}, {}, false, "no-freshness"},
      {"500 last-mod", Get(), 500, {{"Last-Modified", lm}}, {}, false, "no-freshness"},
      {"400 etag", Get(), 400, {{"ETag", "\"x\""}}, {}, false, "no-freshness"},
      {"304", Get(), 304, {{"Cache-Control", "max-age=60"}}, {}, false, "status"},
      {"201", Get(), 201, {{"Cache-Control", "max-age=60"}}, {}, true, "ok"},
      {"100", Get(), 100, {{"Cache-Control", "max-age=60"}}, {}, false, "status"},
      {"404 max-age", Get(), 404, {{"Cache-Control", "max-age=60"}}, {}, true, "ok"},
      {"404 bare", Get(), 404, {}, {}, false, "no-freshness"},
      {"404 negative", Get(), 404, {}, WithNegativeTtl(30), true, "ok"},
      {"410 negative", Get(), 410, {}, WithNegativeTtl(30), true, "ok"},
      {"405 negative", Get(), 405, {}, WithNegativeTtl(30), false, "no-freshness"},
      {"no-store", Get(), 200, {{"Cache-Control", "max-age=60, no-store"}}, {}, false, "no-store"},
      {"request no-store",
       Get("no-store"),
       200,
       {{"Cache-Control", "max-age=60"}},
       {},
       false,
       "no-store"},
      {"request no-cache", Get("no-cache"), 200, {{"Cache-Control", "max-age=60"}}, {}, true, "ok"},
      {"private", Get(), 200, {{"Cache-Control", "private, max-age=60"}}, {}, false, "private"},
      {"private fields",
       Get(),
       200,
       {{"Cache-Control", "private=\"x\", s-maxage=60"}},
       {},
       false,
       "private"},
      {"auth max-age",
       Get("", true),
       200,
       {{"Cache-Control", "max-age=60"}},
       {},
       false,
       "authorization"},
      {"auth public",
       Get("", true),
       200,
       {{"Cache-Control", "public, max-age=60"}},
       {},
       true,
       "ok"},
      {"auth s-maxage", Get("", true), 200, {{"Cache-Control", "s-maxage=60"}}, {}, true, "ok"},
      {"auth must-revalidate",
       Get("", true),
       200,
       {{"Cache-Control", "must-revalidate, max-age=60"}},
       {},
       true,
       "ok"},
      {"set-cookie",
       Get(),
       200,
       {{"Cache-Control", "max-age=60"}, {"Set-Cookie", "a=1"}},
       {},
       false,
       "set-cookie"},
      {"set-cookie allowed",
       Get(),
       200,
       {{"Cache-Control", "max-age=60"}, {"set-cookie", "a=1"}},
       StoringCookies(),
       true,
       "ok"},
      // Default (strip): stored when marked for shared caches, without the cookie.
      {"set-cookie public", Get(), 200,
       {{"Cache-Control", "public, max-age=60"}, {"Set-Cookie", "a=1"}}, {}, true, "ok"},
      {"set-cookie s-maxage", Get(), 200,
       {{"Cache-Control", "s-maxage=60"}, {"Set-Cookie", "a=1"}}, {}, true, "ok"},
      {"set-cookie public bypass", Get(), 200,
       {{"Cache-Control", "public, max-age=60"}, {"Set-Cookie", "a=1"}}, BypassingCookies(),
       false, "set-cookie"},
      {"vary star",
       Get(),
       200,
       {{"Cache-Control", "max-age=60"}, {"Vary", "*"}},
       {},
       false,
       "vary-star"},
      {"vary list star",
       Get(),
       200,
       {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding"}, {"vary", "x, * "}},
       {},
       false,
       "vary-star"},
      {"vary",
       Get(),
       200,
       {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding"}},
       {},
       true,
       "ok"},
      {"expires", Get(), 200, {{"Expires", Date(kT + 60)}}, {}, true, "ok"},
      {"expires invalid", Get(), 200, {{"Expires", "0"}}, {}, true, "ok"},
      {"max-age=0", Get(), 200, {{"Cache-Control", "max-age=0"}}, {}, true, "ok"},
      {"heuristic last-mod", Get(), 200, {{"Last-Modified", lm}}, {}, true, "ok"},
      {"heuristic etag", Get(), 200, {{"ETag", "\"v1\""}}, {}, true, "ok"},
      {"heuristic 301", Get(), 301, {{"Last-Modified", lm}}, {}, true, "ok"},
      {"heuristic bad last-mod",
       Get(),
       200,
       {{"Last-Modified", "yesterday"}},
       {},
       false,
       "no-freshness"},
      {"302 last-mod", Get(), 302, {{"Last-Modified", lm}}, {}, false, "no-freshness"},
      {"302 public last-mod",
       Get(),
       302,
       {{"Cache-Control", "public"}, {"Last-Modified", lm}},
       {},
       true,
       "ok"},
      {"302 max-age", Get(), 302, {{"Cache-Control", "max-age=60"}}, {}, true, "ok"},
      {"200 bare", Get(), 200, {{"Content-Type", "text/plain"}}, {}, false, "no-freshness"},
      {"200 public bare", Get(), 200, {{"Cache-Control", "public"}}, {}, false, "no-freshness"},
      {"200 default ttl", Get(), 200, {}, WithDefaultTtl(60), true, "ok"},
      {"404 default ttl", Get(), 404, {}, WithDefaultTtl(60), false, "no-freshness"},
      {"no-cache stored",
       Get(),
       200,
       {{"Cache-Control", "no-cache"}, {"ETag", "\"a\""}},
       {},
       true,
       "ok"},
  };
  for (const StoreCase& c : cases) {
    const StoreDecision d = Storable(c.req, c.status, c.headers, c.options);
    EXPECT_EQ(d.store, c.store) << c.name;
    EXPECT_EQ(std::string_view(d.reason), c.reason) << c.name;
  }
}

// =============================================================================================
// Freshness lifetime (RFC 9111 §4.2.1, §4.2.2).

struct FreshCase {
  const char* name;
  uint16_t status;
  Fields headers;
  Options options;
  int64_t lifetime;
  bool heuristic;
};

Options Heuristic(double fraction, int64_t max) {
  Options o;
  o.heuristic_fraction = fraction;
  o.heuristic_max = max;
  return o;
}

// First match wins: s-maxage, max-age, Expires - Date, negative_ttl, heuristic, default_ttl.
TEST(PolicyFreshnessTest, PrecedenceTable) {
  const std::string date = Date(kT);
  const FreshCase cases[] = {
      {"s-maxage first",
       200,
       {{"Cache-Control", "max-age=20, s-maxage=10"}, {"Expires", Date(kT + 30)}},
       {},
       10,
       false},
      {"max-age over expires",
       200,
       {{"Cache-Control", "max-age=20"}, {"Expires", Date(kT + 30)}},
       {},
       20,
       false},
      {"invalid max-age is 0",
       200,
       {{"Cache-Control", "max-age=abc"}, {"Expires", Date(kT + 30)}},
       {},
       0,
       false},
      {"expires", 200, {{"Expires", Date(kT + 30)}}, {}, 30, false},
      {"expires past", 200, {{"Expires", Date(kT - 30)}}, {}, 0, false},
      {"expires invalid",
       200,
       {{"Expires", "0"}, {"Last-Modified", Date(kT - 1000)}},
       {},
       0,
       false},
      {"two expires", 200, {{"Expires", Date(kT + 30)}, {"Expires", Date(kT + 30)}}, {}, 0, false},
      {"expires rfc850", 200, {{"Expires", "Wednesday, 15-Nov-23 22:13:20 GMT"}}, {}, 86400, false},
      {"heuristic", 200, {{"Last-Modified", Date(kT - 1000)}}, {}, 100, true},
      {"heuristic capped", 200, {{"Last-Modified", Date(kT - 10000000)}}, {}, 86400, true},
      {"heuristic fraction",
       200,
       {{"Last-Modified", Date(kT - 1000)}},
       Heuristic(0.5, 86400),
       500,
       true},
      {"heuristic own cap",
       200,
       {{"Last-Modified", Date(kT - 1000)}},
       Heuristic(0.5, 60),
       60,
       true},
      {"heuristic NaN",
       200,
       {{"Last-Modified", Date(kT - 1000)}},
       Heuristic(std::nan(""), 86400),
       0,
       true},
      {"heuristic huge",
       200,
       {{"Last-Modified", Date(kT - 1000)}},
       Heuristic(1e300, 86400),
       86400,
       true},
      {"heuristic negative cap",
       200,
       {{"Last-Modified", Date(kT - 1000)}},
       Heuristic(0.1, -5),
       0,
       true},
      {"last-mod after date", 200, {{"Last-Modified", Date(kT + 10)}}, {}, 0, false},
      {"heuristic 404", 404, {{"Last-Modified", Date(kT - 1000)}}, {}, 100, true},
      {"negative over heuristic",
       404,
       {{"Last-Modified", Date(kT - 1000)}},
       WithNegativeTtl(30),
       30,
       false},
      {"explicit over negative",
       404,
       {{"Cache-Control", "max-age=5"}},
       WithNegativeTtl(30),
       5,
       false},
      {"410 negative", 410, {}, WithNegativeTtl(30), 30, false},
      {"default ttl", 200, {}, WithDefaultTtl(50), 50, false},
      {"heuristic over default",
       200,
       {{"Last-Modified", Date(kT - 1000)}},
       WithDefaultTtl(50),
       100,
       true},
      {"default only for 200", 203, {}, WithDefaultTtl(50), 0, false},
      {"302 not heuristic", 302, {{"Last-Modified", Date(kT - 1000)}}, {}, 0, false},
      {"302 public heuristic",
       302,
       {{"Cache-Control", "public"}, {"Last-Modified", Date(kT - 1000)}},
       {},
       100,
       true},
      {"clamped max-age", 200, {{"Cache-Control", "max-age=99999999999"}}, {}, 2147483648, false},
      {"nothing", 200, {}, {}, 0, false},
  };
  for (const FreshCase& c : cases) {
    const Freshness f =
        ComputeFreshness(c.status, ResponseCacheControl(c.headers), c.headers, kT, c.options);
    EXPECT_EQ(f.lifetime, c.lifetime) << c.name;
    EXPECT_EQ(f.heuristic, c.heuristic) << c.name;
  }
}

// RFC 9213: the first targeted field present replaces Cache-Control and Expires for this
// cache's decisions; an empty one does not count; the operator's list sets the order.
TEST(PolicyTargetedTest, TargetedFieldsReplaceCacheControl) {
  const Options cdn;  // default: CDN-Cache-Control
  const std::string lm = Date(kT - 1000);
  struct Case {
    const char* name;
    Fields headers;
    Options options;
    bool store;
    int64_t lifetime;
  };
  Options custom;
  custom.targeted = {"torii-cache-control", "cdn-cache-control"};
  Options none;
  none.targeted = {};
  const Case cases[] = {
      {"cdn allows what cache-control forbids",
       {{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=60"}}, cdn, true, 60},
      {"cdn forbids what cache-control allows",
       {{"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "no-store"}}, cdn, false, 0},
      {"cdn private", {{"Cache-Control", "public, max-age=9"}, {"cdn-cache-control", "private"}},
       cdn, false, 0},
      {"cdn lifetime wins", {{"Cache-Control", "max-age=100"}, {"CDN-Cache-Control", "max-age=10"}},
       cdn, true, 10},
      {"cdn ignores Expires",
       {{"CDN-Cache-Control", "must-revalidate"}, {"Expires", Date(kT + 60)}}, cdn, false, 0},
      {"empty cdn falls back", {{"Cache-Control", "max-age=30"}, {"CDN-Cache-Control", " "}}, cdn,
       true, 30},
      {"first in the list wins",
       {{"CDN-Cache-Control", "max-age=10"}, {"Torii-Cache-Control", "max-age=20"}}, custom, true,
       20},
      {"second when the first is absent", {{"CDN-Cache-Control", "max-age=10"}}, custom, true, 10},
      {"no list: cache-control only",
       {{"Cache-Control", "max-age=30"}, {"CDN-Cache-Control", "no-store"}}, none, true, 30},
  };
  for (const Case& c : cases) {
    const StoreDecision d = Storable(Get(), 200, c.headers, c.options);
    EXPECT_EQ(d.store, c.store) << c.name << ": " << d.reason;
    if (c.store) {
      const Freshness f = ComputeFreshness(200, ResponseCacheControl(c.headers, c.options),
                                           c.headers, kT, c.options);
      EXPECT_EQ(f.lifetime, c.lifetime) << c.name;
    }
  }
  EXPECT_TRUE(ResponseCacheControl(Fields{{"CDN-Cache-Control", "max-age=1"}}, cdn).targeted);
  EXPECT_FALSE(ResponseCacheControl(Fields{{"Cache-Control", "max-age=1"}}, cdn).targeted);
}

// RFC 9111 §5.1: the first member of a list-based Age counts, the rest is discarded; an invalid
// first member makes Age ignored; a response whose Age exceeds its lifetime is stale on arrival.
TEST(PolicyAgeTest, AgeFieldParsing) {
  struct Case {
    const char* name;
    Fields headers;
    int64_t age;
  };
  const Case cases[] = {
      {"plain", {{"Age", "7"}}, 7},
      {"list: first wins", {{"Age", "7, 100"}}, 7},
      {"two lines: first wins", {{"Age", "9"}, {"age", "1000"}}, 9},
      {"empty members skipped", {{"Age", " , 12"}}, 12},
      {"digits then junk: ignored", {{"Age", "5x"}}, 0},
      {"negative: ignored", {{"Age", "-5"}}, 0},
      {"first invalid, second valid: ignored", {{"Age", "x"}, {"Age", "50"}}, 0},
      {"huge: 2^31", {{"Age", "99999999999999999999"}}, kMaxDeltaSeconds},
      {"none", {}, 0},
  };
  const FakeHeaders request{};
  for (const Case& c : cases) {
    Entry e;
    BuildEntryMeta(Get(), 200, c.headers, request, kT, kT, Options{}, &e);
    EXPECT_EQ(e.age_value, c.age) << c.name;
  }
  const Fields old{{"Cache-Control", "max-age=60"}, {"Age", "120"}, {"Date", Date(kT)}};
  Entry e;
  BuildEntryMeta(Get(), 200, old, request, kT, kT, Options{}, &e);
  EXPECT_NE(Evaluate(e, Get(), kT).verdict, Verdict::kFresh);
}

// =============================================================================================
// BuildEntryMeta.

// Names lowercased, hop-by-hop and Age dropped, Date normalised, validators and Vary kept.
std::string FieldValues(const Entry& e, std::string_view name) {
  std::string out;
  for (const Header& h : e.headers) {
    if (h.name == name) {
      out += (out.empty() ? "" : "|") + h.value;
    }
  }
  return out;
}

// Set-Cookie is kept in the stored entry only when the options replay cookies.
TEST(PolicyBuildTest, SetCookieStrippedUnlessStored) {
  const Fields response{{"Cache-Control", "public, max-age=60"}, {"Set-Cookie", "sid=1"},
                        {"Content-Type", "text/plain"}};
  const FakeHeaders request{};
  Entry stripped;
  BuildEntryMeta(Get(), 200, response, request, kT, kT, Options{}, &stripped);
  EXPECT_EQ(FieldValues(stripped, "set-cookie"), "");
  EXPECT_EQ(FieldValues(stripped, "content-type"), "text/plain");
  Entry kept;
  BuildEntryMeta(Get(), 200, response, request, kT, kT, StoringCookies(), &kept);
  EXPECT_EQ(FieldValues(kept, "set-cookie"), "sid=1");
}

TEST(PolicyBuildTest, FillsTheEntry) {
  const Fields response{{"Date", Date(kT - 2)},
                        {"Cache-Control", "max-age=60, stale-if-error=30"},
                        {"ETag", " \"v1\" "},
                        {"Last-Modified", Date(kT - 1000)},
                        {"Content-Type", "text/html"},
                        {"Connection", "close"},
                        {"Keep-Alive", "timeout=5"},
                        {"Transfer-Encoding", "chunked"},
                        {"Proxy-Authenticate", "Basic"},
                        {"Age", "7"},
                        {"Vary", "Accept-Encoding, X-Lang"},
                        {"vary", "accept-encoding ,User-Agent"},
                        {"X-Multi", "a"},
                        {"X-Multi", "b"}};
  const FakeHeaders request{{"Accept-Encoding", "gzip, br"}, {"User-Agent", " curl/8 , x "}};
  Entry e;
  e.id = 42;  // left alone
  BuildEntryMeta(Get(), 200, response, request, kT - 3, kT - 1, Options{}, &e);

  EXPECT_EQ(e.status, 200);
  EXPECT_EQ(e.id, 42u);
  EXPECT_EQ(e.request_time, kT - 3);
  EXPECT_EQ(e.response_time, kT - 1);
  EXPECT_EQ(e.date_value, kT - 2);
  EXPECT_EQ(e.age_value, 7);
  EXPECT_EQ(e.freshness_lifetime, 60);
  EXPECT_FALSE(e.heuristic);
  EXPECT_EQ(e.cc.max_age, 60u);
  EXPECT_EQ(e.cc.stale_if_error, 30u);
  EXPECT_EQ(e.etag, "\"v1\"");
  EXPECT_EQ(e.last_modified, Date(kT - 1000));

  std::vector<std::pair<std::string, std::string>> got;
  for (const Header& h : e.headers) {
    got.emplace_back(h.name, h.value);
  }
  const std::vector<std::pair<std::string, std::string>> want = {
      {"cache-control", "max-age=60, stale-if-error=30"},
      {"etag", " \"v1\" "},
      {"last-modified", Date(kT - 1000)},
      {"content-type", "text/html"},
      {"vary", "Accept-Encoding, X-Lang"},
      {"vary", "accept-encoding ,User-Agent"},
      {"x-multi", "a"},
      {"x-multi", "b"},
      {"date", Date(kT - 2)}};
  EXPECT_EQ(got, want);

  ASSERT_EQ(e.vary.size(), 3u);
  EXPECT_EQ(e.vary[0].name, "accept-encoding");
  EXPECT_TRUE(e.vary[0].has_value);
  EXPECT_EQ(e.vary[0].value, "br,gzip");
  EXPECT_EQ(e.vary[1].name, "user-agent");
  EXPECT_TRUE(e.vary[1].has_value);
  EXPECT_EQ(e.vary[1].value, "curl/8,x");
  EXPECT_EQ(e.vary[2].name, "x-lang");
  EXPECT_FALSE(e.vary[2].has_value);
  EXPECT_EQ(e.vary[2].value, "");
  EXPECT_FALSE(e.vary_star);
}

// Without a valid Date the arrival time stands in, and a Date field is added (RFC 9110 §6.6.1);
// Expires is then measured from it.
TEST(PolicyBuildTest, MissingOrInvalidDateUsesResponseTime) {
  for (const char* date : {"", "garbage"}) {
    Fields response = *date ? Fields{{"Date", date}, {"Expires", Date(kT + 50)}}
                            : Fields{{"Expires", Date(kT + 50)}};
    Entry e;
    BuildEntryMeta(Get(), 200, response, FakeHeaders{}, kT - 1, kT, Options{}, &e);
    EXPECT_EQ(e.date_value, kT) << date;
    EXPECT_EQ(e.freshness_lifetime, 50) << date;
    ASSERT_FALSE(e.headers.empty());
    EXPECT_EQ(e.headers.back().name, "date");
    EXPECT_EQ(e.headers.back().value, Date(kT));
    int dates = 0;
    for (const Header& h : e.headers) {
      dates += h.name == "date";
    }
    EXPECT_EQ(dates, 1) << date;
  }
}

// Heuristic freshness is flagged; Vary: * is recorded.
TEST(PolicyBuildTest, HeuristicAndVaryStar) {
  const Fields response{{"Date", Date(kT)}, {"Last-Modified", Date(kT - 5000)}, {"Vary", "*"}};
  Entry e;
  BuildEntryMeta(Get(), 200, response, FakeHeaders{}, kT, kT, Options{}, &e);
  EXPECT_EQ(e.freshness_lifetime, 500);
  EXPECT_TRUE(e.heuristic);
  EXPECT_TRUE(e.vary_star);
  EXPECT_TRUE(e.vary.empty());
}

// =============================================================================================
// CurrentAge (RFC 9111 §4.2.3).

Entry Timed(int64_t request_time, int64_t response_time, int64_t date_value, int64_t age_value) {
  Entry e;
  e.request_time = request_time;
  e.response_time = response_time;
  e.date_value = date_value;
  e.age_value = age_value;
  return e;
}

// The RFC's formula, term by term, including clock skew both ways and a clock that went back.
TEST(PolicyAgeTest, FollowsTheRfcFormula) {
  struct Case {
    const char* name;
    Entry entry;
    int64_t now;
    int64_t age;
  };
  const Case cases[] = {
      // apparent 1, delay 2 → corrected_initial 2; resident 8.
      {"plain", Timed(100, 102, 101, 0), 110, 10},
      {"at arrival", Timed(100, 102, 101, 0), 102, 2},
      // Age 30 + delay 2 = 32 > apparent 1.
      {"age header", Timed(100, 102, 101, 30), 110, 40},
      // Origin clock fast: Date after arrival → apparent 0; the delay still counts.
      {"date ahead", Timed(100, 102, 200, 0), 110, 10},
      // Origin clock slow: apparent age 100 dominates.
      {"date behind", Timed(100, 102, 2, 0), 110, 108},
      {"date behind with age", Timed(100, 102, 2, 500), 110, 510},
      // now before the response arrived (another worker's clock): resident 0.
      {"now before arrival", Timed(100, 102, 101, 0), 90, 2},
      // request_time after response_time: the delay counts as 0.
      {"negative delay", Timed(105, 102, 102, 3), 102, 3},
      {"zero", Timed(kT, kT, kT, 0), kT, 0},
      {"max age header", Timed(kT, kT, kT, kMaxDeltaSeconds), kT + 1, kMaxDeltaSeconds + 1},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(CurrentAge(c.entry, c.now), c.age) << c.name;
  }
}

// =============================================================================================
// Evaluate.

// A stored response fetched at kT with `lifetime` seconds of freshness and directives `cc`.
Entry Stored(std::string_view cc, int64_t lifetime = 100, bool validator = true) {
  Entry e = Timed(kT, kT, kT, 0);
  e.status = 200;
  e.cc = Cc(cc);
  e.freshness_lifetime = lifetime;
  if (validator) {
    e.etag = "\"v1\"";
  }
  return e;
}

struct EvalCase {
  const char* name;
  Entry entry;
  Request req;
  int64_t age;
  Verdict want;
};

const char* Name(Verdict v) {
  switch (v) {
    case Verdict::kFresh:
      return "fresh";
    case Verdict::kStaleWhileRevalidate:
      return "swr";
    case Verdict::kRevalidate:
      return "revalidate";
    case Verdict::kMiss:
      return "miss";
  }
  return "?";
}

// Freshness with the request's and the response's directives, at the window edges.
TEST(PolicyEvaluateTest, Table) {
  Entry star = Stored("");
  star.vary_star = true;
  const Request no_cache_request = Get("no-cache");
  const EvalCase cases[] = {
      {"fresh", Stored(""), Get(), 50, Verdict::kFresh},
      {"fresh edge", Stored(""), Get(), 99, Verdict::kFresh},
      {"stale edge", Stored(""), Get(), 100, Verdict::kRevalidate},
      {"stale, no validator", Stored("", 100, false), Get(), 100, Verdict::kMiss},
      {"lifetime 0", Stored("", 0), Get(), 0, Verdict::kRevalidate},
      {"vary star", star, Get(), 0, Verdict::kMiss},
      // Request max-age: age must be <= it.
      {"req max-age ok", Stored(""), Get("max-age=30"), 30, Verdict::kFresh},
      {"req max-age over", Stored(""), Get("max-age=30"), 31, Verdict::kRevalidate},
      {"req max-age=0 at 0", Stored(""), Get("max-age=0"), 0, Verdict::kFresh},
      {"req max-age=0 at 1", Stored(""), Get("max-age=0"), 1, Verdict::kRevalidate},
      {"req max-age blocks swr", Stored("stale-while-revalidate=60"), Get("max-age=30"), 110,
       Verdict::kRevalidate},
      // Request min-fresh: lifetime - age >= it.
      {"min-fresh ok", Stored(""), Get("min-fresh=20"), 80, Verdict::kFresh},
      {"min-fresh over", Stored(""), Get("min-fresh=20"), 81, Verdict::kRevalidate},
      {"min-fresh no validator", Stored("", 100, false), Get("min-fresh=20"), 81, Verdict::kMiss},
      // Request max-stale.
      {"max-stale any", Stored(""), Get("max-stale"), 100000, Verdict::kFresh},
      {"max-stale edge", Stored(""), Get("max-stale=10"), 110, Verdict::kFresh},
      {"max-stale over", Stored(""), Get("max-stale=10"), 111, Verdict::kRevalidate},
      {"max-stale vs must-revalidate", Stored("must-revalidate"), Get("max-stale"), 101,
       Verdict::kRevalidate},
      {"max-stale vs proxy-revalidate", Stored("proxy-revalidate"), Get("max-stale=50"), 101,
       Verdict::kRevalidate},
      {"max-stale vs s-maxage", Stored("s-maxage=100"), Get("max-stale"), 101,
       Verdict::kRevalidate},
      {"max-stale vs no-cache", Stored("no-cache"), Get("max-stale"), 0, Verdict::kRevalidate},
      {"max-stale fresh", Stored("must-revalidate"), Get("max-stale"), 50, Verdict::kFresh},
      // no-cache on either side.
      {"resp no-cache", Stored("no-cache"), Get(), 0, Verdict::kRevalidate},
      {"resp no-cache, no validator", Stored("no-cache", 100, false), Get(), 0, Verdict::kMiss},
      {"req no-cache", Stored(""), no_cache_request, 0, Verdict::kRevalidate},
      {"req no-cache vs immutable", Stored("immutable"), no_cache_request, 0, Verdict::kRevalidate},
      {"req no-store serves", Stored(""), Get("no-store"), 10, Verdict::kFresh},
      // stale-while-revalidate: [lifetime, lifetime + window).
      {"swr start", Stored("stale-while-revalidate=30"), Get(), 100,
       Verdict::kStaleWhileRevalidate},
      {"swr last second", Stored("stale-while-revalidate=30"), Get(), 129,
       Verdict::kStaleWhileRevalidate},
      {"swr over", Stored("stale-while-revalidate=30"), Get(), 130, Verdict::kRevalidate},
      {"swr=0", Stored("stale-while-revalidate=0"), Get(), 100, Verdict::kRevalidate},
      {"swr no validator", Stored("stale-while-revalidate=30", 100, false), Get(), 110,
       Verdict::kStaleWhileRevalidate},
      {"swr vs must-revalidate", Stored("stale-while-revalidate=30, must-revalidate"), Get(), 110,
       Verdict::kRevalidate},
      {"swr vs proxy-revalidate", Stored("stale-while-revalidate=30, proxy-revalidate"), Get(), 110,
       Verdict::kRevalidate},
      {"swr with s-maxage", Stored("s-maxage=100, stale-while-revalidate=30"), Get(), 110,
       Verdict::kStaleWhileRevalidate},
      {"swr vs no-cache", Stored("no-cache, stale-while-revalidate=30"), Get(), 110,
       Verdict::kRevalidate},
      {"max-stale beats swr", Stored("stale-while-revalidate=30"), Get("max-stale=20"), 110,
       Verdict::kFresh},
  };
  for (const EvalCase& c : cases) {
    const Serve s = Evaluate(c.entry, c.req, kT + c.age);
    EXPECT_STREQ(Name(s.verdict), Name(c.want)) << c.name;
    EXPECT_EQ(s.age, c.age) << c.name;
  }
}

// The age Evaluate reports is CurrentAge, Age header and delays included.
TEST(PolicyEvaluateTest, ReportsCurrentAge) {
  Entry e = Stored("", 100);
  e.request_time = kT - 2;
  e.age_value = 40;
  const Serve s = Evaluate(e, Get(), kT + 10);
  EXPECT_EQ(s.age, 52);
  EXPECT_EQ(s.verdict, Verdict::kFresh);
  EXPECT_EQ(Evaluate(e, Get(), kT + 58).verdict, Verdict::kRevalidate);
}

// =============================================================================================
// StaleIfErrorAllowed (RFC 5861 §4).

TEST(PolicyStaleIfErrorTest, Windows) {
  struct Case {
    const char* name;
    Entry entry;
    Request req;
    int64_t age;
    bool want;
  };
  const Case cases[] = {
      {"response window", Stored("stale-if-error=60"), Get(), 159, true},
      {"response window over", Stored("stale-if-error=60"), Get(), 160, false},
      {"request window", Stored(""), Get("stale-if-error=60"), 159, true},
      {"request window over", Stored(""), Get("stale-if-error=60"), 160, false},
      {"larger window wins", Stored("stale-if-error=10"), Get("stale-if-error=60"), 150, true},
      {"larger window wins 2", Stored("stale-if-error=60"), Get("stale-if-error=10"), 150, true},
      {"none", Stored(""), Get(), 101, false},
      {"fresh with window", Stored("stale-if-error=0"), Get(), 50, true},
      {"must-revalidate", Stored("stale-if-error=60, must-revalidate"), Get(), 110, false},
      {"proxy-revalidate", Stored("stale-if-error=60, proxy-revalidate"), Get(), 110, false},
      {"no-cache", Stored("stale-if-error=60, no-cache"), Get(), 110, false},
      {"s-maxage does not block", Stored("stale-if-error=60, s-maxage=100"), Get(), 110, true},
      {"no validator needed", Stored("stale-if-error=60", 100, false), Get(), 110, true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(StaleIfErrorAllowed(c.entry, c.req, kT + c.age), c.want) << c.name;
  }
}

// =============================================================================================
// ClientNotModified (RFC 9110 §13.1.2, §13.1.3, §13.2.2).

Entry WithValidators(std::string etag, std::string last_modified, uint16_t status = 200) {
  Entry e = Stored("max-age=100");
  e.status = status;
  e.etag = std::move(etag);
  e.last_modified = std::move(last_modified);
  return e;
}

TEST(PolicyConditionalTest, ClientNotModified) {
  const std::string lm = Date(kT - 1000);
  const Entry strong = WithValidators("\"abc\"", lm);
  const Entry weak = WithValidators("W/\"abc\"", lm);
  const Entry no_etag = WithValidators("", lm);
  const Entry nothing = WithValidators("", "");
  const Entry not_found = WithValidators("\"abc\"", lm, 404);
  struct Case {
    const char* name;
    const Entry* entry;
    FakeHeaders request;
    bool want;
  };
  const Case cases[] = {
      {"inm strong", &strong, {{"If-None-Match", "\"abc\""}}, true},
      {"inm weak vs strong", &strong, {{"If-None-Match", "W/\"abc\""}}, true},
      {"inm strong vs weak", &weak, {{"If-None-Match", "\"abc\""}}, true},
      {"inm weak vs weak", &weak, {{"If-None-Match", "W/\"abc\""}}, true},
      {"inm list", &strong, {{"If-None-Match", "\"x\", W/\"abc\" ,\"y\""}}, true},
      {"inm two fields", &strong, {{"If-None-Match", "\"x\""}, {"If-None-Match", "\"abc\""}}, true},
      {"inm no match", &strong, {{"If-None-Match", "\"x\",\"y\""}}, false},
      {"inm case matters", &strong, {{"If-None-Match", "\"ABC\""}}, false},
      {"inm unquoted", &strong, {{"If-None-Match", "abc"}}, false},
      {"inm junk after", &strong, {{"If-None-Match", "\"abc\"junk"}}, false},
      {"inm garbage", &strong, {{"If-None-Match", ",,,;q=x"}}, false},
      {"inm star", &strong, {{"If-None-Match", "*"}}, true},
      {"inm star no etag", &nothing, {{"If-None-Match", " * "}}, true},
      {"inm no etag", &no_etag, {{"If-None-Match", "\"abc\""}}, false},
      // If-None-Match decides alone: If-Modified-Since is ignored.
      {"inm beats ims",
       &strong,
       {{"If-None-Match", "\"x\""}, {"If-Modified-Since", Date(kT)}},
       false},
      {"inm beats ims 2",
       &strong,
       {{"If-None-Match", "\"abc\""}, {"If-Modified-Since", Date(kT - 5000)}},
       true},
      // If-Modified-Since against Last-Modified.
      {"ims equal", &no_etag, {{"If-Modified-Since", lm}}, true},
      {"ims later", &no_etag, {{"If-Modified-Since", Date(kT)}}, true},
      {"ims earlier", &no_etag, {{"If-Modified-Since", Date(kT - 1001)}}, false},
      {"ims asctime", &no_etag, {{"If-Modified-Since", "Tue Nov 14 22:13:20 2023"}}, true},
      {"ims invalid", &no_etag, {{"If-Modified-Since", "yesterday"}}, false},
      {"ims two members",
       &no_etag,
       {{"If-Modified-Since", Date(kT)}, {"If-Modified-Since", Date(kT)}},
       false},
      // Without Last-Modified, the Date (kT) is compared.
      {"ims vs date", &nothing, {{"If-Modified-Since", Date(kT)}}, true},
      {"ims vs date earlier", &nothing, {{"If-Modified-Since", Date(kT - 1)}}, false},
      {"no conditional", &strong, {}, false},
      {"if-match ignored", &strong, {{"If-Match", "\"zzz\""}}, false},
      {"404 never 304", &not_found, {{"If-None-Match", "\"abc\""}}, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ClientNotModified(*c.entry, c.request), c.want) << c.name;
  }
}

// =============================================================================================
// Validation requests (RFC 9111 §4.3.1).

TEST(PolicyValidatorsTest, AddValidatorsAndCanRevalidate) {
  const std::string lm = Date(kT - 1000);
  std::string lines = "GET / HTTP/1.1\r\n";
  AddValidators(WithValidators("W/\"v1\"", lm), &lines);
  EXPECT_EQ(lines,
            "GET / HTTP/1.1\r\nIf-None-Match: W/\"v1\"\r\nIf-Modified-Since: " + lm + "\r\n");
  EXPECT_TRUE(CanRevalidate(WithValidators("W/\"v1\"", lm)));

  lines.clear();
  AddValidators(WithValidators("\"v1\"", ""), &lines);
  EXPECT_EQ(lines, "If-None-Match: \"v1\"\r\n");
  EXPECT_TRUE(CanRevalidate(WithValidators("\"v1\"", "")));

  lines.clear();
  AddValidators(WithValidators("", lm), &lines);
  EXPECT_EQ(lines, "If-Modified-Since: " + lm + "\r\n");
  EXPECT_TRUE(CanRevalidate(WithValidators("", lm)));

  lines.clear();
  AddValidators(WithValidators("", ""), &lines);
  EXPECT_EQ(lines, "");
  EXPECT_FALSE(CanRevalidate(WithValidators("", "")));

  // A value that would split the head is never sent.
  lines.clear();
  const Entry evil = WithValidators("\"a\"\r\nX-Evil: 1", std::string("x\0y", 3));
  AddValidators(evil, &lines);
  EXPECT_EQ(lines, "");
  EXPECT_FALSE(CanRevalidate(evil));
}

// =============================================================================================
// Vary normalisation and matching (RFC 9111 §4.1; BAD-INPUTS K3, Z4).

TEST(PolicyVaryTest, NormalisesAcceptEncoding) {
  struct Case {
    const char* value;
    const char* want;
  };
  const Case cases[] = {
      {"gzip, br", "br,gzip"},
      {"br,gzip", "br,gzip"},
      {"BR;q=1, gzip", "br,gzip"},
      {" gzip ;  q=0.5 , br;Q=1.0", "br,gzip"},
      {"gzip;q=1.000, br;q=0.001", "br,gzip"},
      {"zstd, deflate, br, gzip", "br,deflate,gzip,zstd"},
      {"gzip;q=0", ""},
      {"gzip;q=0.000, br", "br"},
      {"gzip;q=0.", ""},
      {"*", "br,deflate,gzip,zstd"},
      {"*, gzip;q=0", "br,deflate,zstd"},
      {"*;q=0, br", "br"},
      {"*;q=0", ""},
      {"x-gzip", "gzip"},
      {"X-GZIP;q=0.3", "gzip"},
      {"identity", ""},
      {"identity;q=0, *;q=0", ""},
      {"compress, gzip", "gzip"},
      {"", ""},
      {",,,;q=x", ""},
      {";;;===", ""},
      {"gzip;q=x", ""},
      {"gzip;q=x, br", "br"},
      {"gzip;q=1.5", ""},
      {"gzip;q=1.001", ""},
      {"gzip;q=0.0001", ""},
      {"gzip;q=-1", ""},
      {"gzip;q=.5", ""},
      {"gzip;q=\"0.5\"", ""},
      {"gzip, gzip;q=0", ""},
      {"gzip;q=0, gzip", ""},
      {"gzip;level=9", "gzip"},
      {"gzip br", ""},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(NormaliseVaryValue("accept-encoding", c.value), c.want) << "[" << c.value << "]";
  }
  EXPECT_EQ(NormaliseVaryValue("accept-encoding", std::string("gz\0ip, br", 9)), "br");
}

// A 64 KiB hostile Accept-Encoding normalises in one pass, to a short value.
TEST(PolicyVaryTest, LargeAcceptEncodingIsBounded) {
  std::string many;
  while (many.size() < 64 * 1024) {
    many += "gzip;q=0.5,";
  }
  EXPECT_EQ(NormaliseVaryValue("accept-encoding", many), "gzip");
  EXPECT_EQ(NormaliseVaryValue("accept-encoding", std::string(64 * 1024, ',')), "");
  EXPECT_EQ(NormaliseVaryValue("accept-encoding", std::string(64 * 1024, ';')), "");
  EXPECT_EQ(NormaliseVaryValue("accept-encoding", "br;" + std::string(64 * 1024, 'q')), "br");
  EXPECT_EQ(NormaliseVaryValue("accept-encoding", std::string(64 * 1024, '\xff')), "");
}

// Other fields: whitespace trimmed at the ends and around commas, nothing else touched.
TEST(PolicyVaryTest, NormalisesOtherFields) {
  EXPECT_EQ(NormaliseVaryValue("x-lang", " a ,  b "), "a,b");
  EXPECT_EQ(NormaliseVaryValue("x-lang", "a,b"), "a,b");
  EXPECT_EQ(NormaliseVaryValue("x-lang", "\ta\t,\tb\t"), "a,b");
  EXPECT_EQ(NormaliseVaryValue("x-lang", "En-US"), "En-US");
  EXPECT_EQ(NormaliseVaryValue("x-lang", "a b"), "a b");
  EXPECT_EQ(NormaliseVaryValue("x-lang", "a,,b"), "a,,b");
  EXPECT_EQ(NormaliseVaryValue("x-lang", ""), "");
  EXPECT_EQ(NormaliseVaryValue("x-lang", "   "), "");
  const std::string big(64 * 1024, ' ');
  EXPECT_EQ(NormaliseVaryValue("x-lang", big + "," + big + "x" + big), ",x");
}

// Requests that accept the same codings share a variant; others do not.
TEST(PolicyVaryTest, VaryMatches) {
  const Fields response{{"Cache-Control", "max-age=60"},
                        {"Vary", "Accept-Encoding"},
                        {"Vary", "accept-encoding, X-Lang"}};
  Entry e;
  BuildEntryMeta(Get(), 200, response, FakeHeaders{{"Accept-Encoding", "gzip, br"}}, kT, kT,
                 Options{}, &e);
  ASSERT_EQ(e.vary.size(), 2u);

  EXPECT_TRUE(VaryMatches(e, FakeHeaders{{"accept-encoding", "br;q=1,gzip"}}));
  EXPECT_TRUE(VaryMatches(e, FakeHeaders{{"Accept-Encoding", "BR, GZIP, identity"}}));
  EXPECT_TRUE(VaryMatches(e, FakeHeaders{{"Accept-Encoding", "br"}, {"Accept-Encoding", "gzip"}}));
  EXPECT_FALSE(VaryMatches(e, FakeHeaders{{"Accept-Encoding", "gzip"}}));
  EXPECT_FALSE(VaryMatches(e, FakeHeaders{{"Accept-Encoding", "gzip, br, zstd"}}));
  EXPECT_FALSE(VaryMatches(e, FakeHeaders{}));  // stored with a value, requested without
  EXPECT_FALSE(VaryMatches(e, FakeHeaders{{"Accept-Encoding", "gzip, br"}, {"X-Lang", "fr"}}));

  Entry empty_ae;
  BuildEntryMeta(Get(), 200, response, FakeHeaders{{"Accept-Encoding", ",,,;q=x"}}, kT, kT,
                 Options{}, &empty_ae);
  EXPECT_TRUE(VaryMatches(empty_ae, FakeHeaders{{"Accept-Encoding", "identity"}}));
  EXPECT_TRUE(VaryMatches(empty_ae, FakeHeaders{{"Accept-Encoding", ""}}));
  EXPECT_FALSE(VaryMatches(empty_ae, FakeHeaders{}));

  Entry no_vary;
  EXPECT_TRUE(VaryMatches(no_vary, FakeHeaders{{"Accept-Encoding", "gzip"}}));
  Entry star;
  star.vary_star = true;
  EXPECT_FALSE(VaryMatches(star, FakeHeaders{}));
}

// =============================================================================================
// Refresh304 (RFC 9111 §3.2, §4.3.4).

Entry StoredForRefresh(std::string etag = "\"v1\"", std::string last_modified = "") {
  std::vector<std::pair<std::string, std::string>> fields = {{"Date", Date(kT)},
                                                             {"Cache-Control", "max-age=60"},
                                                             {"Content-Type", "text/plain"},
                                                             {"Content-Length", "5"},
                                                             {"Content-Encoding", "gzip"},
                                                             {"X-Old", "1"},
                                                             {"X-Multi", "a"},
                                                             {"X-Multi", "b"},
                                                             {"Age", "10"},
                                                             {"Vary", "Accept-Encoding"}};
  if (!etag.empty()) {
    fields.push_back({"ETag", etag});
  }
  if (!last_modified.empty()) {
    fields.push_back({"Last-Modified", last_modified});
  }
  std::vector<HeaderView> views;
  for (const auto& [n, v] : fields) {
    views.push_back({n, v});
  }
  Entry e;
  BuildEntryMeta(Get(), 200, views, FakeHeaders{{"Accept-Encoding", "gzip"}}, kT - 1, kT, Options{},
                 &e);
  e.body = std::make_shared<const std::string>("hello");
  e.id = 7;
  e.source_id = 3;
  e.coding = 2;
  e.charge = 999;
  return e;
}


// The 304's fields replace the stored ones, except those the stored bytes depend on.
TEST(PolicyRefreshTest, MergesFieldsAndRecomputesFreshness) {
  const Entry old = StoredForRefresh();
  const Fields r304{{"Date", Date(kT + 100)},
                    {"Cache-Control", "max-age=120"},
                    {"ETag", "\"v1\""},
                    {"Content-Length", "0"},
                    {"Content-Encoding", "br"},
                    {"X-Multi", "c"},
                    {"Set-Cookie", "s=1"},
                    {"Age", "5"},
                    {"Vary", "*"},
                    {"Connection", "close"},
                    {"X-New", "n"}};
  Entry out;
  ASSERT_EQ(Refresh304(old, r304, kT + 99, kT + 100, Options{}, &out), Refresh::kStore);
  EXPECT_EQ(out.body, old.body);  // the same shared string
  EXPECT_EQ(out.status, 200);
  EXPECT_EQ(out.request_time, kT + 99);
  EXPECT_EQ(out.response_time, kT + 100);
  EXPECT_EQ(out.date_value, kT + 100);
  EXPECT_EQ(out.age_value, 5);
  EXPECT_EQ(out.freshness_lifetime, 120);
  EXPECT_EQ(out.cc.max_age, 120u);
  EXPECT_EQ(out.etag, "\"v1\"");
  EXPECT_EQ(out.id, 0u);
  EXPECT_EQ(out.charge, 0u);
  EXPECT_EQ(out.source_id, 3u);
  EXPECT_EQ(out.coding, 2);
  ASSERT_EQ(out.vary.size(), 1u);
  EXPECT_EQ(out.vary[0].value, "gzip");
  EXPECT_FALSE(out.vary_star);

  EXPECT_EQ(FieldValues(out, "content-type"), "text/plain");
  EXPECT_EQ(FieldValues(out, "content-length"), "5");
  EXPECT_EQ(FieldValues(out, "content-encoding"), "gzip");
  EXPECT_EQ(FieldValues(out, "x-old"), "1");
  EXPECT_EQ(FieldValues(out, "x-multi"), "c");
  EXPECT_EQ(FieldValues(out, "x-new"), "n");
  EXPECT_EQ(FieldValues(out, "cache-control"), "max-age=120");
  EXPECT_EQ(FieldValues(out, "vary"), "Accept-Encoding");
  EXPECT_EQ(FieldValues(out, "set-cookie"), "");
  EXPECT_EQ(FieldValues(out, "connection"), "");
  EXPECT_EQ(FieldValues(out, "age"), "");
  EXPECT_EQ(FieldValues(out, "date"), Date(kT + 100));
  EXPECT_EQ(CurrentAge(out, kT + 100), 6);  // Age 5 + 1 s of delay
}

// A 304 without Date is dated by its arrival; the old Date does not survive.
TEST(PolicyRefreshTest, MissingDateUsesResponseTime) {
  const Entry old = StoredForRefresh();
  const Fields r304{{"ETag", "\"v1\""}};
  Entry out;
  ASSERT_EQ(Refresh304(old, r304, kT + 200, kT + 200, Options{}, &out), Refresh::kStore);
  EXPECT_EQ(out.date_value, kT + 200);
  EXPECT_EQ(FieldValues(out, "date"), Date(kT + 200));
  EXPECT_EQ(out.freshness_lifetime, 60);  // the stored max-age still applies
  EXPECT_EQ(CurrentAge(out, kT + 200), 0);
  EXPECT_EQ(Evaluate(out, Get(), kT + 230).verdict, Verdict::kFresh);
}

// Set-Cookie is taken from a 304 only when the options store cookies.
TEST(PolicyRefreshTest, SetCookieOnlyWhenAllowed) {
  const Entry old = StoredForRefresh();
  const Fields r304{{"ETag", "\"v1\""}, {"Set-Cookie", "s=1"}};
  Entry out;
  ASSERT_EQ(Refresh304(old, r304, kT, kT, StoringCookies(), &out), Refresh::kStore);
  EXPECT_EQ(FieldValues(out, "set-cookie"), "s=1");
}

// Which 304s apply to the stored response (§4.3.4), and which make it unstorable.
TEST(PolicyRefreshTest, ValidatorMatching) {
  const std::string lm = Date(kT - 1000);
  struct Case {
    const char* name;
    Entry old;
    Fields r304;
    Refresh want;
  };
  const Case cases[] = {
      {"same strong", StoredForRefresh("\"v1\""), {{"ETag", "\"v1\""}}, Refresh::kStore},
      {"other strong", StoredForRefresh("\"v1\""), {{"ETag", "\"v2\""}}, Refresh::kMismatch},
      {"weak vs strong stored",
       StoredForRefresh("\"v1\""),
       {{"ETag", "W/\"v1\""}},
       Refresh::kStore},
      {"weak vs weak", StoredForRefresh("W/\"v1\""), {{"ETag", "W/\"v1\""}}, Refresh::kStore},
      {"strong vs weak stored",
       StoredForRefresh("W/\"v1\""),
       {{"ETag", "\"v1\""}},
       Refresh::kMismatch},
      {"etag but none stored", StoredForRefresh("", lm), {{"ETag", "\"v1\""}}, Refresh::kMismatch},
      {"no validator",
       StoredForRefresh("\"v1\""),
       {{"Cache-Control", "max-age=5"}},
       Refresh::kStore},
      {"same last-modified", StoredForRefresh("", lm), {{"Last-Modified", lm}}, Refresh::kStore},
      {"other last-modified",
       StoredForRefresh("", lm),
       {{"Last-Modified", Date(kT)}},
       Refresh::kMismatch},
      {"no-store",
       StoredForRefresh(),
       {{"ETag", "\"v1\""}, {"Cache-Control", "no-store"}},
       Refresh::kServeOnly},
      {"private", StoredForRefresh(), {{"Cache-Control", "private"}}, Refresh::kServeOnly},
  };
  for (const Case& c : cases) {
    Entry out;
    out.status = 999;  // sentinel: untouched on mismatch
    EXPECT_EQ(Refresh304(c.old, c.r304, kT, kT + 1, Options{}, &out), c.want) << c.name;
    EXPECT_EQ(out.status, c.want == Refresh::kMismatch ? 999 : 200) << c.name;
  }
}

// =============================================================================================
// Invalidation (RFC 9111 §4.4).

TEST(PolicyInvalidationTest, UnsafeMethodsWithNonErrorStatus) {
  struct Case {
    const char* method;
    uint16_t status;
    bool want;
  };
  const Case cases[] = {
      {"POST", 200, true},  {"PUT", 204, true},      {"DELETE", 200, true},  {"PATCH", 303, true},
      {"POST", 399, true},  {"FOO", 201, true},      {"post", 200, true},    {"POST", 199, false},
      {"POST", 400, false}, {"POST", 500, false},    {"DELETE", 404, false}, {"GET", 200, false},
      {"HEAD", 200, false}, {"OPTIONS", 200, false}, {"TRACE", 200, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(InvalidatesOnUnsafe(c.method, c.status), c.want) << c.method << " " << c.status;
  }
}

}  // namespace
}  // namespace torii::cache
