// http/proxy_protocol.cc: see proxy_protocol.h. The formats are HAProxy's
// "proxy-protocol.txt" (v1: one text line; v2: a 16-byte binary header and addresses).
#include "http/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

#include "base/text.h"

namespace torii::http {

namespace {

constexpr char kV2Signature[12] = {'\r', '\n', '\r', '\n', '\0', '\r',
                                   '\n', 'Q',  'U',  'I',  'T',  '\n'};
constexpr std::string_view kV2Sig(kV2Signature, sizeof(kV2Signature));
constexpr std::string_view kV1Prefix = "PROXY ";
constexpr size_t kV1Max = 107;  // the longest v1 line, CRLF included

ProxyHeader Error(const char* why) {
  ProxyHeader h;
  h.result = ProxyHeader::Result::kError;
  h.error = why;
  return h;
}

// A decimal port: 1 to 5 digits, no sign, no leading zero (but "0"), at most 65535.
bool ParsePort(std::string_view s, uint16_t* port) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) {
    return false;
  }
  uint32_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(v);
  return true;
}

// An address of `family` in text (inet_pton's strict forms) with its port, into `out`.
bool ParseAddress(int family, std::string_view text, uint16_t port, sockaddr_storage* out) {
  char buf[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof(buf)) {
    return false;
  }
  memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  *out = {};
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    return inet_pton(AF_INET, buf, &in->sin_addr) == 1;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  return inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1;
}

ProxyHeader ParseV1(std::string_view bytes) {
  const size_t end = bytes.substr(0, kV1Max).find("\r\n");
  if (end == std::string_view::npos) {
    if (bytes.size() >= kV1Max) {
      return Error("PROXY v1 line too long");
    }
    // A bare LF or any byte outside printable ASCII can never become a valid line.
    for (char c : bytes) {
      if ((c < 0x20 || c > 0x7e) && c != '\r') {
        return Error("PROXY v1 line with a control character");
      }
    }
    return ProxyHeader{};
  }
  for (char c : bytes.substr(0, end)) {
    if (c < 0x20 || c > 0x7e) {
      return Error("PROXY v1 line with a control character");  // a NUL would end an address early
    }
  }
  std::string_view line = bytes.substr(kV1Prefix.size(), end - kV1Prefix.size());
  ProxyHeader h;
  h.length = end + 2;
  const std::string_view proto = base::PopField(&line, ' ');
  if (proto == "UNKNOWN") {
    // The balancer's own connection (or a family it cannot name): the rest is ignored.
    h.result = ProxyHeader::Result::kOk;
    h.local = true;
    return h;
  }
  const int family = proto == "TCP4" ? AF_INET : proto == "TCP6" ? AF_INET6 : AF_UNSPEC;
  if (family == AF_UNSPEC) {
    return Error("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
  }
  // Exactly four fields separated by single spaces.
  const std::string_view src = base::PopField(&line, ' ');
  const std::string_view dst = base::PopField(&line, ' ');
  const std::string_view sport = base::PopField(&line, ' ');
  const std::string_view dport = line;
  uint16_t sp = 0;
  uint16_t dp = 0;
  if (dport.find(' ') != std::string_view::npos || !ParsePort(sport, &sp) ||
      !ParsePort(dport, &dp)) {
    return Error("PROXY v1 ports are not two decimal ports");
  }
  if (!ParseAddress(family, src, sp, &h.source) || !ParseAddress(family, dst, dp, &h.dest)) {
    return Error("PROXY v1 addresses do not match the protocol");
  }
  h.result = ProxyHeader::Result::kOk;
  return h;
}

ProxyHeader ParseV2(std::string_view bytes) {
  if (bytes.size() < 16) {
    return ProxyHeader{};
  }
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  const uint8_t version = byte(12) >> 4;
  const uint8_t command = byte(12) & 0x0f;
  const uint8_t family = byte(13) >> 4;
  const uint8_t transport = byte(13) & 0x0f;
  const size_t len = (size_t{byte(14)} << 8) | byte(15);
  if (version != 2 || command > 1) {
    return Error("PROXY v2 version or command not valid");
  }
  if (16 + len > kMaxProxyHeader) {
    return Error("PROXY v2 header too long");
  }
  if (bytes.size() < 16 + len) {
    return ProxyHeader{};
  }
  ProxyHeader h;
  h.length = 16 + len;
  h.result = ProxyHeader::Result::kOk;
  if (command == 0 || family == 0 || family == 3) {
    // LOCAL (the balancer's own connection), or an unspecified or UNIX family: the addresses,
    // if any, are not ours to use; the TLVs are skipped.
    h.local = true;
    return h;
  }
  if (transport != 1) {
    return Error("PROXY v2 transport is not STREAM");
  }
  const std::string_view a = bytes.substr(16, len);
  if (family == 1) {
    if (len < 12) {
      return Error("PROXY v2 INET addresses truncated");
    }
    auto* src = reinterpret_cast<sockaddr_in*>(&h.source);
    auto* dst = reinterpret_cast<sockaddr_in*>(&h.dest);
    src->sin_family = dst->sin_family = AF_INET;
    memcpy(&src->sin_addr, a.data(), 4);
    memcpy(&dst->sin_addr, a.data() + 4, 4);
    memcpy(&src->sin_port, a.data() + 8, 2);
    memcpy(&dst->sin_port, a.data() + 10, 2);
    return h;
  }
  if (family == 2) {
    if (len < 36) {
      return Error("PROXY v2 INET6 addresses truncated");
    }
    auto* src = reinterpret_cast<sockaddr_in6*>(&h.source);
    auto* dst = reinterpret_cast<sockaddr_in6*>(&h.dest);
    src->sin6_family = dst->sin6_family = AF_INET6;
    memcpy(&src->sin6_addr, a.data(), 16);
    memcpy(&dst->sin6_addr, a.data() + 16, 16);
    memcpy(&src->sin6_port, a.data() + 32, 2);
    memcpy(&dst->sin6_port, a.data() + 34, 2);
    return h;
  }
  return Error("PROXY v2 address family not valid");
}

}  // namespace

