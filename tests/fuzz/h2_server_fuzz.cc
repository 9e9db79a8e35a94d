// tests/fuzz/h2_server_fuzz.cc: what an HTTP/2 client sends, to torii's server codec
// (http/h2_server_codec.h).
//
// Input: one byte of choices (bits 0-2: the stream limit, 1-8; bit 3: the host resets a
// stream from inside a callback, as an exchange that gives up does; bit 4: extended CONNECT
// enabled; bit 5: the host answers each request once its head is in; bit 6: each piece is
// received with an output limit of a quarter of its size, what is not taken given again), one
// byte for the size of the pieces the rest is received in (1-256), then the client's bytes
// after the preface (which is prepended). The host gives back exactly the DATA it was handed
// (Consume) after each piece, the way the session does. The oracle:
//  - streams begin with odd ids, each higher than the last, never more open than the limit
//    (as the codec counts them: one closed within the same bytes no longer counts);
//  - a field reaches the host only for a stream begun, open and not reset by the host, with a
//    valid name: one of the five request pseudo-fields (:protocol only when enabled), once, in
//    a head, before any other field; or lowercase token characters, never a
//    connection-specific field; its value has no control character but HTAB and no
//    whitespace at either end;
//  - a head that reaches its end has :method, and :scheme and :path unless it is a CONNECT
//    without :protocol;
//  - a stream with a Content-Length gets no more DATA than it said, and ends with exactly it;
//  - each stream is reported closed once;
//  - once Receive() says no, the codec is failed and stays so;
//  - with an output limit, Receive() takes some bytes when its output is empty, and stops
//    early only past the limit.
#include <charconv>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "http/h2_server_codec.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "h2_server_fuzz";

struct Host : http::H2Codec::Host {
  http::H2ServerCodec* codec = nullptr;
  bool reset_inside = false;
  bool connect_protocol = false;
  size_t max_streams = 1;
  int32_t last_begun = 0;
  std::map<int32_t, size_t> taken;  // DATA handed over, not yet given back
  std::set<int32_t> open;
  std::set<int32_t> gone;    // reset by the host: nothing more may reach it
  std::set<int32_t> headed;  // their head ended: trailers now
  std::map<int32_t, std::set<std::string>> pseudo;
  std::map<int32_t, bool> regular;  // the current block had a regular field
  std::map<int32_t, int64_t> length;
  std::map<int32_t, uint64_t> data;
  std::map<int32_t, bool> ended;
  std::vector<int32_t> to_answer;
  int events = 0;

