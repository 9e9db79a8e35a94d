// dns/tracker.cc: the refresh rules of tracker.h.
#include "dns/tracker.h"

#include <algorithm>

namespace torii::dns {

bool Tracker::OnAnswer(const Answer& answer, uint64_t now_ms) {
  const bool changed = !resolved_ || answer.negative != answer_.negative ||
                       answer.addresses != answer_.addresses || answer.srv != answer_.srv;
  uint64_t keep_ms = policy_.min_ttl_ms;
  if (answer.ttl) {
    keep_ms = std::clamp<uint64_t>(uint64_t{*answer.ttl} * 1000, policy_.min_ttl_ms,
                                   std::max(policy_.min_ttl_ms, policy_.max_ttl_ms));
  }
  answer_ = answer;
  resolved_ = true;
  failures_ = 0;
  last_error_.clear();
  answered_ms_ = now_ms;
  next_query_ms_ = now_ms + keep_ms;
  return changed;
}

void Tracker::OnFailure(std::string_view why, uint64_t now_ms) {
  ++failures_;
  last_error_.assign(why);
  uint64_t backoff = std::max<uint64_t>(policy_.retry_min_ms, 1);
  for (uint32_t i = 1; i < failures_ && backoff < policy_.retry_max_ms; ++i) {
    backoff *= 2;
  }
  next_query_ms_ = now_ms + std::min(backoff, std::max(policy_.retry_max_ms, policy_.retry_min_ms));
}

}  // namespace torii::dns
