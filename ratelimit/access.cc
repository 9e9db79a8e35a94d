// ratelimit/access.cc: see access.h.
#include "ratelimit/access.h"

namespace torii::ratelimit {

namespace {

bool Refuses(const IpList& allow, const IpList& deny, const IpAddr& client) {
  return deny.Contains(client) || (!allow.empty() && !allow.Contains(client));
}

}  // namespace

AccessVerdict DecideAccess(const IpList& listener_allow, const IpList& listener_deny,
                           const IpList& route_allow, const IpList& route_deny,
                           const IpAddr& client) {
  if (Refuses(listener_allow, listener_deny, client)) {
    return AccessVerdict::kDeniedByListener;
  }
  if (Refuses(route_allow, route_deny, client)) {
    return AccessVerdict::kDeniedByRoute;
  }
  return AccessVerdict::kAllow;
}

const char* ToString(AccessVerdict verdict) {
  switch (verdict) {
    case AccessVerdict::kAllow:
      return "";
    case AccessVerdict::kDeniedByListener:
      return "denied by listener access list";
    case AccessVerdict::kDeniedByRoute:
      return "denied by route access list";
  }
  return "denied";
}

}  // namespace torii::ratelimit
