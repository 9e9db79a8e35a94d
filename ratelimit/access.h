// ratelimit/access.h: the access-list decision for one request, as a pure function.
//
// Owns: the order of the checks (listener before route; within each, deny before allow) and
// the reason a refusal names. Leaves out: who the client is (the caller resolves it behind
// trusted proxies), bans and rate limits (rate_table.h, ban_list.h: they keep state), and the
// 403 itself (the exchange answers it).
#pragma once

#include <cstdint>

#include "ratelimit/ip.h"

namespace torii::ratelimit {

enum class AccessVerdict : uint8_t {
  kAllow,             // no list refuses the client
  kDeniedByListener,  // the listener's deny matches, or its non-empty allow does not
  kDeniedByRoute,     // the same for the route's lists
};

// Deny wins over allow; a non-empty allow admits only its members; an empty list says nothing.
// The listener's lists are checked first, so a refusal names the first list that refused.
AccessVerdict DecideAccess(const IpList& listener_allow, const IpList& listener_deny,
                           const IpList& route_allow, const IpList& route_deny,
                           const IpAddr& client);

// The log note of a verdict ("" for kAllow).
const char* ToString(AccessVerdict verdict);

}  // namespace torii::ratelimit
