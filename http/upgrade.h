// http/upgrade.h: which upgrades torii tunnels (RFC 9110 §7.8, RFC 6455 §4, RFC 8441).
//
// A request that asks to switch protocols (an Upgrade field named in Connection) is forwarded
// with its upgrade only when it is a GET without a body on HTTP/1.1 and every protocol it
// lists is one its route tunnels (`[[route]] upgrades`, default ["websocket"]). Otherwise the
// upgrade is dropped (Upgrade and Connection are hop-by-hop) and the request is an ordinary
// one. After the backend's 101 both connections become a byte tunnel (session_tunnel.cc); any
// other answer is an ordinary response.
//
// An HTTP/2 client asks with an extended CONNECT (RFC 8441: :protocol names the protocol).
// The HTTP/2 codec presents it as the HTTP/1.1 upgrade it stands for (MessageHead::
// connect_protocol), so the same rules decide; what differs is that its client takes any 2xx
// as the tunnel's opening, so nothing but a 101 may answer it with one, and that it carries no
// WebSocket key: torii makes the handshake's key and checks the backend's answer to it.
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

// RFC 6455 §4.1: a fresh Sec-WebSocket-Key (16 random bytes in base64).
std::string NewWebSocketKey();
// RFC 6455 §4.2.2: the Sec-WebSocket-Accept that answers `key`.
std::string WebSocketAccept(std::string_view key);

}  // namespace torii::http
