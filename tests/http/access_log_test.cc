// tests/http/access_log_test.cc: the per-worker access log (http/access_log.cc), text and JSON.
// What is pinned is BAD-INPUTS L1: whatever a client puts in a logged field (CR, LF, ESC,
// quotes, backslashes, NUL, non-ASCII, 64 KB values), one request is one line, and a JSON line
// is valid JSON whose strings decode back to the (truncated) input bytes. A small strict JSON
// reader below does the checking.
#include "http/access_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace torii::http {
namespace {

using namespace std::string_literals;

// ---------------------------------------------------------------------------------------------
// A strict JSON reader for one flat object of strings and integers (what the log writes).
// Strings are decoded with \uXXXX (XXXX < 0x100) mapped back to the byte XX, so a decoded
// field can be compared with the raw bytes that were logged.
class JsonLine {
 public:
  explicit JsonLine(std::string_view s) : s_(s) {}

  // Parses the whole input as one object; false (with error()) on any syntax error.
  bool Parse() {
    SkipWs();
    if (!Eat('{')) {
      return Fail("expected {");
    }
    SkipWs();
    if (Eat('}')) {
      return AtEnd();
    }
    for (;;) {
      SkipWs();
      std::string key;
      if (!String(&key)) {
        return false;
      }
      SkipWs();
      if (!Eat(':')) {
        return Fail("expected :");
      }
      SkipWs();
      if (Peek() == '"') {
        std::string v;
        if (!String(&v)) {
          return false;
        }
        if (!fields_.emplace(key, v).second) {
          return Fail("duplicate key " + key);
        }
      } else {
        int64_t n = 0;
        if (!Number(&n)) {
          return false;
        }
        if (!fields_.emplace(key, n).second) {
          return Fail("duplicate key " + key);
        }
      }
      SkipWs();
      if (Eat(',')) {
        continue;
      }
      if (Eat('}')) {
        return AtEnd();
      }
      return Fail("expected , or }");
    }
  }

  std::optional<std::string> Str(const std::string& key) const {
    auto it = fields_.find(key);
    if (it == fields_.end() || !std::holds_alternative<std::string>(it->second)) {
      return std::nullopt;
    }
    return std::get<std::string>(it->second);
  }
  std::optional<int64_t> Int(const std::string& key) const {
    auto it = fields_.find(key);
    if (it == fields_.end() || !std::holds_alternative<int64_t>(it->second)) {
      return std::nullopt;
    }
    return std::get<int64_t>(it->second);
  }
  size_t size() const { return fields_.size(); }
  const std::string& error() const { return error_; }

 private:
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool Eat(char c) {
    if (Peek() == c && pos_ < s_.size()) {
      ++pos_;
      return true;
    }
    return false;
  }
  void SkipWs() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool AtEnd() {
    SkipWs();
    return pos_ == s_.size() ? true : Fail("trailing bytes");
  }
  bool Fail(std::string why) {
    error_ = why + " at " + std::to_string(pos_);
    return false;
  }
  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool String(std::string* out) {
    if (!Eat('"')) {
      return Fail("expected string");
    }
    for (;;) {
      if (pos_ >= s_.size()) {
        return Fail("unterminated string");
      }
      const unsigned char c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') {
        return true;
      }
      if (c < 0x20) {
        return Fail("raw control character in string");
      }
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (pos_ >= s_.size()) {
        return Fail("dangling backslash");
      }
      const char e = s_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          if (pos_ + 4 > s_.size()) {
            return Fail("short \\u escape");
          }
          int v = 0;
          for (int i = 0; i < 4; ++i) {
            const int h = Hex(s_[pos_++]);
            if (h < 0) {
              return Fail("bad \\u escape");
            }
            v = v * 16 + h;
          }
          if (v >= 0x100) {
            return Fail("unexpected code point above U+00FF");
          }
          out->push_back(static_cast<char>(v));
          break;
        }
        default:
          return Fail("bad escape");
      }
    }
  }
  bool Number(int64_t* out) {
    const size_t start = pos_;
    if (Peek() == '-') {
      ++pos_;
    }
    if (!(Peek() >= '0' && Peek() <= '9')) {
      return Fail("expected value");
    }
    if (Peek() == '0' && pos_ + 1 < s_.size() && s_[pos_ + 1] >= '0' && s_[pos_ + 1] <= '9') {
      return Fail("leading zero");
    }
    while (Peek() >= '0' && Peek() <= '9') {
      ++pos_;
    }
    *out = std::stoll(std::string(s_.substr(start, pos_ - start)));
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::map<std::string, std::variant<std::string, int64_t>> fields_;
  std::string error_;
};

