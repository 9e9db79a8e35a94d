// tests/cache/store_test.cc: the shared response store (cache/store.h): keys compared in
// full, variants, replacement, removal, the memory bound, S3-FIFO eviction, entry lifetimes, the
// fill registry and a concurrent soak.
#include "cache/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace torii::cache {
namespace {

// A request's headers (names lowercase), as http/ would expose them.
class Request : public HeaderSource {
 public:
  Request() = default;
  Request(std::initializer_list<std::pair<const std::string, std::string>> fields)
      : fields_(fields) {}
  bool Get(std::string_view lower_name, std::string* out) const override {
    const auto it = fields_.find(std::string(lower_name));
    if (it == fields_.end()) {
      return false;
    }
    *out = it->second;
    return true;
  }

 private:
  std::map<std::string, std::string> fields_;
};

// Vary matching without normalisation (the real rule is policy.h's VaryMatches).
bool ExactMatcher(const Entry& entry, const HeaderSource& request) {
  std::string value;
  for (const Entry::VaryField& f : entry.vary) {
    const bool has = request.Get(f.name, &value);
    if (has != f.has_value || (has && value != f.value)) {
      return false;
    }
  }
  return true;
}

std::shared_ptr<Entry> MakeEntry(std::string body, std::vector<Entry::VaryField> vary = {}) {
  auto e = std::make_shared<Entry>();
  e->status = 200;
  e->headers.push_back({"content-type", "text/plain"});
  e->body = std::make_shared<const std::string>(std::move(body));
  e->vary = std::move(vary);
  return e;
}

std::shared_ptr<Entry> Sized(size_t body_bytes) { return MakeEntry(std::string(body_bytes, 'x')); }

Entry::VaryField Field(std::string name, std::string value) {
  return {std::move(name), std::move(value), true};
}

std::string KeyOf(const char* prefix, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%06d", prefix, i);
  return buf;
}

// A stand-in for the caller's keyed hash: distinct per key, fixed per run.
uint64_t HashOf(std::string_view key) { return std::hash<std::string_view>{}(key); }

const Request kNoHeaders;

// A stored entry is returned by Lookup() with an id and its charge; an absent key misses.
TEST(StoreTest, HitAndMiss) {
  Store store;
  auto e = MakeEntry("hello");
  const size_t expected_charge = Store::ChargeOf("http://a/x", *e);
  const auto stored = store.Insert("http://a/x", HashOf("http://a/x"), e);
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored.get(), e.get());
  EXPECT_NE(stored->id, 0u);
  EXPECT_EQ(stored->charge, expected_charge);

  EXPECT_EQ(store.Lookup("http://a/x", HashOf("http://a/x"), kNoHeaders), stored);
  EXPECT_EQ(store.Lookup("http://a/y", HashOf("http://a/y"), kNoHeaders), nullptr);

  const StoreStats st = store.Stats();
  EXPECT_EQ(st.entries, 1u);
  EXPECT_EQ(st.bytes, expected_charge);
  EXPECT_EQ(st.capacity, size_t{256} << 20);
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.inserts, 1u);
  EXPECT_EQ(st.evictions, 0u);
  EXPECT_EQ(st.refusals, 0u);
}

// Ids are unique; ChargeOf counts the body byte for byte; a preset charge is kept.
TEST(StoreTest, IdsAndCharge) {
  Store store;
  const auto a = store.Insert("a", 1, MakeEntry("1"));
  const auto b = store.Insert("b", 2, MakeEntry("2"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->id, b->id);
  EXPECT_EQ(Store::ChargeOf("k", *Sized(1000)) - Store::ChargeOf("k", *Sized(0)), 1000u);
  EXPECT_EQ(Store::ChargeOf("kk", *Sized(0)) - Store::ChargeOf("k", *Sized(0)), 1u);
  auto preset = Sized(10);
  preset->charge = 12345;
  ASSERT_NE(store.Insert("c", 3, preset), nullptr);
  EXPECT_EQ(store.bytes(), a->charge + b->charge + 12345);
}

// A borrowed body (a disk record served in place) is copied when stored: the store never
// keeps what lends it alive.
TEST(StoreTest, ABorrowedBodyIsCopiedWhenStored) {
  Store store;
  auto lender = std::make_shared<const std::string>("lent bytes");
  auto e = MakeEntry("");
  e->body = Body(std::string_view(*lender), lender);
  ASSERT_TRUE(e->body.borrowed());
  const auto stored = store.Insert("k", 1, e);
  ASSERT_NE(stored, nullptr);
  EXPECT_FALSE(stored->body.borrowed());
  EXPECT_EQ(*stored->body, "lent bytes");
  EXPECT_NE(stored->body->data(), lender->data());
  EXPECT_EQ(lender.use_count(), 1);  // only the test holds it
  // An owned body is shared, not copied.
  auto owned = MakeEntry("mine");
  const std::string_view before = *owned->body;
  const auto kept = store.Insert("k2", 2, owned);
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->body->data(), before.data());
}

