// tests/http/retry_test.cc: the retry decision and failure replies (http/retry.cc), as a
// table over the facts the exchange knows when its upstream fails (BAD-INPUTS B1-B5).
#include "http/retry.h"

#include <gtest/gtest.h>

#include <llhttp.h>

namespace torii::http {
namespace {

RetryFacts Facts(UpstreamFailure why, bool idempotent = true) {
  RetryFacts f;
  f.why = why;
  f.idempotent = idempotent;
  f.max_retries = 1;
  f.other_backend_left = true;
  return f;
}

// A connect failure reached nothing: any method goes to another backend, within `retries`.
TEST(RetryTest, ConnectFailureRetriesAnyMethodElsewhere) {
  RetryFacts f = Facts(UpstreamFailure::kConnectFailed, /*idempotent=*/false);
  EXPECT_EQ(DecideRetry(f), RetryAction::kRetryElsewhere);
  f.why = UpstreamFailure::kConnectTimeout;
  EXPECT_EQ(DecideRetry(f), RetryAction::kRetryElsewhere);
  f.retries_used = 1;
  EXPECT_EQ(DecideRetry(f), RetryAction::kFail);
  f.retries_used = 0;
  f.other_backend_left = false;
  EXPECT_EQ(DecideRetry(f), RetryAction::kFail);
}

// After the request may have reached the application, only idempotent methods are repeated.
TEST(RetryTest, OnlyIdempotentMethodsAfterTheConnect) {
  for (UpstreamFailure why : {UpstreamFailure::kClosedEarly, UpstreamFailure::kTimeout,
                              UpstreamFailure::kBadResponse}) {
    EXPECT_EQ(DecideRetry(Facts(why, true)), RetryAction::kRetryElsewhere);
    EXPECT_EQ(DecideRetry(Facts(why, false)), RetryAction::kFail);
  }
}

// Nothing is retried once a response byte went out, or when the request had a body.
TEST(RetryTest, NeverAfterAResponseByteOrWithABody) {
  RetryFacts f = Facts(UpstreamFailure::kConnectFailed);
  f.response_started = true;
  EXPECT_EQ(DecideRetry(f), RetryAction::kFail);
  f = Facts(UpstreamFailure::kConnectFailed);
  f.request_has_body = true;
  EXPECT_EQ(DecideRetry(f), RetryAction::kFail);
}

// The keep-alive race: one retry on a fresh connection (not counted, no other backend
// needed), for idempotent methods only; a second race falls back to the normal rules.
TEST(RetryTest, KeepAliveRaceRetriesOnceFresh) {
  RetryFacts f = Facts(UpstreamFailure::kClosedEarly);
  f.reused = true;
  f.max_retries = 0;
  f.other_backend_left = false;
  EXPECT_EQ(DecideRetry(f), RetryAction::kRetryFresh);
  f.fresh_retry_used = true;
  EXPECT_EQ(DecideRetry(f), RetryAction::kFail);
  f.max_retries = 1;
  f.other_backend_left = true;
  EXPECT_EQ(DecideRetry(f), RetryAction::kRetryElsewhere);
  f = Facts(UpstreamFailure::kClosedEarly, /*idempotent=*/false);
  f.reused = true;
  EXPECT_EQ(DecideRetry(f), RetryAction::kFail);
  EXPECT_TRUE(IsKeepAliveRace(UpstreamFailure::kClosedEarly, true));
  EXPECT_FALSE(IsKeepAliveRace(UpstreamFailure::kClosedEarly, false));
  EXPECT_FALSE(IsKeepAliveRace(UpstreamFailure::kTimeout, true));
}

// HTTP/2: a stream the backend refused unprocessed is retried once on a new stream whatever
// the method (then elsewhere, as a connect failure is); no mark against the backend.
TEST(RetryTest, RefusedStreamRetriesAnyMethod) {
  RetryFacts f = Facts(UpstreamFailure::kRefused, /*idempotent=*/false);
  f.max_retries = 0;
  f.other_backend_left = false;
  EXPECT_EQ(DecideRetry(f), RetryAction::kRetryFresh);
  f.fresh_retry_used = true;
  EXPECT_EQ(DecideRetry(f), RetryAction::kFail);
  f.max_retries = 1;
  f.other_backend_left = true;
  EXPECT_EQ(DecideRetry(f), RetryAction::kRetryElsewhere);
  f.request_has_body = true;  // its body was streamed: gone
  EXPECT_EQ(DecideRetry(f), RetryAction::kFail);
  EXPECT_TRUE(SaysNothingOfBackend(UpstreamFailure::kRefused, false));
  EXPECT_FALSE(SaysNothingOfBackend(UpstreamFailure::kTruncated, true));
  EXPECT_EQ(FailureReplyFor(UpstreamFailure::kRefused, true).status, 503);
}

// The replies: 503 only when every backend refused, 504 for timeouts, 502 otherwise.
TEST(RetryTest, FailureReplies) {
  EXPECT_EQ(FailureReplyFor(UpstreamFailure::kConnectFailed, false).status, 503);
  EXPECT_EQ(FailureReplyFor(UpstreamFailure::kConnectFailed, true).status, 502);
  EXPECT_EQ(FailureReplyFor(UpstreamFailure::kConnectTimeout, true).status, 504);
  EXPECT_EQ(FailureReplyFor(UpstreamFailure::kTimeout, true).status, 504);
  EXPECT_EQ(FailureReplyFor(UpstreamFailure::kClosedEarly, true).status, 502);
  EXPECT_EQ(FailureReplyFor(UpstreamFailure::kBadResponse, true).note,
            "malformed upstream response");
  EXPECT_EQ(FailureReplyFor(UpstreamFailure::kConnectFailed, false).note, "no backend reachable");
}

// RFC 9110 §9.2.2.
TEST(RetryTest, IdempotentMethods) {
  for (uint8_t m : {HTTP_GET, HTTP_HEAD, HTTP_OPTIONS, HTTP_PUT, HTTP_DELETE, HTTP_TRACE}) {
    EXPECT_TRUE(IsIdempotentMethod(m)) << int(m);
  }
  for (uint8_t m : {HTTP_POST, HTTP_PATCH, HTTP_CONNECT}) {
    EXPECT_FALSE(IsIdempotentMethod(m)) << int(m);
  }
}

}  // namespace
}  // namespace torii::http
