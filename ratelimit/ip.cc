// ratelimit/ip.cc: address parsing, masking, hashing and IpList (ip.h).
#include "ratelimit/ip.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "ratelimit/hash.h"

namespace torii::ratelimit {
namespace {

// The longest textual IPv6 address: ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.
constexpr size_t kMaxText = 45;

uint8_t Width(uint8_t family) { return family == 4 ? 32 : family == 6 ? 128 : 0; }

bool IsMapped(const IpAddr& a) {
  if (a.family != 6) {
    return false;
  }
  for (int i = 0; i < 10; ++i) {
    if (a.bytes[i] != 0) {
      return false;
    }
  }
  return a.bytes[10] == 0xff && a.bytes[11] == 0xff;
}

IpAddr Unmap(const IpAddr& a) {
  IpAddr v4;
  v4.family = 4;
  std::memcpy(v4.bytes.data(), a.bytes.data() + 12, 4);
  return v4;
}

// The address as written, mapped IPv6 left as IPv6 (ParseCidr checks host bits in the
// family the text used). inet_pton wants a NUL-terminated string, so the text is copied to
// the stack; an embedded NUL would make it parse a prefix of the text, so it is refused.
std::optional<IpAddr> ParseRaw(std::string_view text) {
  if (text.empty() || text.size() > kMaxText ||
      std::memchr(text.data(), '\0', text.size()) != nullptr) {
    return std::nullopt;
  }
  char buf[kMaxText + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddr a;
  if (text.find(':') != std::string_view::npos) {
    if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) {
      return std::nullopt;
    }
    a.family = 6;
  } else {
    // glibc's inet_pton(AF_INET) takes exactly four decimal parts, each 0..255 and without
    // leading zeros (no octal surprises), unlike inet_aton.
    if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) {
      return std::nullopt;
    }
    a.family = 4;
  }
  return a;
}

void SetWhy(std::string* why, std::string text) {
  if (why != nullptr) {
    *why = std::move(text);
  }
}

uint32_t V4Key(const IpAddr& a) {
  return (uint32_t{a.bytes[0]} << 24) | (uint32_t{a.bytes[1]} << 16) | (uint32_t{a.bytes[2]} << 8) |
         uint32_t{a.bytes[3]};
}

unsigned __int128 V6Key(const IpAddr& a) {
  unsigned __int128 k = 0;
  for (uint8_t b : a.bytes) {
    k = (k << 8) | b;
  }
  return k;
}

}  // namespace

std::optional<IpAddr> ParseIp(std::string_view text) {
  std::optional<IpAddr> a = ParseRaw(text);
  if (a && IsMapped(*a)) {
    return Unmap(*a);
  }
  return a;
}

IpAddr IpFromSockaddr(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return IpFromBytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&in->sin_addr), 4));
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return IpFromBytes(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&in6->sin6_addr), 16));
  }
  return IpAddr{};
}

IpAddr IpFromBytes(std::span<const uint8_t> bytes) {
  IpAddr a;
  if (bytes.size() == 4) {
    a.family = 4;
    std::memcpy(a.bytes.data(), bytes.data(), 4);
  } else if (bytes.size() == 16) {
    a.family = 6;
    std::memcpy(a.bytes.data(), bytes.data(), 16);
    if (IsMapped(a)) {
      return Unmap(a);
    }
  }
  return a;
}

std::string ToString(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.family == 4) {
    inet_ntop(AF_INET, a.bytes.data(), buf, sizeof(buf));
  } else if (a.family == 6) {
    inet_ntop(AF_INET6, a.bytes.data(), buf, sizeof(buf));
  } else {
    return "-";
  }
  return buf;
}

std::optional<Cidr> ParseCidr(std::string_view text, std::string* why) {
  const size_t slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  std::optional<IpAddr> raw = ParseRaw(addr_text);
  if (!raw) {
    SetWhy(why, "not an IP address: '" + std::string(addr_text) + "'");
    return std::nullopt;
  }
  const uint8_t width = Width(raw->family);
  uint32_t prefix = width;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    bool ok = !digits.empty() && digits.size() <= 3;
    uint32_t value = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      value = value * 10 + static_cast<uint32_t>(c - '0');
    }
    if (!ok || value > width) {
      SetWhy(why, "prefix length must be a number 0.." + std::to_string(width) + ", got '" +
                      std::string(digits) + "'");
      return std::nullopt;
    }
    prefix = value;
  }
  const IpAddr network = MaskPrefix(*raw, static_cast<uint8_t>(prefix));
  if (!(network == *raw)) {
    SetWhy(why, "host bits set below /" + std::to_string(prefix) + " in '" + std::string(text) +
                    "': write " + ToString(network) + "/" + std::to_string(prefix) +
                    " for the network or " + std::string(addr_text) + "/" + std::to_string(width) +
                    " for the host");
    return std::nullopt;
  }
  if (IsMapped(*raw)) {
    // The ffff bits sit at 80..95, so a mapped network that passed the host-bit check has a
    // prefix of at least 96: it is exactly an IPv4 network.
    return Cidr{Unmap(*raw), static_cast<uint8_t>(prefix - 96)};
  }
  return Cidr{*raw, static_cast<uint8_t>(prefix)};
}

