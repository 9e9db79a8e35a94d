// tests/codec/test_data.h: inputs and one-shot helpers shared by the codec tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <string_view>

#include "http/codec/codec.h"

namespace torii::http::codec {
// Test names and failure messages show "gzip", not "1-byte object <01>".
inline void PrintTo(Coding c, std::ostream* os) { *os << Name(c); }
}  // namespace torii::http::codec

namespace torii::http::codec::test {

// Incompressible bytes.
inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) {
    c = static_cast<char>(rng() & 0xff);
  }
  return s;
}

// HTML-like text: markup and words drawn from a small vocabulary (compresses ~4-6x, like
// real pages).
inline std::string Compressible(size_t n, uint32_t seed) {
  static constexpr std::string_view kWords[] = {
      "the",   "proxy",  "request", "response", "backend", "header", "cache",  "worker",
      "ring",  "buffer", "health",  "pool",     "route",   "limit",  "client", "server",
      "gzip",  "brotli", "zstd",    "encoding", "content", "type",   "length", "chunk",
      "alpha", "beta",   "gamma",   "delta",    "epsilon", "zeta",   "eta",    "theta"};
  std::mt19937 rng(seed);
  std::string s;
  s.reserve(n + 64);
  while (s.size() < n) {
    s += "<li class=\"item-";
    s += std::to_string(rng() % 100);
    s += "\">";
    const int words = 3 + static_cast<int>(rng() % 8);
    for (int i = 0; i < words; ++i) {
      s += kWords[rng() % std::size(kWords)];
      s += ' ';
    }
    s += "</li>\n";
  }
  s.resize(n);
  return s;
}

// Compresses `data` in pieces of `piece` bytes (0 = one Write) and finishes.
inline std::string Encode(Coding coding, int level, std::string_view data, size_t piece = 0) {
  std::unique_ptr<Encoder> e = MakeEncoder(coding, level);
  EXPECT_NE(e, nullptr) << Name(coding) << " " << level;
  if (e == nullptr) {
    return {};
  }
  std::string out;
  if (piece == 0) {
    piece = std::max<size_t>(data.size(), 1);
  }
  for (size_t i = 0; i < data.size(); i += piece) {
    EXPECT_TRUE(e->Write(data.substr(i, piece), &out));
  }
  EXPECT_TRUE(e->Finish(&out));
  EXPECT_EQ(e->total_in(), data.size());
  EXPECT_EQ(e->total_out(), out.size());
  return out;
}

struct Decoded {
  bool ok = false;  // every Write and the Finish returned true
  std::string body;
  std::string error;
};

// Decompresses `data` in pieces of `piece` bytes (0 = one Write), then Finish().
inline Decoded Decode(Coding coding, std::string_view data, size_t piece = 0,
                      uint64_t max_output = UINT64_MAX) {
  Decoded r;
  std::unique_ptr<Decoder> d = MakeDecoder(coding, max_output);
  EXPECT_NE(d, nullptr);
  if (d == nullptr) {
    return r;
  }
  if (piece == 0) {
    piece = std::max<size_t>(data.size(), 1);
  }
  r.ok = true;
  for (size_t i = 0; i < data.size() && r.ok; i += piece) {
    r.ok = d->Write(data.substr(i, piece), &r.body);
  }
  r.ok = r.ok && d->Finish(&r.body);
  r.error = std::string(d->error());
  EXPECT_EQ(r.ok, r.error.empty()) << r.error;
  return r;
}

}  // namespace torii::http::codec::test
