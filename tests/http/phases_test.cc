// The latency budget: which phases an exchange went through, and their text forms.
#include "http/phases.h"

#include <gtest/gtest.h>

#include <string>

namespace torii::http {
namespace {

TEST(Phases, ProxiedOverANewConnection) {
  ExchangeTiming t;
  t.first_byte = 1000;
  t.head = 1500;
  t.access = 1600;
  t.sent = 1800;
  t.connected = 2800;
  t.response = 7800;
  t.done = 9000;
  const PhaseTimes p = ComputePhases(t);
  EXPECT_EQ(p[Phase::kHead], 500u);
  EXPECT_EQ(p[Phase::kAccess], 100u);
  EXPECT_FALSE(p.has(Phase::kCache));
  EXPECT_EQ(p[Phase::kWait], 200u);
  EXPECT_EQ(p[Phase::kConnect], 1000u);
  EXPECT_EQ(p[Phase::kBackend], 5000u);
  EXPECT_EQ(p[Phase::kStream], 1200u);
  EXPECT_EQ(p[Phase::kTotal], 8000u);
  EXPECT_FALSE(p.has(Phase::kTls));
  // The phases chain: they add up to the total.
  EXPECT_EQ(p[Phase::kHead] + p[Phase::kAccess] + p[Phase::kWait] + p[Phase::kConnect] +
                p[Phase::kBackend] + p[Phase::kStream],
            p[Phase::kTotal]);
}

TEST(Phases, PooledConnectionAndCacheLookup) {
  ExchangeTiming t;
  t.first_byte = 10;
  t.head = 20;
  t.access = 30;
  t.cache = 45;
  t.sent = 60;  // a miss went on to a pooled connection: no connect phase
  t.response = 100;
  t.done = 130;
  t.tls_ns = 777;
  const PhaseTimes p = ComputePhases(t);
  EXPECT_EQ(p[Phase::kCache], 15u);
  EXPECT_EQ(p[Phase::kWait], 15u);
  EXPECT_FALSE(p.has(Phase::kConnect));
  EXPECT_EQ(p[Phase::kBackend], 40u);
  EXPECT_EQ(p[Phase::kTls], 777u);
  std::string text;
  AppendPhasesText(p, &text);
  EXPECT_EQ(text,
            "tls:0.001,head:0.000,access:0.000,cache:0.000,wait:0.000,backend:0.000,"
            "stream:0.000,total:0.000");
}

TEST(Phases, CacheHitHasNoBackendPhasesAndLocalRepliesOnlyWhatHappened) {
  ExchangeTiming hit;
  hit.first_byte = 1000000;
  hit.head = 2000000;
  hit.access = 2500000;
  hit.cache = 3000000;
  hit.response = 3500000;
  hit.done = 4000000;
  PhaseTimes p = ComputePhases(hit);
  EXPECT_FALSE(p.has(Phase::kWait));
  EXPECT_FALSE(p.has(Phase::kBackend));
  std::string json;
  AppendPhasesJson(p, &json);
  EXPECT_EQ(json, "{\"head\":1.000,\"access\":0.500,\"cache\":0.500,\"stream\":0.500,"
                  "\"total\":3.000}");
  // A request refused at its head: nothing but head and total.
  ExchangeTiming refused;
  refused.first_byte = 5;
  refused.head = 9;
  refused.done = 12;
  p = ComputePhases(refused);
  EXPECT_EQ(p.present, (1u << static_cast<int>(Phase::kHead)) |
                           (1u << static_cast<int>(Phase::kTotal)));
  // A clock read out of order never yields a huge unsigned phase.
  ExchangeTiming odd;
  odd.first_byte = 100;
  odd.head = 50;
  odd.done = 200;
  p = ComputePhases(odd);
  EXPECT_FALSE(p.has(Phase::kHead));
  EXPECT_EQ(p[Phase::kTotal], 100u);
}

}  // namespace
}  // namespace torii::http

namespace torii::http {
namespace {

// Milliseconds go out with three decimals, rounded to the nearest microsecond (as "%.3f" did,
// without formatting a double).
TEST(Phases, MillisecondsHaveThreeDecimalsRoundedToTheMicrosecond) {
  const std::pair<uint64_t, const char*> cases[] = {
      {0, "0.000"},
      {499, "0.000"},
      {500, "0.001"},
      {1499, "0.001"},
      {1234567, "1.235"},
      {999999499, "999.999"},
      {999999500, "1000.000"},
      {12000000000, "12000.000"},
      {45006000, "45.006"},
  };
  for (const auto& [ns, text] : cases) {
    PhaseTimes p;
    p.ns[static_cast<size_t>(Phase::kTotal)] = ns;
    p.present = 1u << static_cast<int>(Phase::kTotal);
    std::string out;
    AppendPhasesText(p, &out);
    EXPECT_EQ(out, std::string("total:") + text) << ns;
  }
}

}  // namespace
}  // namespace torii::http