// Two keys with the same hash are told apart by the full key; neither serves the other.
TEST(StoreTest, HashCollisionComparesFullKey) {
  Store store;
  constexpr uint64_t kSame = 0xdeadbeef;
  const auto a = store.Insert("http://a/1", kSame, MakeEntry("a"));
  const auto b = store.Insert("http://a/2", kSame, MakeEntry("b"));
  EXPECT_EQ(store.Lookup("http://a/1", kSame, kNoHeaders), a);
  EXPECT_EQ(store.Lookup("http://a/2", kSame, kNoHeaders), b);
  EXPECT_EQ(store.Lookup("http://a/3", kSame, kNoHeaders), nullptr);
  EXPECT_EQ(store.entries(), 2u);
  EXPECT_TRUE(store.Remove("http://a/1", kSame));
  EXPECT_EQ(store.Lookup("http://a/1", kSame, kNoHeaders), nullptr);
  EXPECT_EQ(store.Lookup("http://a/2", kSame, kNoHeaders), b);
  // The right key under a wrong hash is not found either (the hash picks the shard/bucket).
  EXPECT_EQ(store.Lookup("http://a/2", kSame + 1, kNoHeaders), nullptr);
}

// Many colliding keys in one shard (probe chains, backward-shift deletes) stay consistent.
TEST(StoreTest, ManyCollidingKeys) {
  Store store(StoreOptions{.shards = 1});
  std::vector<std::shared_ptr<const Entry>> stored;
  for (int i = 0; i < 200; ++i) {
    stored.push_back(store.Insert(KeyOf("k", i), /*hash=*/i % 7, MakeEntry(KeyOf("b", i))));
  }
  for (int i = 0; i < 200; i += 2) {
    ASSERT_TRUE(store.Remove(KeyOf("k", i), i % 7));
  }
  for (int i = 0; i < 200; ++i) {
    const auto got = store.Lookup(KeyOf("k", i), i % 7, kNoHeaders);
    EXPECT_EQ(got, i % 2 == 0 ? nullptr : stored[i]) << i;
  }
  EXPECT_EQ(store.entries(), 100u);
}

// Variants of one key are selected by the request's Vary fields.
TEST(StoreTest, VariantsSelectedByVary) {
  Store store({}, ExactMatcher);
  const auto gz = store.Insert("k", 7, MakeEntry("gz", {Field("accept-encoding", "gzip")}));
  const auto br = store.Insert("k", 7, MakeEntry("br", {Field("accept-encoding", "br")}));
  const auto none = store.Insert("k", 7, MakeEntry("none", {{"accept-encoding", "", false}}));
  EXPECT_EQ(store.entries(), 3u);
  EXPECT_EQ(store.Lookup("k", 7, Request{{"accept-encoding", "gzip"}}), gz);
  EXPECT_EQ(store.Lookup("k", 7, Request{{"accept-encoding", "br"}}), br);
  EXPECT_EQ(store.Lookup("k", 7, kNoHeaders), none);
  EXPECT_EQ(store.Lookup("k", 7, Request{{"accept-encoding", "zstd"}}), nullptr);
  EXPECT_EQ(store.Stats().hits, 3u);
  EXPECT_EQ(store.Stats().misses, 1u);
}

