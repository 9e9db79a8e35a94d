// tests/codec/encoder_test.cc: the streaming encoders (http/codec/codec.h: MakeEncoder,
// Encoder), checked by decoding their output with our decoders: round trips at every level,
// piecewise writes, Flush() prefixes, Reset() reuse, misuse, and the memory bound.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "http/codec/codec.h"
#include "tests/codec/test_data.h"

namespace torii::http::codec {
namespace {

using test::Compressible;
using test::Decode;
using test::Decoded;
using test::Encode;
using test::RandomBytes;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;
constexpr Coding kCodings[] = {Coding::kGzip, Coding::kBrotli, Coding::kZstd};

std::string CodingName(const ::testing::TestParamInfo<Coding>& info) {
  return std::string(Name(info.param));
}

// Levels, defaults and the factory's refusals.
TEST(EncoderTest, LevelsAndFactory) {
  EXPECT_EQ(MinLevel(Coding::kGzip), 1);
  EXPECT_EQ(MaxLevel(Coding::kGzip), 9);
  EXPECT_EQ(MinLevel(Coding::kBrotli), 0);
  EXPECT_EQ(MaxLevel(Coding::kBrotli), 11);
  EXPECT_EQ(MinLevel(Coding::kZstd), 1);
  EXPECT_EQ(MaxLevel(Coding::kZstd), 19);
  EXPECT_EQ(DefaultLevel(Coding::kGzip), 5);
  EXPECT_EQ(DefaultLevel(Coding::kBrotli), 4);
  EXPECT_EQ(DefaultLevel(Coding::kZstd), 3);
  EXPECT_EQ(MakeEncoder(Coding::kIdentity, 0), nullptr);
  EXPECT_EQ(MakeDecoder(Coding::kIdentity, 100), nullptr);
  for (Coding c : kCodings) {
    EXPECT_EQ(MakeEncoder(c, MinLevel(c) - 1), nullptr) << Name(c);
    EXPECT_EQ(MakeEncoder(c, MaxLevel(c) + 1), nullptr) << Name(c);
    std::unique_ptr<Encoder> e = MakeEncoder(c, DefaultLevel(c));
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->coding(), c);
  }
}

class EncoderRoundTrip : public ::testing::TestWithParam<Coding> {};

// Every level of the coding: 0 bytes, 1 byte, 64 KiB of text and of random bytes come back
// unchanged, and text shrinks.
TEST_P(EncoderRoundTrip, EveryLevel) {
  const Coding c = GetParam();
  const std::string text = Compressible(64 * kKiB, 1);
  const std::string noise = RandomBytes(64 * kKiB, 2);
  for (int level = MinLevel(c); level <= MaxLevel(c); ++level) {
    SCOPED_TRACE(std::string(Name(c)) + " level " + std::to_string(level));
    for (const std::string& input : {std::string(), std::string("x"), text, noise}) {
      const std::string packed = Encode(c, level, input);
      EXPECT_FALSE(packed.empty());  // even an empty stream has a header or an end marker
      const Decoded d = Decode(c, packed);
      ASSERT_TRUE(d.ok) << d.error;
      ASSERT_EQ(d.body, input);
    }
    EXPECT_LT(Encode(c, level, text).size(), text.size() / 3);
    // Random bytes grow by a few bytes per block at most.
    EXPECT_LT(Encode(c, level, noise).size(), noise.size() + noise.size() / 100 + 64);
  }
}

// 5 MiB at the default level in 1-byte, 7-byte and 64 KiB writes, decoded in other piece
// sizes: the stream does not depend on how the input was cut.
TEST_P(EncoderRoundTrip, FiveMiBInPieces) {
  const Coding c = GetParam();
  const int level = DefaultLevel(c);
  const std::string text = Compressible(5 * kMiB, 3);
  const std::string noise = RandomBytes(5 * kMiB, 4);
  struct Run {
    const std::string* input;
    size_t write_piece;
    size_t read_piece;
  };
  for (const Run& run : {Run{&text, 1, 64 * kKiB}, Run{&text, 7, 1}, Run{&text, 64 * kKiB, 7},
                         Run{&noise, 7, 64 * kKiB}, Run{&noise, 64 * kKiB, 7}, Run{&noise, 0, 0}}) {
    SCOPED_TRACE("write " + std::to_string(run.write_piece) + " read " +
                 std::to_string(run.read_piece));
    const std::string packed = Encode(c, level, *run.input, run.write_piece);
    const Decoded d = Decode(c, packed, run.read_piece);
    ASSERT_TRUE(d.ok) << d.error;
    ASSERT_EQ(d.body.size(), run.input->size());
    ASSERT_TRUE(d.body == *run.input);
  }
}

// After each Flush() the output so far decodes to exactly the input so far, with a fresh
// decoder and with one decoder fed as the output arrives; the finished stream is valid too.
TEST_P(EncoderRoundTrip, FlushYieldsADecodablePrefix) {
  const Coding c = GetParam();
  const std::string text = Compressible(300 * kKiB, 5) + RandomBytes(20 * kKiB, 6);
  std::unique_ptr<Encoder> e = MakeEncoder(c, DefaultLevel(c));
  ASSERT_NE(e, nullptr);
  std::unique_ptr<Decoder> live = MakeDecoder(c, UINT64_MAX);
  ASSERT_NE(live, nullptr);
  std::string packed;
  std::string live_body;
  size_t fed = 0;
  for (size_t pos = 0, piece = 1; pos < text.size(); pos += piece, piece = piece * 3 + 1) {
    piece = std::min(piece, text.size() - pos);
    ASSERT_TRUE(e->Write(std::string_view(text).substr(pos, piece), &packed));
    ASSERT_TRUE(e->Flush(&packed));
    const std::string_view so_far = std::string_view(text).substr(0, pos + piece);

    std::unique_ptr<Decoder> fresh = MakeDecoder(c, UINT64_MAX);
    std::string body;
    ASSERT_TRUE(fresh->Write(packed, &body)) << fresh->error();
    ASSERT_EQ(body.size(), so_far.size());
    ASSERT_TRUE(body == so_far);

    ASSERT_TRUE(live->Write(std::string_view(packed).substr(fed), &live_body)) << live->error();
    fed = packed.size();
    ASSERT_TRUE(live_body == so_far);
  }
  ASSERT_TRUE(e->Finish(&packed));
  ASSERT_TRUE(live->Write(std::string_view(packed).substr(fed), &live_body));
  ASSERT_TRUE(live->Finish(&live_body)) << live->error();
  EXPECT_EQ(live_body, text);
  const Decoded d = Decode(c, packed);
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.body, text);
}

