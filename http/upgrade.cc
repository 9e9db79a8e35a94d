// http/upgrade.cc: see upgrade.h.
#include "http/upgrade.h"

#include <algorithm>

#include "base/text.h"
#include "http/serialize.h"

namespace torii::http {

std::optional<std::string_view> TunnelledUpgrade(const MessageHead& h,
                                                 std::span<const std::string> allowed) {
  if (!h.upgrade || allowed.empty() || h.method_id != HTTP_GET || h.framing != Framing::kNone ||
      h.version_minor != 1 || !NamedInConnection(h.headers, "upgrade")) {
    return std::nullopt;
  }
  std::optional<std::string_view> value;
  for (const HeaderView& hv : h.headers) {
    if (EqualsIgnoreCase(hv.name, "upgrade")) {
      if (value) {
        return std::nullopt;  // two Upgrade fields: ambiguous, not tunnelled
      }
      value = hv.value;
    }
  }
  if (!value || base::TrimOws(*value).empty()) {
    return std::nullopt;
  }
  // Every protocol offered ("websocket", or "a, b/2") must be one the route tunnels: the
  // backend picks among them.
  std::string_view rest = *value;
  while (!rest.empty()) {
    const std::string_view protocol = base::TrimOws(base::PopField(&rest, ','));
    if (protocol.empty()) {
      continue;
    }
    // A protocol-name/version: the route lists names, any version passes.
    const std::string_view name = protocol.substr(0, protocol.find('/'));
    if (std::none_of(allowed.begin(), allowed.end(),
                     [&](const std::string& a) { return EqualsIgnoreCase(name, a); })) {
      return std::nullopt;
    }
  }
  return base::TrimOws(*value);
}

}  // namespace torii::http
