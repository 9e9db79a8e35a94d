// tests/codec/types_test.cc: which Content-Types are compressed (http/codec/codec.h:
// TypeMatches, IsValidTypePattern, DefaultTypes).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/codec/codec.h"

namespace torii::http::codec {
namespace {

// Exact types and "type/*" match, ignoring parameters, case and surrounding whitespace.
TEST(TypeMatchesTest, ExactAndWildcard) {
  const std::vector<std::string> p = {"text/*", "application/json"};
  EXPECT_TRUE(TypeMatches("text/html", p));
  EXPECT_TRUE(TypeMatches("text/html; charset=utf-8", p));
  EXPECT_TRUE(TypeMatches("TEXT/HTML;charset=UTF-8", p));
  EXPECT_TRUE(TypeMatches("  text/css  ", p));
  EXPECT_TRUE(TypeMatches("text/plain ; format=flowed", p));
  EXPECT_TRUE(TypeMatches("application/json", p));
  EXPECT_TRUE(TypeMatches("Application/JSON; charset=utf-8", p));
  EXPECT_FALSE(TypeMatches("application/jsonx", p));
  EXPECT_FALSE(TypeMatches("application/json-seq", p));
  EXPECT_FALSE(TypeMatches("application/ld+json", p));
  EXPECT_FALSE(TypeMatches("image/png", p));
  EXPECT_FALSE(TypeMatches("texts/html", p));
  EXPECT_FALSE(TypeMatches("tex/html", p));
}

// Missing or malformed Content-Type values never match, not even "*/*".
TEST(TypeMatchesTest, MalformedContentType) {
  const std::vector<std::string> p = {"*/*", "text/*"};
  EXPECT_FALSE(TypeMatches("", p));
  EXPECT_FALSE(TypeMatches("   ", p));
  EXPECT_FALSE(TypeMatches("text", p));
  EXPECT_FALSE(TypeMatches("text/", p));
  EXPECT_FALSE(TypeMatches("/html", p));
  EXPECT_FALSE(TypeMatches("; charset=utf-8", p));
  EXPECT_FALSE(TypeMatches("text /html", p));
  EXPECT_FALSE(TypeMatches("text/html/x", p));
  EXPECT_TRUE(TypeMatches("application/octet-stream", p));
}

// Patterns: "type/subtype", "type/*", "*/*"; anything else is invalid and matches nothing.
TEST(TypeMatchesTest, Patterns) {
  EXPECT_TRUE(IsValidTypePattern("text/html"));
  EXPECT_TRUE(IsValidTypePattern("text/*"));
  EXPECT_TRUE(IsValidTypePattern("*/*"));
  EXPECT_TRUE(IsValidTypePattern("image/svg+xml"));
  EXPECT_FALSE(IsValidTypePattern(""));
  EXPECT_FALSE(IsValidTypePattern("*"));
  EXPECT_FALSE(IsValidTypePattern("text"));
  EXPECT_FALSE(IsValidTypePattern("*/html"));
  EXPECT_FALSE(IsValidTypePattern("text/h*"));
  EXPECT_FALSE(IsValidTypePattern("te*t/html"));
  EXPECT_FALSE(IsValidTypePattern(" text/html"));
  EXPECT_FALSE(IsValidTypePattern("text/html; charset=utf-8"));
  EXPECT_FALSE(TypeMatches("text/html", std::vector<std::string>{"*/html", "text/h*"}));
  EXPECT_TRUE(TypeMatches("text/html", std::vector<std::string>{"bad", "TEXT/HTML"}));
  EXPECT_FALSE(TypeMatches("text/html", std::vector<std::string>{}));
  // "*/*" matches every well-formed type.
  EXPECT_TRUE(TypeMatches("video/mp4", std::vector<std::string>{"*/*"}));
}

// The default list: text and structured text, SVG, wasm; not what is already compressed.
TEST(TypeMatchesTest, Defaults) {
  const std::vector<std::string> d = DefaultTypes();
  for (const std::string& p : d) {
    EXPECT_TRUE(IsValidTypePattern(p)) << p;
  }
  for (const char* yes : {"text/html; charset=utf-8",
                          "text/css",
                          "text/plain",
                          "text/javascript",
                          "text/csv",
                          "text/xml",
                          "application/json",
                          "application/problem+json",
                          "application/ld+json",
                          "application/javascript",
                          "application/xml",
                          "application/xhtml+xml",
                          "application/rss+xml",
                          "application/atom+xml",
                          "image/svg+xml",
                          "image/x-icon",
                          "font/ttf",
                          "font/otf",
                          "application/wasm",
                          "application/manifest+json"}) {
    EXPECT_TRUE(TypeMatches(yes, d)) << yes;
  }
  for (const char* no :
       {"image/png", "image/jpeg", "image/webp", "image/avif", "image/gif", "video/mp4",
        "audio/mpeg", "font/woff", "font/woff2", "application/zip", "application/gzip",
        "application/pdf", "application/octet-stream", "application/x-protobuf", ""}) {
    EXPECT_FALSE(TypeMatches(no, d)) << no;
  }
}

}  // namespace
}  // namespace torii::http::codec