// A Flush() with nothing new written emits nothing; Write() of nothing is a no-op; a Flush()
// right after creation is valid and the stream still finishes.
TEST_P(EncoderRoundTrip, EmptyFlushesAndWritesEmitNothing) {
  const Coding c = GetParam();
  std::unique_ptr<Encoder> e = MakeEncoder(c, DefaultLevel(c));
  std::string out;
  ASSERT_TRUE(e->Flush(&out));
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(e->Write("", &out));
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(e->Write("hello, hello, hello", &out));
  ASSERT_TRUE(e->Flush(&out));
  const size_t after_first = out.size();
  EXPECT_GT(after_first, 0u);
  ASSERT_TRUE(e->Flush(&out));
  ASSERT_TRUE(e->Write("", &out));
  ASSERT_TRUE(e->Flush(&out));
  EXPECT_EQ(out.size(), after_first);
  ASSERT_TRUE(e->Finish(&out));
  const Decoded d = Decode(c, out);
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.body, "hello, hello, hello");
}

// Output is appended, never cleared: bytes already in *out stay in front.
TEST_P(EncoderRoundTrip, AppendsToOut) {
  const Coding c = GetParam();
  std::unique_ptr<Encoder> e = MakeEncoder(c, DefaultLevel(c));
  std::string out = "prefix";
  ASSERT_TRUE(e->Write(Compressible(100 * kKiB, 7), &out));
  ASSERT_TRUE(e->Finish(&out));
  ASSERT_EQ(out.substr(0, 6), "prefix");
  EXPECT_EQ(e->total_out(), out.size() - 6);
  const Decoded d = Decode(c, std::string_view(out).substr(6));
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.body, Compressible(100 * kKiB, 7));
}

// After Finish(), Reset() gives a new valid stream (several times over, with the counters
// zeroed); a stream abandoned half-way is discarded by Reset() too.
TEST_P(EncoderRoundTrip, ResetReusesTheEncoder) {
  const Coding c = GetParam();
  std::unique_ptr<Encoder> e = MakeEncoder(c, DefaultLevel(c));
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string input = Compressible(50 * kKiB + round * 1000, 10 + round);
    std::string out;
    ASSERT_TRUE(e->Write(input, &out));
    ASSERT_TRUE(e->Finish(&out));
    EXPECT_EQ(e->total_in(), input.size());
    EXPECT_EQ(e->total_out(), out.size());
    const Decoded d = Decode(c, out);
    ASSERT_TRUE(d.ok) << d.error;
    ASSERT_EQ(d.body, input);
    // The same input through a fresh encoder gives the same bytes: nothing leaks across.
    EXPECT_EQ(out, Encode(c, DefaultLevel(c), input));
    ASSERT_TRUE(e->Reset());
    EXPECT_EQ(e->total_in(), 0u);
    EXPECT_EQ(e->total_out(), 0u);
  }
  // Abandon a stream mid-way (after some output), then start over.
  std::string junk;
  ASSERT_TRUE(e->Write(RandomBytes(200 * kKiB, 20), &junk));
  ASSERT_TRUE(e->Flush(&junk));
  ASSERT_TRUE(e->Reset());
  std::string out;
  ASSERT_TRUE(e->Write("second stream", &out));
  ASSERT_TRUE(e->Finish(&out));
  const Decoded d = Decode(c, out);
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.body, "second stream");
}

