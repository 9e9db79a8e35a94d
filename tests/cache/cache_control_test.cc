// tests/cache/cache_control_test.cc: ParseCacheControl (cache/cache_control.h): directive
// spellings, quoted arguments, duplicates, invalid and overflowing values, hostile input.
#include "cache/cache_control.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>

// The expected values below are designated initializers that name only the directives set;
// GCC 12 warns about the members left to their defaults, which is the point here.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace torii::cache {

// Readable failure messages (found by ADL, so it lives in the type's namespace).
void PrintTo(const CacheControl& cc, std::ostream* os) {
  const auto delta = [&](const char* name, const std::optional<uint32_t>& v) {
    if (v) {
      *os << name << "=" << *v << " ";
    }
  };
  delta("max-age", cc.max_age);
  delta("s-maxage", cc.s_maxage);
  delta("max-stale", cc.max_stale);
  delta("min-fresh", cc.min_fresh);
  delta("swr", cc.stale_while_revalidate);
  delta("sie", cc.stale_if_error);
  const auto flag = [&](const char* name, bool v) {
    if (v) {
      *os << name << " ";
    }
  };
  flag("max-stale(any)", cc.max_stale_any);
  flag("no-store", cc.no_store);
  flag("no-cache", cc.no_cache);
  flag("private", cc.private_);
  flag("public", cc.public_);
  flag("must-revalidate", cc.must_revalidate);
  flag("proxy-revalidate", cc.proxy_revalidate);
  flag("no-transform", cc.no_transform);
  flag("only-if-cached", cc.only_if_cached);
  flag("immutable", cc.immutable);
  *os << "}";
}