// When several variants match, the one stored last wins.
TEST(StoreTest, NewestMatchingVariantWins) {
  Store store({}, ExactMatcher);
  const auto plain = store.Insert("k", 7, MakeEntry("plain"));
  const auto gz = store.Insert("k", 7, MakeEntry("gz", {Field("accept-encoding", "gzip")}));
  EXPECT_EQ(store.Lookup("k", 7, Request{{"accept-encoding", "gzip"}}), gz);
  EXPECT_EQ(store.Lookup("k", 7, Request{{"accept-encoding", "br"}}), plain);
  const auto plain2 = store.Insert("k", 7, MakeEntry("plain2"));  // replaces `plain`
  EXPECT_EQ(store.entries(), 2u);
  EXPECT_EQ(store.Lookup("k", 7, Request{{"accept-encoding", "gzip"}}), plain2);
}

// Without a matcher only entries without Vary match; Vary: * never does.
TEST(StoreTest, NoMatcherServesOnlyEntriesWithoutVary) {
  Store store;
  store.Insert("k", 7, MakeEntry("gz", {Field("accept-encoding", "gzip")}));
  EXPECT_EQ(store.Lookup("k", 7, Request{{"accept-encoding", "gzip"}}), nullptr);
  const auto plain = store.Insert("k", 7, MakeEntry("plain"));
  store.Insert("k", 7, MakeEntry("gz2", {Field("accept-encoding", "br")}));
  EXPECT_EQ(store.Lookup("k", 7, Request{{"accept-encoding", "br"}}), plain);

  Store with_matcher({}, ExactMatcher);
  auto star = MakeEntry("star");
  star->vary_star = true;
  with_matcher.Insert("s", 8, star);
  EXPECT_EQ(with_matcher.Lookup("s", 8, kNoHeaders), nullptr);
}

// An entry with the same Vary fields (any order) and coding replaces the stored one.
TEST(StoreTest, IdenticalVariantIsReplaced) {
  Store store({}, ExactMatcher);
  const auto first = store.Insert("k", 7, MakeEntry("v1", {Field("a", "1"), Field("b", "2")}));
  const auto second = store.Insert("k", 7, MakeEntry("v2", {Field("b", "2"), Field("a", "1")}));
  EXPECT_EQ(store.entries(), 1u);
  EXPECT_EQ(store.bytes(), second->charge);
  EXPECT_EQ(store.Lookup("k", 7, Request{{"a", "1"}, {"b", "2"}}), second);
  EXPECT_EQ(store.Stats().evictions, 0u);

  // A different value, a missing field or another coding is another variant.
  store.Insert("k", 7, MakeEntry("v3", {Field("b", "3"), Field("a", "1")}));
  store.Insert("k", 7, MakeEntry("v4", {Field("a", "1")}));
  auto coded = MakeEntry("v5", {Field("b", "2"), Field("a", "1")});
  coded->coding = 2;
  store.Insert("k", 7, coded);
  EXPECT_EQ(store.entries(), 4u);
  EXPECT_EQ(*first->body, "v1");  // the replaced entry is intact for whoever holds it
}

// A key holds at most kMaxVariants; the oldest goes first.
TEST(StoreTest, VariantsPerKeyAreCapped) {
  Store store({}, ExactMatcher);
  const int n = static_cast<int>(Store::kMaxVariants) + 1;
  for (int i = 0; i < n; ++i) {
    store.Insert("k", 7, MakeEntry("b", {Field("x", std::to_string(i))}));
  }
  EXPECT_EQ(store.entries(), Store::kMaxVariants);
  EXPECT_EQ(store.Stats().evictions, 1u);
  EXPECT_EQ(store.Lookup("k", 7, Request{{"x", "0"}}), nullptr);
  for (int i = 1; i < n; ++i) {
    EXPECT_NE(store.Lookup("k", 7, Request{{"x", std::to_string(i)}}), nullptr) << i;
  }
}

// Remove drops every variant of a key; RemoveEntry drops one by id.
TEST(StoreTest, RemoveAndRemoveEntry) {
  Store store({}, ExactMatcher);
  const auto a = store.Insert("k", 7, MakeEntry("a", {Field("x", "a")}));
  const auto b = store.Insert("k", 7, MakeEntry("b", {Field("x", "b")}));
  const auto other = store.Insert("o", 8, MakeEntry("o"));
  EXPECT_FALSE(store.RemoveEntry("k", 7, other->id));
  EXPECT_TRUE(store.RemoveEntry("k", 7, a->id));
  EXPECT_FALSE(store.RemoveEntry("k", 7, a->id));
  EXPECT_EQ(store.Lookup("k", 7, Request{{"x", "a"}}), nullptr);
  EXPECT_EQ(store.Lookup("k", 7, Request{{"x", "b"}}), b);

  store.Insert("k", 7, MakeEntry("c", {Field("x", "c")}));
  EXPECT_TRUE(store.Remove("k", 7));
  EXPECT_FALSE(store.Remove("k", 7));
  EXPECT_FALSE(store.Remove("absent", 9));
  EXPECT_EQ(store.Lookup("k", 7, Request{{"x", "b"}}), nullptr);
  EXPECT_EQ(store.entries(), 1u);
  EXPECT_EQ(store.bytes(), other->charge);
  EXPECT_EQ(store.Lookup("o", 8, kNoHeaders), other);
}

