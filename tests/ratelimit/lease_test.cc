// tests/ratelimit/lease_test.cc: fleet-wide limits as leases (ratelimit/lease.h), with a driven
// clock and, for the fleet, a store that does what LeaseScript() does.
#include "ratelimit/lease.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <memory>
#include <vector>

namespace torii::ratelimit {
namespace {

constexpr uint64_t kMs = 1000000;

LeaseSpec Spec(uint32_t batch) {
  LeaseSpec s;
  s.batch = batch;
  s.hold_ns = 100 * kMs;
  s.down_ns = 1000 * kMs;
  s.max_keys = 4;
  return s;
}

LeaseTable::Grant Granted(uint32_t n, uint64_t retry_ns = 0) {
  LeaseTable::Grant g;
  g.granted = n;
  g.retry_after_ns = retry_ns;
  g.remaining = 7;
  g.reset_ns = 50 * kMs;
  return g;
}

TEST(LeaseTableTest, FirstRequestPassesOnCreditAndAsksForALease) {
  LeaseTable t(Spec(3));
  auto o = t.Check(42, 0);
  EXPECT_EQ(o.verdict, LeaseTable::Verdict::kAllow);
  ASSERT_TRUE(o.ask);
  EXPECT_EQ(o.request.key, 42u);
  EXPECT_EQ(o.request.want, 4u);  // the debt of 1, and a batch of 3
  t.OnGrant(42, o.request.seq, Granted(4), 1 * kMs);
  for (int i = 0; i < 3; ++i) {
    o = t.Check(42, 2 * kMs);
    EXPECT_EQ(o.verdict, LeaseTable::Verdict::kAllow);
    EXPECT_EQ(o.ask, i == 2);  // the last token spent asks for the next lease
  }
  EXPECT_EQ(o.request.want, 3u);
  EXPECT_EQ(o.remaining, 7u);  // the store's remaining as of its answer
}

TEST(LeaseTableTest, CreditWhileWaitingIsBoundedByTheBatch) {
  LeaseTable t(Spec(2));
  const auto first = t.Check(1, 0);
  EXPECT_TRUE(first.ask);
  EXPECT_EQ(t.Check(1, 0).verdict, LeaseTable::Verdict::kAllow);  // debt 2
  EXPECT_EQ(t.Check(1, 0).verdict, LeaseTable::Verdict::kDeny);   // debt would pass the batch
  // The answer covers the debt it was asked for (1); the debt made meanwhile (1) comes out of
  // the tokens.
  t.OnGrant(1, first.request.seq, Granted(3), kMs);
  auto o = t.Check(1, kMs);
  EXPECT_EQ(o.verdict, LeaseTable::Verdict::kAllow);
  EXPECT_TRUE(o.ask);  // the last token: the next lease is asked for
  EXPECT_EQ(t.Check(1, kMs).verdict, LeaseTable::Verdict::kAllow);  // on credit again
}

// Once an answer granted less than asked (the fleet at its limit), no request passes on credit:
// each waits for a token, which keeps the fleet exactly at the limit.
TEST(LeaseTableTest, AtTheLimitThereIsNoCredit) {
  LeaseTable t(Spec(2));
  const auto first = t.Check(1, 0);
  EXPECT_TRUE(first.ask);
  t.OnGrant(1, first.request.seq, Granted(1, 0), kMs);  // the debt alone; no wait
  auto o = t.Check(1, kMs);
  EXPECT_EQ(o.verdict, LeaseTable::Verdict::kDeny);
  ASSERT_TRUE(o.ask);
  EXPECT_EQ(o.request.want, 2u);  // no debt: a batch
  EXPECT_EQ(t.Check(1, kMs).verdict, LeaseTable::Verdict::kDeny);
  EXPECT_FALSE(t.Check(1, kMs).ask);                 // one request in flight
  t.OnGrant(1, o.request.seq, Granted(2), 2 * kMs);  // in full again: credit comes back
  EXPECT_EQ(t.Check(1, 2 * kMs).verdict, LeaseTable::Verdict::kAllow);
  EXPECT_EQ(t.Check(1, 2 * kMs).verdict, LeaseTable::Verdict::kAllow);
  EXPECT_EQ(t.Check(1, 2 * kMs).verdict, LeaseTable::Verdict::kAllow);  // credit
}

// A give-back's answer (or a late one) that crosses the request in flight settles nothing: the
// credit that request covers is charged once, by its own answer.
TEST(LeaseTableTest, AnswersApplyOnlyToTheirOwnRequest) {
  LeaseTable t(Spec(2));
  const auto first = t.Check(1, 0);                                 // credit 1, asks for 3
  t.OnGrant(1, /*seq=*/0, Granted(0), kMs);                         // a give-back's answer
  EXPECT_EQ(t.Check(1, kMs).verdict, LeaseTable::Verdict::kAllow);  // still pending: credit 2
  t.OnGrant(1, first.request.seq + 7, Granted(3), kMs);             // not its answer
  EXPECT_EQ(t.Check(1, kMs).verdict, LeaseTable::Verdict::kDeny);   // credit used up
  t.OnGrant(1, first.request.seq, Granted(3), 2 * kMs);  // 1 settled, 1 for the credit, 1 left
  const auto o = t.Check(1, 2 * kMs);
  EXPECT_EQ(o.verdict, LeaseTable::Verdict::kAllow);
  EXPECT_TRUE(o.ask);  // the last token: the next lease
}

TEST(LeaseTableTest, OverTheLimitRefusesLocallyUntilTheStoresRetryTime) {
  LeaseTable t(Spec(2));
  t.OnGrant(9, t.Check(9, 0).request.seq, Granted(1, 300 * kMs), kMs);  // the debt alone
  auto o = t.Check(9, 2 * kMs);
  EXPECT_EQ(o.verdict, LeaseTable::Verdict::kDeny);
  EXPECT_EQ(o.retry_after_ns, 299 * kMs);
  EXPECT_FALSE(o.ask);        // refusals cost no round trip
  o = t.Check(9, 301 * kMs);  // at the limit: no credit, a token is asked for
  EXPECT_EQ(o.verdict, LeaseTable::Verdict::kDeny);
  EXPECT_TRUE(o.ask);
}

TEST(LeaseTableTest, TokensAreSpentEvenWhenTheNextOnesWillWait) {
  LeaseTable t(Spec(4));
  t.OnGrant(9, t.Check(9, 0).request.seq, Granted(3, 500 * kMs), kMs);  // 2 tokens, then none
  EXPECT_EQ(t.Check(9, kMs).verdict, LeaseTable::Verdict::kAllow);
  auto o = t.Check(9, kMs);
  EXPECT_EQ(o.verdict, LeaseTable::Verdict::kAllow);
  EXPECT_FALSE(o.ask);  // refused until the retry time anyway: no request
  EXPECT_EQ(t.Check(9, kMs).verdict, LeaseTable::Verdict::kDeny);
}

TEST(LeaseTableTest, BansComeFromTheStoreAndArePublished) {
  LeaseTable t(Spec(2));
  const auto first = t.Check(5, 0);
  LeaseTable::Grant g;
  g.banned_ns = 60000 * kMs;
  t.OnGrant(5, first.request.seq, g, kMs);
  auto o = t.Check(5, 2 * kMs);
  EXPECT_EQ(o.verdict, LeaseTable::Verdict::kBanned);
  EXPECT_EQ(o.retry_after_ns, 59999 * kMs);
  const LeaseAsk ask = t.Ban(6, "ip:10.0.0.6/32", 10000 * kMs, 0);
  EXPECT_EQ(ask.key, 6u);
  EXPECT_EQ(ask.store_key, "ip:10.0.0.6/32");  // named even when first seen by the ban
  EXPECT_EQ(ask.ban_ms, 10000u);
  EXPECT_EQ(t.Check(6, kMs).verdict, LeaseTable::Verdict::kBanned);
}

TEST(LeaseTableTest, StoreErrorsMakeItDownForAWhile) {
  LeaseTable t(Spec(2));
  t.OnStoreError(1, t.Check(1, 0).request.seq, kMs);
  EXPECT_TRUE(t.store_down(2 * kMs));
  EXPECT_EQ(t.Check(2, 2 * kMs).verdict, LeaseTable::Verdict::kStoreDown);
  EXPECT_EQ(t.Check(1, 1000 * kMs).verdict, LeaseTable::Verdict::kStoreDown);
  auto o = t.Check(1, 1001 * kMs);
  EXPECT_EQ(o.verdict, LeaseTable::Verdict::kAllow);
  EXPECT_TRUE(o.ask);
  EXPECT_EQ(o.request.want, 3u);  // the failed request's debt was forgiven
}

TEST(LeaseTableTest, SweepReturnsHeldTokensAndForgetsIdleKeys) {
  LeaseTable t(Spec(5));
  t.OnGrant(1, t.Check(1, 0).request.seq, Granted(6), 0);  // 5 tokens
  t.Check(1, 10 * kMs);                                    // 4 left
  std::vector<LeaseAsk> out;
  t.Sweep(50 * kMs, &out);
  EXPECT_TRUE(out.empty());  // held for less than hold_ns
  t.Sweep(120 * kMs, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].give_back, 4u);
  EXPECT_EQ(out[0].want, 0u);
  EXPECT_EQ(t.size(), 1u);  // kept: a worker forgets a key after a second unused
  t.Sweep(1011 * kMs, &out);
  EXPECT_EQ(t.size(), 0u);
}

TEST(LeaseTableTest, AFullShardEvictsAnOldKeyAndReturnsItsTokens) {
  LeaseSpec spec = Spec(2);
  spec.max_keys = LeaseTable::kShards;  // one key per shard
  LeaseTable t(spec);
  t.OnGrant(16, t.Check(16, kMs).request.seq, Granted(3), kMs);  // 2 tokens
  t.Check(32, 10 * kMs);                                         // the same shard: 16 goes
  EXPECT_EQ(t.size(), 1u);
  std::vector<LeaseAsk> out;
  t.Sweep(11 * kMs, &out);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].key, 16u);
  EXPECT_EQ(out[0].give_back, 2u);
}

