// tests/ratelimit/flat_table_test.cc: FlatTable (ratelimit/flat_table.h), the bounded
// open-addressing map under every table, against a std::map model: insert, find, erase and
// sweeps with backward-shift deletion, growth to the bound and no further.
#include "ratelimit/flat_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

namespace torii::ratelimit::detail {
namespace {

struct Val {
  uint64_t v = 0;  // 0 = empty
  bool occupied() const { return v != 0; }
};

void ExpectSame(FlatTable<Val>& t, const std::map<uint64_t, uint64_t>& model, uint64_t key_space) {
  ASSERT_EQ(t.size(), model.size());
  for (uint64_t k = 0; k < key_space; ++k) {
    Val* v = t.Find(k, Mix64(k));
    auto it = model.find(k);
    if (it == model.end()) {
      ASSERT_EQ(v, nullptr) << k;
    } else {
      ASSERT_NE(v, nullptr) << k;
      ASSERT_EQ(v->v, it->second) << k;
    }
  }
}

// Random operations on a small key space (long probe clusters, wrap-around at the array end)
// keep the table equal to the model.
TEST(FlatTableTest, MatchesAMapUnderRandomOperations) {
  for (size_t capacity : {1u, 3u, 12u, 48u, 200u}) {
    FlatTable<Val> t(capacity);
    std::map<uint64_t, uint64_t> model;
    std::mt19937_64 rng(capacity);
    const uint64_t key_space = capacity * 3;
    for (int step = 0; step < 20000; ++step) {
      const uint64_t k = rng() % key_space;
      const int op = static_cast<int>(rng() % 10);
      Val* v = t.Find(k, Mix64(k));
      if (op < 5) {  // insert or update
        const uint64_t value = rng() | 1;
        if (v != nullptr) {
          v->v = value;
          model[k] = value;
        } else if (!t.full()) {
          t.Insert(k, Mix64(k), Val{value});
          model[k] = value;
        }
      } else if (op < 9) {  // erase
        if (v != nullptr) {
          t.Erase(v);
          model.erase(k);
        }
      } else {  // sweep a residue class
        const uint64_t r = rng() % 3;
        size_t expected = 0;
        for (auto it = model.begin(); it != model.end();) {
          if (it->first % 3 == r) {
            it = model.erase(it);
            ++expected;
          } else {
            ++it;
          }
        }
        size_t seen = 0;
        EXPECT_EQ(t.EraseIf([&](uint64_t key, const Val&) {
          if (key % 3 == r) {
            ++seen;
            return true;
          }
          return false;
        }),
                  expected);
        EXPECT_EQ(seen, expected);  // each erased entry seen exactly once
      }
      if (step % 997 == 0) {
        ExpectSame(t, model, key_space);
      }
      ASSERT_LE(t.size(), capacity);
    }
    ExpectSame(t, model, key_space);
  }
}

// Slots grow on demand from none, to the smallest power of two holding capacity at 3/4 load.
TEST(FlatTableTest, GrowsLazilyUpToItsBound) {
  FlatTable<Val> t(1563);
  EXPECT_EQ(t.slot_count(), 0u);
  EXPECT_EQ(t.Find(1, Mix64(1)), nullptr);
  for (uint64_t k = 0; k < 1563; ++k) {
    ASSERT_FALSE(t.full());
    t.Insert(k, Mix64(k), Val{k + 1});
  }
  EXPECT_TRUE(t.full());
  EXPECT_EQ(t.slot_count(), 4096u);  // 2048 * 3/4 = 1536 < 1563
  for (uint64_t k = 0; k < 1563; ++k) {
    ASSERT_NE(t.Find(k, Mix64(k)), nullptr);
  }
}

// MinBy finds the smallest score; an empty table gives nullptr.
TEST(FlatTableTest, MinByFindsTheSmallest) {
  FlatTable<Val> t(10);
  EXPECT_EQ(t.MinBy([](const Val& v) { return v.v; }), nullptr);
  for (uint64_t k = 0; k < 10; ++k) {
    t.Insert(k, Mix64(k), Val{100 - k * 7});
  }
  Val* min = t.MinBy([](const Val& v) { return v.v; });
  ASSERT_NE(min, nullptr);
  EXPECT_EQ(min->v, 100 - 9 * 7);
}

// EvictBatch: every expired entry goes; with none expired, about capacity/8 live entries go,
// all among the closest to expiry; on_erase sees each erased entry once.
TEST(FlatTableTest, EvictBatchTakesExpiredFirstThenTheClosest) {
  auto expires = [](const Val& v) { return v.v; };
  {
    FlatTable<Val> t(800);
    for (uint64_t k = 0; k < 800; ++k) {
      t.Insert(k, Mix64(k), Val{k < 200 ? 10 : 1000 + k});  // 200 expired at now = 50
    }
    size_t seen = 0;
    EXPECT_EQ(EvictBatch(t, /*now=*/50, expires,
                         [&](const Val& v) {
                           ++seen;
                           EXPECT_LE(v.v, 50u);
                         }),
              200u);
    EXPECT_EQ(seen, 200u);
    EXPECT_EQ(t.size(), 600u);
  }
  {
    FlatTable<Val> t(800);
    for (uint64_t k = 0; k < 800; ++k) {
      t.Insert(k, Mix64(k), Val{1000 + k});  // distinct expiries, none expired
    }
    std::vector<uint64_t> erased;
    const size_t n = EvictBatch(t, 50, expires, [&](const Val& v) { erased.push_back(v.v); });
    EXPECT_EQ(n, erased.size());
    EXPECT_GE(n, 1u);
    EXPECT_LE(n, 100u);
    for (uint64_t e : erased) {
      EXPECT_LT(e, 1000u + 250) << "not among the closest to expiry";
    }
  }
  {
    // All tied (one clock tick): still a batch, never more than capacity/8, at least one.
    FlatTable<Val> t(800);
    for (uint64_t k = 0; k < 800; ++k) {
      t.Insert(k, Mix64(k), Val{777});
    }
    for (int round = 0; round < 50; ++round) {
      const size_t n = EvictBatch(t, 50, expires, [](const Val&) {});
      EXPECT_GE(n, 1u);
      EXPECT_LE(n, 100u);
      for (uint64_t k = 0; !t.full(); ++k) {
        const uint64_t key = 1000000 * (round + 1) + k;
        t.Insert(key, Mix64(key), Val{777});
      }
    }
  }
  {
    // Tiny table: the one closest to expiry goes.
    FlatTable<Val> t(3);
    t.Insert(1, Mix64(1), Val{300});
    t.Insert(2, Mix64(2), Val{200});
    t.Insert(3, Mix64(3), Val{400});
    EXPECT_EQ(EvictBatch(t, 50, expires, [](const Val&) {}), 1u);
    EXPECT_EQ(t.Find(2, Mix64(2)), nullptr);
    EXPECT_NE(t.Find(1, Mix64(1)), nullptr);
    EXPECT_NE(t.Find(3, Mix64(3)), nullptr);
  }
}

}  // namespace
}  // namespace torii::ratelimit::detail
