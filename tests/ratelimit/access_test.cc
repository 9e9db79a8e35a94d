// tests/ratelimit/access_test.cc: the access-list decision (ratelimit/access.cc): deny wins,
// a non-empty allow admits only its members, the listener is checked before the route.
#include "ratelimit/access.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string_view>

namespace torii::ratelimit {
namespace {

IpList List(std::initializer_list<std::string_view> cidrs) {
  IpList l;
  for (std::string_view c : cidrs) {
    l.Add(*ParseCidr(c, nullptr));
  }
  return l;
}

IpAddr Ip(std::string_view s) { return *ParseIp(s); }

// Empty lists admit everyone.
TEST(AccessTest, EmptyListsAllow) {
  const IpList none;
  EXPECT_EQ(DecideAccess(none, none, none, none, Ip("203.0.113.9")), AccessVerdict::kAllow);
}

// Deny wins over allow, on the listener and on the route.
TEST(AccessTest, DenyWinsOverAllow) {
  const IpList none;
  const IpList allow = List({"10.0.0.0/8"});
  const IpList deny = List({"10.0.0.5"});
  EXPECT_EQ(DecideAccess(allow, deny, none, none, Ip("10.0.0.5")),
            AccessVerdict::kDeniedByListener);
  EXPECT_EQ(DecideAccess(none, none, allow, deny, Ip("10.0.0.5")), AccessVerdict::kDeniedByRoute);
  EXPECT_EQ(DecideAccess(allow, deny, allow, deny, Ip("10.0.0.6")), AccessVerdict::kAllow);
}

// A non-empty allow admits only its members; IPv4 lists admit no IPv6 client.
TEST(AccessTest, AllowListAdmitsOnlyMembers) {
  const IpList none;
  const IpList allow = List({"127.0.0.0/29"});
  EXPECT_EQ(DecideAccess(none, none, allow, none, Ip("127.0.0.9")), AccessVerdict::kDeniedByRoute);
  EXPECT_EQ(DecideAccess(none, none, allow, none, Ip("127.0.0.2")), AccessVerdict::kAllow);
  EXPECT_EQ(DecideAccess(allow, none, none, none, Ip("::1")), AccessVerdict::kDeniedByListener);
}

// The listener's refusal is the one reported when both would refuse.
TEST(AccessTest, ListenerCheckedFirst) {
  const IpList none;
  const IpList deny = List({"0.0.0.0/0"});
  EXPECT_EQ(DecideAccess(none, deny, none, deny, Ip("192.0.2.1")),
            AccessVerdict::kDeniedByListener);
  EXPECT_STREQ(ToString(AccessVerdict::kDeniedByListener), "denied by listener access list");
  EXPECT_STREQ(ToString(AccessVerdict::kDeniedByRoute), "denied by route access list");
  EXPECT_STREQ(ToString(AccessVerdict::kAllow), "");
}

}  // namespace
}  // namespace torii::ratelimit
