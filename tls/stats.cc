// tls/stats.cc: failure names and the counters' sum.
#include "tls/stats.h"

namespace torii::tls {

std::string_view FailureName(Failure failure) {
  switch (failure) {
    case Failure::kNone:
      return "none";
    case Failure::kPlainHttp:
      return "plain HTTP on TLS port";
    case Failure::kNoSharedCipher:
      return "no shared cipher";
    case Failure::kUnsupportedProtocol:
      return "unsupported protocol";
    case Failure::kNoApplicationProtocol:
      return "no application protocol";
    case Failure::kInappropriateFallback:
      return "inappropriate fallback";
    case Failure::kCertificate:
      return "certificate verify failed";
    case Failure::kPeerAlert:
      return "alert from peer";
    case Failure::kBadRecord:
      return "bad record";
    case Failure::kProtocol:
      return "protocol error";
    case Failure::kHandshakeFlood:
      return "post-handshake message flood";
    case Failure::kInputOverflow:
      return "input buffer limit";
    case Failure::kTimeout:
      return "handshake timeout";
    case Failure::kInternal:
      return "internal error";
    case Failure::kCount:
      break;
  }
  return "unknown";
}

uint64_t HandshakeStats::total_failures() const {
  uint64_t total = 0;
  for (const auto& counter : failed) {
    total += counter.load(std::memory_order_relaxed);
  }
  return total;
}

}  // namespace torii::tls
