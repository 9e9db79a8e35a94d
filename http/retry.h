// http/retry.h: what the exchange does when its upstream fails, as pure functions.
//
// Owns: the retry rules (Pingora's "retry only what never reached the application", HAProxy's
// redispatch to another server) and the status a failure turns into. A request is re-sent
// only while no response byte reached the client and it has no body (bodies are streamed, not
// kept). Then:
//  - a stream the backend refused unprocessed (HTTP/2): once more, on a new stream, whatever
//    the method, not counted against `retries`;
//  - the keep-alive race (a pooled connection the backend had closed, before any response
//    byte): one retry on a fresh connection for an idempotent method, not counted against
//    `retries`, and no mark against the backend's health;
//  - otherwise, up to the pool's `retries`, another backend (never the one that failed) when
//    the connect failed (nothing reached the backend: safe for any method) or the method is
//    idempotent.
// Leaves out: picking the backend (balancer/), passive health (the Generation), and the reply
// itself (the exchange sends it).
#pragma once

#include <cstdint>
#include <string_view>

namespace torii::http {

// Why an upstream exchange failed, as the exchange needs to know it to decide on a retry.
enum class UpstreamFailure : uint8_t {
  kConnectFailed,   // connect refused/unreachable: nothing reached the backend
  kConnectTimeout,  // connect did not finish in time: nothing reached the backend
  kClosedEarly,     // closed or reset before any response byte
  kTimeout,         // no (further) response byte within response_timeout: 504
  kBadResponse,     // malformed response: 502
  kTruncated,       // closed or reset in the middle of the response body
  // HTTP/2: the backend refused the stream before processing it (REFUSED_STREAM, or above
  // the last stream id of its GOAWAY): nothing reached the application (RFC 9113 §8.7).
  kRefused,
};

// Short text for logs and passive-health reasons ("connect failed", ...).
std::string_view ToString(UpstreamFailure why);

struct RetryFacts {
  UpstreamFailure why = UpstreamFailure::kConnectFailed;
  bool reused = false;            // the failed connection came from the idle pool
  bool response_started = false;  // some response byte already went to the client
  bool request_has_body = false;
  bool idempotent = false;        // GET, HEAD, OPTIONS, PUT, DELETE, TRACE
  bool fresh_retry_used = false;  // this request already spent its keep-alive-race retry
  uint32_t retries_used = 0;      // retries on another backend so far
  uint32_t max_retries = 0;       // the pool's `retries`
  bool other_backend_left = false;  // an eligible backend other than the failed one exists
};

enum class RetryAction : uint8_t {
  kFail,            // answer the client (FailureReplyFor, or abort once a byte was sent)
  kRetryFresh,      // the keep-alive race: again, on a new connection
  kRetryElsewhere,  // another backend (the caller excludes the failed one)
};

RetryAction DecideRetry(const RetryFacts& facts);

// The keep-alive race: says nothing about the backend (no passive-health failure).
inline bool IsKeepAliveRace(UpstreamFailure why, bool reused) {
  return why == UpstreamFailure::kClosedEarly && reused;
}
// Failures that are no mark against the backend's health: the keep-alive race, and a stream
// the backend refused unprocessed (it is draining or at its stream limit).
inline bool SaysNothingOfBackend(UpstreamFailure why, bool reused) {
  return IsKeepAliveRace(why, reused) || why == UpstreamFailure::kRefused;
}

// The local reply for a failure before any response byte: 502, 504 for timeouts, 503 when
// the connect was refused and no other backend is left (every backend refused), with the note
// the access log shows.
struct FailureReply {
  int status;
  std::string_view note;
};
FailureReply FailureReplyFor(UpstreamFailure why, bool other_backend_left);

// RFC 9110 §9.2.2 idempotent methods, by llhttp method id.
bool IsIdempotentMethod(uint8_t llhttp_method);

}  // namespace torii::http
