// A backend list replaced by another (an address change): the old list's counters hand over to
// the new ones (balancer/hand_over.h), so an address that stays keeps one count of its requests
// in flight, whichever list they began under.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "balancer/load.h"
#include "balancer/slots.h"

namespace torii::balancer {
namespace {

// Old list: a, b, c. New list: c, d, a (b went, d is new).
const std::vector<uint32_t> kMap = {2, kGone, 0};

TEST(HandOver, LoadCountsOfAddressesThatStayCarryOver) {
  auto old_load = std::make_shared<LoadCounters>(3);
  old_load->Add(0);  // a: 2 in flight
  old_load->Add(0);
  old_load->Add(1);  // b: 1
  old_load->Add(2);  // c: 1
  auto new_load = std::make_shared<LoadCounters>(3);
  old_load->HandOver(new_load, kMap);
  EXPECT_EQ(new_load->Get(2), 2u);  // a
  EXPECT_EQ(new_load->Get(0), 1u);  // c
  EXPECT_EQ(new_load->Get(1), 0u);  // d: new, no history
  // The old requests end: on the new counts for a and c, on the old one for b (gone).
  old_load->Sub(0);
  old_load->Sub(2);
  old_load->Sub(1);
  EXPECT_EQ(new_load->Get(2), 1u);
  EXPECT_EQ(new_load->Get(0), 0u);
  EXPECT_EQ(old_load->Get(1), 0u);
  // A retry that starts under the old list counts on the new one too.
  old_load->Add(2);
  EXPECT_EQ(new_load->Get(0), 1u);
  // Once only: a second hand-over (to anything) changes nothing.
  auto other = std::make_shared<LoadCounters>(3);
  old_load->HandOver(other, kMap);
  EXPECT_EQ(other->Get(0), 0u);
  old_load->Sub(2);
  EXPECT_EQ(new_load->Get(0), 0u);
}

TEST(HandOver, SlotsOfAddressesThatStayStayTaken) {
  auto old_slots = std::make_shared<BackendSlots>(3);
  ASSERT_TRUE(old_slots->TryAcquire(0, 1));  // a: its one slot taken
  ASSERT_TRUE(old_slots->TryAcquire(1, 1));  // b
  auto new_slots = std::make_shared<BackendSlots>(3);
  old_slots->HandOver(new_slots, kMap);
  // a is still full under the new list, d and c are free.
  EXPECT_FALSE(new_slots->TryAcquire(2, 1));
  EXPECT_EQ(new_slots->InUse(2), 1u);
  EXPECT_EQ(old_slots->InUse(0), 1u);  // read through to the new count
  EXPECT_TRUE(new_slots->TryAcquire(1, 1));
  // a's request ends under the old list: its slot is free again on the new one.
  old_slots->Release(0);
  EXPECT_EQ(new_slots->InUse(2), 0u);
  EXPECT_TRUE(new_slots->TryAcquire(2, 1));
  // b went: its slot is the old list's own to give back.
  old_slots->Release(1);
  EXPECT_EQ(old_slots->InUse(1), 0u);
  // A chain of changes: the oldest list's ends reach the newest.
  auto newest = std::make_shared<BackendSlots>(1);
  new_slots->HandOver(newest, {kGone, kGone, 0});  // only a stays, now at index 0
  EXPECT_EQ(newest->InUse(0), 1u);
  EXPECT_EQ(old_slots->InUse(0), 1u);  // a, read through two hand-overs
  new_slots->Release(2);               // the request that took it under the middle list ends
  EXPECT_EQ(newest->InUse(0), 0u);
}

}  // namespace
}  // namespace torii::balancer
