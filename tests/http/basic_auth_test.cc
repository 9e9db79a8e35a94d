// tests/http/basic_auth_test.cc: Basic credentials (RFC 7617) and their check against libcrypt
// hashes (http/basic_auth.h), with hashes made here by libcrypt itself.
#include "http/basic_auth.h"

#include <crypt.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace torii::http {
namespace {

std::optional<std::pair<std::string, std::string>> Parse(std::string_view value) {
  std::string storage;
  const auto c = ParseBasicCredentials(value, &storage);
  if (!c) {
    return std::nullopt;
  }
  return std::pair{std::string(c->user), std::string(c->password)};
}

TEST(BasicCredentials, Parse) {
  // "alice:s3cret", "bob:" (empty password), "u:p:with:colons", "ü:x" in UTF-8.
  EXPECT_EQ(Parse("Basic YWxpY2U6czNjcmV0"),
            (std::pair<std::string, std::string>{"alice", "s3cret"}));
  EXPECT_EQ(Parse("basic  YWxpY2U6czNjcmV0 "),
            (std::pair<std::string, std::string>{"alice", "s3cret"}));
  EXPECT_EQ(Parse("Basic Ym9iOg=="), (std::pair<std::string, std::string>{"bob", ""}));
  EXPECT_EQ(Parse("Basic dTpwOndpdGg6Y29sb25z"),
            (std::pair<std::string, std::string>{"u", "p:with:colons"}));
  EXPECT_EQ(Parse("Basic w7w6eA=="), (std::pair<std::string, std::string>{"\xc3\xbc", "x"}));
}

TEST(BasicCredentials, Refused) {
  for (std::string_view bad : {
           "Bearer YWxpY2U6czNjcmV0",  // another scheme
           "Basic",                    // no token
           "Basic YWxpY2U",            // not a multiple of 4
           "Basic YWxpY2U6czNjcmV0=",  // bad length with padding
           "Basic YW=pY2U6",           // padding inside
           "Basic YWxp*2U6",           // not base64
           "Basic YWxpY2U=",           // "alice": no colon
           "Basic YQk6Yg==",           // "a\t:b": a control character
           "Basic AGE6Yg==",           // NUL in the user
       }) {
    EXPECT_EQ(Parse(bad), std::nullopt) << bad;
  }
}

std::string Hash(const char* prefix, unsigned long count, const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn(prefix, count, nullptr, 0, salt, sizeof(salt)), nullptr) << prefix;
  crypt_data data{};
  const char* out = crypt_rn(password.c_str(), salt, &data, sizeof(data));
  EXPECT_NE(out, nullptr);
  return out != nullptr ? out : "";
}

// Every supported format verifies its own password only; a verdict, once computed, is
// remembered (no second hash), wrong or right; an unknown user costs a hash like a known one.
TEST(BasicAuth, VerifiesAndRemembers) {
  BasicAuth auth({{"alice", Hash("$2b$", 4, "s3cret")},
                  {"bob", Hash("$6$", 1000, "hunter2")},
                  {"carol", Hash("$y$", 0, "pw")}},
                 "staff");
  EXPECT_EQ(auth.challenge(), "WWW-Authenticate: Basic realm=\"staff\", charset=\"UTF-8\"\r\n");
  EXPECT_TRUE(auth.Verify("alice", "s3cret"));
  EXPECT_TRUE(auth.Verify("bob", "hunter2"));
  EXPECT_TRUE(auth.Verify("carol", "pw"));
  EXPECT_EQ(auth.hashes_computed(), 3u);
  EXPECT_FALSE(auth.Verify("alice", "hunter2"));
  EXPECT_FALSE(auth.Verify("alice", "s3cret "));
  EXPECT_FALSE(auth.Verify("alice", ""));
  EXPECT_FALSE(auth.Verify("mallory", "s3cret"));
  EXPECT_EQ(auth.hashes_computed(), 7u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(auth.Verify("alice", "s3cret"));
    EXPECT_FALSE(auth.Verify("alice", "hunter2"));
    EXPECT_FALSE(auth.Verify("mallory", "s3cret"));
  }
  EXPECT_EQ(auth.hashes_computed(), 7u);
  // User and password are kept apart in the remembered key: "a" + "lice..." is not "alice".
  EXPECT_FALSE(auth.Verify("a", "lices3cret"));
}

}  // namespace
}  // namespace torii::http
