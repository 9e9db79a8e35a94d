// ratelimit/client_ip.h: the real client behind trusted proxies (`trusted_proxies`).
//
// Owns: RealClient(), the walk over X-Forwarded-For that nginx's realip module does with
// `real_ip_recursive on` and HAProxy's `option forwardfor` readers do: a hop is believed only
// if the hop that reported it (to its right, ending with the TCP peer) is trusted.
//
// Leaves out: reading and joining the header (the caller), the Forwarded header (RFC 7239),
// and ports or brackets in a hop: X-Forwarded-For carries bare addresses, so "1.2.3.4:80" or
// "[::1]" is a malformed hop.
#pragma once

#include <string_view>

#include "ratelimit/ip.h"

namespace torii::ratelimit {

// `xff` is the comma-joined X-Forwarded-For value(s) in order (the caller joins repeated
// headers with ","). Walks from the right: skips hops that are in `trusted`; the first
// untrusted hop is the client. If the peer itself is not trusted, returns the peer (never
// trust XFF from an untrusted peer). If every hop is trusted, returns the left-most. A
// malformed hop (not an IP) stops the walk and returns the last good hop seen (or the peer).
// Spaces and tabs around hops are ignored, and so are empty list elements ("a, ,b", a
// trailing comma), as RFC 9110's list syntax allows. An IPv4-mapped hop is its IPv4 address.
// No allocation; O(hops).
IpAddr RealClient(const IpAddr& peer, std::string_view xff, const IpList& trusted);

}  // namespace torii::ratelimit
