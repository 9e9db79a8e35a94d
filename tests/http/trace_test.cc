// tests/http/trace_test.cc: request IDs and W3C traceparent (http/trace.cc).
#include "http/trace.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace torii::http {
namespace {

constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// A valid version-00 value parses and formats back to itself.
TEST(TraceTest, ParsesAndFormatsVersion00) {
  const auto tp = ParseTraceParent(kValid);
  ASSERT_TRUE(tp);
  EXPECT_EQ(tp->flags, 1);
  EXPECT_EQ(tp->trace_id[0], 0x4b);
  EXPECT_EQ(tp->parent_id[7], 0xb7);
  std::string out;
  AppendTraceParent(*tp, &out);
  EXPECT_EQ(out, kValid);
}

// Everything the spec calls invalid is refused (the caller then starts a new trace).
TEST(TraceTest, RefusesInvalidValues) {
  const char* bad[] = {
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     // short
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // 00 with extra
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // uppercase
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero parent id
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // separator
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    // not hex
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",   // future, bad suffix
  };
  for (const char* v : bad) {
    EXPECT_FALSE(ParseTraceParent(v)) << v;
  }
  // A future version is read by its first 55 characters.
  EXPECT_TRUE(ParseTraceParent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"));
}

// Request IDs a trusted proxy may pass: visible ASCII, no separators, at most 128 characters.
TEST(TraceTest, RequestIds) {
  EXPECT_TRUE(IsValidRequestId("abc-123"));
  EXPECT_TRUE(IsValidRequestId("f47ac10b-58cc-4372-a567-0e02b2c3d479"));
  EXPECT_TRUE(IsValidRequestId(std::string(128, 'a')));
  EXPECT_FALSE(IsValidRequestId(std::string(129, 'a')));
  for (const char* bad : {"", "a b", "a,b", "a;b", "a\"b", "a\\b", "a\x01", "caf\xc3\xa9"}) {
    EXPECT_FALSE(IsValidRequestId(bad)) << bad;
  }
}

// IDs are never all zero and do not repeat.
TEST(TraceTest, IdSourceMakesDistinctNonZeroIds) {
  IdSource ids;
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    uint8_t raw[16];
    ids.Fill(raw, sizeof(raw));
    std::string hex;
    AppendHex(raw, sizeof(raw), &hex);
    EXPECT_EQ(hex.size(), 32u);
    EXPECT_NE(hex, std::string(32, '0'));
    EXPECT_TRUE(seen.insert(hex).second);
  }
}

}  // namespace
}  // namespace torii::http
