// http/upgrade.h: which HTTP/1.1 upgrades torii tunnels (RFC 9110 §7.8, RFC 6455 §4).
//
// A request that asks to switch protocols (an Upgrade field named in Connection) is forwarded
// with its upgrade only when it is a GET without a body on HTTP/1.1 and every protocol it
// lists is one its route tunnels (`[[route]] upgrades`, default ["websocket"]). Otherwise the
// upgrade is dropped (Upgrade and Connection are hop-by-hop) and the request is an ordinary
// one. After the backend's 101 both connections become a byte tunnel (session_tunnel.cc); any
// other answer is an ordinary response.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http/h1_parser.h"

namespace torii::http {

// The Upgrade value to forward to the backend, or nullopt when this request is not tunnelled.
// `allowed`: the route's protocols, lowercase.
std::optional<std::string_view> TunnelledUpgrade(const MessageHead& h,
                                                 std::span<const std::string> allowed);

}  // namespace torii::http
