// tests/codec/decoder_test.cc: the streaming decoders (http/codec/codec.h: MakeDecoder,
// Decoder): corrupt, truncated and trailing input, zip bombs against max_output, empty bodies,
// concatenated gzip members and zstd frames, and zstd's window limit.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <memory>
#include <string>

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

class DecoderTest : public ::testing::TestWithParam<Coding> {};

// Bytes that are not a stream of the coding are refused, and the failure sticks.
TEST_P(DecoderTest, RejectsGarbage) {
  const Coding c = GetParam();
  for (const std::string& junk : {std::string("hello, world: this is not compressed"),
                                  RandomBytes(4 * kKiB, 40), std::string(100, '\0')}) {
    std::unique_ptr<Decoder> d = MakeDecoder(c, UINT64_MAX);
    std::string out;
    const bool ok = d->Write(junk, &out) && d->Finish(&out);
    EXPECT_FALSE(ok) << Name(c);
    EXPECT_FALSE(d->error().empty());
    // Once failed, always failed.
    EXPECT_FALSE(d->Write(Encode(c, DefaultLevel(c), "valid"), &out));
    EXPECT_FALSE(d->Finish(&out));
  }
}

// A valid stream with bytes flipped in the middle is refused (by the format or the checksum).
TEST_P(DecoderTest, RejectsCorruption) {
  const Coding c = GetParam();
  const std::string input = Compressible(200 * kKiB, 41);
  const std::string packed = Encode(c, DefaultLevel(c), input);
  int refused = 0;
  for (size_t at :
       {packed.size() / 4, packed.size() / 2, packed.size() * 3 / 4, packed.size() - 3}) {
    std::string bad = packed;
    bad[at] = static_cast<char>(bad[at] ^ 0x55);
    const Decoded d = Decode(c, bad, 1000);
    if (!d.ok) {
      ++refused;
    } else {
      // Brotli has no checksum: a flip can decode to other bytes, but never to the original.
      EXPECT_NE(d.body, input);
    }
  }
  if (c != Coding::kBrotli) {
    EXPECT_EQ(refused, 4);  // CRC-32 / XXH64 catch every flip
  } else {
    EXPECT_GE(refused, 1);
  }
}

// Every proper prefix of a stream is "truncated" at Finish() (Write() accepts it).
TEST_P(DecoderTest, RejectsTruncation) {
  const Coding c = GetParam();
  const std::string input = Compressible(100 * kKiB, 42);
  const std::string packed = Encode(c, DefaultLevel(c), input);
  for (size_t len :
       {size_t{1}, size_t{5}, packed.size() / 2, packed.size() - 4, packed.size() - 1}) {
    std::unique_ptr<Decoder> d = MakeDecoder(c, UINT64_MAX);
    std::string out;
    EXPECT_TRUE(d->Write(std::string_view(packed).substr(0, len), &out)) << d->error();
    EXPECT_FALSE(d->Finish(&out)) << "prefix of " << len << " bytes";
    EXPECT_NE(d->error().find("truncated"), std::string_view::npos) << d->error();
    EXPECT_TRUE(std::string_view(input).starts_with(out));
  }
}

// A zero-byte body decodes to zero bytes (servers label empty bodies too).
TEST_P(DecoderTest, EmptyBodyIsEmpty) {
  const Decoded d = Decode(GetParam(), "");
  EXPECT_TRUE(d.ok) << d.error;
  EXPECT_TRUE(d.body.empty());
}

// Finish() ends the body: a later Write() or a second Finish() is refused.
TEST_P(DecoderTest, CallsAfterFinishAreRefused) {
  const Coding c = GetParam();
  const std::string packed = Encode(c, DefaultLevel(c), "body");
  std::unique_ptr<Decoder> d = MakeDecoder(c, UINT64_MAX);
  std::string out;
  ASSERT_TRUE(d->Write(packed, &out));
  ASSERT_TRUE(d->Finish(&out));
  EXPECT_EQ(out, "body");
  EXPECT_FALSE(d->Write(packed, &out));
  EXPECT_FALSE(d->error().empty());
  EXPECT_EQ(out, "body");
  std::unique_ptr<Decoder> twice = MakeDecoder(c, UINT64_MAX);
  ASSERT_TRUE(twice->Write(packed, &out));
  ASSERT_TRUE(twice->Finish(&out));
  EXPECT_FALSE(twice->Finish(&out));
}