IpAddr MaskPrefix(const IpAddr& a, uint8_t prefix) {
  const uint8_t width = Width(a.family);
  if (width == 0) {
    return a;
  }
  const uint32_t bits = prefix < width ? prefix : width;
  IpAddr out;
  out.family = a.family;
  const uint32_t whole = bits / 8;
  std::memcpy(out.bytes.data(), a.bytes.data(), whole);
  if (bits % 8 != 0) {
    out.bytes[whole] = static_cast<uint8_t>(a.bytes[whole] & (0xff00u >> (bits % 8)));
  }
  return out;  // bytes past `bits` (and past 4 for IPv4) stay zero
}

uint64_t HashIp(const IpAddr& a, uint8_t prefix_or_255_for_full) {
  const uint8_t width = Width(a.family);
  const uint8_t prefix = prefix_or_255_for_full < width ? prefix_or_255_for_full : width;
  const IpAddr m = MaskPrefix(a, prefix);
  uint8_t buf[18];
  buf[0] = m.family;
  buf[1] = prefix;
  const size_t n = a.family == 6 ? 16 : a.family == 4 ? 4 : 0;
  std::memcpy(buf + 2, m.bytes.data(), n);
  return detail::KeyedHash(buf, 2 + n);
}

void IpList::Add(const Cidr& cidr) {
  const uint8_t width = Width(cidr.addr.family);
  if (width == 0) {
    return;
  }
  const uint32_t prefix = cidr.prefix < width ? cidr.prefix : width;
  ++size_;
  if (cidr.addr.family == 4) {
    const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
    const uint32_t lo = V4Key(cidr.addr) & mask;
    v4_pending_.push_back({lo, lo | ~mask});
    if (v4_pending_.size() >= kPendingMax || v4_.size() < 4096) {
      Merge(&v4_, &v4_pending_);
    }
  } else {
    const U128 mask = prefix == 0 ? U128{0} : ~U128{0} << (128 - prefix);
    const U128 lo = V6Key(cidr.addr) & mask;
    v6_pending_.push_back({lo, lo | ~mask});
    if (v6_pending_.size() >= kPendingMax || v6_.size() < 4096) {
      Merge(&v6_, &v6_pending_);
    }
  }
}

bool IpList::Contains(const IpAddr& a) const {
  if (a.family == 4) {
    return Find(v4_, v4_pending_, V4Key(a));
  }
  if (a.family == 6) {
    return Find(v6_, v6_pending_, V6Key(a));
  }
  return false;
}

// Sorts `pending` into `ranges` and coalesces overlapping and adjacent ranges, so `ranges`
// stays sorted by `lo` with every range starting past the previous one's end.
template <class T>
void IpList::Merge(std::vector<Range<T>>* ranges, std::vector<Range<T>>* pending) {
  auto by_lo = [](const Range<T>& x, const Range<T>& y) { return x.lo < y.lo; };
  std::sort(pending->begin(), pending->end(), by_lo);
  std::vector<Range<T>> all;
  all.reserve(ranges->size() + pending->size());
  std::merge(ranges->begin(), ranges->end(), pending->begin(), pending->end(),
             std::back_inserter(all), by_lo);
  std::vector<Range<T>> out;
  out.reserve(all.size());
  for (const Range<T>& r : all) {
    if (!out.empty()) {
      Range<T>& last = out.back();
      // Adjacent (last.hi + 1 == r.lo) merges too; last.hi == max covers everything after.
      if (last.hi == static_cast<T>(~T{0}) || r.lo <= last.hi + 1) {
        if (r.hi > last.hi) {
          last.hi = r.hi;
        }
        continue;
      }
    }
    out.push_back(r);
  }
  *ranges = std::move(out);
  pending->clear();
}

template <class T>
bool IpList::Find(const std::vector<Range<T>>& ranges, const std::vector<Range<T>>& pending,
                  T key) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), key,
                             [](T k, const Range<T>& r) { return k < r.lo; });
  if (it != ranges.begin() && key <= std::prev(it)->hi) {
    return true;
  }
  for (const Range<T>& r : pending) {
    if (key >= r.lo && key <= r.hi) {
      return true;
    }
  }
  return false;
}

}  // namespace torii::ratelimit
