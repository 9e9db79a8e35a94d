// tls/stats.h: why a TLS session failed, and the handshake counters a context keeps.
//
// Owns: Failure (one reason per failed session, with a short name for the access log) and
// HandshakeStats (full vs resumed handshakes, failed handshakes by reason). The counters are
// relaxed atomics shared by every worker using the context: a handshake costs tens of
// microseconds, so one shared increment per handshake is noise. Any thread may read them.
// Leaves out: exporting them (app/ and the admin endpoint read them).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace torii::tls {

enum class Failure : uint8_t {
  kNone = 0,
  kPlainHttp,              // the peer's first bytes were an HTTP request line, not TLS
  kNoSharedCipher,         // no common suite, group or signature algorithm
  kUnsupportedProtocol,    // the peer's versions are outside ours (TLS 1.1, or 1.2 when 1.3-only)
  kNoApplicationProtocol,  // ALPN offered, none of ours in it (no_application_protocol alert)
  kInappropriateFallback,  // TLS_FALLBACK_SCSV on a downgraded version (RFC 7507)
  kCertificate,            // the peer's certificate failed verification (backends)
  kPeerAlert,              // the peer sent a fatal alert
  kBadRecord,              // a malformed, oversized or undecryptable record: garbage, tampering
  kProtocol,               // any other protocol violation
  kHandshakeFlood,         // too many post-handshake messages (KeyUpdate, renegotiation)
  kInputOverflow,          // ciphertext piled up past Session::kMaxBufferedInput
  kTimeout,                // the caller's handshake deadline passed (Session::FailTimeout)
  kInternal,               // out of memory or an OpenSSL failure of our own
  kCount,
};
inline constexpr size_t kFailureCount = static_cast<size_t>(Failure::kCount);

// A short constant phrase for logs: "plain HTTP on TLS port", "no shared cipher", ...
std::string_view FailureName(Failure failure);

struct HandshakeStats {
  std::atomic<uint64_t> full{0};     // handshakes completed without resumption
  std::atomic<uint64_t> resumed{0};  // handshakes completed by resuming a ticket / session
  std::array<std::atomic<uint64_t>, kFailureCount> failed{};  // by reason; kNone unused
  std::atomic<uint64_t> failed_after_handshake{0};  // sessions that failed once established
  // Early data (0-RTT) offered on a resumed session: accepted, or refused because its ticket
  // had carried early data already (a replay) or the record of spent tickets was full.
  std::atomic<uint64_t> early_data_accepted{0};
  std::atomic<uint64_t> early_data_refused{0};

  void Count(std::atomic<uint64_t>& counter) { counter.fetch_add(1, std::memory_order_relaxed); }
  uint64_t failures(Failure failure) const {
    return failed[static_cast<size_t>(failure)].load(std::memory_order_relaxed);
  }
  uint64_t total_failures() const;
};

}  // namespace torii::tls