namespace {

CacheControl Parse(std::initializer_list<std::string_view> fields) {
  CacheControl cc;
  for (std::string_view f : fields) {
    ParseCacheControl(f, &cc);
  }
  return cc;
}

struct Case {
  const char* value;
  CacheControl want;
};

// Spellings of single directives and lists: case, whitespace, quotes, escapes, empty elements,
// unknown directives, arguments that are invalid or overflow.
TEST(CacheControlTest, ParsesOneFieldValue) {
  const Case cases[] = {
      {"", {}},
      {",,,", {}},
      {" , ,\t, ", {}},
      {"max-age=60", {.max_age = 60}},
      {"MAX-AGE=60", {.max_age = 60}},
      {"Max-Age=60", {.max_age = 60}},
      {"  max-age=60  ,  public ", {.max_age = 60, .public_ = true}},
      {"\tmax-age=60\t", {.max_age = 60}},
      {",,,max-age=5,,,", {.max_age = 5}},
      {"max-age=\"60\"", {.max_age = 60}},
      {"max-age=\"6\\0\"", {.max_age = 60}},  // quoted-pair: \0 is the digit 0
      {"max-age=0", {.max_age = 0}},
      {"max-age=007", {.max_age = 7}},
      // Invalid max-age reads as 0: stale (RFC 9111 §4.2.1).
      {"max-age=abc", {.max_age = 0}},
      {"max-age=-5", {.max_age = 0}},
      {"max-age=+5", {.max_age = 0}},
      {"max-age=5.5", {.max_age = 0}},
      {"max-age", {.max_age = 0}},
      {"max-age=", {.max_age = 0}},
      {"max-age=\"\"", {.max_age = 0}},
      {"max-age=5 6", {.max_age = 0}},
      {"max-age = 5", {.max_age = 0}},
      {"max-age=5;x", {.max_age = 0}},
      {"max-age=\"5", {.max_age = 0}},  // unterminated quote
      {"s-maxage=x", {.s_maxage = 0}},
      // Overflow clamps to 2^31 (RFC 9111 §1.2.2).
      {"max-age=2147483647", {.max_age = 2147483647u}},
      {"max-age=2147483648", {.max_age = 2147483648u}},
      {"max-age=2147483649", {.max_age = 2147483648u}},
      {"max-age=99999999999999999999999999999999", {.max_age = 2147483648u}},
      {"s-maxage=30", {.s_maxage = 30}},
      {"max-stale", {.max_stale_any = true}},
      {"max-stale=10", {.max_stale = 10}},
      {"max-stale=abc", {}},  // grants nothing when invalid
      {"min-fresh=5", {.min_fresh = 5}},
      {"min-fresh=-1", {}},
      {"stale-while-revalidate=30", {.stale_while_revalidate = 30}},
      {"stale-while-revalidate=x", {}},
      {"stale-if-error=600", {.stale_if_error = 600}},
      {"stale-if-error", {}},
      {"no-store", {.no_store = true}},
      {"NO-STORE", {.no_store = true}},
      {"no-cache", {.no_cache = true}},
      {"no-cache=\"Set-Cookie, Authorization\", max-age=5", {.max_age = 5, .no_cache = true}},
      {"no-cache=set-cookie", {.no_cache = true}},
      {"private", {.private_ = true}},
      {"private=\"X-Secret\"", {.private_ = true}},
      {"public", {.public_ = true}},
      {"must-revalidate, proxy-revalidate", {.must_revalidate = true, .proxy_revalidate = true}},
      {"no-transform, only-if-cached, immutable",
       {.no_transform = true, .only_if_cached = true, .immutable = true}},
      // Restrictive directives apply however they end; relaxing ones only when exact.
      {"no-store junk", {.no_store = true}},
      {"no-store=\"x\"", {.no_store = true}},
      {"public=1", {}},
      {"public junk", {}},
      {"immutable=yes", {}},
      // Unknown directives, commas inside quotes, elements without a name.
      {"foo=bar, baz, max-age=1", {.max_age = 1}},
      {"foo=\"a,b,max-age=1\"", {}},
      {"foo=\"a\\\",max-age=1\"", {}},  // escaped quote does not end the string
      {"no-cache=\"abc, max-age=1", {.no_cache = true}},
      {"=5, max-age=3", {.max_age = 3}},
      {"\"quoted\", no-store", {.no_store = true}},
      {"@@@, no-store", {.no_store = true}},
      {"max-age=1,public,", {.max_age = 1, .public_ = true}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Parse({c.value}), c.want) << "value: [" << c.value << "]";
  }
}

// A directive given several times keeps its most conservative value, within one field and
// across fields, in either order.
TEST(CacheControlTest, DuplicatesKeepTheMostConservativeValue) {
  EXPECT_EQ(Parse({"max-age=60, max-age=30"}), CacheControl{.max_age = 30});
  EXPECT_EQ(Parse({"max-age=30", "max-age=60"}), CacheControl{.max_age = 30});
  EXPECT_EQ(Parse({"max-age=60", "max-age=30"}), CacheControl{.max_age = 30});
  EXPECT_EQ(Parse({"max-age=60", "max-age=bogus"}), CacheControl{.max_age = 0});
  EXPECT_EQ(Parse({"s-maxage=10, s-maxage=20"}), CacheControl{.s_maxage = 10});
  EXPECT_EQ(Parse({"min-fresh=5, min-fresh=10"}), CacheControl{.min_fresh = 10});
  EXPECT_EQ(Parse({"min-fresh=10", "min-fresh=5"}), CacheControl{.min_fresh = 10});
  EXPECT_EQ(Parse({"stale-while-revalidate=30, stale-while-revalidate=10"}),
            CacheControl{.stale_while_revalidate = 10});
  EXPECT_EQ(Parse({"stale-if-error=30", "stale-if-error=x", "stale-if-error=20"}),
            CacheControl{.stale_if_error = 20});
  // A valued max-stale beats a bare one, whatever the order.
  EXPECT_EQ(Parse({"max-stale, max-stale=5"}), CacheControl{.max_stale = 5});
  EXPECT_EQ(Parse({"max-stale=5", "max-stale"}), CacheControl{.max_stale = 5});
  EXPECT_EQ(Parse({"max-stale=9, max-stale=5, max-stale"}), CacheControl{.max_stale = 5});
  EXPECT_EQ(Parse({"max-stale", "max-stale"}), CacheControl{.max_stale_any = true});
  // Flags accumulate across fields.
  EXPECT_EQ(Parse({"public", "no-cache", "max-age=5"}),
            (CacheControl{.max_age = 5, .no_cache = true, .public_ = true}));
}

// Large hostile values finish in one pass and read as expected.
TEST(CacheControlTest, HostileValuesAreBoundedAndSafe) {
  const std::string commas(64 * 1024, ',');
  EXPECT_EQ(Parse({commas}), CacheControl{});
  EXPECT_EQ(Parse({commas + "max-age=7" + commas}), CacheControl{.max_age = 7});

  const std::string quotes(64 * 1024, '"');
  EXPECT_EQ(Parse({quotes}), CacheControl{});
  EXPECT_EQ(Parse({"no-store, " + quotes}), CacheControl{.no_store = true});

  const std::string backslashes = "x=\"" + std::string(64 * 1024, '\\');
  EXPECT_EQ(Parse({backslashes}), CacheControl{});

  const std::string digits = "max-age=" + std::string(64 * 1024, '9');
  EXPECT_EQ(Parse({digits}), CacheControl{.max_age = 2147483648u});

  std::string many;
  for (int i = 0; i < 5000; ++i) {
    many += "max-age=" + std::to_string(10000 - i) + ",";
  }
  EXPECT_EQ(Parse({many}), CacheControl{.max_age = 5001});

  const std::string with_nul("no-cache\0, max-age=3", 20);
  EXPECT_EQ(Parse({with_nul}), (CacheControl{.max_age = 3, .no_cache = true}));

  const std::string high_bytes = "\xff\xfe=\x80, public";
  EXPECT_EQ(Parse({high_bytes}), CacheControl{.public_ = true});
}

// The struct stays small: it is stored in every Entry.
TEST(CacheControlTest, StructIsCompact) { EXPECT_LE(sizeof(CacheControl), 64u); }

}  // namespace
}  // namespace torii::cache
