// The Redis-shared ticket keys' pure parts (app/ticket_share.h): slots and their boundaries,
// the key names, and the script's reply turned into the set a listener installs. The exchange
// with a real redis-server is tests/integration/test_fleet.py's.
#include "app/ticket_share.h"

#include <gtest/gtest.h>

#include <string>

namespace torii::app {
namespace {

TEST(TicketKeyShare, SlotsAndTheirBoundaries) {
  EXPECT_EQ(TicketKeyShare::SlotOf(0, 3600), 0u);
  EXPECT_EQ(TicketKeyShare::SlotOf(3'599'999, 3600), 0u);
  EXPECT_EQ(TicketKeyShare::SlotOf(3'600'000, 3600), 1u);
  EXPECT_EQ(TicketKeyShare::SlotOf(1'765'000'000'123, 60), 29'416'666u);
  EXPECT_EQ(TicketKeyShare::UntilNextSlotMs(3'599'999, 3600), 1u);
  EXPECT_EQ(TicketKeyShare::UntilNextSlotMs(3'600'000, 3600), 3'600'000u);
  EXPECT_EQ(TicketKeyShare::UntilNextSlotMs(90'500, 60), 29'500u);
  EXPECT_EQ(TicketKeyShare::RedisKey("https", 42), "torii:tls-ticket:https:42");
}

redis::Reply Str(std::string s) {
  redis::Reply r;
  r.kind = redis::Reply::Kind::kString;
  r.str = std::move(s);
  return r;
}

// The script answers the previous, current and next slot's keys; the current one encrypts.
TEST(TicketKeyShare, ReplyBecomesCurrentNextPrevious) {
  redis::Reply reply;
  reply.kind = redis::Reply::Kind::kArray;
  for (char c : {'p', 'c', 'n'}) {
    reply.elements.push_back(Str(std::string(tls::TicketKey::kSize, c)));
  }
  tls::TicketKey keys[3];
  ASSERT_TRUE(TicketKeyShare::KeysFromReply(reply, keys));
  EXPECT_EQ(keys[0].name[0], 'c');
  EXPECT_EQ(keys[0].aes[31], 'c');
  EXPECT_EQ(keys[1].name[0], 'n');
  EXPECT_EQ(keys[2].hmac[0], 'p');

  redis::Reply bad = reply;
  bad.elements[1].str.pop_back();  // 79 bytes
  EXPECT_FALSE(TicketKeyShare::KeysFromReply(bad, keys));
  bad = reply;
  bad.elements[2].kind = redis::Reply::Kind::kNil;
  EXPECT_FALSE(TicketKeyShare::KeysFromReply(bad, keys));
  bad = reply;
  bad.elements.pop_back();
  EXPECT_FALSE(TicketKeyShare::KeysFromReply(bad, keys));
  EXPECT_FALSE(TicketKeyShare::KeysFromReply(Str("ERR"), keys));
}

}  // namespace
}  // namespace torii::app
