// cache/http_date.h: HTTP-date (RFC 9110 §5.6.7) to and from Unix seconds.
//
// Owns: ParseHttpDate(), which accepts exactly the three formats a recipient must accept
// (IMF-fixdate, the obsolete RFC 850 form and ANSI C's asctime() form), and FormatHttpDate(),
// which writes IMF-fixdate, the only form a sender may generate.
//
// The grammar is taken literally: names are case-sensitive ("Nov", "GMT"), fields have their
// fixed widths, and anything else (other zones, numeric offsets, missing seconds, trailing
// junk) is rejected; only OWS around the whole value is skipped. Ranges are checked (day
// within its month, leap years included; hours 00-23, minutes 00-59, seconds 00-60, a leap
// second counting as the next minute's first). The day name must be a valid name but is not
// checked against the date, as most recipients do. Arithmetic is days-from-civil over the
// proleptic Gregorian calendar: no libc time functions, no locale, thread-safe, no allocation.
//
// Leaves out: which field holds a date and what an invalid one means (policy.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace torii::cache {

// Length of an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
inline constexpr size_t kHttpDateLength = 29;

// Parses an HTTP-date in any of the three formats; nullopt when `value` is none of them.
// `now` (Unix seconds) resolves RFC 850's two-digit years (RFC 9110 §5.6.7): the latest year
// ending in those two digits whose timestamp is not more than 50 years after `now` (seen from
// mid-2025, "75" is 2075 and "76" is 1976).
std::optional<int64_t> ParseHttpDate(std::string_view value, int64_t now);

// As above with `now` read from the system clock (the only use of a clock in cache/: the
// policy always passes its injected time to the overload above).
std::optional<int64_t> ParseHttpDate(std::string_view value);

// Writes `unix_seconds` as an IMF-fixdate into out[0..28] (exactly kHttpDateLength chars, no
// NUL). Times outside years 0001..9999 are clamped to the nearest representable second.
void FormatHttpDate(int64_t unix_seconds, char out[kHttpDateLength]);

// FormatHttpDate() into a std::string.
std::string FormatHttpDate(int64_t unix_seconds);

}  // namespace torii::cache