  void Check(int32_t s) {
    if (open.count(s) == 0 || gone.count(s) != 0) {
      Violation(kName, "an event for a stream not open", std::to_string(s));
    }
    ++events;
  }
  void OnBegin(int32_t s) override {
    if ((s & 1) == 0 || s <= last_begun) {
      Violation(kName, "a stream id out of order", std::to_string(s));
    }
    last_begun = s;
    open.insert(s);
    if (codec->open_streams() > max_streams) {
      Violation(kName, "more streams than the limit", std::to_string(s));
    }
    ++events;
  }
  void OnField(int32_t s, std::string_view n, std::string_view v) override {
    Check(s);
    if (!n.empty() && n[0] == ':') {
      const bool known = n == ":method" || n == ":scheme" || n == ":authority" || n == ":path" ||
                         (n == ":protocol" && connect_protocol);
      if (!known || headed.count(s) != 0 || regular[s] ||
          !pseudo[s].insert(std::string(n)).second) {
        Violation(kName, "a pseudo-field out of place", n);
      }
    } else {
      regular[s] = true;
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
      if (n == "content-length" && headed.count(s) == 0) {
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
    if (!n.empty() && n[0] != ':' && !v.empty() &&
        (v.front() == ' ' || v.back() == ' ' || v.front() == '\t' || v.back() == '\t')) {
      Violation(kName, "whitespace around a value", v);
    }
  }
  void OnHeaders(int32_t s, bool end) override {
    Check(s);
    regular[s] = false;
    if (headed.insert(s).second) {
      const std::set<std::string>& p = pseudo[s];
      const bool connect = p.count(":protocol") == 0 && p.count(":method") != 0 &&
                           p.count(":scheme") == 0 && p.count(":path") == 0;
      if (p.count(":method") == 0 ||
          (!connect && (p.count(":scheme") == 0 || p.count(":path") == 0))) {
        Violation(kName, "a head without its pseudo-fields", std::to_string(s));
      }
      to_answer.push_back(s);
    } else if (!end) {
      Violation(kName, "trailers that do not end the stream", std::to_string(s));
    }
    if (end) {
      ended[s] = true;
    }
  }
  void OnData(int32_t s, std::string_view b) override {
    Check(s);
    if (ended[s] || headed.count(s) == 0) {
      Violation(kName, "DATA outside a body", std::to_string(s));
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
  void OnMalformed(int32_t s) override { Check(s); }
  void OnReset(int32_t s) override { Check(s); }
};

}  // namespace

int FuzzH2Server(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t choice = in.Byte();
  const size_t piece = 1 + in.Byte();
  Host host;
  http::H2Codec::Settings settings;
  settings.max_header_list = 16 * 1024;
  settings.connection_window = 1 << 20;
  settings.max_streams = 1 + (choice & 7);
  settings.connect_protocol = (choice & 0x10) != 0;
  http::H2ServerCodec codec(host, settings);
  host.codec = &codec;
  host.reset_inside = (choice & 0x08) != 0;
  host.connect_protocol = settings.connect_protocol;
  host.max_streams = settings.max_streams;
  const bool answer = (choice & 0x20) != 0;
  const bool limited = (choice & 0x40) != 0;  // Receive with an output limit (H2Session's)
  std::string bytes = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  bytes.append(in.Rest());
  std::string_view rest = bytes;
  bool failed = false;
  while (!rest.empty()) {
    const std::string_view part = rest.substr(0, piece);
    rest.remove_prefix(part.size());
    size_t taken = part.size();
    const bool ok = limited ? codec.Receive(part, piece / 4, &taken) : codec.Receive(part);
    if (taken > part.size() || (ok && taken == 0)) {
      // (the output is empty here: each pass takes at least a frame's start)
      Violation(kName, "Receive() with an output limit took no bytes, or more than given", part);
    }
    if (ok && taken < part.size()) {
      if (codec.output().size() <= piece / 4) {
        Violation(kName, "Receive() stopped under its output limit", part);
      }
      // Given again next pass, once the answers are taken.
      rest = std::string_view(part.data() + taken, part.size() - taken + rest.size());
    }
    if (failed && ok) {
      Violation(kName, "a failed codec took bytes again", part);
    }
    if (!ok) {
      failed = true;
      if (!codec.failed()) {
        Violation(kName, "Receive() said no but the codec is not failed", part);
      }
    }
    if (answer) {
      const http::H2Field head[] = {{":status", "200"}, {"content-length", "2"}};
      for (int32_t id : host.to_answer) {
        if (codec.SendHeaders(id, head, /*end_stream=*/false)) {
          const size_t n = std::min<size_t>(2, codec.Sendable(id));
          codec.DataHeader(id, n, /*end_stream=*/n == 2);
        }
      }
    }
    host.to_answer.clear();
    for (const auto& [id, code] : codec.TakeClosed()) {
      if (host.open.erase(id) == 0) {
        Violation(kName, "a stream closed twice or never opened", std::to_string(id));
      }
      host.length.erase(id);
    }
    for (const auto& [id, n] : host.taken) {
      codec.Consume(id, n);
    }
    host.taken.clear();
    codec.output().clear();
  }
  return host.events > 1 ? 1 : 0;
}

TORII_FUZZ_ENTRY(FuzzH2Server)

}  // namespace torii::fuzz
