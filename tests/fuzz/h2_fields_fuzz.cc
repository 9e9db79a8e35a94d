// tests/fuzz/h2_fields_fuzz.cc: an HTTP/2 request's fields to the exchange's head, and a
// response head to HTTP/2 fields (http/h2_fields.h).
//
// Input: one byte of flags (bit 0: the HEADERS end the stream), then fields as
// "name\0value\0" pairs (what nghttp2 hands over may still hold anything its checks allow).
// The oracle, for a head that is accepted:
//  - at most one Host and one Cookie field, and a Host that agrees with :authority;
//  - the framing agrees with Content-Length and the end of the stream;
//  - every header view lies inside what the fields held (no dangling view).
// Then the same fields as a response's, with the same bytes as the lines torii adds:
// BuildClientResponseFields gives :status first and only lowercase names, none of them
// connection-specific; and the bytes as a backend request head:
// RequestFields gives the four pseudo-header fields and te first, then lowercase names, never
// Host, a connection-specific field or another te.
#include <string>
#include <string_view>
#include <vector>

#include "base/text.h"
#include "http/h2_fields.h"
#include "http/serialize.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "h2_fields_fuzz";

}  // namespace

int FuzzH2Fields(const uint8_t* data, size_t size) {
  Input in(data, size);
  const bool end_stream = (in.Byte() & 1) != 0;
  http::H2RequestFields fields(4096, 64);
  std::string all;
  while (!in.empty()) {
    const std::string_view name = in.Until('\0', 512);
    const std::string_view value = in.Until('\0', 2048);
    fields.Add(name, value);
    all.append(name).append(value);
  }
  int checked = 0;
  http::MessageHead h;
  if (!fields.Build(end_stream, 1 << 20, &h)) {
    ++checked;
    int hosts = 0;
    int cookies = 0;
    for (const http::HeaderView& hv : h.headers) {
      hosts += hv.name == "host";
      cookies += hv.name == "cookie";
      if (hv.name.empty() && !hv.value.empty()) {
        Violation(kName, "a value without a name", hv.value);
      }
    }
    if (hosts > 1 || cookies > 1) {
      Violation(kName, "Host or Cookie more than once", h.target);
    }
    if (end_stream && h.framing != http::Framing::kNone) {
      Violation(kName, "a body framing for a request that ended with its HEADERS", h.target);
    }
    if (!end_stream && h.framing == http::Framing::kNone) {
      Violation(kName, "no framing for a request whose body follows", h.target);
    }
    if (h.framing == http::Framing::kContentLength && !h.has_content_length) {
      Violation(kName, "Content-Length framing without a Content-Length", h.target);
    }
    if (h.version_major != 2) {
      Violation(kName, "an HTTP/2 head that says another version", h.method);
    }
  }
  std::vector<http::HeaderView> response;
  Input again(data, size);
  const uint8_t status = again.Byte();
  while (!again.empty()) {
    const std::string_view name = again.Until('\0', 512);
    response.push_back(http::HeaderView{name, again.Until('\0', 2048)});
  }
  http::MessageHead resp;
  resp.status = 100 + status % 500;
  resp.headers = response;
  resp.has_content_length = (status & 1) != 0;
  resp.content_length = size;
  http::HeadEdits edits;
  edits.vary_accept_encoding = (status & 2) != 0;
  edits.weaken_etag = (status & 4) != 0;
  edits.content_encoding = (status & 8) != 0 ? "gzip" : "";
  std::string store;
  std::vector<http::H2Field> out;
  http::BuildClientResponseFields(
      resp, (status & 16) != 0 ? http::Framing::kContentLength : http::Framing::kUntilClose,
      (status & 32) != 0, std::string_view(reinterpret_cast<const char*>(data), size), edits,
      &store, &out);
  for (size_t i = 0; i < out.size(); ++i) {
    const std::string_view name = out[i].name;
    if ((i == 0) != (name == ":status")) {
      Violation(kName, ":status not first (or twice)", name);
    }
    for (char c : name) {
      if (c >= 'A' && c <= 'Z') {
        Violation(kName, "an uppercase field name", name);
      }
    }
    if (name == "connection" || name == "transfer-encoding" || name == "keep-alive" ||
        name == "upgrade" || name == "proxy-connection") {
      Violation(kName, "a connection-specific field", name);
    }
  }
  std::string request(reinterpret_cast<const char*>(data), size);
  out.clear();
  http::RequestFields(&request, "http", &out);
  static constexpr std::string_view kFirst[] = {":method", ":scheme", ":authority", ":path", "te"};
  for (size_t i = 0; i < out.size(); ++i) {
    const std::string_view name = out[i].name;
    if (i < std::size(kFirst)) {
      if (name != kFirst[i]) {
        Violation(kName, "a request's pseudo-header fields out of order", name);
      }
      continue;
    }
    for (char c : name) {
      if (c >= 'A' && c <= 'Z') {
        Violation(kName, "an uppercase field name in a request", name);
      }
    }
    if (name.empty() || name.front() == ':' || name == "host" || name == "te" ||
        name == "connection" || name == "transfer-encoding" || name == "keep-alive" ||
        name == "upgrade" || name == "proxy-connection") {
      Violation(kName, "a field HTTP/2 forbids (or torii writes) in a request", name);
    }
  }
  return checked;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzH2Fields)