// max_object is lowered so an object fits a shard kObjectsPerShard times; bigger ones are
// refused and counted.
TEST(StoreTest, MaxObjectRefusal) {
  Store defaults;
  EXPECT_EQ(defaults.shard_count(), 8u);  // 256 MiB / (4 * 8 MiB)
  EXPECT_EQ(defaults.max_object(), size_t{8} << 20);
  Store big(StoreOptions{.memory = size_t{64} << 30});
  EXPECT_EQ(big.shard_count(), 64u);
  Store tiny(StoreOptions{.memory = 1 << 20});
  EXPECT_EQ(tiny.shard_count(), 1u);
  EXPECT_EQ(tiny.max_object(), size_t{256} << 10);
  Store explicit_shards(StoreOptions{.memory = 1 << 20, .shards = 16});
  EXPECT_EQ(explicit_shards.shard_count(), 16u);
  EXPECT_EQ(explicit_shards.max_object(), size_t{16} << 10);

  Store store(StoreOptions{.memory = 1 << 20, .max_object = 64 << 10});
  EXPECT_EQ(store.max_object(), size_t{64} << 10);
  EXPECT_EQ(store.Insert("big", 1, Sized(64 << 10)), nullptr);
  EXPECT_EQ(store.Insert("null", 2, nullptr), nullptr);
  auto fits = Sized(32 << 10);
  EXPECT_NE(store.Insert("fits", 3, fits), nullptr);
  const StoreStats st = store.Stats();
  EXPECT_EQ(st.refusals, 2u);
  EXPECT_EQ(st.inserts, 1u);
  EXPECT_EQ(st.entries, 1u);
  EXPECT_EQ(st.bytes, fits->charge);

  Store zero(StoreOptions{.memory = 0});
  EXPECT_EQ(zero.capacity(), 1u);
  EXPECT_EQ(zero.Insert("k", 1, Sized(0)), nullptr);
}

// A flood of 100k distinct URLs never pushes the charged bytes past the memory bound.
TEST(StoreTest, MemoryBoundUnderDistinctKeyFlood) {
  constexpr size_t kMemory = 1 << 20;
  Store store(StoreOptions{.memory = kMemory});
  size_t max_seen = 0;
  for (int i = 0; i < 100000; ++i) {
    const std::string key = KeyOf("http://flood/", i);
    ASSERT_NE(store.Insert(key, HashOf(key), Sized(100 + static_cast<size_t>(i % 900))), nullptr);
    max_seen = std::max(max_seen, store.bytes());
  }
  EXPECT_LE(max_seen, kMemory);
  const StoreStats st = store.Stats();
  EXPECT_LE(st.bytes, kMemory);
  EXPECT_GT(st.bytes, kMemory / 2);  // and the budget is actually used
  EXPECT_EQ(st.inserts, 100000u);
  EXPECT_EQ(st.evictions + st.entries, 100000u);
  const std::string last = KeyOf("http://flood/", 99999);
  EXPECT_NE(store.Lookup(last, HashOf(last), kNoHeaders), nullptr);
}

// Charge of one entry of the eviction tests (same key length, same body).
size_t UnitCharge() { return Store::ChargeOf(KeyOf("k", 0), *Sized(100)); }

// A one-shard store that holds exactly `n` unit entries.
Store UnitStore(size_t n) { return Store(StoreOptions{.memory = n * UnitCharge(), .shards = 1}); }

bool Has(Store& store, const std::string& key) {
  return store.Lookup(key, HashOf(key), kNoHeaders) != nullptr;
}

void Put(Store& store, const std::string& key) {
  ASSERT_NE(store.Insert(key, HashOf(key), Sized(100)), nullptr);
}

