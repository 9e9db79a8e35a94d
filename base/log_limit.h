// base/log_limit.h: "log at most once a second", for messages a flood could
// repeat (failed handshakes, refused connections, a store that is down): the first one is
// written, then at most one per interval, each saying how many were left out since.
#pragma once

#include <cstdint>

namespace torii::base {

class LogLimit {
 public:
  explicit LogLimit(uint64_t interval_ms = 1000) : interval_ms_(interval_ms) {}

  // True when a message may be written at `now_ms` (the first call, or `interval_ms` after the
  // last one allowed); *suppressed is then how many calls were refused since. A refused call
  // is counted.
  bool Allow(uint64_t now_ms, uint64_t* suppressed) {
    if (allowed_once_ && now_ms - last_ms_ < interval_ms_) {
      ++suppressed_;
      return false;
    }
    allowed_once_ = true;
    last_ms_ = now_ms;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  uint64_t interval_ms_;
  uint64_t last_ms_ = 0;
  uint64_t suppressed_ = 0;
  bool allowed_once_ = false;
};

}  // namespace torii::base
