// tests/base/free_index_test.cc: reusing a table's entries by index (base/free_index.h).
#include "base/free_index.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace torii::base {
namespace {

TEST(FreeIndexTest, TheLastGivenBackFirstThenANewOneAtTheEnd) {
  std::vector<std::string> table;
  std::vector<uint32_t> free;
  const auto take = [&] {
    return TakeIndex(free, table.size(), [&] { table.emplace_back("new"); });
  };
  EXPECT_EQ(take(), 0u);
  EXPECT_EQ(take(), 1u);
  EXPECT_EQ(take(), 2u);
  EXPECT_EQ(table.size(), 3u);
  free = {2, 0};
  table[0] = "used";
  EXPECT_EQ(take(), 0u);        // the last one given back
  EXPECT_EQ(table[0], "used");  // reused as it is: filling it is the caller's
  EXPECT_EQ(take(), 2u);
  EXPECT_TRUE(free.empty());
  EXPECT_EQ(take(), 3u);  // none left: the table grows
  EXPECT_EQ(table.size(), 4u);
}

}  // namespace
}  // namespace torii::base