// Entries looked up since they were stored survive a stream of new ones; unhit ones go, oldest
// first.
TEST(StoreTest, RecentlyLookedUpEntriesSurvive) {
  Store store = UnitStore(10);
  for (int i = 0; i < 10; ++i) {
    Put(store, KeyOf("k", i));
  }
  EXPECT_EQ(store.entries(), 10u);
  EXPECT_TRUE(Has(store, KeyOf("k", 0)));
  for (int i = 10; i < 15; ++i) {
    Put(store, KeyOf("k", i));
  }
  EXPECT_EQ(store.entries(), 10u);
  EXPECT_EQ(store.Stats().evictions, 5u);
  EXPECT_TRUE(Has(store, KeyOf("k", 0)));
  for (int i = 1; i <= 5; ++i) {
    EXPECT_FALSE(Has(store, KeyOf("k", i))) << i;
  }
  for (int i = 6; i < 15; ++i) {
    EXPECT_TRUE(Has(store, KeyOf("k", i))) << i;
  }
}

// S3-FIFO: a scan of one-shot keys cycles through the small queue; the entries hit before it
// moved to the main queue and stay (k0, main's oldest, pays for the first scan entry).
TEST(StoreTest, ScanDoesNotFlushHitEntries) {
  Store store = UnitStore(10);
  for (int i = 0; i < 10; ++i) {
    Put(store, KeyOf("k", i));
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Has(store, KeyOf("k", i)));
  }
  for (int i = 0; i < 1000; ++i) {
    Put(store, KeyOf("s", i));
  }
  EXPECT_EQ(store.entries(), 10u);
  EXPECT_EQ(store.Stats().evictions, 1000u);
  EXPECT_FALSE(Has(store, KeyOf("k", 0)));
  for (int i = 1; i < 10; ++i) {
    EXPECT_TRUE(Has(store, KeyOf("k", i))) << i;
  }
  EXPECT_TRUE(Has(store, KeyOf("s", 999)));
  EXPECT_FALSE(Has(store, KeyOf("s", 998)));
}

// A key evicted from the small queue unhit and stored again (its second request) is
// readmitted to the main queue through the ghost, and survives a scan.
TEST(StoreTest, GhostReadmitsReturningKey) {
  Store store = UnitStore(10);
  const std::string g = KeyOf("g", 0);
  Put(store, g);
  for (int i = 0; i < 10; ++i) {
    Put(store, KeyOf("s", i));
  }
  ASSERT_FALSE(Has(store, g));  // the oldest, unhit: evicted by s9
  Put(store, g);
  for (int i = 10; i < 100; ++i) {
    Put(store, KeyOf("s", i));
  }
  EXPECT_TRUE(Has(store, g));
  EXPECT_EQ(store.entries(), 10u);
}

// The main queue gives a hit entry a second chance: its oldest entry is reinserted (one hit
// spent) and the next oldest unhit one goes.
TEST(StoreTest, MainQueueReinsertsHitEntries) {
  Store store = UnitStore(10);
  for (int i = 0; i < 10; ++i) {
    Put(store, KeyOf("k", i));
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Has(store, KeyOf("k", i)));
  }
  Put(store, KeyOf("x", 0));  // k0..k9 move to main; k0, main's oldest, goes
  ASSERT_TRUE(Has(store, KeyOf("k", 1)));
  ASSERT_TRUE(Has(store, KeyOf("x", 0)));
  Put(store, KeyOf("x", 1));  // x0 to main; k1 reinserted; k2 goes
  EXPECT_EQ(store.entries(), 10u);
  EXPECT_FALSE(Has(store, KeyOf("k", 0)));
  EXPECT_TRUE(Has(store, KeyOf("k", 1)));
  EXPECT_FALSE(Has(store, KeyOf("k", 2)));
  for (int i = 3; i < 10; ++i) {
    EXPECT_TRUE(Has(store, KeyOf("k", i))) << i;
  }
  EXPECT_TRUE(Has(store, KeyOf("x", 0)));
  EXPECT_TRUE(Has(store, KeyOf("x", 1)));
}

