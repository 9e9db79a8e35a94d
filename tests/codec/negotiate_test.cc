// tests/codec/negotiate_test.cc: coding names and Accept-Encoding negotiation
// (http/codec/codec.h: Name, ParseCoding, Negotiate).
#include <gtest/gtest.h>

#include <array>
#include <span>
#include <string>
#include <vector>

#include "http/codec/codec.h"

namespace torii::http::codec {
namespace {

constexpr Coding kI = Coding::kIdentity;
constexpr Coding kG = Coding::kGzip;
constexpr Coding kB = Coding::kBrotli;
constexpr Coding kZ = Coding::kZstd;

// The server orders the table is checked against: the design's default, gzip first, gzip only.
constexpr std::array<Coding, 3> kBrZstdGzip = {kB, kZ, kG};
constexpr std::array<Coding, 3> kGzipBrZstd = {kG, kB, kZ};
constexpr std::array<Coding, 1> kGzipOnly = {kG};

struct Case {
  std::string header;
  Coding br_zstd_gzip;  // expected with server order br, zstd, gzip
  Coding gzip_br_zstd;  // ... gzip, br, zstd
  Coding gzip_only;     // ... gzip
};

std::string Show(Coding c) { return std::string(Name(c)); }

// Each Accept-Encoding value gives the expected choice under each server order.
TEST(NegotiateTest, Table) {
  const std::vector<Case> cases = {
      // Absent (or empty) header: identity, like nginx and HAProxy.
      {"", kI, kI, kI},
      {" ", kI, kI, kI},
      {"gzip", kG, kG, kG},
      {"br", kB, kB, kI},
      {"zstd", kZ, kZ, kI},
      // What browsers send: the server's order decides among them.
      {"gzip, deflate", kG, kG, kG},
      {"gzip, deflate, br", kB, kG, kG},
      {"gzip, deflate, br, zstd", kB, kG, kG},
      // Client q-values only filter; they do not reorder.
      {"br;q=1.0, gzip;q=0.8, *;q=0.1", kB, kG, kG},
      {"gzip;q=1, br;q=0.001", kB, kG, kG},
      {"gzip;q=0.001, zstd;q=1", kZ, kG, kG},
      // q=0 in its spellings excludes.
      {"br;q=0", kI, kI, kI},
      {"br;q=0, gzip", kG, kG, kG},
      {"br;q=0.0, gzip", kG, kG, kG},
      {"br;q=0.000, gzip", kG, kG, kG},
      {"br;q=0., gzip", kG, kG, kG},
      {"gzip;q=0", kI, kI, kI},
      // q=1 in its spellings, and the smallest positive q.
      {"br;q=1", kB, kB, kI},
      {"br;q=1.", kB, kB, kI},
      {"br;q=1.000", kB, kB, kI},
      {"br;q=0.001", kB, kB, kI},
      {"br;q=0.5", kB, kB, kI},
      // Malformed q: that member is not acceptable; the rest of the header still counts.
      {"br;q=2, gzip", kG, kG, kG},
      {"br;q=abc, gzip", kG, kG, kG},
      {"br;q=1.0000, gzip", kG, kG, kG},
      {"br;q=0.0001, gzip", kG, kG, kG},
      {"br;q=1.001, gzip", kG, kG, kG},
      {"br;q=1.5, gzip", kG, kG, kG},
      {"br;q=.5, gzip", kG, kG, kG},
      {"br;q=-1, gzip", kG, kG, kG},
      {"br;q=+1, gzip", kG, kG, kG},
      {"br;q=, gzip", kG, kG, kG},
      {"br;q=0.5x, gzip", kG, kG, kG},
      {"br;q=1e0, gzip", kG, kG, kG},
      {"br;q=\"1\", gzip", kG, kG, kG},
      {"br;q=0 .5, gzip", kG, kG, kG},
      {"br;q, gzip", kG, kG, kG},          // bare parameter name
      {"br;q=0.5;q=1, gzip", kG, kG, kG},  // q twice
      {"br;level=11, gzip", kG, kG, kG},   // not a parameter of Accept-Encoding
      {"br;q=abc", kI, kI, kI},
      // A malformed q counts as a refusal of the coding it names, even under "*".
      {"br;q=abc, *", kZ, kG, kG},
      // "*" covers what is not listed; "*;q=0" refuses it.
      {"*", kB, kG, kG},
      {"*;q=0.5", kB, kG, kG},
      {"*;q=0", kI, kI, kI},
      {"*;q=0, gzip", kG, kG, kG},
      {"gzip, *;q=0", kG, kG, kG},
      {"br, *;q=0", kB, kB, kI},
      {"gzip;q=0, *", kB, kB, kI},
      {"*, br;q=0", kZ, kG, kG},
      {"*, br;q=0, zstd;q=0", kG, kG, kG},
      {"*;q=abc, gzip", kG, kG, kG},
      {"*;q=abc", kI, kI, kI},
      {"*, *;q=0", kI, kI, kI},
      // identity is parsed and never changes the answer (no 406 from us).
      {"identity", kI, kI, kI},
      {"identity;q=0", kI, kI, kI},
      {"identity;q=0, *;q=0", kI, kI, kI},
      {"identity;q=0, gzip", kG, kG, kG},
      {"identity, gzip;q=0.5", kG, kG, kG},
      // Duplicates: a refusal wins, whichever comes first.
      {"gzip, gzip;q=0", kI, kI, kI},
      {"gzip;q=0, gzip", kI, kI, kI},
      {"gzip;q=0.5, gzip;q=1", kG, kG, kG},
      {"gzip;q=abc, gzip", kI, kI, kI},
      // Case.
      {"GZIP", kG, kG, kG},
      {"Br", kB, kB, kI},
      {"ZsTd", kZ, kZ, kI},
      {"Gzip;Q=0", kI, kI, kI},
      {"BR;Q=1.000", kB, kB, kI},
      // Whitespace: spaces and tabs around ',', ';' and '='.
      {" \tgzip \t; \tq=0.5 \t, br", kB, kG, kG},
      {"gzip ; q = 0.5", kG, kG, kG},
      {"gzip\t;\tq\t=\t0", kI, kI, kI},
      {"  br  ,  zstd  ", kB, kB, kI},
      // Empty members and empty parameters are skipped.
      {",,gzip,, ,\t,", kG, kG, kG},
      {",", kI, kI, kI},
      {"gzip;", kG, kG, kG},
      {"gzip;;q=0.5;", kG, kG, kG},
      {"gzip;q=1;", kG, kG, kG},
      // x-gzip is gzip (RFC 9110 §8.4.1.3), also for exclusions.
      {"x-gzip", kG, kG, kG},
      {"X-Gzip;q=0.5", kG, kG, kG},
      {"x-gzip;q=0, gzip", kI, kI, kI},
      {"x-gzip;q=0, *", kB, kB, kI},
      // Codings we do not implement, and members we cannot attribute.
      {"deflate, compress, sdch", kI, kI, kI},
      {"gzip br", kI, kI, kI},  // missing comma: not a token
      {"gz ip, br", kB, kB, kI},
      {";q=1", kI, kI, kI},
      {"/, gzip", kG, kG, kG},
      {"\xff\xfe\x01", kI, kI, kI},
      {"gzip\r\n", kI, kI, kI},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("Accept-Encoding: \"" + c.header + "\"");
    EXPECT_EQ(Show(Negotiate(c.header, kBrZstdGzip)), Show(c.br_zstd_gzip));
    EXPECT_EQ(Show(Negotiate(c.header, kGzipBrZstd)), Show(c.gzip_br_zstd));
    EXPECT_EQ(Show(Negotiate(c.header, kGzipOnly)), Show(c.gzip_only));
  }
}

// An empty server order, or identity in it, stops the search at identity.
TEST(NegotiateTest, ServerOrderWithIdentity) {
  EXPECT_EQ(Negotiate("gzip, br", std::span<const Coding>()), kI);
  const std::array<Coding, 3> gzip_identity_br = {kG, kI, kB};
  EXPECT_EQ(Negotiate("gzip, br", gzip_identity_br), kG);
  EXPECT_EQ(Negotiate("br", gzip_identity_br), kI);
  const std::array<Coding, 1> identity = {kI};
  EXPECT_EQ(Negotiate("*", identity), kI);
}

// Long headers are parsed whole and in linear time: the last member still counts.
TEST(NegotiateTest, VeryLongHeaders) {
  std::string many;
  for (int i = 0; i < 20000; ++i) {
    many += "deflate;q=0.5, ";
  }
  EXPECT_EQ(Negotiate(many + "zstd", kBrZstdGzip), kZ);
  EXPECT_EQ(Negotiate(many, kBrZstdGzip), kI);

  std::string refusals;
  for (int i = 0; i < 20000; ++i) {
    refusals += "gzip;q=1,";
  }
  EXPECT_EQ(Negotiate(refusals + "gzip;q=0", kGzipOnly), kI);

  // One enormous member: a q with a megabyte of digits is malformed.
  EXPECT_EQ(Negotiate("gzip;q=0." + std::string(1 << 20, '5'), kGzipOnly), kI);
  // A megabyte of whitespace around a valid member.
  const std::string spaces(1 << 20, ' ');
  EXPECT_EQ(Negotiate(spaces + "gzip" + spaces + ";q=1" + spaces, kGzipOnly), kG);
  // Field values joined with ",": the header repeated many times.
  EXPECT_EQ(Negotiate(std::string(1 << 20, ','), kGzipOnly), kI);
}

// Name and ParseCoding are inverses; ParseCoding is case-insensitive and knows x-gzip.
TEST(CodingTest, NamesRoundTrip) {
  for (Coding c : {kI, kG, kB, kZ}) {
    ASSERT_TRUE(ParseCoding(Name(c)).has_value()) << Name(c);
    EXPECT_EQ(*ParseCoding(Name(c)), c);
  }
  EXPECT_EQ(Name(kI), "identity");
  EXPECT_EQ(Name(kG), "gzip");
  EXPECT_EQ(Name(kB), "br");
  EXPECT_EQ(Name(kZ), "zstd");
  EXPECT_EQ(ParseCoding("GZIP"), kG);
  EXPECT_EQ(ParseCoding("x-gzip"), kG);
  EXPECT_EQ(ParseCoding("X-GZIP"), kG);
  EXPECT_EQ(ParseCoding("BR"), kB);
  EXPECT_EQ(ParseCoding("Zstd"), kZ);
  EXPECT_EQ(ParseCoding("IDENTITY"), kI);
  EXPECT_FALSE(ParseCoding("deflate").has_value());
  EXPECT_FALSE(ParseCoding("brotli").has_value());
  EXPECT_FALSE(ParseCoding(" gzip").has_value());
  EXPECT_FALSE(ParseCoding("").has_value());
  EXPECT_FALSE(ParseCoding("*").has_value());
}

}  // namespace
}  // namespace torii::http::codec