// A write-only fd that swallows the output (the tests read pending()).
class NullFd {
 public:
  NullFd() : fd_(::open("/dev/null", O_WRONLY | O_CLOEXEC)) {}
  ~NullFd() { ::close(fd_); }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// A memory file to read back what Flush() wrote.
class MemFile {
 public:
  MemFile() : fd_(::memfd_create("access_log_test", MFD_CLOEXEC)) {}
  ~MemFile() { ::close(fd_); }
  int fd() const { return fd_; }
  std::string Contents() const {
    std::string out;
    char buf[65536];
    off_t off = 0;
    for (;;) {
      const ssize_t n = ::pread(fd_, buf, sizeof(buf), off);
      if (n <= 0) {
        break;
      }
      out.append(buf, static_cast<size_t>(n));
      off += n;
    }
    return out;
  }

 private:
  int fd_;
};

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) {
      lines.push_back(s.substr(pos));  // an unterminated line: the caller checks
      break;
    }
    lines.push_back(s.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

const std::string kHostile =
    "/a\r\nX-Injected: 1\x1b[31mred\x1b[0m \"quoted\" back\\slash \x00nul\x7f\xc3\xa9\ttab"s;

AccessRecord Record(std::string_view target) {
  AccessRecord r;
  r.client = "127.0.0.1:5555";
  r.method = "GET";
  r.target = target;
  r.host = "example.com";
  r.version_minor = 1;
  r.status = 200;
  r.bytes_sent = 1234;
  r.backend = "127.0.0.1:9001";
  r.duration_ms = 7;
  return r;
}

bool HasRawControl(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) {
      return true;
    }
  }
  return false;
}

// ============================================================================================
// Text format

// A text line has the documented shape: client [time] "METHOD target HTTP/1.x" status bytes
// host="..." backend=... Nms, ending with one newline.
TEST(AccessLogTextTest, LineShape) {
  NullFd null;
  AccessLog log(null.fd(), AccessLogFormat::kText);
  ASSERT_TRUE(log.enabled());
  log.Append(Record("/index.html?q=1"));
  const std::string& line = log.pending();
  ASSERT_TRUE(line.ends_with("\n"));
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  EXPECT_TRUE(line.starts_with("127.0.0.1:5555 [")) << line;
  EXPECT_NE(line.find("] \"GET /index.html?q=1 HTTP/1.1\" 200 1234 host=\"example.com\" "
                      "backend=127.0.0.1:9001 7ms\n"),
            std::string::npos)
      << line;
}

// A local reply has backend "-" and its note in quotes.
TEST(AccessLogTextTest, LocalReplyNote) {
  NullFd null;
  AccessLog log(null.fd(), AccessLogFormat::kText);
  AccessRecord r = Record("/x");
  r.backend = "";
  r.status = 400;
  r.note = "obs-fold";
  log.Append(r);
  EXPECT_NE(log.pending().find(" 400 1234 "), std::string::npos);
  EXPECT_NE(log.pending().find("backend=- "), std::string::npos) << log.pending();
  EXPECT_TRUE(log.pending().ends_with(" note=\"obs-fold\"\n")) << log.pending();
}

// Behind a trusted proxy the line starts with the client it named and ends with the peer.
TEST(AccessLogTextTest, ClientAndPeer) {
  NullFd null;
  AccessLog log(null.fd(), AccessLogFormat::kText);
  AccessRecord r = Record("/x");
  r.client = "203.0.113.9";
  r.peer = "127.0.0.10";
  log.Append(r);
  EXPECT_TRUE(log.pending().starts_with("203.0.113.9 [")) << log.pending();
  EXPECT_TRUE(log.pending().ends_with(" peer=127.0.0.10\n")) << log.pending();
}

// L1: CR, LF, ESC, NUL, DEL, TAB, quotes, backslashes and non-ASCII in every text field are
// escaped as \xNN: the line holds no raw control byte and no unescaped quote from the input.
TEST(AccessLogTextTest, EscapesHostileBytes) {
  NullFd null;
  AccessLog log(null.fd(), AccessLogFormat::kText);
  AccessRecord r = Record(kHostile);
  r.client = "1.2.3.4\r\n";
  r.method = "G\"ET";
  r.host = "h\x1b[2J";
  r.backend = "b\\k";
  r.note = "n\no\"te";
  log.Append(r);
  const std::string& line = log.pending();
  ASSERT_TRUE(line.ends_with("\n"));
  const std::string body = line.substr(0, line.size() - 1);
  EXPECT_FALSE(HasRawControl(body)) << body;
  for (const char* esc : {"\\x0d\\x0a", "\\x1b", "\\x22quoted\\x22", "back\\x5cslash", "\\x00nul",
                          "\\x7f", "\\xc3\\xa9", "\\x09tab"}) {
    EXPECT_NE(body.find(esc), std::string::npos) << esc << " missing in " << body;
  }
  EXPECT_TRUE(body.starts_with("1.2.3.4\\x0d\\x0a [")) << body;
  EXPECT_NE(body.find("\"G\\x22ET /a"), std::string::npos);
  EXPECT_NE(body.find("host=\"h\\x1b[2J\""), std::string::npos);
  EXPECT_NE(body.find("backend=b\\x5ck"), std::string::npos);
  EXPECT_TRUE(body.ends_with("note=\"n\\x0ao\\x22te\"")) << body;
  // The only double quotes left are the format's own: six of them.
  EXPECT_EQ(std::count(body.begin(), body.end(), '"'), 6) << body;
}

