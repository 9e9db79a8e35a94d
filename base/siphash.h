// base/siphash.h: SipHash-c-d (Aumasson & Bernstein), a keyed pseudo-random function over
// bytes. ratelimit/ keys its tables with SipHash-1-3 under a per-process key; the cache's disk
// tier authenticates its record headers with SipHash-2-4 under a per-file key (a response body
// that imitates a record header cannot pass for one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace torii::base {

// SipHash-C-D of `len` bytes under the 128-bit key (k0, k1).
template <int C, int D>
uint64_t SipHash(uint64_t k0, uint64_t k1, const uint8_t* data, size_t len) {
  uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
  uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
  uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
  uint64_t v3 = k1 ^ 0x7465646279746573ull;
  auto rotl = [](uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
  auto round = [&] {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  };
  const size_t whole = len & ~size_t{7};
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t m;
    std::memcpy(&m, data + i, 8);  // little-endian hosts only (x86-64, aarch64)
    v3 ^= m;
    for (int r = 0; r < C; ++r) {
      round();
    }
    v0 ^= m;
  }
  uint64_t last = static_cast<uint64_t>(len) << 56;
  for (size_t i = whole; i < len; ++i) {
    last |= static_cast<uint64_t>(data[i]) << (8 * (i - whole));
  }
  v3 ^= last;
  for (int r = 0; r < C; ++r) {
    round();
  }
  v0 ^= last;
  v2 ^= 0xff;
  for (int r = 0; r < D; ++r) {
    round();
  }
  return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace torii::base