// The small queue is evicted only while it holds its share (10% of the budget); below it,
// main's oldest unhit entry goes instead.
TEST(StoreTest, SmallQueueEvictedOnlyAboveItsShare) {
  Store store = UnitStore(30);  // small share: 3 entries
  for (int i = 0; i < 30; ++i) {
    Put(store, KeyOf("k", i));
  }
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(Has(store, KeyOf("k", i)));
  }
  Put(store, KeyOf("x", 0));  // k0..k29 to main, k0 goes
  Put(store, KeyOf("x", 1));  // small holds 2 < 3: main's oldest, k1, goes
  Put(store, KeyOf("x", 2));  // small holds 3: its oldest, x0, goes
  EXPECT_FALSE(Has(store, KeyOf("k", 0)));
  EXPECT_FALSE(Has(store, KeyOf("k", 1)));
  EXPECT_FALSE(Has(store, KeyOf("x", 0)));
  EXPECT_TRUE(Has(store, KeyOf("x", 1)));
  EXPECT_TRUE(Has(store, KeyOf("x", 2)));
  for (int i = 2; i < 30; ++i) {
    EXPECT_TRUE(Has(store, KeyOf("k", i))) << i;
  }
  EXPECT_EQ(store.entries(), 30u);
}

// A readmitted entry alone in main, then joined by entries promoted from small in front of
// it: eviction looks past it (the entry being inserted is never its own victim) and the bound
// holds.
TEST(StoreTest, EvictionLooksPastTheInsertedEntry) {
  Store store = UnitStore(10);
  const std::string g = KeyOf("g", 0);
  Put(store, g);
  for (int i = 0; i < 10; ++i) {
    Put(store, KeyOf("s", i));  // s9 evicts g, unhit: into the ghost
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Has(store, KeyOf("s", i)));
  }
  Put(store, g);  // to main; s0..s9 promoted in front of it; s0 goes
  EXPECT_LE(store.bytes(), store.capacity());
  EXPECT_EQ(store.entries(), 10u);
  EXPECT_TRUE(Has(store, g));
  EXPECT_FALSE(Has(store, KeyOf("s", 0)));
  for (int i = 1; i < 10; ++i) {
    EXPECT_TRUE(Has(store, KeyOf("s", i))) << i;
  }
}

// A reader keeps an entry that the store removes or evicts; only the store's reference goes.
TEST(StoreTest, ReadersKeepEvictedEntries) {
  Store store = UnitStore(4);
  const std::string key = KeyOf("k", 0);
  // Held from Insert(), not Lookup(): a hit would protect it from the flood below.
  std::shared_ptr<const Entry> held =
      store.Insert(key, HashOf(key), MakeEntry(std::string(100, 'r')));
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held.use_count(), 2);  // ours and the store's
  for (int i = 1; i < 100; ++i) {
    Put(store, KeyOf("k", i));
  }
  EXPECT_FALSE(Has(store, key));
  EXPECT_EQ(held.use_count(), 1);
  EXPECT_EQ(*held->body, std::string(100, 'r'));

  auto removed = store.Insert("r", 1, MakeEntry("still here"));
  ASSERT_TRUE(store.Remove("r", 1));
  EXPECT_EQ(removed.use_count(), 1);
  EXPECT_EQ(*removed->body, "still here");
}

constexpr Waiter kW1{1, 1, 1};
constexpr Waiter kW2{2, 2, 2};
constexpr Waiter kW3{3, 3, 3};
constexpr Waiter kW4{4, 4, 4};

// The first miss fills, the others wait; EndFill returns exactly the waiters, in order.
TEST(StoreTest, FillRoles) {
  Store store;
  EXPECT_EQ(store.JoinFill("k", 7, kW1, 100), FillRole::kFill);
  EXPECT_EQ(store.Stats().fills, 1u);
  EXPECT_EQ(store.JoinFill("k", 7, kW2, 100), FillRole::kWait);
  EXPECT_EQ(store.JoinFill("k", 7, kW3, 101), FillRole::kWait);
  EXPECT_EQ(store.JoinFill("other", 7, kW4, 101), FillRole::kFill);  // per key
  EXPECT_EQ(store.Stats().fills, 2u);

  EXPECT_TRUE(store.EndFill("k", 7, kW2).empty());  // not the filler: no effect
  EXPECT_EQ(store.JoinFill("k", 7, kW4, 102), FillRole::kWait);
  EXPECT_TRUE(store.LeaveFill("k", 7, kW3));
  EXPECT_FALSE(store.LeaveFill("k", 7, kW3));
  EXPECT_FALSE(store.LeaveFill("absent", 9, kW3));

  EXPECT_EQ(store.EndFill("k", 7, kW1), (std::vector<Waiter>{kW2, kW4}));
  EXPECT_TRUE(store.EndFill("k", 7, kW1).empty());  // exactly once
  EXPECT_EQ(store.Stats().fills, 1u);
  EXPECT_EQ(store.JoinFill("k", 7, kW2, 103), FillRole::kFill);  // a woken miss refills
  EXPECT_TRUE(store.EndFill("k", 7, kW2).empty());
  EXPECT_TRUE(store.EndFill("other", 7, kW4).empty());
  EXPECT_EQ(store.Stats().fills, 0u);
  EXPECT_EQ(store.entries(), 0u);
}

