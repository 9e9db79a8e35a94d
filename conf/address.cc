// conf/address.cc: numeric socket addresses as the operator writes them in the config.
//
// Owns ParseSocketAddress() and SocketAddress's port accessors and printer. Only numeric
// forms are accepted: "IPv4:port" and "[IPv6]:port". Host names are refused on purpose (no
// resolver runs at load time or on the hot path), and so are IPv6 zone ids ("%eth0"), which
// nothing in torii needs yet. No toml++ here: this file is shared with tests and app/.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "base/text.h"
#include "conf/config.h"

namespace torii::conf {
namespace {

constexpr size_t kMaxHostText = 64;  // longer than any numeric IPv6 text (45 bytes)

// Parses a decimal port "0".."65535" (digits only, at most 5). Returns false on anything else.
bool ParsePort(std::string_view text, uint16_t* port) {
  if (text.empty() || text.size() > 5) {
    return false;
  }
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

// Sets *why (when non-null) and returns nullopt, to keep the error paths one line each.
std::optional<SocketAddress> Refuse(std::string* why, std::string message) {
  if (why != nullptr) {
    *why = std::move(message);
  }
  return std::nullopt;
}

}  // namespace

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  }
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

void SocketAddress::set_port(uint16_t port) {
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
  }
}

// Prints the address with its current port (which set_port() may have changed since parsing,
// e.g. after binding port 0). An unset address prints as "" (nothing was parsed).
std::string SocketAddress::ToString() const {
  char host[INET6_ADDRSTRLEN] = {};
  const bool v6 = family() == AF_INET6;
  if (family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host)) == nullptr) {
      return {};
    }
  } else if (v6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host)) == nullptr) {
      return {};
    }
  } else {
    return {};
  }
  // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict, PR105329) on
  // "[" + std::string(...).
  std::string out;
  out.reserve(sizeof(host) + 8);
  if (v6) {
    out += '[';
  }
  out += host;
  out += v6 ? "]:" : ":";
  out += std::to_string(port());
  return out;
}

// Accepts "a.b.c.d:port" and "[v6]:port" with port 0..65535; refuses host names, a missing or
// malformed port, unbracketed IPv6, zone ids and trailing junk. On success `text` keeps the
// operator's spelling; `why` (optional) receives a one-line reason on failure.
std::optional<SocketAddress> ParseSocketAddress(std::string_view text, std::string* why) {
  if (text.empty()) {
    return Refuse(why, "empty address");
  }
  std::string_view host;
  std::string_view port_text;
  const bool bracketed = text.front() == '[';
  if (bracketed) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return Refuse(why, "missing ']' after the IPv6 address");
    }
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return Refuse(why, "missing \":port\" after \"[IPv6]\"");
    }
    port_text = rest.substr(1);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Refuse(why, "missing \":port\"");
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Refuse(why, "an IPv6 address needs brackets, as in \"[::1]:8080\"");
    }
  }
  if (host.empty()) {
    return Refuse(why, "missing host (use 0.0.0.0 or [::] for any address)");
  }
  uint16_t port = 0;
  if (!ParsePort(port_text, &port)) {
    return Refuse(why, "port must be a number from 0 to 65535");
  }
  if (host.size() >= kMaxHostText) {
    return Refuse(why, "not a numeric IP address (host names are not supported)");
  }
  char host_z[kMaxHostText] = {};
  std::memcpy(host_z, host.data(), host.size());

  SocketAddress address;
  if (bracketed) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
    if (inet_pton(AF_INET6, host_z, &in6->sin6_addr) != 1) {
      return Refuse(why, "not a numeric IPv6 address");
    }
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    address.len = sizeof(sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&address.storage);
    if (inet_pton(AF_INET, host_z, &in->sin_addr) != 1) {
      return Refuse(why, "not a numeric IPv4 address (host names are not supported)");
    }
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    address.len = sizeof(sockaddr_in);
  }
  address.text = std::string(text);
  return address;
}

std::optional<HostPort> ParseHostPort(std::string_view text, bool port_required, std::string* why) {
  auto refuse = [why](std::string message) -> std::optional<HostPort> {
    if (why != nullptr) {
      *why = std::move(message);
    }
    return std::nullopt;
  };
  HostPort out;
  std::string_view host = text;
  if (const size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    if (!ParsePort(text.substr(colon + 1), &out.port) || out.port == 0) {
      return refuse("port must be a number from 1 to 65535");
    }
  } else if (port_required) {
    return refuse("missing \":port\"");
  }
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  if (host.empty()) {
    return refuse("missing host name");
  }
  if (host.size() > 253) {
    return refuse("host name longer than 253 bytes");
  }
  size_t label = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      if (label == 0) {
        return refuse("empty label in host name");
      }
      if (label > 63) {
        return refuse("host name label longer than 63 bytes");
      }
      label = 0;
      continue;
    }
    const char c = host[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) {
      return refuse(std::string("invalid character '") + c + "' in host name");
    }
    ++label;
  }
  out.host = base::ToLowerAscii(host);
  return out;
}

}  // namespace torii::conf
