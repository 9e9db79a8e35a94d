// http/trace.h: request IDs and W3C Trace Context (traceparent), as pure functions plus a
// per-worker source of random IDs.
//
// Owns: what a valid request ID is, parsing and formatting `traceparent` (W3C Trace Context
// Level 1, §3.2), and IdSource (xoshiro256** seeded from getrandom; one per worker, no lock).
// Leaves out: which header carries the ID and whose ID is believed (the exchange: an ID is kept
// only from a trusted proxy; a traceparent from anyone, as the W3C recommends), and logging.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace torii::http {

// A request ID torii keeps from a trusted peer: 1-128 characters, visible ASCII without
// space, quote, comma, semicolon or backslash (safe in a header, a log line and a JSON string).
bool IsValidRequestId(std::string_view id);

struct TraceParent {
  std::array<uint8_t, 16> trace_id{};
  std::array<uint8_t, 8> parent_id{};
  uint8_t flags = 0;  // bit 0: sampled
};

// Parses a traceparent value. Version 00: exactly "00-<32 hex>-<16 hex>-<2 hex>", lowercase;
// a higher version (not ff) is read by the same first 55 characters, followed by nothing or
// '-'. An all-zero trace-id or parent-id is invalid. nullopt when invalid (the caller starts a
// new trace, as the spec says).
std::optional<TraceParent> ParseTraceParent(std::string_view value);

// "00-<trace-id>-<parent-id>-<flags>" appended to `out`.
void AppendTraceParent(const TraceParent& tp, std::string* out);

// Lowercase hex of `n` bytes appended to `out`.
void AppendHex(const uint8_t* bytes, size_t n, std::string* out);

// Random 64-bit values for IDs (not for secrets): xoshiro256**, seeded once from getrandom.
class IdSource {
 public:
  IdSource();
  uint64_t Next();
  // Fills `n` bytes; never all zero.
  void Fill(uint8_t* out, size_t n);

 private:
  uint64_t s_[4];
};

}  // namespace torii::http
