// http/path.cc: see path.h.
#include "http/path.h"

#include <cstring>

#include "base/text.h"

namespace torii::http {

namespace {

bool IsUnreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

char UpperHex(char c) { return (c >= 'a' && c <= 'f') ? static_cast<char>(c - 'a' + 'A') : c; }

// True when the escaped byte `cur`, following the escaped byte `prev` (or -1), makes a
// sequence no UTF-8 decoder may accept: C0/C1 and F5..FF leads, E0 80..9F (overlong three
// bytes), F0 80..8F (overlong four bytes), F4 90..BF (beyond U+10FFFF). Other invalid
// sequences (a lone continuation byte, Latin-1 text) are left to the backend, which sees the
// same escapes torii matched on.
bool ForbiddenUtf8(int prev, unsigned char cur) {
  if (cur == 0xC0 || cur == 0xC1 || cur >= 0xF5) {
    return true;
  }
  if (prev == 0xE0 && cur >= 0x80 && cur <= 0x9F) {
    return true;
  }
  if (prev == 0xF0 && cur >= 0x80 && cur <= 0x8F) {
    return true;
  }
  return prev == 0xF4 && cur >= 0x90 && cur <= 0xBF;
}

// Whether the path needs the slow pass at all: an escape, a backslash, a dot segment candidate
// ("/." anywhere) or a repeated slash. Most paths have none of them.
bool NeedsWork(const char* p, size_t n, bool merge_slashes) {
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    if (c == '%' || c == '\\') {
      return true;
    }
    if (c == '/' && i + 1 < n && (p[i + 1] == '.' || (merge_slashes && p[i + 1] == '/'))) {
      return true;
    }
  }
  return false;
}

}  // namespace

const char* ToString(PathError error) {
  switch (error) {
    case PathError::kNone:
      return "";
    case PathError::kBadEscape:
      return "bad percent-encoding in path";
    case PathError::kEncodedSlash:
      return "encoded slash in path";
    case PathError::kEncodedNul:
      return "encoded NUL in path";
    case PathError::kBackslash:
      return "backslash in path";
    case PathError::kOverlongUtf8:
      return "overlong UTF-8 in path";
  }
  return "bad path";
}

PathError NormalizePath(std::string* target, const PathOptions& options) {
  std::string& s = *target;
  const size_t query = s.find('?');
  const size_t plen = query == std::string::npos ? s.size() : query;
  if (plen == 0 || s[0] != '/' || !NeedsWork(s.data(), plen, options.merge_slashes)) {
    return PathError::kNone;
  }
  // One pass, writing at w while reading at r; every step writes at most what it read, so
  // w never passes r and the work is done in place. The loop starts each turn on a '/'.
  char* p = s.data();
  size_t r = 0;
  size_t w = 0;
  while (r < plen) {
    ++r;  // the '/'
    if (options.merge_slashes) {
      while (r < plen && p[r] == '/') {
        ++r;
      }
    }
    const size_t slash = w;
    p[w++] = '/';
    const size_t segment = w;
    int prev_escaped = -1;  // the byte of the escape just before, for the UTF-8 check
    while (r < plen && p[r] != '/') {
      const char c = p[r];
      if (c == '\\') {
        return PathError::kBackslash;
      }
      if (c != '%') {
        p[w++] = c;
        ++r;
        prev_escaped = -1;
        continue;
      }
      if (r + 2 >= plen) {
        return PathError::kBadEscape;
      }
      const int hi = base::HexDigitValue(p[r + 1]);
      const int lo = base::HexDigitValue(p[r + 2]);
      if (hi < 0 || lo < 0) {
        return PathError::kBadEscape;
      }
      const auto byte = static_cast<unsigned char>(hi * 16 + lo);
      if (IsUnreserved(byte)) {
        p[w++] = static_cast<char>(byte);
        r += 3;
        prev_escaped = -1;
        continue;
      }
      if ((byte == '/' || byte == '\\') && !options.allow_encoded_slash) {
        return PathError::kEncodedSlash;
      }
      if (byte == 0 && !options.allow_encoded_nul) {
        return PathError::kEncodedNul;
      }
      if (ForbiddenUtf8(prev_escaped, byte)) {
        return PathError::kOverlongUtf8;
      }
      const char h1 = UpperHex(p[r + 1]);
      const char h2 = UpperHex(p[r + 2]);
      p[w++] = '%';
      p[w++] = h1;
      p[w++] = h2;
      r += 3;
      prev_escaped = byte;
    }
    const size_t len = w - segment;
    const bool dot = len == 1 && p[segment] == '.';
    const bool dotdot = len == 2 && p[segment] == '.' && p[segment + 1] == '.';
    if (dot || dotdot) {
      w = slash;  // drop "/." or "/.."
      if (dotdot) {
        // ... and the segment before it: back to the '/' that starts it (the root stays).
        while (w > 0 && p[w - 1] != '/') {
          --w;
        }
        if (w > 0) {
          --w;
        }
      }
      if (r >= plen) {
        p[w++] = '/';  // "/a/b/.." is "/a/": it names a directory
      }
    }
  }
  if (w == 0) {
    p[w++] = '/';
  }
  s.erase(w, plen - w);
  return PathError::kNone;
}

}  // namespace torii::http
