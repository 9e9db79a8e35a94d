// tests/cache/range_test.cc: Range and If-Range against a stored response (cache/range.cc),
// table-driven (RFC 9110 §14, BAD-INPUTS K9).
#include "cache/range.h"

#include <gtest/gtest.h>

#include <string>

#include "cache/http_date.h"

namespace torii::cache {
namespace {

struct Case {
  const char* range;
  uint64_t length;
  RangeKind kind;
  uint64_t first = 0;
  uint64_t last = 0;
};

// Single ranges in every form, clamped to the length; what selects nothing is 416; several
// ranges, other units and malformed specifiers are ignored (the whole 200).
TEST(RangeTest, Evaluate) {
  const Case cases[] = {
      {"bytes=0-99", 1024, RangeKind::kSatisfiable, 0, 99},
      {"bytes=100-", 1024, RangeKind::kSatisfiable, 100, 1023},
      {"bytes=-100", 1024, RangeKind::kSatisfiable, 924, 1023},
      {"bytes=-5000", 1024, RangeKind::kSatisfiable, 0, 1023},
      {"bytes=1000-5000", 1024, RangeKind::kSatisfiable, 1000, 1023},
      {"BYTES = 5-5 ", 1024, RangeKind::kSatisfiable, 5, 5},
      {"bytes=, 7-8 ,", 1024, RangeKind::kSatisfiable, 7, 8},
      {"bytes=1023-", 1024, RangeKind::kSatisfiable, 1023, 1023},
      {"bytes=5000-6000", 1024, RangeKind::kUnsatisfiable},
      {"bytes=1024-", 1024, RangeKind::kUnsatisfiable},
      {"bytes=-0", 1024, RangeKind::kUnsatisfiable},
      {"bytes=0-", 0, RangeKind::kUnsatisfiable},
      {"bytes=-5", 0, RangeKind::kUnsatisfiable},
      {"bytes=0-1,5-6", 1024, RangeKind::kIgnore},
      {"bytes=0-,0-,0-,0-", 1024, RangeKind::kIgnore},
      {"items=0-1", 1024, RangeKind::kIgnore},
      {"bytes=5-3", 1024, RangeKind::kIgnore},
      {"bytes=a-b", 1024, RangeKind::kIgnore},
      {"bytes=-", 1024, RangeKind::kIgnore},
      {"bytes=1", 1024, RangeKind::kIgnore},
      {"bytes=", 1024, RangeKind::kIgnore},
      {"bytes 0-1", 1024, RangeKind::kIgnore},
      {"bytes=99999999999999999999-", 1024, RangeKind::kIgnore},
      {"bytes=+1-2", 1024, RangeKind::kIgnore},
  };
  for (const Case& c : cases) {
    const RangeAnswer a = EvaluateRange(c.range, c.length);
    EXPECT_EQ(a.kind, c.kind) << c.range;
    if (c.kind == RangeKind::kSatisfiable) {
      EXPECT_EQ(a.first, c.first) << c.range;
      EXPECT_EQ(a.last, c.last) << c.range;
    }
  }
}

// A flood of ranges is ignored in time linear in the field (no multipart is ever built).
TEST(RangeTest, ThousandRangesIgnored) {
  std::string r = "bytes=0-";
  for (int i = 0; i < 1000; ++i) {
    r += ",0-";
  }
  EXPECT_EQ(EvaluateRange(r, 1 << 20).kind, RangeKind::kIgnore);
}

// If-Range holds only with a strong match: the stored strong ETag, or the stored Last-Modified
// when it is strong (at least a second before Date).
TEST(RangeTest, IfRange) {
  Entry e;
  e.etag = "\"v1\"";
  e.date_value = 1'700'000'100;
  e.last_modified = FormatHttpDate(1'700'000'000);
  EXPECT_TRUE(IfRangeHolds("\"v1\"", e));
  EXPECT_FALSE(IfRangeHolds("\"v2\"", e));
  EXPECT_FALSE(IfRangeHolds("W/\"v1\"", e));
  EXPECT_TRUE(IfRangeHolds(FormatHttpDate(1'700'000'000), e));
  EXPECT_FALSE(IfRangeHolds(FormatHttpDate(1'700'000'001), e));
  EXPECT_FALSE(IfRangeHolds("not a date", e));
  // A weak stored ETag never matches; a Last-Modified equal to Date is weak.
  e.etag = "W/\"v1\"";
  EXPECT_FALSE(IfRangeHolds("\"v1\"", e));
  e.date_value = 1'700'000'000;
  EXPECT_FALSE(IfRangeHolds(FormatHttpDate(1'700'000'000), e));
  Entry bare;
  EXPECT_FALSE(IfRangeHolds("\"v1\"", bare));
  EXPECT_FALSE(IfRangeHolds(FormatHttpDate(1'700'000'000), bare));
}

}  // namespace
}  // namespace torii::cache
