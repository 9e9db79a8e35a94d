// tests/codec/tools_test.cc: interoperability with the reference command-line tools. Our
// encoders' output (with Flush points inside) decodes with `gzip -d`, `brotli -d` and
// `zstd -d` to the same bytes, and what those tools compress decodes with our decoders. A tool
// that is not installed skips its test (Debian: gzip, brotli, zstd packages).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>

#include "http/codec/codec.h"
#include "tests/codec/test_data.h"

namespace torii::http::codec {
namespace {

using test::Compressible;
using test::Decode;
using test::Decoded;
using test::RandomBytes;

bool HaveTool(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "torii_codec_" + std::to_string(getpid()) + "_" + name;
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(f.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Compresses with Flush() after every ~100 KiB, like a proxy passing upstream reads along.
std::string EncodeWithFlushes(Coding c, int level, const std::string& input) {
  std::unique_ptr<Encoder> e = MakeEncoder(c, level);
  std::string out;
  for (size_t i = 0; i < input.size(); i += 100 * 1024 + 17) {
    EXPECT_TRUE(e->Write(std::string_view(input).substr(i, 100 * 1024 + 17), &out));
    EXPECT_TRUE(e->Flush(&out));
  }
  EXPECT_TRUE(e->Finish(&out));
  return out;
}

struct Tool {
  const char* binary;
  Coding coding;
  const char* compress_flags;  // to make a stream for our decoder
};

void PrintTo(const Tool& tool, std::ostream* os) { *os << tool.binary; }

class ToolsTest : public ::testing::TestWithParam<Tool> {};

// Our output at several levels decodes with the tool to the original bytes.
TEST_P(ToolsTest, ToolDecodesOurOutput) {
  const Tool& tool = GetParam();
  if (!HaveTool(tool.binary)) {
    GTEST_SKIP() << tool.binary << " is not installed";
  }
  const std::string input =
      Compressible(1200 * 1024, 60) + RandomBytes(50 * 1024, 61) + Compressible(300 * 1024, 62);
  const Coding c = tool.coding;
  for (int level : {MinLevel(c), DefaultLevel(c), 9}) {
    SCOPED_TRACE(std::string(tool.binary) + " level " + std::to_string(level));
    const std::string packed_path = TempPath(std::string(Name(c)) + ".packed");
    const std::string plain_path = TempPath(std::string(Name(c)) + ".plain");
    WriteFile(packed_path, EncodeWithFlushes(c, level, input));
    const std::string cmd =
        std::string(tool.binary) + " -d -c < " + packed_path + " > " + plain_path + " 2>/dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const std::string plain = ReadFile(plain_path);
    EXPECT_EQ(plain.size(), input.size());
    EXPECT_TRUE(plain == input);
    // An empty stream too.
    WriteFile(packed_path, EncodeWithFlushes(c, level, ""));
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    EXPECT_TRUE(ReadFile(plain_path).empty());
    std::remove(packed_path.c_str());
    std::remove(plain_path.c_str());
  }
}

// What the tool compresses decodes with our decoder.
TEST_P(ToolsTest, WeDecodeToolOutput) {
  const Tool& tool = GetParam();
  if (!HaveTool(tool.binary)) {
    GTEST_SKIP() << tool.binary << " is not installed";
  }
  const std::string input = Compressible(700 * 1024, 63) + RandomBytes(10 * 1024, 64);
  const std::string plain_path = TempPath(std::string(Name(tool.coding)) + ".in");
  const std::string packed_path = TempPath(std::string(Name(tool.coding)) + ".out");
  WriteFile(plain_path, input);
  const std::string cmd = std::string(tool.binary) + " " + tool.compress_flags + " -c < " +
                          plain_path + " > " + packed_path + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const Decoded d = Decode(tool.coding, ReadFile(packed_path), 4096);
  EXPECT_TRUE(d.ok) << d.error;
  EXPECT_TRUE(d.body == input);
  std::remove(plain_path.c_str());
  std::remove(packed_path.c_str());
}

std::string ToolName(const ::testing::TestParamInfo<Tool>& info) { return info.param.binary; }

INSTANTIATE_TEST_SUITE_P(Tools, ToolsTest,
                         ::testing::Values(Tool{"gzip", Coding::kGzip, "-9"},
                                           Tool{"brotli", Coding::kBrotli, "-q 11 -w 22"},
                                           Tool{"zstd", Coding::kZstd, "-q -19"}),
                         ToolName);

}  // namespace
}  // namespace torii::http::codec
