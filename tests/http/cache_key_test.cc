// The cache key: which request parts name a stored response (BAD-INPUTS K1, K5).
#include "http/cache_key.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace torii::http {
namespace {

std::string Key(std::string_view host, std::string_view target, bool key_query = true,
                std::vector<std::string> key_headers = {},
                std::vector<HeaderView> headers = {}) {
  std::string out;
  BuildCacheKey("http", host, target, key_query, key_headers, headers, &out);
  return out;
}

TEST(CacheKey, SchemeHostPortPathAndQuery) {
  EXPECT_EQ(Key("Example.COM:8080", "/a/b?x=1"), "http://example.com:8080/a/b?x=1");
  // K1: another host, another port, another scheme: another key.
  EXPECT_NE(Key("a.test", "/x"), Key("b.test", "/x"));
  EXPECT_NE(Key("a.test", "/x"), Key("a.test:81", "/x"));
  std::string https;
  BuildCacheKey("https", "a.test", "/x", true, {}, {}, &https);
  EXPECT_NE(https, Key("a.test", "/x"));
  // The path is taken as routed: no decoding, so /account%2Fx.css is not /account/x.css (K5).
  EXPECT_NE(Key("a", "/account%2Fx.css"), Key("a", "/account/x.css"));
  EXPECT_NE(Key("a", "/account;x.css"), Key("a", "/account"));
}

TEST(CacheKey, QueryCanBeLeftOut) {
  EXPECT_EQ(Key("a", "/p?utm=1", false), "http://a/p");
  EXPECT_EQ(Key("a", "/p?utm=1", false), Key("a", "/p?utm=2", false));
  EXPECT_NE(Key("a", "/p?utm=1", true), Key("a", "/p?utm=2", true));
}

TEST(CacheKey, KeyHeadersAbsentEmptyAndRepeatedDiffer) {
  const std::vector<std::string> names = {"x-tenant"};
  const std::string absent = Key("a", "/", true, names, {});
  const std::string empty = Key("a", "/", true, names, {{"X-Tenant", ""}});
  const std::string one = Key("a", "/", true, names, {{"X-Tenant", "blue"}});
  const std::string two = Key("a", "/", true, names, {{"x-tenant", "blue"}, {"X-TENANT", "red"}});
  EXPECT_NE(absent, empty);
  EXPECT_NE(empty, one);
  EXPECT_NE(one, two);
  EXPECT_EQ(one, "http://a/\nx-tenant:blue");
  EXPECT_EQ(two, "http://a/\nx-tenant:blue,red");
  // Other headers are not part of the key.
  EXPECT_EQ(one, Key("a", "/", true, names, {{"X-Tenant", "blue"}, {"Cookie", "x"}}));
}

TEST(CacheKey, VariantKeysAreDistinctFromEveryPrimaryKey) {
  std::string v;
  VariantKey("http://a/x", "gzip", &v);
  EXPECT_EQ(v, std::string("http://a/x\0gzip", 15));
  EXPECT_NE(v, Key("a", "/xgzip"));
}

}  // namespace
}  // namespace torii::http