// L1: a 64 KB target is cut (at 2048 bytes) and marked with "..."; other fields at 256 bytes.
TEST(AccessLogTextTest, LongFieldsTruncated) {
  NullFd null;
  AccessLog log(null.fd(), AccessLogFormat::kText);
  const std::string target = "/" + std::string(64 * 1024, 't');
  AccessRecord r = Record(target);
  const std::string host(1000, 'h');
  r.host = host;
  log.Append(r);
  const std::string& line = log.pending();
  EXPECT_LT(line.size(), 4096u);
  EXPECT_NE(line.find("\"GET " + target.substr(0, 2048) + "... HTTP/1.1\""), std::string::npos);
  EXPECT_NE(line.find("host=\"" + host.substr(0, 256) + "...\""), std::string::npos);
  // A field exactly at the limit is not marked.
  NullFd null2;
  AccessLog exact(null2.fd(), AccessLogFormat::kText);
  const std::string at_limit = "/" + std::string(2047, 'u');
  exact.Append(Record(at_limit));
  EXPECT_NE(exact.pending().find("GET " + at_limit + " HTTP/1.1"), std::string::npos);
  EXPECT_EQ(exact.pending().find("..."), std::string::npos);
}

// One record is one line, however hostile its fields, across many records; a disabled log
// (fd < 0) writes nothing.
TEST(AccessLogTextTest, OneLinePerRecord) {
  MemFile file;
  ASSERT_GE(file.fd(), 0);
  {
    AccessLog log(file.fd(), AccessLogFormat::kText);
    for (int i = 0; i < 500; ++i) {
      const std::string target = i % 2 ? kHostile : "/plain/" + std::to_string(i);
      AccessRecord r = Record(target);
      std::string note = "note\n" + std::to_string(i);
      r.note = note;
      log.Append(r);
    }
    log.Flush();
    EXPECT_TRUE(log.pending().empty());
  }
  const std::string text = file.Contents();
  ASSERT_TRUE(text.ends_with("\n"));
  const std::vector<std::string> lines = SplitLines(text);
  ASSERT_EQ(lines.size(), 500u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_FALSE(HasRawControl(lines[i])) << "line " << i;
    EXPECT_TRUE(lines[i].starts_with("127.0.0.1:5555 [")) << "line " << i;
  }
  AccessLog off(-1, AccessLogFormat::kText);
  EXPECT_FALSE(off.enabled());
  off.Append(Record("/x"));
  EXPECT_TRUE(off.pending().empty());
}

// Appending past 64 KiB flushes by itself, in whole lines (no line is split across writes).
TEST(AccessLogTextTest, AutoFlushKeepsWholeLines) {
  MemFile file;
  AccessLog log(file.fd(), AccessLogFormat::kText);
  const std::string target = "/" + std::string(1500, 'p');
  for (int i = 0; i < 200; ++i) {  // ~300 KB
    log.Append(Record(target));
  }
  const std::string written = file.Contents();
  EXPECT_GT(written.size(), 64u * 1024) << "nothing flushed automatically";
  EXPECT_TRUE(written.ends_with("\n")) << "a flush cut a line";
  log.Flush();
  EXPECT_EQ(SplitLines(file.Contents()).size(), 200u);
}

// ============================================================================================
// JSON format

