// tests/http/compression_plan_test.cc: the compression decisions (http/compression_plan.cc)
// over plain heads: what the client accepts, and what each response gets (BAD-INPUTS Z2, Z3).
#include "http/compression_plan.h"

#include <gtest/gtest.h>

#include <llhttp.h>

#include <vector>

namespace torii::http {
namespace {

using codec::Coding;

struct Response {
  std::vector<HeaderView> headers;
  MessageHead head;
  Response(uint16_t status, std::vector<HeaderView> h, uint64_t length = 100000)
      : headers(std::move(h)) {
    head.status = status;
    head.headers = headers;
    head.framing = Framing::kContentLength;
    head.content_length = length;
  }
};

CompressionSpec Spec() {
  CompressionSpec s;
  s.types = {"text/*", "application/json"};
  s.min_bytes = 256;
  return s;
}

CodingRequest Accepts(const CompressionSpec& spec, std::vector<HeaderView> h, bool head = false) {
  return ReadCodingRequest(spec, /*route_compress=*/true, head, h);
}

// Negotiation follows the server's order among what the client accepts; Range is noted;
// repeated Accept-Encoding fields are one list; a route without compress reads nothing.
TEST(CompressionPlanTest, ReadsTheRequest) {
  const CompressionSpec spec = Spec();
  EXPECT_EQ(Accepts(spec, {{"Accept-Encoding", "gzip, br"}}).accepted, Coding::kBrotli);
  EXPECT_EQ(Accepts(spec, {{"accept-encoding", "gzip"}, {"Accept-Encoding", "zstd"}}).accepted,
            Coding::kZstd);
  EXPECT_EQ(Accepts(spec, {{"Accept-Encoding", "identity"}}).accepted, Coding::kIdentity);
  EXPECT_TRUE(Accepts(spec, {{"Range", "bytes=0-1"}}).range);
  const std::vector<HeaderView> gz = {{"Accept-Encoding", "gzip"}};
  EXPECT_EQ(ReadCodingRequest(spec, false, false, gz).accepted, Coding::kIdentity);
}

// A compressible response is encoded in the negotiated coding and varies on Accept-Encoding.
TEST(CompressionPlanTest, EncodesEligibleResponses) {
  const CompressionSpec spec = Spec();
  const CodingRequest req = Accepts(spec, {{"Accept-Encoding", "gzip"}});
  Response r(200, {{"Content-Type", "text/html; charset=utf-8"}});
  const CompressionPlan plan = PlanCompression(spec, true, req, r.head);
  EXPECT_TRUE(plan.vary);
  EXPECT_EQ(plan.encode, Coding::kGzip);
  EXPECT_FALSE(plan.decode);
}

// Each rule that leaves a response alone (and whether it still varies).
TEST(CompressionPlanTest, SkipRules) {
  const CompressionSpec spec = Spec();
  const CodingRequest req = Accepts(spec, {{"Accept-Encoding", "gzip"}});
  const HeaderView html = {"Content-Type", "text/html"};
  struct Case {
    const char* why;
    Response r;
    bool vary;
  };
  const Case cases[] = {
      {"204", Response(204, {html}), false},
      {"206", Response(206, {html}), false},
      {"304", Response(304, {html}), false},
      {"no-transform", Response(200, {html, {"Cache-Control", "max-age=1, No-Transform"}}), false},
      {"private", Response(200, {html, {"Cache-Control", "private"}}), false},
      {"set-cookie", Response(200, {html, {"Set-Cookie", "a=b"}}), false},
      {"already encoded", Response(200, {html, {"Content-Encoding", "br"}}), false},
      {"type not listed", Response(200, {{"Content-Type", "image/png"}}), false},
      {"too small", Response(200, {html}, /*length=*/100), false},
  };
  for (const Case& c : cases) {
    const CompressionPlan plan = PlanCompression(spec, true, req, c.r.head);
    EXPECT_EQ(plan.encode, Coding::kIdentity) << c.why;
    EXPECT_EQ(plan.vary, c.vary) << c.why;
    EXPECT_FALSE(plan.decode) << c.why;
  }
  // A route without compress: nothing at all.
  EXPECT_FALSE(PlanCompression(spec, false, req, Response(200, {html}).head).vary);
}

// Cache-Control is read as directives (the cache's parser), not searched for text: an extension
// or an argument that only contains "private" or "no-transform" does not stop compression; the
// directives do wherever they stand, in any of several fields, with or without an argument.
TEST(CompressionPlanTest, CacheControlDirectivesNotSubstrings) {
  const CompressionSpec spec = Spec();
  const CodingRequest req = Accepts(spec, {{"Accept-Encoding", "gzip"}});
  const HeaderView html = {"Content-Type", "text/html"};
  for (const char* value : {"max-age=60, x-private-id=3", "public, ext=\"no-transform\"",
                            "max-age=60, x-no-transformer"}) {
    EXPECT_EQ(PlanCompression(spec, true, req, Response(200, {html, {"Cache-Control", value}}).head)
                  .encode,
              Coding::kGzip)
        << value;
  }
  EXPECT_EQ(PlanCompression(spec, true, req,
                            Response(200, {html,
                                           {"Cache-Control", "max-age=60"},
                                           {"Cache-Control", "private=\"Set-Cookie\""}})
                                .head)
                .encode,
            Coding::kIdentity);
  // A field that cannot be read whole may have meant private: not compressed (BREACH).
  for (const char* value : {";private", "max-age=60, x=\"a, private", "max-age=60 private"}) {
    EXPECT_EQ(PlanCompression(spec, true, req, Response(200, {html, {"Cache-Control", value}}).head)
                  .encode,
              Coding::kIdentity)
        << value;
  }
}

// HEAD and Range requests vary but never get a transformed body.
TEST(CompressionPlanTest, HeadAndRangeVaryWithoutEncoding) {
  const CompressionSpec spec = Spec();
  const Response r(200, {{"Content-Type", "text/plain"}});
  for (const CodingRequest& req :
       {Accepts(spec, {{"Accept-Encoding", "gzip"}}, /*head=*/true),
        Accepts(spec, {{"Accept-Encoding", "gzip"}, {"Range", "bytes=0-9"}})}) {
    const CompressionPlan plan = PlanCompression(spec, true, req, r.head);
    EXPECT_TRUE(plan.vary);
    EXPECT_EQ(plan.encode, Coding::kIdentity);
  }
}

// decompress = true: a coding the client refuses is undone; one it accepts passes through;
// stacked codings are never touched.
TEST(CompressionPlanTest, DecompressOnlyWhatTheClientRefuses) {
  CompressionSpec spec = Spec();
  spec.decompress = true;
  const Response br(200, {{"Content-Type", "text/plain"}, {"Content-Encoding", "br"}});
  EXPECT_EQ(PlanCompression(spec, true, Accepts(spec, {{"Accept-Encoding", "gzip"}}), br.head)
                .decode,
            Coding::kBrotli);
  EXPECT_FALSE(
      PlanCompression(spec, true, Accepts(spec, {{"Accept-Encoding", "br"}}), br.head).decode);
  const Response stacked(200, {{"Content-Encoding", "gzip"}, {"Content-Encoding", "br"}});
  EXPECT_FALSE(PlanCompression(spec, true, Accepts(spec, {}), stacked.head).decode);
}

}  // namespace
}  // namespace torii::http