// A fill running for fill_timeout seconds is taken over; the old filler's EndFill is a no-op.
TEST(StoreTest, StuckFillIsTakenOver) {
  Store store(StoreOptions{.fill_timeout = 30});
  EXPECT_EQ(store.JoinFill("k", 7, kW1, 100), FillRole::kFill);
  EXPECT_EQ(store.JoinFill("k", 7, kW2, 110), FillRole::kWait);
  EXPECT_EQ(store.JoinFill("k", 7, kW3, 129), FillRole::kWait);
  EXPECT_EQ(store.JoinFill("k", 7, kW4, 130), FillRole::kFill);  // 30 s old
  EXPECT_EQ(store.Stats().fills, 1u);
  EXPECT_TRUE(store.EndFill("k", 7, kW1).empty());
  // A waiter taking over leaves the waiters it inherits.
  EXPECT_EQ(store.JoinFill("k", 7, kW2, 160), FillRole::kFill);
  EXPECT_TRUE(store.EndFill("k", 7, kW4).empty());
  EXPECT_EQ(store.EndFill("k", 7, kW2), (std::vector<Waiter>{kW3}));
  EXPECT_EQ(store.Stats().fills, 0u);
}

// Full waiter lists and a full fill registry answer kBypass.
TEST(StoreTest, FillBypassWhenFull) {
  Store store(StoreOptions{.shards = 1, .max_waiters_per_fill = 2, .max_fills = 1});
  EXPECT_EQ(store.JoinFill("k", 7, kW1, 0), FillRole::kFill);
  EXPECT_EQ(store.JoinFill("k", 7, kW2, 0), FillRole::kWait);
  EXPECT_EQ(store.JoinFill("k", 7, kW3, 0), FillRole::kWait);
  EXPECT_EQ(store.JoinFill("k", 7, kW4, 0), FillRole::kBypass);
  EXPECT_TRUE(store.LeaveFill("k", 7, kW2));
  EXPECT_EQ(store.JoinFill("k", 7, kW4, 0), FillRole::kWait);

  EXPECT_EQ(store.JoinFill("j", 8, kW1, 0), FillRole::kBypass);  // one fill at most
  EXPECT_EQ(store.EndFill("k", 7, kW1), (std::vector<Waiter>{kW3, kW4}));
  EXPECT_EQ(store.JoinFill("j", 8, kW1, 0), FillRole::kFill);
}

// Fills and entries of a key live side by side: inserting or removing during a fill keeps it.
TEST(StoreTest, FillAndEntriesCoexist) {
  Store store;
  EXPECT_EQ(store.JoinFill("k", 7, kW1, 0), FillRole::kFill);
  EXPECT_EQ(store.JoinFill("k", 7, kW2, 0), FillRole::kWait);
  EXPECT_EQ(store.Lookup("k", 7, kNoHeaders), nullptr);
  const auto e = store.Insert("k", 7, MakeEntry("filled"));
  EXPECT_EQ(store.Lookup("k", 7, kNoHeaders), e);
  EXPECT_EQ(store.EndFill("k", 7, kW1), (std::vector<Waiter>{kW2}));
  EXPECT_EQ(store.Lookup("k", 7, kNoHeaders), e);

  EXPECT_EQ(store.JoinFill("k", 7, kW3, 0), FillRole::kFill);  // a revalidation
  EXPECT_EQ(store.JoinFill("k", 7, kW4, 0), FillRole::kWait);
  EXPECT_TRUE(store.Remove("k", 7));
  EXPECT_EQ(store.EndFill("k", 7, kW3), (std::vector<Waiter>{kW4}));
  EXPECT_EQ(store.entries(), 0u);
  EXPECT_EQ(store.Stats().fills, 0u);
}