// A ban while a lease request is in flight: that request's answer settles nothing (no debt
// wraps below zero, no tokens for the banned key), and after the ban the key asks for a batch.
TEST(LeaseTableTest, ABanWhileALeaseIsInFlight) {
  LeaseTable t(Spec(2));
  const auto first = t.Check(3, 0);                               // credit 1, pending
  EXPECT_EQ(t.Check(3, 0).verdict, LeaseTable::Verdict::kAllow);  // credit 2
  t.Ban(3, "k", 100 * kMs, kMs);
  t.OnGrant(3, first.request.seq, Granted(3), 2 * kMs);
  EXPECT_EQ(t.Check(3, 50 * kMs).verdict, LeaseTable::Verdict::kBanned);
  const auto after = t.Check(3, 101 * kMs);
  EXPECT_EQ(after.verdict, LeaseTable::Verdict::kAllow);
  ASSERT_TRUE(after.ask);
  EXPECT_EQ(after.request.want, 3u);  // its own credit of 1 and a batch
}

// What LeaseScript() does, in microseconds.
struct FakeStore {
  double T = 0, tau = 0, tat = 0;
  LeaseTable::Grant Lease(const LeaseAsk& ask, double now) {
    if (tat < now) tat = now;
    if (ask.give_back > 0) tat = std::max(now, tat - ask.give_back * T);
    double room = std::max(0.0, std::floor((tau + T - (tat - now)) / T));
    const double granted = std::min<double>(ask.want, room);
    tat += granted * T;
    LeaseTable::Grant g;
    g.granted = static_cast<uint32_t>(granted);
    g.retry_after_ns =
        granted < ask.want ? static_cast<uint64_t>(std::max(0.0, tat - tau - now) * 1000) : 0;
    g.remaining = static_cast<uint32_t>(room - granted);
    g.reset_ns = static_cast<uint64_t>((tat - now) * 1000);
    return g;
  }
};

