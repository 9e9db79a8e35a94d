// http/phases.h: the latency budget of one exchange, phase by phase.
//
// Owns: the timestamps a session takes as an exchange moves on (ExchangeTiming, CLOCK_MONOTONIC
// ns, 0 = not reached), the phases derived from them (PhaseTimes), their names, and the two
// text forms the access log writes. The same phases feed the per-phase histograms of /metrics
// (ProxyStats) and the status page. Server-Timing (per route) reports the phases up to the
// response head.
//
// Phases: accept (accept, or the end of the TLS handshake, to the connection's first request
// byte), tls (handshake, on a connection's first request), head (first request byte to end
// of head), access (access lists, rate limit), cache (lookup), wait (backend pick, incl. a
// max_conns queue or a rate-limit delay), connect (a new upstream connection; absent when a
// pooled one was reused), backend (the backend's time to its response head), stream (response
// head to its last byte queued: body relay and compression, or the cached body), compress
// (the time inside gzip/br/zstd, part of stream or of a cache hit), total (first request byte
// to last response byte queued). head..stream chain, so they add up to total; accept and tls
// come before it. A phase the exchange did not go through is absent, not zero.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace torii::http {

struct ExchangeTiming {
  uint64_t first_byte = 0;  // the request's first byte arrived
  uint64_t head = 0;        // its head was parsed
  uint64_t access = 0;      // access lists and rate limit done (incl. nothing to do)
  uint64_t cache = 0;       // the cache lookup is done (cached routes)
  uint64_t sent = 0;        // handed to an upstream connection (after queue or delay)
  uint64_t connected = 0;   // that connection finished connecting (0: it was pooled)
  uint64_t response = 0;    // the response head is out (from the backend or the cache)
  uint64_t done = 0;        // the last response byte is queued
  uint64_t tls_ns = 0;      // the TLS handshake's duration (the connection's first request)
  uint64_t accept_ns = 0;   // accept to the first request byte (the connection's first request)
  uint64_t codec_ns = 0;    // time spent compressing or decompressing the body
};

enum class Phase : uint8_t { kAccept, kTls, kHead, kAccess, kCache, kWait, kConnect, kBackend,
                             kStream, kCompress, kTotal, kCount };
inline constexpr size_t kPhaseCount = static_cast<size_t>(Phase::kCount);
inline constexpr std::array<std::string_view, kPhaseCount> kPhaseNames = {
    "accept", "tls", "head", "access", "cache", "wait", "connect", "backend", "stream",
    "compress", "total"};

struct PhaseTimes {
  std::array<uint64_t, kPhaseCount> ns{};
  uint32_t present = 0;  // bit per Phase
  bool has(Phase p) const { return (present >> static_cast<int>(p)) & 1u; }
  uint64_t operator[](Phase p) const { return ns[static_cast<size_t>(p)]; }
};

// The phases an exchange went through, from its timestamps.
PhaseTimes ComputePhases(const ExchangeTiming& t);

// "head:0.012,access:0.001,backend:1.234,total:1.300" (ms, µs precision) / the JSON object
// {"head":0.012,...}, appended to `out`.
void AppendPhasesText(const PhaseTimes& p, std::string* out);
void AppendPhasesJson(const PhaseTimes& p, std::string* out);

}  // namespace torii::http