// A zip bomb (100 MiB of zeros, a few KiB compressed) stops at max_output: never more than
// the limit is appended. Exactly the limit is fine.
TEST_P(DecoderTest, StopsZipBombsAtMaxOutput) {
  const Coding c = GetParam();
  const std::string zeros(100 * kMiB, '\0');
  const std::string bomb = Encode(c, MaxLevel(c) > 9 ? 5 : 9, zeros);
  ASSERT_LT(bomb.size(), 200 * kKiB);
  for (size_t piece : {size_t{0}, size_t{1}, size_t{333}}) {
    std::unique_ptr<Decoder> d = MakeDecoder(c, 1 * kMiB);
    std::string out;
    bool ok = true;
    size_t step = piece == 0 ? bomb.size() : piece;
    for (size_t i = 0; i < bomb.size() && ok; i += step) {
      ok = d->Write(std::string_view(bomb).substr(i, step), &out);
      ASSERT_LE(out.size(), 1 * kMiB);
    }
    EXPECT_FALSE(ok);
    EXPECT_NE(d->error().find("max_output"), std::string_view::npos) << d->error();
    EXPECT_LE(d->total_out(), 1 * kMiB);
    EXPECT_FALSE(d->Finish(&out));
  }
  // At exactly the size: accepted. One byte less: refused.
  const std::string input = Compressible(300 * kKiB, 43);
  const std::string packed = Encode(c, DefaultLevel(c), input);
  const Decoded exact = Decode(c, packed, 0, input.size());
  EXPECT_TRUE(exact.ok) << exact.error;
  EXPECT_EQ(exact.body, input);
  const Decoded under = Decode(c, packed, 4096, input.size() - 1);
  EXPECT_FALSE(under.ok);
  EXPECT_EQ(under.body.size(), input.size() - 1);
  const Decoded zero = Decode(c, packed, 0, 0);
  EXPECT_FALSE(zero.ok);
  EXPECT_TRUE(zero.body.empty());
}

// The decoder's own memory stays bounded while it decodes 20 MiB.
TEST_P(DecoderTest, MemoryIsBounded) {
  const Coding c = GetParam();
  const std::string input = Compressible(20 * kMiB, 44);
  const std::string packed = Encode(c, DefaultLevel(c), input);
  std::unique_ptr<Decoder> d = MakeDecoder(c, UINT64_MAX);
  std::string out;
  size_t peak = 0;
  for (size_t i = 0; i < packed.size(); i += 64 * kKiB) {
    ASSERT_TRUE(d->Write(std::string_view(packed).substr(i, 64 * kKiB), &out));
    peak = std::max(peak, d->memory_bytes());
    out.clear();
  }
  ASSERT_TRUE(d->Finish(&out));
  std::printf("[memory] %-4s decoder: %zu KiB\n", std::string(Name(c)).c_str(), peak / kKiB);
  EXPECT_GT(peak, 0u);
  EXPECT_LE(peak, (c == Coding::kGzip ? 64 * kKiB : 2 * kMiB));
}

INSTANTIATE_TEST_SUITE_P(Codings, DecoderTest, ::testing::ValuesIn(kCodings), CodingName);

// Concatenated gzip members decode as one body, as `gzip -d` does; bytes after a member that
// are not another member are corrupt.
TEST(GzipDecoderTest, ConcatenatedMembers) {
  const std::string a = Compressible(70 * kKiB, 50);
  const std::string b = RandomBytes(10 * kKiB, 51);
  const std::string both = Encode(Coding::kGzip, 6, a) + Encode(Coding::kGzip, 1, b);
  for (size_t piece : {size_t{0}, size_t{1}, size_t{4096}}) {
    const Decoded d = Decode(Coding::kGzip, both, piece);
    ASSERT_TRUE(d.ok) << d.error;
    EXPECT_EQ(d.body, a + b);
  }
  EXPECT_FALSE(Decode(Coding::kGzip, Encode(Coding::kGzip, 6, a) + "trailing junk").ok);
  // A second member cut short is truncated.
  const std::string second = Encode(Coding::kGzip, 6, b);
  EXPECT_FALSE(Decode(Coding::kGzip, Encode(Coding::kGzip, 6, a) + second.substr(0, 30)).ok);
}

