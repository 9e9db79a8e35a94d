// tests/tls/record_size_test.cc: RecordSizer (tls/record_size.h): dynamic record sizes (small
// at a connection's start and after an idle second, full once kSmallBytes have gone), fixed
// sizes, and the bounds ServerContext::Create holds record_size to.
#include "tls/record_size.h"

#include <gtest/gtest.h>

#include "tests/tls/tls_test_util.h"
#include "tls/server_context.h"

namespace torii::tls {
namespace {

// Seals `bytes` the way the transport does (one record at most Limit() each) and returns how
// many records it took.
size_t SealAll(RecordSizer& sizer, size_t bytes, uint64_t now_ms) {
  size_t records = 0;
  while (bytes > 0) {
    const size_t n = std::min(bytes, sizer.Limit(now_ms));
    sizer.Sealed(n, now_ms);
    bytes -= n;
    ++records;
  }
  return records;
}

TEST(RecordSizerTest, SmallRecordsFitOneSegment) {
  EXPECT_EQ(RecordSizer::kSmallRecord + RecordSizer::kOverhead, 1400u);
  EXPECT_EQ(RecordSizer::kMaxRecord, 16384u);
}

// A new connection: records of one segment until 64 KiB have gone, then full records.
TEST(RecordSizerTest, DynamicStartsSmallThenGoesFull) {
  RecordSizer sizer;
  const uint64_t t0 = 5'000'000;
  EXPECT_EQ(sizer.Limit(t0), RecordSizer::kSmallRecord);
  size_t small = 0;
  uint64_t now = t0;
  size_t sent = 0;
  while (sizer.Limit(now) == RecordSizer::kSmallRecord) {
    sizer.Sealed(RecordSizer::kSmallRecord, now);
    sent += RecordSizer::kSmallRecord;
    ++small;
    ASSERT_LT(small, 1000u);
    if (sent < RecordSizer::kSmallBytes) {
      now += 10;  // a response streamed in 10 ms steps: never idle
    }
  }
  EXPECT_GE(sent, RecordSizer::kSmallBytes);
  EXPECT_LT(sent, RecordSizer::kSmallBytes + RecordSizer::kSmallRecord);
  EXPECT_EQ(sizer.Limit(now), RecordSizer::kMaxRecord);
  // Busy with less than a second between writes: full records stay.
  now += RecordSizer::kIdleMs - 1;
  EXPECT_EQ(sizer.Limit(now), RecordSizer::kMaxRecord);
  sizer.Sealed(100, now);
  // Idle for a second: small again (slow start restarts), for another kSmallBytes.
  now += RecordSizer::kIdleMs;
  EXPECT_EQ(sizer.Limit(now), RecordSizer::kSmallRecord);
  EXPECT_EQ(SealAll(sizer, RecordSizer::kSmallBytes, now),
            (RecordSizer::kSmallBytes + RecordSizer::kSmallRecord - 1) / RecordSizer::kSmallRecord);
  EXPECT_EQ(sizer.Limit(now), RecordSizer::kMaxRecord);
}

// Short responses count toward the small phase byte by byte, whatever their records' sizes.
TEST(RecordSizerTest, ShortWritesCountTheirBytes) {
  RecordSizer sizer;
  uint64_t now = 1'000'000;
  const size_t response = 300;
  size_t responses = 0;
  while (sizer.Limit(now) == RecordSizer::kSmallRecord) {
    sizer.Sealed(response, now);
    ++responses;
    ++now;
    ASSERT_LT(responses, 1000u);
  }
  EXPECT_EQ(responses, (RecordSizer::kSmallBytes + response - 1) / response);
}

// The clock in milliseconds wraps at 2^32 inside the sizer: a busy connection across the wrap
// stays full, an idle one across it goes small.
TEST(RecordSizerTest, IdleTimeAcrossTheWrap) {
  RecordSizer sizer;
  const uint64_t before = (uint64_t{1} << 32) - 100;
  SealAll(sizer, RecordSizer::kSmallBytes, before);
  EXPECT_EQ(sizer.Limit(before + 200), RecordSizer::kMaxRecord);
  sizer.Sealed(10, before + 200);
  EXPECT_EQ(sizer.Limit(before + 200 + RecordSizer::kIdleMs), RecordSizer::kSmallRecord);
}

// A fixed size caps every record, at the start, when busy and after idle alike.
TEST(RecordSizerTest, FixedCapsEveryRecord) {
  RecordSizer sizer(4096);
  uint64_t now = 7'000'000;
  EXPECT_EQ(sizer.Limit(now), 4096u);
  EXPECT_EQ(SealAll(sizer, 1 << 20, now), (1u << 20) / 4096);
  EXPECT_EQ(sizer.Limit(now + 1), 4096u);
  EXPECT_EQ(sizer.Limit(now + 10 * RecordSizer::kIdleMs), 4096u);
  RecordSizer full(kMaxRecordSize);
  EXPECT_EQ(full.Limit(now), RecordSizer::kMaxRecord);
}

// record_size outside 512..16384 is refused when the context is made; 0 (dynamic) and the two
// bounds are taken and reported back.
TEST(RecordSizerTest, ServerContextHoldsTheBounds) {
  for (uint32_t bad : {1u, 511u, 16385u, 65536u}) {
    ServerOptions options = testing::Options({testing::Pki::Get().a_ec});
    options.record_size = bad;
    auto made = ServerContext::Create(options);
    ASSERT_FALSE(made.has_value()) << bad;
    EXPECT_EQ(made.error(),
              "record_size must be from 512 to 16384 bytes, got " + std::to_string(bad));
  }
  for (uint32_t good : {0u, 512u, 4096u, 16384u}) {
    ServerOptions options = testing::Options({testing::Pki::Get().a_ec});
    options.record_size = good;
    auto made = ServerContext::Create(options);
    ASSERT_TRUE(made.has_value()) << good << ": " << made.error();
    EXPECT_EQ((*made)->record_size(), good);
  }
}

}  // namespace
}  // namespace torii::tls
