// tests/http/grpc_test.cc: gRPC detection, status mapping, grpc-timeout and the status fields
// (http/grpc.cc).
#include "http/grpc.h"

#include <gtest/gtest.h>

namespace torii::http {
namespace {

TEST(Grpc, ContentType) {
  for (std::string_view yes : {"application/grpc", "application/grpc+proto",
                               "Application/GRPC+json", "application/grpc; charset=x"}) {
    EXPECT_TRUE(IsGrpcContentType(yes)) << yes;
  }
  for (std::string_view no : {"application/grpc-web", "application/grpc-web+proto",
                              "application/json", "", "application/grp", "text/grpc"}) {
    EXPECT_FALSE(IsGrpcContentType(no)) << no;
  }
}

TEST(Grpc, StatusMapping) {
  EXPECT_EQ(GrpcStatusFor(504), 4);  // DEADLINE_EXCEEDED
  EXPECT_EQ(GrpcStatusFor(429), 8);  // RESOURCE_EXHAUSTED
  EXPECT_EQ(GrpcStatusFor(413), 8);
  EXPECT_EQ(GrpcStatusFor(503), 14);  // UNAVAILABLE
  EXPECT_EQ(GrpcStatusFor(502), 14);
  EXPECT_EQ(GrpcStatusFor(401), 16);
  EXPECT_EQ(GrpcStatusFor(403), 7);
  EXPECT_EQ(GrpcStatusFor(404), 12);
  EXPECT_EQ(GrpcStatusFor(400), 13);
  EXPECT_EQ(GrpcStatusFor(500), 13);
}

TEST(Grpc, Timeout) {
  EXPECT_EQ(ParseGrpcTimeout("100m"), 100u);
  EXPECT_EQ(ParseGrpcTimeout("5S"), 5000u);
  EXPECT_EQ(ParseGrpcTimeout("2M"), 120000u);
  EXPECT_EQ(ParseGrpcTimeout("1H"), 3600000u);
  EXPECT_EQ(ParseGrpcTimeout("1500u"), 2u);  // rounded up
  EXPECT_EQ(ParseGrpcTimeout("10n"), 1u);    // under a millisecond: 1
  EXPECT_EQ(ParseGrpcTimeout("0m"), 0u);
  EXPECT_EQ(ParseGrpcTimeout("99999999S"), 99999999000u);
  for (std::string_view bad : {"", "m", "100", "123456789S", "1x", "-1S", "1.5S", " 1S"}) {
    EXPECT_FALSE(ParseGrpcTimeout(bad).has_value()) << bad;
  }
}

TEST(Grpc, StatusFields) {
  std::string out;
  AppendGrpcStatusFields(14, "no backend: 100% down\n", &out);
  EXPECT_EQ(out, "grpc-status: 14\r\ngrpc-message: no backend: 100%25 down%0A\r\n");
}

TEST(Grpc, HealthCheckMessages) {
  using namespace std::string_literals;
  EXPECT_EQ(GrpcHealthCheckRequest(""), "\0\0\0\0\0"s);
  EXPECT_EQ(GrpcHealthCheckRequest("pkg.Svc"), "\0\0\0\0\x09\x0a\x07pkg.Svc"s);
  EXPECT_EQ(GrpcHealthStatus("\0\0\0\0\x02\x08\x01"s), 1u);  // SERVING
  EXPECT_EQ(GrpcHealthStatus("\0\0\0\0\x02\x08\x02"s), 2u);  // NOT_SERVING
  EXPECT_EQ(GrpcHealthStatus("\0\0\0\0\0"s), 0u);            // UNKNOWN (the default)
  // Unknown fields are skipped: a string field 2, then status.
  EXPECT_EQ(GrpcHealthStatus("\0\0\0\0\x06\x12\x02hi\x08\x01"s), 1u);
  for (const std::string& bad :
       {""s, "\0\0\0"s, "\x01\0\0\0\x02\x08\x01"s, "\0\0\0\0\x03\x08\x01"s, "\0\0\0\0\x01\x08"s,
        "\0\0\0\0\x02\x12\x05"s, "\0\0\0\0\x01\x0f"s}) {
    EXPECT_FALSE(GrpcHealthStatus(bad).has_value());
  }
}

}  // namespace
}  // namespace torii::http