// A JSON line is one valid object with every field, strings and integers typed as documented.
TEST(AccessLogJsonTest, LineIsValidJson) {
  NullFd null;
  AccessLog log(null.fd(), AccessLogFormat::kJson);
  log.Append(Record("/index.html?q=1"));
  const std::string& line = log.pending();
  ASSERT_TRUE(line.ends_with("\n"));
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  JsonLine json(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(json.Parse()) << json.error() << ": " << line;
  EXPECT_EQ(json.size(), 11u);
  EXPECT_TRUE(json.Str("time").has_value());
  EXPECT_EQ(json.Str("client"), "127.0.0.1:5555");
  EXPECT_EQ(json.Str("method"), "GET");
  EXPECT_EQ(json.Str("host"), "example.com");
  EXPECT_EQ(json.Str("target"), "/index.html?q=1");
  EXPECT_EQ(json.Str("protocol"), "HTTP/1.1");
  EXPECT_EQ(json.Int("status"), 200);
  EXPECT_EQ(json.Int("bytes"), 1234);
  EXPECT_EQ(json.Str("backend"), "127.0.0.1:9001");
  EXPECT_EQ(json.Int("duration_ms"), 7);
  EXPECT_EQ(json.Str("note"), "");
}

// JSON: "peer" appears only when the peer is not the client.
TEST(AccessLogJsonTest, PeerWhenNotTheClient) {
  NullFd null;
  AccessLog log(null.fd(), AccessLogFormat::kJson);
  AccessRecord r = Record("/x");
  r.client = "203.0.113.9";
  r.peer = "127.0.0.10";
  log.Append(r);
  const std::string& line = log.pending();
  JsonLine json(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(json.Parse()) << json.error() << ": " << line;
  EXPECT_EQ(json.Str("client"), "203.0.113.9");
  EXPECT_EQ(json.Str("peer"), "127.0.0.10");
}

// L1 in JSON: hostile bytes in every string field are escaped (\u00XX), the line stays one
// valid JSON object, and each field decodes back to exactly the bytes that were logged.
TEST(AccessLogJsonTest, EscapesAndRoundTrips) {
  NullFd null;
  AccessLog log(null.fd(), AccessLogFormat::kJson);
  AccessRecord r = Record(kHostile);
  const std::string client = "1.2.3.4\r\n\"x\":1";
  const std::string method = "G\\ET";
  const std::string host = "h\x1b[2J\"}";
  const std::string backend = "\x00\x01\x02"s;
  const std::string note = "n\no\"te\\";
  r.client = client;
  r.method = method;
  r.host = host;
  r.backend = backend;
  r.note = note;
  log.Append(r);
  const std::string& line = log.pending();
  ASSERT_TRUE(line.ends_with("\n"));
  const std::string body = line.substr(0, line.size() - 1);
  EXPECT_FALSE(HasRawControl(body)) << body;
  JsonLine json(body);
  ASSERT_TRUE(json.Parse()) << json.error() << ": " << body;
  EXPECT_EQ(json.Str("target"), kHostile);
  EXPECT_EQ(json.Str("client"), client);
  EXPECT_EQ(json.Str("method"), method);
  EXPECT_EQ(json.Str("host"), host);
  EXPECT_EQ(json.Str("backend"), backend);
  EXPECT_EQ(json.Str("note"), note);
  EXPECT_NE(body.find("\\u000d\\u000a"), std::string::npos);
  EXPECT_NE(body.find("\\u001b"), std::string::npos);
  EXPECT_NE(body.find("\\u0022"), std::string::npos);
  EXPECT_NE(body.find("\\u005c"), std::string::npos);
}

// JSON: a long target is truncated to 2048 bytes plus "...", and still parses.
TEST(AccessLogJsonTest, LongTargetTruncated) {
  NullFd null;
  AccessLog log(null.fd(), AccessLogFormat::kJson);
  const std::string target = "/" + std::string(64 * 1024, '\n');  // escapes grow it 6x
  log.Append(Record(target));
  const std::string& line = log.pending();
  EXPECT_LT(line.size(), 16u * 1024);
  JsonLine json(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(json.Parse()) << json.error();
  EXPECT_EQ(json.Str("target"), target.substr(0, 2048) + "...");
}

// Many JSON records: one valid object per line.
TEST(AccessLogJsonTest, OneObjectPerLine) {
  MemFile file;
  {
    AccessLog log(file.fd(), AccessLogFormat::kJson);
    for (int i = 0; i < 300; ++i) {
      const std::string target = i % 3 ? kHostile : "/ok";
      AccessRecord r = Record(target);
      r.status = 200 + i % 300;
      log.Append(r);
    }
  }  // the destructor flushes
  const std::vector<std::string> lines = SplitLines(file.Contents());
  ASSERT_EQ(lines.size(), 300u);
  for (size_t i = 0; i < lines.size(); ++i) {
    JsonLine json(lines[i]);
    ASSERT_TRUE(json.Parse()) << "line " << i << ": " << json.error();
    EXPECT_EQ(json.Int("status"), static_cast<int64_t>(200 + i % 300));
  }
}

}  // namespace
}  // namespace torii::http
