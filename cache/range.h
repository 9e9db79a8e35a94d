// cache/range.h: answering a Range request from a stored complete response (RFC 9110 §14).
//
// Owns: reading a Range field against a representation's length, and If-Range against a stored
// entry's validators. Decisions taken where the RFC leaves a choice:
//  - One range is served (206 with Content-Range). Several ranges, an unknown unit or a
//    malformed specifier are ignored (§14.2: a server MAY ignore Range): the whole 200 goes
//    out. A cache never builds multipart/byteranges, so a "bytes=0-,0-,..." flood costs
//    nothing (the "Apache killer", CVE-2011-3192).
//  - A single well-formed range that selects nothing (first byte at or past the end, a zero
//    suffix, an empty representation) is unsatisfiable: 416 with "Content-Range: bytes */N".
//  - If-Range holds only with a strong comparison (§13.1.5): an entity-tag equal to the stored
//    strong ETag, or an HTTP-date equal to the stored Last-Modified when that date is at least
//    a second before the response's Date (a strong validator, §8.8.2.2).
// Leaves out: which requests may use it (GET, a stored 200: the caller) and the bytes (the
// caller slices the stored body).
#pragma once

#include <cstdint>
#include <string_view>

#include "cache/entry.h"

namespace torii::cache {

enum class RangeKind : uint8_t {
  kIgnore,         // serve the whole representation (no Range, or one torii does not serve)
  kSatisfiable,    // serve bytes [first, last] with 206
  kUnsatisfiable,  // 416 with Content-Range: bytes */length
};

struct RangeAnswer {
  RangeKind kind = RangeKind::kIgnore;
  uint64_t first = 0;  // inclusive, kSatisfiable only
  uint64_t last = 0;   // inclusive, < length
};

// `range` is the Range field value ("bytes=0-99", "bytes=-500", "bytes=9500-").
RangeAnswer EvaluateRange(std::string_view range, uint64_t length);

// True when the Range may be honoured: `if_range` is the If-Range field value.
bool IfRangeHolds(std::string_view if_range, const Entry& entry);

}  // namespace torii::cache
