// dns/tracker.h: when to ask again, and what to believe meanwhile, for one DNS question.
//
// Pure state, no I/O and no clock (every call takes now_ms), so tests drive time. The rules:
//  - a positive answer is believed for its TTL, clamped to [min_ttl, max_ttl];
//  - a negative answer (NXDOMAIN, NODATA) is believed for its SOA's negative TTL (RFC 2308 §5),
//    clamped the same way; without a SOA it is not cached (asked again after min_ttl);
//  - a failure (timeout, SERVFAIL, malformed answer) changes nothing that was believed: the
//    last answer stays in use, marked stale, and the question is asked again after a backoff
//    (retry_min, doubling per failure in a row, at most retry_max), not after the TTL.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dns/message.h"

namespace torii::dns {

struct RefreshPolicy {
  uint64_t min_ttl_ms = 1000;
  uint64_t max_ttl_ms = 3600 * 1000;
  uint64_t retry_min_ms = 1000;
  uint64_t retry_max_ms = 30000;
};

class Tracker {
 public:
  explicit Tracker(const RefreshPolicy& policy) : policy_(policy) {}

  // The outcome of one query. True when what is believed changed (other addresses or targets,
  // or the name appeared or disappeared).
  bool OnAnswer(const Answer& answer, uint64_t now_ms);
  // A query that failed; `why` is kept for the status page. Never changes what is believed.
  void OnFailure(std::string_view why, uint64_t now_ms);

  // When to ask next.
  uint64_t next_query_ms() const { return next_query_ms_; }
  // An answer (positive or negative) was received at least once.
  bool resolved() const { return resolved_; }
  // The last query failed: answer() is the last good one, kept past its TTL.
  bool stale() const { return failures_ > 0; }
  uint32_t failures() const { return failures_; }
  const Answer& answer() const { return answer_; }
  const std::string& last_error() const { return last_error_; }
  // When answer() arrived (0 = never).
  uint64_t answered_ms() const { return answered_ms_; }

 private:
  RefreshPolicy policy_;
  Answer answer_;
  bool resolved_ = false;
  uint32_t failures_ = 0;
  uint64_t next_query_ms_ = 0;
  uint64_t answered_ms_ = 0;
  std::string last_error_;
};

}  // namespace torii::dns
