// tests/fuzz/h1_request_fuzz.cc: the request glue under fuzzing (BAD-INPUTS "fuzz target").
//
// Bytes go through what the proxy session runs on a client's input: H1Parser (llhttp strict
// plus torii's checks), split at an input-chosen point to exercise partial heads, then
// BuildUpstreamRequestHead and torii's body re-framing. The oracle re-parses what torii would
// send upstream with an independent, deliberately simple strict parser and checks:
//   - the method, target, forwarded headers and body are the ones torii parsed (differential);
//   - what torii sends is exactly one request: nothing is left over (no smuggled second one);
//   - no header line carries CR, LF or NUL (H2).
// A violation aborts (libFuzzer reports it). Built two ways (tests/fuzz/fuzz.h): as a libFuzzer
// target by scripts/fuzz.sh, and always inside fuzz_test, which replays the seed corpus plus
// deterministic mutations under ASan/UBSan on every CI run.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http/h1_parser.h"
#include "http/serialize.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "h1_request_fuzz";

struct Parsed {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// An independent strict HTTP/1.1 request parser for torii's own output: CRLF only, token
// names, values without CTLs, exactly one framing header or none. Returns false on anything
// else; `rest` receives the bytes after the first request.
bool ReferenceParse(std::string_view in, Parsed* out, std::string_view* rest) {
  auto line_end = in.find("\r\n");
  if (line_end == std::string_view::npos) {
    return false;
  }
  std::string_view line = in.substr(0, line_end);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2 || line.substr(sp2 + 1) != "HTTP/1.1") {
    return false;
  }
  out->method = std::string(line.substr(0, sp1));
  out->target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  if (!http::IsToken(out->method) || out->target.empty() ||
      out->target.find_first_of(" \t\r\n") != std::string::npos) {
    return false;
  }
  in.remove_prefix(line_end + 2);
  int64_t content_length = -1;
  bool chunked = false;
  for (;;) {
    line_end = in.find("\r\n");
    if (line_end == std::string_view::npos) {
      return false;
    }
    line = in.substr(0, line_end);
    in.remove_prefix(line_end + 2);
    if (line.empty()) {
      break;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return false;
    }
    const std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
    if (!http::IsToken(name) || !http::IsCleanValue(value) ||
        line.find('\0') != std::string_view::npos) {
      Violation(kName, "unclean header line", line);
    }
    if (http::EqualsIgnoreCase(name, "content-length")) {
      if (content_length >= 0 || chunked || value.empty() || value.size() > 18) {
        return false;
      }
      content_length = 0;
      for (char c : value) {
        if (c < '0' || c > '9') {
          return false;
        }
        content_length = content_length * 10 + (c - '0');
      }
    } else if (http::EqualsIgnoreCase(name, "transfer-encoding")) {
      if (content_length >= 0 || chunked || value != "chunked") {
        return false;
      }
      chunked = true;
    }
    out->headers.emplace_back(std::string(name), std::string(value));
  }
  if (content_length >= 0) {
    if (in.size() < static_cast<uint64_t>(content_length)) {
      return false;
    }
    out->body = std::string(in.substr(0, static_cast<size_t>(content_length)));
    in.remove_prefix(static_cast<size_t>(content_length));
  } else if (chunked) {
    for (;;) {
      line_end = in.find("\r\n");
      if (line_end == std::string_view::npos || line_end == 0 || line_end > 16) {
        return false;
      }
      uint64_t size = 0;
      for (char c : in.substr(0, line_end)) {
        const int d = (c >= '0' && c <= '9') ? c - '0'
                      : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                      : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                               : -1;
        if (d < 0) {
          return false;
        }
        size = size * 16 + static_cast<uint64_t>(d);
      }
      in.remove_prefix(line_end + 2);
      if (size == 0) {
        if (in.substr(0, 2) != "\r\n") {
          return false;  // torii never sends trailers
        }
        in.remove_prefix(2);
        break;
      }
      if (in.size() < size + 2 || in.substr(size, 2) != "\r\n") {
        return false;
      }
      out->body.append(in.substr(0, size));
      in.remove_prefix(size + 2);
    }
  }
  *rest = in;
  return true;
}

}  // namespace

// Runs one input through the glue and the oracle. Returns the number of requests checked.
int FuzzH1Request(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  // The first byte picks a split point, so heads arrive in two pieces.
  const size_t split = size > 1 ? 1 + data[0] % (size - 1) : 1;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  http::H1Parser parser(http::H1Parser::Kind::kRequest,
                        http::H1Parser::Limits{4096, 32, 1 << 20});
  std::string buf;
  size_t fed = 0;
  int checked = 0;
  std::string upstream;
  std::string body;
  std::string method, target, host;
  http::Framing framing = http::Framing::kNone;
  bool in_message = false;
  for (int steps = 0; steps < 100000; ++steps) {
    const http::H1Parser::Step st = parser.Next(buf.data(), buf.size());
    switch (st.event) {
      case http::H1Parser::Event::kNeedMore: {
        if (!parser.in_head()) {
          buf.erase(0, parser.consumed());
          parser.DropConsumed();
        }
        if (fed >= input.size()) {
          return checked;
        }
        const size_t n = fed == 0 ? std::min(split, input.size()) : input.size() - fed;
        buf.append(input, fed, n);
        fed += n;
        break;
      }
      case http::H1Parser::Event::kError:
        if (parser.error_status() < 400 || parser.error_status() > 505) {
          Violation(kName, "error status out of range", std::to_string(parser.error_status()));
        }
        return checked;
      case http::H1Parser::Event::kHead: {
        const http::MessageHead& h = parser.head();
        method.assign(h.method);
        target.assign(h.target);
        host.clear();
        for (const http::HeaderView& hv : h.headers) {
          if (http::EqualsIgnoreCase(hv.name, "host")) {
            host.assign(hv.value);
          }
        }
        if (host.empty()) {
          host = "pool";
        }
        framing = h.framing;
        http::BuildUpstreamRequestHead(h, host, target, "127.0.0.1", framing, &upstream);
        body.clear();
        in_message = true;
        buf.erase(0, parser.consumed());
        parser.DropConsumed();
        break;
      }
      case http::H1Parser::Event::kBody:
        body.append(st.body);
        if (framing == http::Framing::kChunked) {
          http::AppendChunkHeader(st.body.size(), &upstream);
          upstream.append(st.body);
          upstream.append("\r\n");
        } else {
          upstream.append(st.body);
        }
        buf.erase(0, parser.consumed());
        parser.DropConsumed();
        break;
      case http::H1Parser::Event::kDone: {
        buf.erase(0, parser.consumed());
        parser.DropConsumed();
        if (!in_message) {
          Violation(kName, "kDone without kHead", "");
        }
        in_message = false;
        if (framing == http::Framing::kChunked) {
          upstream.append("0\r\n\r\n");
        }
        Parsed p;
        std::string_view rest;
        if (!ReferenceParse(upstream, &p, &rest)) {
          Violation(kName, "torii's upstream request does not parse", upstream);
        }
        if (!rest.empty()) {
          Violation(kName, "bytes after the upstream request (smuggling)", rest);
        }
        if (p.method != method || p.target != target || p.body != body) {
          Violation(kName, "upstream request differs from the parsed one", upstream);
        }
        ++checked;
        if (parser.must_close()) {
          return checked;  // the session closes here: nothing after it is parsed
        }
        break;
      }
    }
  }
  Violation(kName, "parser made no progress", "");
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzH1Request)