// `workers` tables (processes) share one key limited to one request per `interval_us` with `burst`;
// requests arrive every `every_ns` in all, `stick` in a row to one worker (a keep-alive connection)
// and then to the next, for `seconds`; the store answers after `rtt_ns`; each worker sweeps every
// sync interval (100 ms). Returns the admitted count.
uint64_t SimulateFleet(int workers, double interval_us, uint32_t burst, uint64_t every_ns,
                       uint64_t rtt_ns, uint64_t seconds, uint64_t stick = 1) {
  FakeStore store;
  store.T = interval_us;
  store.tau = burst * interval_us;
  const uint32_t batch = LeaseBatch(static_cast<uint64_t>(interval_us * 1000), burst, 100 * kMs);
  std::vector<std::unique_ptr<LeaseTable>> tables;
  for (int k = 0; k < workers; ++k) {
    tables.push_back(std::make_unique<LeaseTable>(Spec(batch)));
  }
  struct InFlight {
    uint64_t at;
    int worker;
    LeaseAsk ask;
  };
  std::deque<InFlight> flight;
  uint64_t admitted = 0;
  uint64_t next_sweep = 100 * kMs;
  for (uint64_t now = 0, i = 0; now < seconds * 1000 * kMs; now += every_ns, ++i) {
    while (!flight.empty() && flight.front().at <= now) {
      InFlight f = flight.front();
      flight.pop_front();
      tables[f.worker]->OnGrant(f.ask.key, f.ask.seq, store.Lease(f.ask, now / 1000.0), now);
    }
    const int w = static_cast<int>((i / stick) % workers);
    auto o = tables[w]->Check(77, now);
    if (o.verdict == LeaseTable::Verdict::kAllow) ++admitted;
    if (o.ask) flight.push_back({now + rtt_ns, w, o.request});
    if (now >= next_sweep) {
      next_sweep += 100 * kMs;
      for (int k = 0; k < workers; ++k) {
        std::vector<LeaseAsk> back;
        tables[k]->Sweep(now, &back);
        for (const LeaseAsk& a : back) flight.push_back({now + rtt_ns, k, a});
      }
    }
  }
  return admitted;
}

