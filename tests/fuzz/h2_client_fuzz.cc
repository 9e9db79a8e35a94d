// tests/fuzz/h2_client_fuzz.cc: what an HTTP/2 backend sends, to torii's client codec
// (http/h2_client_codec.h).
//
// Input: one byte choosing how many streams are open (1-8, bit 3: the first has a body still
// to come, bit 4: the host resets a stream from inside a callback, as an exchange that gives
// up does), one byte for the size of the pieces the rest is received in (1-256), then the
// server's bytes. The host gives back exactly the DATA it was handed (Consume) after each
// piece, the way the upstream connection does. The oracle:
//  - a field reaches the host only with a valid name: ":status" (three digits, first in a
//    block), or lowercase token characters, never a connection-specific field; its value has
//    no control character but HTAB and no whitespace at either end;
//  - DATA and header blocks reach the host only for streams that were opened and not closed;
//  - a stream with a Content-Length gets no more DATA than it said, and ends with exactly it;
//  - each stream is reported closed once, and nothing reaches a stream the host reset;
//  - once Receive() says no, the codec is failed and stays so.
#include <charconv>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "http/h2_client_codec.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "h2_client_fuzz";

struct Host : http::H2ClientCodec::Host {
  http::H2ClientCodec* codec = nullptr;
  bool reset_inside = false;
  std::map<int32_t, size_t> taken;  // DATA handed over, not yet given back
  std::set<int32_t> open;
  std::set<int32_t> gone;             // reset by the host: nothing more may reach it
  std::map<int32_t, int64_t> length;  // Content-Length of the current head
  std::map<int32_t, uint64_t> data;
  std::map<int32_t, bool> ended;
  bool in_block = false;
  int events = 0;

  void Check(int32_t s) {
    if (open.count(s) == 0 || gone.count(s) != 0) {
      Violation(kName, "an event for a stream not open", std::to_string(s));
    }
    ++events;
  }
  void OnField(int32_t s, std::string_view n, std::string_view v) override {
    Check(s);
    if (n == ":status") {
      if (v.size() != 3 || v[0] < '1' || v[0] > '5') {
        Violation(kName, "a bad :status", v);
      }
    } else {
      if (n.empty()) {
        Violation(kName, "an empty name", v);
      }
      for (char c : n) {
        if ((c >= 'A' && c <= 'Z') || c == ':' || c <= ' ' || static_cast<uint8_t>(c) >= 0x7f) {
          Violation(kName, "a bad name", n);
        }
      }
      if (n == "connection" || n == "transfer-encoding" || n == "keep-alive" || n == "upgrade" ||
          n == "proxy-connection") {
        Violation(kName, "a connection-specific field", n);
      }
      if (n == "content-length" && data[s] == 0) {
        // A head's (the codec checked it is a number); a trailer's may be anything.
        int64_t len = 0;
        if (std::from_chars(v.data(), v.data() + v.size(), len).ec == std::errc()) {
          length[s] = len;
        }
      }
    }
    for (char c : v) {
      const auto b = static_cast<uint8_t>(c);
      if ((b < 0x20 && b != '\t') || b == 0x7f) {
        Violation(kName, "a control character in a value", v);
      }
    }
    if (!v.empty() &&
        (v.front() == ' ' || v.back() == ' ' || v.front() == '\t' || v.back() == '\t')) {
      Violation(kName, "whitespace around a value", v);
    }
  }
  void OnHeaders(int32_t s, bool end) override {
    Check(s);
    if (end) {
      ended[s] = true;
    }
  }
  void OnData(int32_t s, std::string_view b) override {
    Check(s);
    if (ended[s]) {
      Violation(kName, "DATA after the end", std::to_string(s));
    }
    data[s] += b.size();
    taken[s] += b.size();
    if (reset_inside && b.size() % 3 == 0) {
      codec->Reset(s, http::H2Error::kCancel);  // from inside the codec's own call
      gone.insert(s);
    }
    auto it = length.find(s);
    if (it != length.end() && data[s] > static_cast<uint64_t>(it->second)) {
      Violation(kName, "more DATA than Content-Length", std::to_string(s));
    }
  }
  void OnDataEnd(int32_t s) override {
    Check(s);
    auto it = length.find(s);
    if (it != length.end() && data[s] != static_cast<uint64_t>(it->second)) {
      Violation(kName, "a body ended short of Content-Length", std::to_string(s));
    }
    ended[s] = true;
  }
  void OnSettings() override { ++events; }
  void OnGoaway() override { ++events; }
  void OnPingAck() override { ++events; }
  void OnMalformed(int32_t s) override { Check(s); }
};

}  // namespace

int FuzzH2Client(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t choice = in.Byte();
  const size_t piece = 1 + in.Byte();
  Host host;
  http::H2ClientCodec codec(host, http::H2ClientCodec::Settings{});
  host.codec = &codec;
  host.reset_inside = (choice & 0x10) != 0;
  const http::H2Field get[] = {
      {":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}};
  const int streams = 1 + (choice & 7);
  for (int i = 0; i < streams; ++i) {
    const int32_t id = codec.Open(get, /*end_stream=*/!(i == 0 && (choice & 8) != 0));
    host.open.insert(id);
  }
  std::string_view rest = in.Rest();
  bool failed = false;
  while (!rest.empty()) {
    const std::string_view part = rest.substr(0, piece);
    rest.remove_prefix(part.size());
    const bool ok = codec.Receive(part);
    if (failed && ok) {
      Violation(kName, "a failed codec took bytes again", part);
    }
    if (!ok) {
      failed = true;
      if (!codec.failed()) {
        Violation(kName, "Receive() said no but the codec is not failed", part);
      }
    }
    for (const auto& [id, code] : codec.TakeClosed()) {
      if (host.open.erase(id) == 0) {
        Violation(kName, "a stream closed twice or never opened", std::to_string(id));
      }
      host.length.erase(id);
    }
    // What a host does: give back the bytes it was handed, so the windows move.
    for (const auto& [id, n] : host.taken) {
      codec.Consume(id, n);
    }
    host.taken.clear();
    codec.output().clear();
  }
  return codec.settings_received() && host.events > 1 ? 1 : 0;
}

TORII_FUZZ_ENTRY(FuzzH2Client)

}  // namespace torii::fuzz
