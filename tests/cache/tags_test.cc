// tests/cache/tags_test.cc: purge by tag (cache/tags.h) and the store walk it runs on
// (Store::PurgeMatching).
#include "cache/tags.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "cache/policy.h"
#include "cache/store.h"

namespace torii::cache {
namespace {

std::vector<std::string> Tags(std::string_view value) {
  std::vector<std::string> out;
  AppendTags(value, &out);
  return out;
}

TEST(Tags, PurgeRequestList) {
  EXPECT_EQ(Tags("a, b,c  d"), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(Tags(" , ,"), std::vector<std::string>{});
  std::string many;
  for (int i = 0; i < 100; ++i) {
    many += "t" + std::to_string(i) + ",";
  }
  EXPECT_EQ(Tags(many).size(), kMaxPurgeTags);
}

std::shared_ptr<Entry> Tagged(std::vector<Header> headers) {
  auto e = std::make_shared<Entry>();
  e->status = 200;
  e->headers = std::move(headers);
  e->body = std::make_shared<const std::string>("body");
  e->freshness_lifetime = 3600;
  return e;
}

// Cache-Tag splits at commas (and spaces), Surrogate-Key at spaces only; tags match exactly.
TEST(Tags, CarriesTag) {
  const auto e = Tagged({{"cache-tag", "product-1, list"}, {"surrogate-key", "a,b key-2"}});
  const std::vector<std::string> list = {"list"};
  EXPECT_TRUE(CarriesTag(*e, list));
  EXPECT_TRUE(CarriesTag(*e, std::vector<std::string>{"key-2"}));
  EXPECT_TRUE(CarriesTag(*e, std::vector<std::string>{"a,b"}));  // one Surrogate-Key
  EXPECT_FALSE(CarriesTag(*e, std::vector<std::string>{"a"}));
  EXPECT_FALSE(CarriesTag(*e, std::vector<std::string>{"List"}));
  EXPECT_FALSE(CarriesTag(*e, std::vector<std::string>{"product"}));
  EXPECT_FALSE(CarriesTag(*Tagged({{"x-tag", "list"}}), list));
}

// A soft-purged copy is stale now, and stays usable stale as one that just expired.
TEST(Tags, MarkedStale) {
  auto e = Tagged({});
  e->request_time = e->response_time = e->date_value = 1000;
  Request req;
  EXPECT_EQ(Evaluate(*e, req, 1100).verdict, Verdict::kFresh);
  const auto stale = MarkedStale(*e, 1100);
  EXPECT_NE(Evaluate(*stale, req, 1100).verdict, Verdict::kFresh);
  EXPECT_EQ(stale->body, e->body);
  EXPECT_EQ(stale->freshness_lifetime, 100);
}

// PurgeMatching keeps, removes or replaces each entry as told, in every shard.
TEST(Tags, StorePurgeMatching) {
  StoreOptions options;
  options.memory = 1 << 20;
  options.shards = 4;
  Store store(options);
  for (int i = 0; i < 40; ++i) {
    store.Insert("k" + std::to_string(i), static_cast<uint64_t>(i) * 7919,
                 Tagged({{"cache-tag", i % 2 == 0 ? "even" : "odd"}}));
  }
  ASSERT_EQ(store.entries(), 40u);
  const std::vector<std::string> even = {"even"};
  EXPECT_EQ(store.PurgeMatching([&](const std::shared_ptr<const Entry>& e) {
    return CarriesTag(*e, even) ? nullptr : e;
  }),
            20u);
  EXPECT_EQ(store.entries(), 20u);
  const size_t bytes = store.bytes();
  EXPECT_EQ(store.PurgeMatching(
                [&](const std::shared_ptr<const Entry>& e) { return MarkedStale(*e, 0); }),
            20u);
  EXPECT_EQ(store.entries(), 20u);
  EXPECT_EQ(store.bytes(), bytes);
  EXPECT_EQ(store.PurgeMatching([](const std::shared_ptr<const Entry>& e) { return e; }), 0u);
}

}  // namespace
}  // namespace torii::cache
