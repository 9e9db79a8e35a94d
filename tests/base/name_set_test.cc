// tests/base/name_set_test.cc: the compile-time set of header names (base/name_set.h).
#include "base/name_set.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

namespace torii::base {
namespace {

constexpr std::string_view kNames[] = {"te",
                                       "connection",
                                       "keep-alive",
                                       "transfer-encoding",
                                       "x-forwarded-proto",
                                       "client-cert-chain",
                                       "host"};
constexpr NameSet<std::size(kNames)> kSet(kNames);

// Members of the same length are all found (three share 17 letters, two share 10).
static_assert(kSet.Contains("transfer-encoding") && kSet.Contains("x-forwarded-proto") &&
              kSet.Contains("client-cert-chain") && kSet.Contains("connection") &&
              kSet.Contains("keep-alive"));

TEST(NameSetTest, FindsEveryMemberIgnoringCase) {
  for (std::string_view n : kNames) {
    EXPECT_TRUE(kSet.Contains(n)) << n;
    std::string upper(n);
    for (char& c : upper) {
      c = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
    }
    EXPECT_TRUE(kSet.Contains(upper)) << upper;
  }
}

TEST(NameSetTest, NothingElse) {
  for (std::string_view n : std::initializer_list<std::string_view>{
           "", "t", "tE2", "connectio", "connections", "keep_alive", "hosts", "x-forwarded-prot0",
           "transfer-encodinG ", std::string_view("host\0", 5)}) {
    EXPECT_FALSE(kSet.Contains(n)) << n;
  }
  const std::string longer(NameSet<1>::kMaxLength + 1, 'a');
  EXPECT_FALSE(kSet.Contains(longer));
  constexpr std::string_view kNone[] = {"only"};
  constexpr NameSet<1> one(kNone);
  EXPECT_TRUE(one.Contains("ONLY"));
  EXPECT_FALSE(one.Contains(""));
}

}  // namespace
}  // namespace torii::base
