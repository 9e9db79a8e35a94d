// http/retry.cc: see retry.h.
#include "http/retry.h"

#include <llhttp.h>

namespace torii::http {

std::string_view ToString(UpstreamFailure why) {
  switch (why) {
    case UpstreamFailure::kConnectFailed: return "connect failed";
    case UpstreamFailure::kConnectTimeout: return "connect timeout";
    case UpstreamFailure::kClosedEarly: return "closed before responding";
    case UpstreamFailure::kTimeout: return "response timeout";
    case UpstreamFailure::kBadResponse: return "malformed response";
    case UpstreamFailure::kTruncated: return "response truncated";
    case UpstreamFailure::kRefused:
      return "stream refused";
  }
  return "failure";
}

RetryAction DecideRetry(const RetryFacts& f) {
  if (f.response_started || f.request_has_body) {
    return RetryAction::kFail;
  }
  if (IsKeepAliveRace(f.why, f.reused) && f.idempotent && !f.fresh_retry_used) {
    return RetryAction::kRetryFresh;
  }
  if (f.why == UpstreamFailure::kRefused && !f.fresh_retry_used) {
    return RetryAction::kRetryFresh;  // never reached the application: safe for any method
  }
  const bool connect_failed = f.why == UpstreamFailure::kConnectFailed ||
                              f.why == UpstreamFailure::kConnectTimeout ||
                              f.why == UpstreamFailure::kRefused;
  if (f.retries_used < f.max_retries && (connect_failed || f.idempotent) &&
      f.other_backend_left) {
    return RetryAction::kRetryElsewhere;
  }
  return RetryAction::kFail;
}

FailureReply FailureReplyFor(UpstreamFailure why, bool other_backend_left) {
  switch (why) {
    case UpstreamFailure::kConnectFailed:
      // Every backend of the pool refused: none is reachable (503 + Retry-After).
      return other_backend_left ? FailureReply{502, "upstream connect failed"}
                                : FailureReply{503, "no backend reachable"};
    case UpstreamFailure::kConnectTimeout:
      return {504, "upstream connect timeout"};
    case UpstreamFailure::kClosedEarly:
      return {502, "upstream closed before responding"};
    case UpstreamFailure::kTimeout:
      return {504, "upstream response timeout"};
    case UpstreamFailure::kBadResponse:
      return {502, "malformed upstream response"};
    case UpstreamFailure::kTruncated:
      return {502, "upstream response truncated"};
    case UpstreamFailure::kRefused:
      return {503, "upstream refused the stream"};
  }
  return {502, "upstream failed"};
}

bool IsIdempotentMethod(uint8_t method) {
  switch (method) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_PUT:
    case HTTP_DELETE:
    case HTTP_TRACE:
      return true;
    default:
      return false;
  }
}

}  // namespace torii::http
