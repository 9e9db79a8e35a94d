// http/upgrade.cc: see upgrade.h.
#include "http/upgrade.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>

#include "base/base64.h"
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

std::string NewWebSocketKey() {
  std::array<unsigned char, 16> nonce{};
  // The key only shows that the backend read this handshake (RFC 6455 §1.3); it is no secret,
  // so should the generator fail the zeros still make a well-formed key.
  (void)RAND_bytes(nonce.data(), static_cast<int>(nonce.size()));
  std::string key;
  base::AppendBase64(std::string_view(reinterpret_cast<const char*>(nonce.data()), nonce.size()),
                     &key);
  return key;
}

std::string WebSocketAccept(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input(key);
  input.append(kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha1(), nullptr);
  std::string accept;
  base::AppendBase64(std::string_view(reinterpret_cast<const char*>(digest), len), &accept);
  return accept;
}

}  // namespace torii::http
