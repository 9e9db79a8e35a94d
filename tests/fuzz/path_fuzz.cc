// tests/fuzz/path_fuzz.cc: path normalisation (http/path.cc) against an independent reference.
//
// Input: one options byte (merge_slashes, allow_encoded_slash, allow_encoded_nul), then the
// request target (a '/' is put in front when missing). When torii accepts the path, the oracle
// checks, differentially, that the output equals the reference below (RFC 3986 §5.2.4's
// remove_dot_segments written as the RFC states it, over a path whose unreserved escapes were
// decoded and whose runs of '/' were merged), that normalising again changes nothing, that the
// query is untouched, and that no escape of an unreserved character, dot segment or (with
// merge_slashes) empty segment is left. When torii refuses, the reference must find the reason
// too (a bad escape, an encoded slash or NUL not allowed, a raw backslash, or a forbidden UTF-8
// escape sequence).
#include <string>
#include <string_view>

#include "http/path.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "path_fuzz";

int Hex(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool Unreserved(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// RFC 3986 §5.2.4, rule by rule, on strings.
std::string RemoveDotSegments(std::string in) {
  std::string out;
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.erase(0, 3);
    } else if (in.starts_with("./")) {
      in.erase(0, 2);
    } else if (in.starts_with("/./")) {
      in.replace(0, 3, "/");
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../") || in == "/..") {
      in = in.size() == 3 ? std::string("/") : in.substr(3);
      const size_t last = out.rfind('/');
      out.erase(last == std::string::npos ? 0 : last);
    } else if (in == "." || in == "..") {
      in.clear();
    } else {
      const size_t next = in.find('/', 1);
      out.append(in, 0, next);
      in.erase(0, next == std::string::npos ? in.size() : next);
    }
  }
  return out;
}

// The reference: decode/uppercase escapes, merge slashes, remove dot segments. Returns false
// when the path must be refused.
bool Reference(std::string_view path, const http::PathOptions& o, std::string* out) {
  std::string decoded;
  int prev = -1;
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '\\') {
      return false;
    }
    if (c != '%') {
      decoded.push_back(c);
      prev = -1;
      continue;
    }
    if (i + 2 >= path.size() || Hex(path[i + 1]) < 0 || Hex(path[i + 2]) < 0) {
      return false;
    }
    const int b = Hex(path[i + 1]) * 16 + Hex(path[i + 2]);
    i += 2;
    if (Unreserved(b)) {
      decoded.push_back(static_cast<char>(b));
      prev = -1;
      continue;
    }
    if ((b == '/' || b == '\\') && !o.allow_encoded_slash) {
      return false;
    }
    if (b == 0 && !o.allow_encoded_nul) {
      return false;
    }
    const bool overlong = b == 0xC0 || b == 0xC1 || b >= 0xF5 ||
                          (prev == 0xE0 && b >= 0x80 && b <= 0x9F) ||
                          (prev == 0xF0 && b >= 0x80 && b <= 0x8F) ||
                          (prev == 0xF4 && b >= 0x90 && b <= 0xBF);
    if (overlong) {
      return false;
    }
    static constexpr char kHex[] = "0123456789ABCDEF";
    decoded.push_back('%');
    decoded.push_back(kHex[b >> 4]);
    decoded.push_back(kHex[b & 15]);
    prev = b;
  }
  if (o.merge_slashes) {
    std::string merged;
    for (char c : decoded) {
      if (!(c == '/' && !merged.empty() && merged.back() == '/')) {
        merged.push_back(c);
      }
    }
    decoded = std::move(merged);
  }
  *out = RemoveDotSegments(decoded);
  if (out->empty()) {
    *out = "/";
  }
  return true;
}

}  // namespace

int FuzzPath(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t flags = in.Byte();
  http::PathOptions o;
  o.merge_slashes = (flags & 1) == 0;
  o.allow_encoded_slash = (flags & 2) != 0;
  o.allow_encoded_nul = (flags & 4) != 0;
  std::string target(in.Rest());
  if (target.empty() || target.front() != '/') {
    target.insert(0, 1, '/');
  }
  const size_t q = target.find('?');
  const std::string_view path = std::string_view(target).substr(0, q);
  const std::string query = q == std::string::npos ? std::string() : target.substr(q);

  std::string expected;
  const bool ref_ok = Reference(path, o, &expected);
  std::string got = target;
  const http::PathError error = http::NormalizePath(&got, o);
  if (error != http::PathError::kNone) {
    if (ref_ok) {
      Violation(kName, "refused a path the reference accepts", target);
    }
    return 0;
  }
  if (!ref_ok) {
    Violation(kName, "accepted a path the reference refuses", target);
  }
  if (got != expected + query) {
    Violation(kName, "differs from the reference", target + " -> " + got + " vs " + expected);
  }
  std::string again = got;
  if (http::NormalizePath(&again, o) != http::PathError::kNone || again != got) {
    Violation(kName, "not idempotent", got);
  }
  return 1;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzPath)
