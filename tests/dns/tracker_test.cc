// tests/dns/tracker_test.cc: the refresh rules (dns/tracker.h) with a driven clock.
#include "dns/tracker.h"

#include <gtest/gtest.h>

namespace torii::dns {
namespace {

Answer Addresses(std::initializer_list<uint8_t> last_octets, std::optional<uint32_t> ttl) {
  Answer a;
  for (uint8_t o : last_octets) {
    IpAddress ip;
    ip.family = 2;  // AF_INET
    ip.bytes = {10, 0, 0, o};
    a.addresses.push_back(ip);
  }
  a.ttl = ttl;
  return a;
}

Answer Negative(bool nxdomain, std::optional<uint32_t> ttl) {
  Answer a;
  a.negative = true;
  a.nxdomain = nxdomain;
  a.ttl = ttl;
  return a;
}

RefreshPolicy Policy() {
  RefreshPolicy p;
  p.min_ttl_ms = 1000;
  p.max_ttl_ms = 60000;
  p.retry_min_ms = 500;
  p.retry_max_ms = 4000;
  return p;
}

TEST(TrackerTest, PositiveAnswerIsKeptForItsTtlClamped) {
  Tracker t(Policy());
  EXPECT_EQ(t.next_query_ms(), 0u);  // never asked: due at once
  EXPECT_TRUE(t.OnAnswer(Addresses({1}, 30), 1000));
  EXPECT_EQ(t.next_query_ms(), 31000u);
  EXPECT_FALSE(t.OnAnswer(Addresses({1}, 0), 31000));  // same set: no change
  EXPECT_EQ(t.next_query_ms(), 32000u);                // TTL 0 -> min_ttl
  EXPECT_FALSE(t.OnAnswer(Addresses({1}, 86400), 32000));
  EXPECT_EQ(t.next_query_ms(), 92000u);  // max_ttl
  EXPECT_TRUE(t.OnAnswer(Addresses({1, 2}, 5), 92000));
  EXPECT_EQ(t.answer().addresses.size(), 2u);
}

TEST(TrackerTest, NegativeAnswersAreCachedForTheSoaTimeOrNotAtAll) {
  Tracker t(Policy());
  EXPECT_TRUE(t.OnAnswer(Negative(true, 7), 0));
  EXPECT_TRUE(t.resolved());
  EXPECT_TRUE(t.answer().negative);
  EXPECT_EQ(t.next_query_ms(), 7000u);
  EXPECT_FALSE(t.OnAnswer(Negative(true, std::nullopt), 7000));  // no SOA: not cached
  EXPECT_EQ(t.next_query_ms(), 8000u);
  EXPECT_TRUE(t.OnAnswer(Addresses({3}, 10), 8000));   // the name appeared
  EXPECT_TRUE(t.OnAnswer(Negative(false, 2), 18000));  // NODATA: it went away
  EXPECT_TRUE(t.answer().addresses.empty());
}

TEST(TrackerTest, FailuresKeepTheLastAnswerAndBackOff) {
  Tracker t(Policy());
  t.OnAnswer(Addresses({1, 2}, 30), 0);
  t.OnFailure("Timeout while contacting DNS servers", 30000);
  EXPECT_TRUE(t.stale());
  EXPECT_EQ(t.answer().addresses.size(), 2u);  // still believed
  EXPECT_EQ(t.last_error(), "Timeout while contacting DNS servers");
  EXPECT_EQ(t.next_query_ms(), 30500u);
  t.OnFailure("x", 30500);
  EXPECT_EQ(t.next_query_ms(), 31500u);
  t.OnFailure("x", 31500);
  EXPECT_EQ(t.next_query_ms(), 33500u);
  t.OnFailure("x", 33500);
  EXPECT_EQ(t.next_query_ms(), 37500u);
  t.OnFailure("x", 37500);
  EXPECT_EQ(t.next_query_ms(), 41500u);  // capped at retry_max
  EXPECT_EQ(t.failures(), 5u);
  EXPECT_FALSE(t.OnAnswer(Addresses({1, 2}, 30), 41500));  // same set after the outage
  EXPECT_FALSE(t.stale());
  EXPECT_TRUE(t.last_error().empty());
}

TEST(TrackerTest, FailureBeforeAnyAnswerIsNotResolved) {
  Tracker t(Policy());
  t.OnFailure("SERVFAIL", 0);
  EXPECT_FALSE(t.resolved());
  EXPECT_TRUE(t.answer().addresses.empty());
  EXPECT_EQ(t.next_query_ms(), 500u);
}

TEST(TrackerTest, MaxTtlBelowMinTtlUsesMinTtl) {
  RefreshPolicy p = Policy();
  p.max_ttl_ms = 100;
  Tracker t(p);
  t.OnAnswer(Addresses({1}, 3600), 0);
  EXPECT_EQ(t.next_query_ms(), 1000u);
}

}  // namespace
}  // namespace torii::dns