// Write, Flush and Finish after Finish() are refused; the stream already produced stays valid.
TEST_P(EncoderRoundTrip, CallsAfterFinishAreRefused) {
  const Coding c = GetParam();
  std::unique_ptr<Encoder> e = MakeEncoder(c, DefaultLevel(c));
  std::string out;
  ASSERT_TRUE(e->Write("abc", &out));
  ASSERT_TRUE(e->Finish(&out));
  const std::string done = out;
  EXPECT_FALSE(e->Write("more", &out));
  EXPECT_FALSE(e->Flush(&out));
  EXPECT_FALSE(e->Finish(&out));
  EXPECT_EQ(out, done);
  ASSERT_TRUE(e->Reset());
  EXPECT_TRUE(e->Write("more", &out));
}

// The codec's memory is fixed by its settings, not by the amount of data: measured mid-stream
// after 2 MiB (twice the largest window) at every level, and printed for the headers' tables.
TEST_P(EncoderRoundTrip, MemoryIsBounded) {
  const Coding c = GetParam();
  // The bounds documented in codec.h, with a little slack for other library versions.
  const size_t default_bound = c == Coding::kGzip     ? 280 * kKiB
                               : c == Coding::kBrotli ? 2 * kMiB
                                                      : 2176 * kKiB;
  const size_t any_bound = c == Coding::kGzip     ? 280 * kKiB
                           : c == Coding::kBrotli ? 3 * kMiB
                                                  : 3328 * kKiB;
  const std::string text = Compressible(2 * kMiB, 30);
  for (int level = MinLevel(c); level <= MaxLevel(c); ++level) {
    std::unique_ptr<Encoder> e = MakeEncoder(c, level);
    std::string out;
    // Top Brotli levels are slow (~1 MB/s): 1 MiB is enough to reach their steady state.
    const std::string_view input =
        std::string_view(text).substr(0, c == Coding::kBrotli && level >= 10 ? kMiB : text.size());
    for (size_t i = 0; i < input.size(); i += 256 * kKiB) {
      ASSERT_TRUE(e->Write(input.substr(i, 256 * kKiB), &out));
      out.clear();
    }
    ASSERT_TRUE(e->Flush(&out));
    const size_t mid_stream = e->memory_bytes();
    ASSERT_TRUE(e->Finish(&out));
    std::printf("[memory] %-4s level %2d: %7zu KiB\n", std::string(Name(c)).c_str(), level,
                mid_stream / kKiB);
    EXPECT_GT(mid_stream, 0u);
    EXPECT_LE(mid_stream, any_bound) << "level " << level;
    if (level == DefaultLevel(c)) {
      EXPECT_LE(mid_stream, default_bound);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Codings, EncoderRoundTrip, ::testing::ValuesIn(kCodings), CodingName);

// gzip has two engines: ISA-L at levels 1-3, zlib at 4-9. At every level: each Flush() leaves
// a prefix zlib's inflate decodes to exactly the input so far, the finished stream decodes
// whole, Reset() starts a second stream that decodes alone, and an empty stream is valid.
TEST(GzipEngines, EveryLevelStreamsFlushesAndResets) {
  const std::string text = Compressible(200 * kKiB, 7) + RandomBytes(10 * kKiB, 8);
  for (int level = MinLevel(Coding::kGzip); level <= MaxLevel(Coding::kGzip); ++level) {
    std::unique_ptr<Encoder> e = MakeEncoder(Coding::kGzip, level);
    ASSERT_NE(e, nullptr) << "level " << level;
    for (int stream = 0; stream < 2; ++stream) {
      std::string packed;
      for (size_t pos = 0, piece = 7; pos < text.size(); pos += piece, piece = piece * 5 + 3) {
        piece = std::min(piece, text.size() - pos);
        ASSERT_TRUE(e->Write(std::string_view(text).substr(pos, piece), &packed));
        ASSERT_TRUE(e->Flush(&packed));
        std::unique_ptr<Decoder> d = MakeDecoder(Coding::kGzip, UINT64_MAX);
        std::string body;
        ASSERT_TRUE(d->Write(packed, &body)) << "level " << level << ": " << d->error();
        ASSERT_TRUE(body == std::string_view(text).substr(0, pos + piece)) << "level " << level;
      }
      ASSERT_TRUE(e->Finish(&packed));
      EXPECT_EQ(e->total_in(), text.size());
      EXPECT_EQ(e->total_out(), packed.size());
      const Decoded d = Decode(Coding::kGzip, packed);
      ASSERT_TRUE(d.ok) << "level " << level << ": " << d.error;
      EXPECT_EQ(d.body, text) << "level " << level;
      ASSERT_TRUE(e->Reset());
    }
    std::string empty;
    ASSERT_TRUE(e->Finish(&empty));
    const Decoded d = Decode(Coding::kGzip, empty);
    ASSERT_TRUE(d.ok) << "level " << level << ": " << d.error;
    EXPECT_EQ(d.body, "");
  }
}

}  // namespace
}  // namespace torii::http::codec
