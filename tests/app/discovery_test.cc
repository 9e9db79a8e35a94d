// SRV records as backends (app/discovery.h SrvBackends): priorities become tiers, weights are
// kept in 1..256 with their proportions.
#include "app/discovery.h"

#include <gtest/gtest.h>

#include <vector>

namespace torii::app {
namespace {

dns::SrvTarget Srv(uint16_t priority, uint16_t weight, std::string target) {
  dns::SrvTarget r;
  r.priority = priority;
  r.weight = weight;
  r.port = 8080;
  r.target = std::move(target);
  return r;
}

TEST(SrvBackends, PrioritiesRankIntoTiers) {
  const std::vector<SrvBackend> out =
      SrvBackends({Srv(10, 5, "a"), Srv(10, 0, "b"), Srv(40, 2, "c"), Srv(25, 1, "d")});
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].target, "a");  // in the records' order
  EXPECT_EQ(out[0].tier, 0);
  EXPECT_EQ(out[0].weight, 5u);
  EXPECT_EQ(out[1].tier, 0);
  EXPECT_EQ(out[1].weight, 1u);  // 0: "rarely", weight 1
  EXPECT_EQ(out[2].tier, 2);     // 40 is the third priority
  EXPECT_EQ(out[3].tier, 1);     // 25 the second
  EXPECT_EQ(out[3].port, 8080);
  EXPECT_TRUE(SrvBackends({}).empty());
}

TEST(SrvBackends, LargeWeightsAreScaledWithinTheirPriority) {
  const std::vector<SrvBackend> out = SrvBackends(
      {Srv(1, 1000, "a"), Srv(1, 3000, "b"), Srv(1, 1, "c"), Srv(2, 256, "d"), Srv(3, 65535, "e")});
  EXPECT_EQ(out[0].weight, 85u);   // 1000 * 256 / 3000, rounded
  EXPECT_EQ(out[1].weight, 256u);  // the heaviest of its priority
  EXPECT_EQ(out[2].weight, 1u);    // never below 1
  EXPECT_EQ(out[3].weight, 256u);  // fits: kept
  EXPECT_EQ(out[4].weight, 256u);
}

TEST(SrvBackends, PastTheLastTierTheRestShareIt) {
  std::vector<dns::SrvTarget> records;
  for (uint32_t p = 0; p < 300; ++p) {
    records.push_back(Srv(static_cast<uint16_t>(p), 1, "t"));
  }
  const std::vector<SrvBackend> out = SrvBackends(records);
  EXPECT_EQ(out[254].tier, 254);
  EXPECT_EQ(out[255].tier, 255);
  EXPECT_EQ(out[299].tier, 255);
}

}  // namespace
}  // namespace torii::app
