// tests/fuzz/access_log_fuzz.cc: the access log's escaping (BAD-INPUTS L1).
//
// Input: one format byte, then NUL-separated fields (client, method, target, host, note,
// cache) of any bytes. The oracle: the record is exactly one line, ending in its only '\n',
// with no control byte (below 0x20, or 0x7f) and, in JSON, every string field still quoted
// (the line starts with '{' and ends with '}').
#include <string>
#include <string_view>
#include <fcntl.h>

#include "http/access_log.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

int FuzzAccessLog(const uint8_t* data, size_t size) {
  Input in(data, size);
  const bool json = (in.Byte() & 1) != 0;
  http::AccessRecord r;
  r.client = in.Until('\0', 1 << 16);
  r.method = in.Until('\0', 1 << 16);
  r.target = in.Until('\0', 1 << 16);
  r.host = in.Until('\0', 1 << 16);
  r.note = in.Until('\0', 1 << 16);
  r.cache = in.Until('\0', 1 << 16);
  r.peer = in.Rest();
  r.status = 200;
  // The line is checked while pending, then flushed to /dev/null with the log.
  static const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  http::AccessLog log(null_fd, json ? http::AccessLogFormat::kJson : http::AccessLogFormat::kText);
  log.Append(r);
  const std::string& line = log.pending();
  if (line.empty() || line.back() != '\n' || line.find('\n') != line.size() - 1) {
    Violation("access_log_fuzz", "not exactly one line", line);
  }
  for (size_t i = 0; i + 1 < line.size(); ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (c < 0x20 || c == 0x7f) {
      Violation("access_log_fuzz", "control byte in the line", line);
    }
  }
  if (json && (line.front() != '{' || line[line.size() - 2] != '}')) {
    Violation("access_log_fuzz", "JSON line is not one object", line);
  }
  const int checked = 1;
  return checked;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzAccessLog)
