// tests/http/path_test.cc: path normalisation (http/path.cc), table-driven: every spelling a
// backend would read as another path is normalised to that path, and the ambiguous ones are
// refused (issue #15, BAD-INPUTS K5).
#include "http/path.h"

#include <gtest/gtest.h>

#include <string>

namespace torii::http {
namespace {

struct Case {
  const char* in;
  const char* out;  // nullptr: refused with `error`
  PathError error = PathError::kNone;
};

std::string Normalized(const char* in, const PathOptions& options, PathError* error) {
  std::string s(in);
  *error = NormalizePath(&s, options);
  return s;
}

void Check(const Case& c, const PathOptions& options) {
  PathError error = PathError::kNone;
  const std::string got = Normalized(c.in, options, &error);
  if (c.out == nullptr) {
    EXPECT_EQ(error, c.error) << "input: " << c.in << " got: " << got;
  } else {
    EXPECT_EQ(error, PathError::kNone) << "input: " << c.in << " (" << ToString(error) << ")";
    EXPECT_EQ(got, c.out) << "input: " << c.in;
  }
}

// Paths that are already normal come back unchanged, query included.
TEST(PathTest, NormalPathsUnchanged) {
  const Case cases[] = {
      {"/", "/"},
      {"/a", "/a"},
      {"/a/b/", "/a/b/"},
      {"/a.b/c..d/.e/f.", "/a.b/c..d/.e/f."},
      {"/a?x=%2f&y=/../", "/a?x=%2f&y=/../"},
      {"/...", "/..."},
      {"/a~b-c_d", "/a~b-c_d"},
  };
  for (const Case& c : cases) {
    Check(c, PathOptions{});
  }
}

// The access-list bypasses of issue #15: each is /admin after normalisation.
TEST(PathTest, BypassSpellingsBecomeTheSamePath) {
  const Case cases[] = {
      {"/%61dmin", "/admin"},
      {"/%61%64%6D%69%6e", "/admin"},
      {"//admin", "/admin"},
      {"///admin//", "/admin/"},
      {"/./admin", "/admin"},
      {"/x/../admin", "/admin"},
      {"/x/y/../../admin", "/admin"},
      {"/../admin", "/admin"},
      {"/../../../admin", "/admin"},
      {"/%2e/admin", "/admin"},
      {"/%2E%2E/admin", "/admin"},
      {"/x/%2e%2e/admin", "/admin"},
      {"/x/.%2e/admin", "/admin"},
      {"/x//../admin", "/admin"},
      {"/admin/.", "/admin/"},
      {"/admin/x/..", "/admin/"},
      {"/admin?q=1", "/admin?q=1"},
      {"/x/../admin?a=/../b", "/admin?a=/../b"},
  };
  for (const Case& c : cases) {
    Check(c, PathOptions{});
  }
}

// RFC 3986 §5.2.4 examples and edges of dot-segment removal.
TEST(PathTest, DotSegments) {
  const Case cases[] = {
      {"/a/b/c/./../../g", "/a/g"},
      {"/mid/content=5/../6", "/mid/6"},
      {"/.", "/"},
      {"/..", "/"},
      {"/a/..", "/"},
      {"/a/b/..", "/a/"},
      {"/a/./b/./", "/a/b/"},
      {"/a/../../b", "/b"},
      {"/..a/b..", "/..a/b.."},
      {"/.../b", "/.../b"},
  };
  for (const Case& c : cases) {
    Check(c, PathOptions{});
  }
}

// Escapes of reserved and non-ASCII bytes stay encoded with uppercase hex (§6.2.2.1).
TEST(PathTest, EscapesUppercasedNotDecoded) {
  const Case cases[] = {
      {"/a%20b", "/a%20b"},
      {"/a%3fb", "/a%3Fb"},
      {"/%e2%82%ac", "/%E2%82%AC"},
      {"/%25", "/%25"},
      {"/%252e%252e/admin", "/%252e%252e/admin"},  // "%25" then "2e": one decode is "%2e"
      {"/a%3Bb", "/a%3Bb"},
  };
  for (const Case& c : cases) {
    Check(c, PathOptions{});
  }
}

// Ambiguous or malformed paths are refused (400), each with its reason.
TEST(PathTest, RefusedSpellings) {
  const Case cases[] = {
      {"/admin%2fx", nullptr, PathError::kEncodedSlash},
      {"/%2F%2Fadmin", nullptr, PathError::kEncodedSlash},
      {"/..%2fadmin", nullptr, PathError::kEncodedSlash},
      {"/..%5cadmin", nullptr, PathError::kEncodedSlash},
      {"/a%00", nullptr, PathError::kEncodedNul},
      {"/a\\..\\admin", nullptr, PathError::kBackslash},
      {"/a%", nullptr, PathError::kBadEscape},
      {"/a%4", nullptr, PathError::kBadEscape},
      {"/a%4?x", nullptr, PathError::kBadEscape},
      {"/a%zz", nullptr, PathError::kBadEscape},
      {"/a%g0/", nullptr, PathError::kBadEscape},
      {"/%c0%ae%c0%ae/admin", nullptr, PathError::kOverlongUtf8},
      {"/%C1%9C", nullptr, PathError::kOverlongUtf8},
      {"/%e0%80%ae", nullptr, PathError::kOverlongUtf8},
      {"/%f0%80%80%ae", nullptr, PathError::kOverlongUtf8},
      {"/%f4%90%80%80", nullptr, PathError::kOverlongUtf8},
      {"/%ff", nullptr, PathError::kOverlongUtf8},
  };
  for (const Case& c : cases) {
    Check(c, PathOptions{});
  }
}

// A listener that allows encoded slashes and NUL keeps them encoded (never decoded into a
// separator): the backend still sees one segment.
TEST(PathTest, AllowedEncodedSlashAndNulStayEncoded) {
  PathOptions options;
  options.allow_encoded_slash = true;
  options.allow_encoded_nul = true;
  const Case cases[] = {
      {"/a%2fb", "/a%2Fb"},
      {"/a%5cb", "/a%5Cb"},
      {"/x/..%2f../admin", "/x/..%2F../admin"},
      {"/a%00", "/a%00"},
  };
  for (const Case& c : cases) {
    Check(c, options);
  }
}

// merge_slashes = false keeps empty segments, and dot segments still apply to them.
TEST(PathTest, MergeSlashesOff) {
  PathOptions options;
  options.merge_slashes = false;
  const Case cases[] = {
      {"//admin", "//admin"},
      {"/a//b", "/a//b"},
      {"/a//..", "/a/"},
      {"/a//../b", "/a/b"},
      {"//./admin", "//admin"},
  };
  for (const Case& c : cases) {
    Check(c, options);
  }
}

// Normalising twice changes nothing: the output is a fixed point for every accepted input.
TEST(PathTest, Idempotent) {
  const char* inputs[] = {"/%61/./b//../c%2e/", "/x/%7e%7E/..", "/a%20b/%41", "//../..//",
                          "/%e2%82%ac/./"};
  for (const char* in : inputs) {
    PathError error = PathError::kNone;
    std::string once = Normalized(in, PathOptions{}, &error);
    ASSERT_EQ(error, PathError::kNone) << in;
    std::string twice = once;
    ASSERT_EQ(NormalizePath(&twice, PathOptions{}), PathError::kNone);
    EXPECT_EQ(once, twice) << in;
  }
}

}  // namespace
}  // namespace torii::http