ProxyHeader ParseProxyHeader(std::string_view bytes) {
  if (bytes.empty()) {
    return ProxyHeader{};
  }
  // Told apart by the first bytes; until they are all there, only a prefix of one can match.
  const std::string_view v2 = bytes.substr(0, kV2Sig.size());
  if (v2 == kV2Sig.substr(0, v2.size())) {
    return v2.size() < kV2Sig.size() ? ProxyHeader{} : ParseV2(bytes);
  }
  const std::string_view v1 = bytes.substr(0, kV1Prefix.size());
  if (v1 == kV1Prefix.substr(0, v1.size())) {
    return v1.size() < kV1Prefix.size() ? ProxyHeader{} : ParseV1(bytes);
  }
  return Error("no PROXY protocol header");
}

void AppendLocalProxyHeader(int version, std::string* out) {
  if (version == 1) {
    out->append("PROXY UNKNOWN\r\n");
    return;
  }
  out->append(kV2Sig);
  out->append({'\x20', '\x00', '\x00', '\x00'});  // v2 LOCAL, UNSPEC, no addresses
}

void AppendProxyHeader(int version, const sockaddr* source, const sockaddr* dest,
                       std::string* out) {
  const int family = source->sa_family;
  if ((family != AF_INET && family != AF_INET6) || dest->sa_family != family) {
    AppendLocalProxyHeader(version, out);
    return;
  }
  const bool v4 = family == AF_INET;
  const void* src_addr =
      v4 ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(source)->sin_addr)
         : &reinterpret_cast<const sockaddr_in6*>(source)->sin6_addr;
  const void* dst_addr =
      v4 ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(dest)->sin_addr)
         : &reinterpret_cast<const sockaddr_in6*>(dest)->sin6_addr;
  const uint16_t src_port = v4 ? reinterpret_cast<const sockaddr_in*>(source)->sin_port
                               : reinterpret_cast<const sockaddr_in6*>(source)->sin6_port;
  const uint16_t dst_port = v4 ? reinterpret_cast<const sockaddr_in*>(dest)->sin_port
                               : reinterpret_cast<const sockaddr_in6*>(dest)->sin6_port;
  const size_t addr_len = v4 ? 4 : 16;
  if (version == 1) {
    char a[INET6_ADDRSTRLEN];
    char b[INET6_ADDRSTRLEN];
    inet_ntop(family, src_addr, a, sizeof(a));
    inet_ntop(family, dst_addr, b, sizeof(b));
    out->append(v4 ? "PROXY TCP4 " : "PROXY TCP6 ");
    out->append(a).append(" ").append(b).append(" ");
    base::AppendDecimal(out, ntohs(src_port));
    out->push_back(' ');
    base::AppendDecimal(out, ntohs(dst_port));
    out->append("\r\n");
    return;
  }
  out->append(kV2Sig);
  out->push_back('\x21');                // v2, PROXY
  out->push_back(v4 ? '\x11' : '\x21');  // INET or INET6, STREAM
  const size_t len = 2 * addr_len + 4;
  out->push_back(static_cast<char>(len >> 8));
  out->push_back(static_cast<char>(len & 0xff));
  out->append(static_cast<const char*>(src_addr), addr_len);
  out->append(static_cast<const char*>(dst_addr), addr_len);
  out->append(reinterpret_cast<const char*>(&src_port), 2);  // network order already
  out->append(reinterpret_cast<const char*>(&dst_port), 2);
}

}  // namespace torii::http
