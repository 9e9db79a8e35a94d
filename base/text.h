// base/text.h: ASCII text helpers for protocol fields: no locale, no allocation unless the
// function returns a std::string. Header-only (they sit on every hot path).
//
// Owns: optional-whitespace trimming (RFC 9110 §5.6.3 OWS: SP and HTAB), ASCII
// case-insensitive comparison and search, lowercasing, decimal formatting, header lines, the RFC
// 9110 token character class. Leaves out: list parsing and anything protocol-specific (the modules
// that parse a field know its grammar).
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

// Whether `s` holds an ASCII uppercase letter: eight bytes at a time (the last word overlaps
// the one before it), a string shorter than a word byte by byte.
inline bool HasUpperAscii(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  // The high bit of each byte of `w` that is 'A'..'Z' (bytes of 0x80 and above never).
  const auto upper = [](uint64_t w) {
    const uint64_t low7 = w & ~kHigh;
    return ((low7 + kOnes * (0x80 - 'A')) ^ (low7 + kOnes * (0x80 - 'Z' - 1))) & ~w & kHigh;
  };
  const size_t n = s.size();
  if (n < 8) {
    for (char c : s) {
      if (c >= 'A' && c <= 'Z') {
        return true;
      }
    }
    return false;
  }
  uint64_t w;
  for (size_t i = 0; i + 8 < n; i += 8) {
    std::memcpy(&w, s.data() + i, sizeof(w));
    if (upper(w) != 0) {
      return true;
    }
  }
  std::memcpy(&w, s.data() + n - 8, sizeof(w));
  return upper(w) != 0;
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