// A zlib-wrapped stream labelled gzip (a common server mistake) decodes too.
TEST(GzipDecoderTest, AcceptsZlibWrapper) {
  const std::string input = Compressible(50 * kKiB, 52);
  uLongf len = compressBound(input.size());
  std::string packed(len, '\0');
  ASSERT_EQ(compress2(reinterpret_cast<Bytef*>(packed.data()), &len,
                      reinterpret_cast<const Bytef*>(input.data()), input.size(), 6),
            Z_OK);
  packed.resize(len);
  const Decoded d = Decode(Coding::kGzip, packed, 1000);
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.body, input);
}

// Bytes after the end of a Brotli stream are an error (the format has no members).
TEST(BrotliDecoderTest, RejectsTrailingBytes) {
  const std::string packed = Encode(Coding::kBrotli, 4, "hello");
  EXPECT_TRUE(Decode(Coding::kBrotli, packed).ok);
  const Decoded glued = Decode(Coding::kBrotli, packed + "x");
  EXPECT_FALSE(glued.ok);
  EXPECT_NE(glued.error.find("after the end"), std::string::npos) << glued.error;
  // The same, when the extra byte comes in a later Write().
  EXPECT_FALSE(Decode(Coding::kBrotli, packed + "x", packed.size()).ok);
}

// Concatenated zstd frames, and skippable frames, decode as one body.
TEST(ZstdDecoderTest, ConcatenatedAndSkippableFrames) {
  const std::string a = Compressible(30 * kKiB, 53);
  const std::string b = Compressible(40 * kKiB, 54);
  // A skippable frame: magic 0x184D2A50, 4-byte little-endian length, then that many bytes.
  const std::string skippable = std::string("\x50\x2a\x4d\x18\x03\x00\x00\x00xyz", 11);
  const std::string stream = Encode(Coding::kZstd, 3, a) + skippable + Encode(Coding::kZstd, 9, b);
  for (size_t piece : {size_t{0}, size_t{1}, size_t{999}}) {
    const Decoded d = Decode(Coding::kZstd, stream, piece);
    ASSERT_TRUE(d.ok) << d.error;
    EXPECT_EQ(d.body, a + b);
  }
}

// A frame that asks for a window over 8 MiB (RFC 9659's limit) is refused before allocating
// it; 8 MiB itself is accepted.
TEST(ZstdDecoderTest, WindowLimit) {
  const std::string input = Compressible(64 * kKiB, 55);
  auto compress_with_window = [&](int window_log) {
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, window_log);
    std::string out(ZSTD_compressBound(input.size()) + 64, '\0');
    ZSTD_outBuffer o{out.data(), out.size(), 0};
    ZSTD_inBuffer i{input.data(), input.size(), 0};
    // e_continue first, so the frame does not learn the input size and keeps the big window.
    EXPECT_FALSE(ZSTD_isError(ZSTD_compressStream2(cctx, &o, &i, ZSTD_e_continue)));
    EXPECT_EQ(ZSTD_compressStream2(cctx, &o, &i, ZSTD_e_end), 0u);
    ZSTD_freeCCtx(cctx);
    out.resize(o.pos);
    return out;
  };
  const Decoded ok = Decode(Coding::kZstd, compress_with_window(23));
  EXPECT_TRUE(ok.ok) << ok.error;
  EXPECT_EQ(ok.body, input);
  const Decoded big = Decode(Coding::kZstd, compress_with_window(24));
  EXPECT_FALSE(big.ok);
  EXPECT_FALSE(big.error.empty());
}

}  // namespace
}  // namespace torii::http::codec
