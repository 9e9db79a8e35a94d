// tests/base/text_test.cc: base/text.h's header-line writer.
#include "base/text.h"

#include <gtest/gtest.h>

#include <string>

namespace torii::base {
namespace {

// A header line goes after what the string holds, exactly "name: value\r\n", whatever the
// lengths (an empty value too, and one long enough to make the string grow).
TEST(TextTest, AppendFieldWritesOneLineAfterTheRest) {
  std::string out = "HTTP/1.1 200 OK\r\n";
  AppendField(&out, "X-Request-Id", "0af7651916cd43dd8448eb211c80319c");
  AppendField(&out, "X-Empty", "");
  const std::string long_value(5000, 'v');
  AppendField(&out, "X-Long", long_value);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nX-Request-Id: 0af7651916cd43dd8448eb211c80319c\r\n"
            "X-Empty: \r\nX-Long: " +
                long_value + "\r\n");
  std::string empty;
  AppendField(&empty, "a", "b");
  EXPECT_EQ(empty, "a: b\r\n");
}

// HasUpperAscii looks at eight bytes at a time: every byte value, at every position of strings
// of 0 to 24 bytes (short ones, whole words, an overlapping last word), among lowercase letters
// and among 0xFF bytes (every high bit set), agrees with the byte-by-byte rule.
TEST(TextTest, HasUpperAsciiEveryByteEveryPosition) {
  EXPECT_FALSE(HasUpperAscii(""));
  for (char fill : {'a', '\xff', '@', '['}) {
    for (size_t len = 1; len <= 24; ++len) {
      EXPECT_FALSE(HasUpperAscii(std::string(len, fill)));
      for (size_t at = 0; at < len; ++at) {
        for (int b = 0; b < 256; ++b) {
          std::string s(len, fill);
          s[at] = static_cast<char>(b);
          ASSERT_EQ(HasUpperAscii(s), b >= 'A' && b <= 'Z')
              << "len " << len << " at " << at << " byte " << b;
        }
      }
    }
  }
}

}  // namespace
}  // namespace torii::base
