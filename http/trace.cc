// http/trace.cc: see trace.h.
#include "http/trace.h"

#include <sys/random.h>

#include <array>
#include <chrono>
#include <cstring>

#include "base/text.h"

namespace torii::http {

namespace {

// Lowercase hex only: traceparent forbids uppercase.
int HexDigit(char c) { return c >= 'A' && c <= 'F' ? -1 : base::HexDigitValue(c); }

bool ParseHex(std::string_view text, uint8_t* out) {
  for (size_t i = 0; i < text.size() / 2; ++i) {
    const int hi = HexDigit(text[2 * i]);
    const int lo = HexDigit(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

template <size_t N>
bool AllZero(const std::array<uint8_t, N>& a) {
  for (uint8_t b : a) {
    if (b != 0) {
      return false;
    }
  }
  return true;
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

bool IsValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  for (const char c : id) {
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\') {
      return false;
    }
  }
  return true;
}

std::optional<TraceParent> ParseTraceParent(std::string_view v) {
  constexpr size_t kLength = 55;  // 2 + 1 + 32 + 1 + 16 + 1 + 2
  if (v.size() < kLength || v[2] != '-' || v[35] != '-' || v[52] != '-') {
    return std::nullopt;
  }
  uint8_t version = 0;
  if (!ParseHex(v.substr(0, 2), &version) || version == 0xff) {
    return std::nullopt;
  }
  if (version == 0 ? v.size() != kLength : (v.size() > kLength && v[kLength] != '-')) {
    return std::nullopt;
  }
  TraceParent tp;
  if (!ParseHex(v.substr(3, 32), tp.trace_id.data()) ||
      !ParseHex(v.substr(36, 16), tp.parent_id.data()) || !ParseHex(v.substr(53, 2), &tp.flags) ||
      AllZero(tp.trace_id) || AllZero(tp.parent_id)) {
    return std::nullopt;
  }
  return tp;
}

void AppendHex(const uint8_t* bytes, size_t n, std::string* out) {
  // Both digits of every byte value, side by side: one two-byte copy per byte.
  static constexpr std::array<char, 512> kPairs = [] {
    constexpr char kHex[] = "0123456789abcdef";
    std::array<char, 512> t{};
    for (size_t b = 0; b < 256; ++b) {
      t[2 * b] = kHex[b >> 4];
      t[2 * b + 1] = kHex[b & 15];
    }
    return t;
  }();
  const size_t at = out->size();
  out->resize(at + 2 * n);
  char* p = out->data() + at;
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(p + 2 * i, &kPairs[2 * bytes[i]], 2);
  }
}

void AppendTraceParent(const TraceParent& tp, std::string* out) {
  out->append("00-");
  AppendHex(tp.trace_id.data(), tp.trace_id.size(), out);
  out->push_back('-');
  AppendHex(tp.parent_id.data(), tp.parent_id.size(), out);
  out->push_back('-');
  AppendHex(&tp.flags, 1, out);
}

IdSource::IdSource() {
  if (getrandom(s_, sizeof(s_), 0) != static_cast<ssize_t>(sizeof(s_))) {
    // No entropy source: IDs need to be unique, not secret. Mix the clock and the address.
    uint64_t x = static_cast<uint64_t>(
                     std::chrono::steady_clock::now().time_since_epoch().count()) ^
                 reinterpret_cast<uintptr_t>(this);
    for (uint64_t& s : s_) {
      x += 0x9e3779b97f4a7c15ull;
      s = x;
    }
  }
  if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) {
    s_[0] = 1;  // xoshiro's only forbidden state
  }
}

uint64_t IdSource::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

void IdSource::Fill(uint8_t* out, size_t n) {
  uint64_t any = 0;  // the bits of every word used: all zero only if every byte is
  for (size_t i = 0; i < n; i += 8) {
    uint64_t r = Next();
    const size_t take = n - i < 8 ? n - i : 8;
    if (take < 8) {
      r &= (uint64_t{1} << (8 * take)) - 1;  // the bytes copied below (little-endian order)
    }
    std::memcpy(out + i, &r, take);
    any |= r;
  }
  if (any == 0 && n > 0) {
    out[n - 1] = 1;
  }
}

}  // namespace torii::http