// Eight processes share 100/s, burst 10, offered 2,000 requests a
// second for 10 s, the store answering after 1 ms: the combined admitted count stays within
// the stated bound and within 10% of the limit (1,000 + the burst's 11).
TEST(LeaseTableTest, AFleetStaysWithinTheLimit) {
  EXPECT_EQ(LeaseBatch(10 * kMs, 10, 100 * kMs), 5u);  // min(10 per sync interval, (burst+1)/2)
  const uint64_t admitted = SimulateFleet(8, 10000, 10, kMs / 2, kMs, 10);
  RecordProperty("admitted", static_cast<int>(admitted));
  EXPECT_GE(admitted, 900u);
  EXPECT_LE(admitted, 1100u) << "the fleet let through " << admitted;
}

// Four processes share 20/s, burst 4, offered ~2,300 requests a second for 8 s, answers in
// 0.3 ms: 165 allowed.
TEST(LeaseTableTest, ASmallLimitHammeredByFourWorkers) {
  const uint64_t admitted = SimulateFleet(4, 50000, 4, 430000, 300000, 8);
  RecordProperty("admitted", static_cast<int>(admitted));
  EXPECT_GE(admitted, 150u);
  EXPECT_LE(admitted, 181u) << "the fleet let through " << admitted;
  // Traffic that moves between processes: each idles ~250 ms between its turns, so a key it
  // forgot would come back as new (with credit) unless kept a while.
  const uint64_t moving = SimulateFleet(4, 50000, 4, 430000, 300000, 8, /*stick=*/200);
  RecordProperty("moving", static_cast<int>(moving));
  EXPECT_GE(moving, 150u);
  EXPECT_LE(moving, 181u) << "the fleet let through " << moving;
}

TEST(LeaseTableTest, BatchSize) {
  EXPECT_EQ(LeaseBatch(10 * kMs, 50, 100 * kMs), 10u);   // 100/s: 10 per 100 ms
  EXPECT_EQ(LeaseBatch(1000 * kMs, 50, 100 * kMs), 1u);  // 1/s: at least 1
  EXPECT_EQ(LeaseBatch(1 * kMs, 3, 100 * kMs), 2u);      // at most half of burst + 1
  EXPECT_EQ(LeaseBatch(1 * kMs, 0, 100 * kMs), 1u);
}

}  // namespace
}  // namespace torii::ratelimit
