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

}  // namespace
}  // namespace torii::base
