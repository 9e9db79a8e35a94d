// base/text.h: ASCII text helpers for protocol fields: no locale, no allocation unless the
// function returns a std::string. Header-only (they sit on every hot path).
//
// Owns: optional-whitespace trimming (RFC 9110 §5.6.3 OWS: SP and HTAB), ASCII
// case-insensitive comparison and search, lowercasing, decimal formatting, header lines, the RFC
// 9110 token character class, byte tests eight bytes at a time (word::). Leaves out: list
// parsing and anything protocol-specific (the modules that parse a field know its grammar).
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace torii::base {

constexpr char LowerAscii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

namespace detail {
inline constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();
}  // namespace detail

// RFC 5234 DIGIT and ALPHA (ASCII only, whatever the locale).
constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }
constexpr bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// RFC 9110 §5.6.2 tchar: a byte of a token (field names, methods, codings, directive names).
constexpr bool IsTchar(char c) { return detail::kTchar[static_cast<unsigned char>(c)]; }

// RFC 9110 §5.6.2 token: one or more tchar.
constexpr bool IsToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!IsTchar(c)) {
      return false;
    }
  }
  return true;
}

// The value of a hex digit (either case), or -1.
constexpr int HexDigitValue(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

// `s` without SP / HTAB at either end.
constexpr std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// The part of *rest before the first `sep` (all of it when there is none); *rest keeps what
// follows that separator. Walks a list: while (!rest.empty()) { item = PopField(&rest, ','); }
constexpr std::string_view PopField(std::string_view* rest, char sep) {
  const size_t at = rest->find(sep);
  const std::string_view field = rest->substr(0, at);
  *rest = at == std::string_view::npos ? std::string_view() : rest->substr(at + 1);
  return field;
}

// Equal ignoring ASCII case (header names, tokens, directive names).
constexpr bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) {
      return false;
    }
  }
  return true;
}

// `needle` occurs in `haystack`, ignoring ASCII case. O(|haystack| × |needle|): for short
// needles in bounded fields.
constexpr bool ContainsIgnoreCase(std::string_view haystack, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (EqualsIgnoreCase(haystack.substr(i, needle.size()), needle)) {
      return true;
    }
  }
  return false;
}

// Eight bytes at a time: a word's bytes tested together. Each mask below holds the high bit
// (0x80) of every byte of `w` that passes the test.
namespace word {

inline constexpr uint64_t kOnes = 0x0101010101010101ull;
inline constexpr uint64_t kHigh = 0x8080808080808080ull;

// Bytes from `lo` to `hi` (1 <= lo <= hi < 0x80); bytes of 0x80 and above never pass.
constexpr uint64_t InRange(uint64_t w, uint8_t lo, uint8_t hi) {
  const uint64_t low7 = w & ~kHigh;
  return ((low7 + kOnes * (0x80 - lo)) ^ (low7 + kOnes * (0x7F - hi))) & ~w & kHigh;
}
// Bytes below `c` (c <= 0x80): exact for the lowest one (a borrow may flag a byte above it).
constexpr uint64_t Below(uint64_t w, uint8_t c) { return (w - kOnes * c) & ~w & kHigh; }
// Bytes equal to `c`: exact for the lowest one (a borrow may flag a byte above it).
constexpr uint64_t Equal(uint64_t w, uint8_t c) { return Below(w ^ (kOnes * c), 1); }

// Whether `test(w, at, len)` holds for every word covering `s`, stopping at the first that
// fails: eight bytes at a time, the last word being the last eight bytes (overlapping the one
// before it); a string shorter than a word as one word of its bytes (two overlapping halves,
// or first, middle and last) and 'a's. The word stands for the `len` bytes of `s` from `at`
// (for a test that looks at them one by one when the word alone cannot tell).
template <typename Test>
[[gnu::always_inline]] inline bool AllWords(std::string_view s, Test test) {
  const size_t n = s.size();
  const char* p = s.data();
  if (n == 0) {
    return true;
  }
  uint64_t w;
  if (n < 8) {
    if (n >= 4) {
      uint32_t lo;
      uint32_t hi;
      std::memcpy(&lo, p, sizeof(lo));
      std::memcpy(&hi, p + n - 4, sizeof(hi));
      w = lo | uint64_t{hi} << 32;
    } else {
      const auto byte = [&](size_t i) { return uint64_t{static_cast<unsigned char>(p[i])}; };
      w = (kOnes * 'a') << 24 | byte(0) | byte(n / 2) << 8 | byte(n - 1) << 16;
    }
    return test(w, size_t{0}, n);
  }
  for (size_t i = 0; i + 8 < n; i += 8) {
    std::memcpy(&w, p + i, sizeof(w));
    if (!test(w, i, size_t{8})) {
      return false;
    }
  }
  std::memcpy(&w, p + n - 8, sizeof(w));
  return test(w, n - 8, size_t{8});
}

}  // namespace word

// Whether `s` holds an ASCII uppercase letter (a word at a time).
inline bool HasUpperAscii(std::string_view s) {
  return !word::AllWords(
      s, [](uint64_t w, size_t, size_t) { return word::InRange(w, 'A', 'Z') == 0; });
}

// A lowercased copy.
inline std::string ToLowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = LowerAscii(c);
  }
  return out;
}

// Appends `v` in decimal ("1234").
inline void AppendDecimal(std::string* out, uint64_t v) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, static_cast<size_t>(end - buf));
}

// Appends a header line, "name: value\r\n", growing `out` once.
inline void AppendField(std::string* out, std::string_view name, std::string_view value) {
  const size_t at = out->size();
  out->resize(at + name.size() + value.size() + 4);
  char* p = out->data() + at;
  name.copy(p, name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  value.copy(p, value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
}

}  // namespace torii::base
