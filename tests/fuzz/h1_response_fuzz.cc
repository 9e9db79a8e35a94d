// tests/fuzz/h1_response_fuzz.cc: the response glue under fuzzing (backend bytes).
//
// Input: one byte (bit 0: the request was HEAD; the rest picks a split point), then the bytes a
// backend sends. They go through H1Parser as a response, arriving in two pieces, and
// BuildClientResponseHead as the proxy writes it to the client. The oracle checks:
//  - errors are 502 (a backend's fault), never another status;
//  - a Content-Length body is never longer than announced, and is complete at kDone;
//  - HEAD, 1xx, 204 and 304 responses carry no body;
//  - the head torii writes for the client re-parses (as a response to HEAD, so no body is
//    expected) to the same status, with no CR, LF or NUL inside a header line.
#include <string>
#include <string_view>

#include "http/h1_parser.h"
#include "http/serialize.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "h1_response_fuzz";

void CheckClientHead(const http::MessageHead& h, bool head_req) {
  const http::Framing framing =
      h.framing == http::Framing::kContentLength ? http::Framing::kContentLength
      : h.framing == http::Framing::kNone        ? http::Framing::kNone
                                                 : http::Framing::kChunked;
  std::string out;
  http::BuildClientResponseHead(h, framing, head_req, /*close=*/false, /*client_minor=*/1,
                                /*extra=*/"", &out);
  const size_t end = out.find("\r\n\r\n");
  if (end == std::string::npos || end + 4 != out.size()) {
    Violation(kName, "client head is not one head", out);
  }
  for (size_t i = 0; i < end; ++i) {
    const char c = out[i];
    if (c == '\0' || (c == '\r' && out[i + 1] != '\n') || (c == '\n' && out[i - 1] != '\r')) {
      Violation(kName, "CR, LF or NUL inside a client header line", out);
    }
  }
  http::H1Parser reparse(http::H1Parser::Kind::kResponse, http::H1Parser::Limits{});
  reparse.set_request_was_head(true);
  const http::H1Parser::Step st = reparse.Next(out.data(), out.size());
  if (st.event != http::H1Parser::Event::kHead || reparse.head().status != h.status) {
    Violation(kName, "client head does not re-parse to the same status", out);
  }
}

}  // namespace

int FuzzH1Response(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t choice = in.Byte();
  const bool head_req = (choice & 1) != 0;
  const std::string input(in.Rest());
  const size_t split = input.size() > 1 ? 1 + (choice >> 1) % (input.size() - 1) : input.size();
  http::H1Parser parser(http::H1Parser::Kind::kResponse,
                        http::H1Parser::Limits{4096, 32, ~uint64_t{0}});
  parser.set_request_was_head(head_req);
  std::string buf;
  size_t fed = 0;
  uint64_t body = 0;
  http::Framing framing = http::Framing::kNone;
  uint64_t content_length = 0;
  bool bodiless = false;
  bool eof = false;
  int checked = 0;
  for (int steps = 0; steps < 100000; ++steps) {
    const http::H1Parser::Step st = eof ? parser.Finish() : parser.Next(buf.data(), buf.size());
    switch (st.event) {
      case http::H1Parser::Event::kNeedMore:
        if (!parser.in_head()) {
          buf.erase(0, parser.consumed());
          parser.DropConsumed();
        }
        if (fed >= input.size()) {
          if (eof) {
            return checked;
          }
          eof = true;  // the backend closed
          break;
        }
        {
          const size_t n = fed == 0 ? std::min(split, input.size()) : input.size() - fed;
          buf.append(input, fed, n);
          fed += n;
        }
        break;
      case http::H1Parser::Event::kError:
        if (parser.error_status() != 502) {
          Violation(kName, "response error is not 502", std::to_string(parser.error_status()));
        }
        return checked;
      case http::H1Parser::Event::kHead: {
        const http::MessageHead& h = parser.head();
        if (h.status < 100 || h.status > 599) {
          Violation(kName, "status out of range", std::to_string(h.status));
        }
        framing = h.framing;
        content_length = h.content_length;
        bodiless = head_req || h.status < 200 || h.status == 204 || h.status == 304;
        if (bodiless && framing != http::Framing::kNone) {
          Violation(kName, "a bodiless response has body framing", std::to_string(h.status));
        }
        body = 0;
        CheckClientHead(h, head_req);
        ++checked;
        buf.erase(0, parser.consumed());
        parser.DropConsumed();
        break;
      }
      case http::H1Parser::Event::kBody:
        body += st.body.size();
        if (bodiless) {
          Violation(kName, "body bytes on a bodiless response", st.body);
        }
        if (framing == http::Framing::kContentLength && body > content_length) {
          Violation(kName, "body longer than Content-Length", std::to_string(body));
        }
        buf.erase(0, parser.consumed());
        parser.DropConsumed();
        break;
      case http::H1Parser::Event::kDone:
        if (framing == http::Framing::kContentLength && body != content_length) {
          Violation(kName, "body shorter than Content-Length at kDone", std::to_string(body));
        }
        buf.erase(0, parser.consumed());
        parser.DropConsumed();
        if (eof || parser.must_close()) {
          return checked;
        }
        break;
    }
  }
  Violation(kName, "parser made no progress", "");
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzH1Response)