// Four threads mixing every operation over shared keys (some with colliding hashes) for a
// bounded time: no entry is served for another key or variant, the bound always holds, and
// the counters agree with the contents at the end.
TEST(StoreTest, ConcurrentMixedOperations) {
  constexpr size_t kMemory = 256 << 10;
  constexpr int kKeys = 600;
  Store store(StoreOptions{.memory = kMemory, .shards = 4, .fill_timeout = 1}, ExactMatcher);
  const auto hash_of = [](int k) { return k % 3 == 0 ? uint64_t{42} : HashOf(KeyOf("c", k)); };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  std::atomic<bool> failed{false};
  std::atomic<uint64_t> ops{0};

  const auto worker = [&](int t) {
    uint64_t rng = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(t + 1);
    const auto next = [&rng] {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      return rng;
    };
    const Waiter self{static_cast<uint64_t>(t), 0, 0};
    std::vector<std::pair<int, int64_t>> filling;  // (key, ticket) this thread fills
    int64_t now = 0;
    uint64_t n = 0;
    while (std::chrono::steady_clock::now() < deadline && !failed.load()) {
      for (int burst = 0; burst < 64; ++burst, ++n) {
        const int k = static_cast<int>(next() % kKeys);
        const std::string key = KeyOf("c", k);
        const std::string v = std::to_string(next() % 2);
        const uint64_t op = next() % 100;
        if (op < 55) {
          const auto e = store.Lookup(key, hash_of(k), Request{{"x", v}});
          if (e != nullptr && !e->body->starts_with(key + "/" + v + ".")) {
            failed = true;  // served for another key or variant
          }
        } else if (op < 80) {
          const size_t pad = 1 + next() % 8192;
          store.Insert(key, hash_of(k),
                       MakeEntry(key + "/" + v + std::string(pad, '.'), {Field("x", v)}));
        } else if (op < 85) {
          store.Remove(key, hash_of(k));
        } else if (op < 95) {
          const Waiter me{self.a, static_cast<uint64_t>(k), n};
          if (store.JoinFill(key, hash_of(k), me, now) == FillRole::kFill) {
            filling.emplace_back(k, static_cast<int64_t>(n));
          } else {
            store.LeaveFill(key, hash_of(k), me);
          }
        } else if (!filling.empty()) {
          const auto [fk, ticket] = filling.back();
          filling.pop_back();
          const Waiter me{self.a, static_cast<uint64_t>(fk), static_cast<uint64_t>(ticket)};
          store.EndFill(KeyOf("c", fk), hash_of(fk), me);
        }
        if (store.bytes() > kMemory) {
          failed = true;
        }
        if (n % 512 == 0) {
          ++now;  // lets stuck fills of other threads be taken over
        }
      }
    }
    for (const auto& [fk, ticket] : filling) {
      const Waiter me{self.a, static_cast<uint64_t>(fk), static_cast<uint64_t>(ticket)};
      store.EndFill(KeyOf("c", fk), hash_of(fk), me);
    }
    ops += n;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back(worker, t);
  }
  for (std::thread& th : threads) {
    th.join();
  }
  EXPECT_FALSE(failed.load());
  EXPECT_GT(ops.load(), 1000u);

  // Quiescent: every entry is found by exactly one (key, value) lookup.
  size_t found = 0;
  for (int k = 0; k < kKeys; ++k) {
    for (const char* v : {"0", "1"}) {
      found += store.Lookup(KeyOf("c", k), hash_of(k), Request{{"x", v}}) != nullptr ? 1 : 0;
    }
  }
  const StoreStats st = store.Stats();
  EXPECT_EQ(found, st.entries);
  EXPECT_LE(st.bytes, kMemory);
  // Fills taken over from a thread were ended by their new owner; none is left behind.
  EXPECT_EQ(st.fills, 0u);
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_EQ(store.JoinFill(KeyOf("c", k), hash_of(k), Waiter{9, 9, 9}, 0), FillRole::kFill);
  }
  EXPECT_EQ(store.Stats().fills, static_cast<size_t>(kKeys));
}

}  // namespace
}  // namespace torii::cache
