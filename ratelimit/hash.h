// ratelimit/hash.h: the key hashes of the rate-limit tables, and the mixer that places a key
// in a shard.
//
// Owns: a keyed SipHash-1-3 (Aumasson & Bernstein; the hash Rust's HashMap uses against
// hash flooding) with one random key per process, and HashKey() over arbitrary bytes for
// keys that are not addresses (a header value, a route name). HashIp() (ip.h) is built on it.
// Keys are keyed because the tables trust a 64-bit hash as the identity of a client: with a
// public, unkeyed hash an attacker could pick an IPv6 address (or a header value) whose hash
// equals a victim's and get the victim limited or banned. The process key comes from
// std::random_device once, on first use; hashes are therefore stable for the life of the
// process (every worker, every reload) and never meant to be stored or compared across
// processes.
//
// Leaves out: the tables themselves (rate_table.h, conn_limit.h, ban_list.h) and hashing for
// anything that must be stable across processes (balancer/ip_hash has its own).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "base/hash.h"

namespace torii::ratelimit {

// The keyed hash of `bytes`, for keys built from text ("header:X-Api-Key" values, routes).
// Distinct tables may share a hash: each table is its own key space.
uint64_t HashKey(std::string_view bytes);

namespace detail {

// SipHash-c-d of `len` bytes under the 128-bit key (k0, k1). Exposed for the test that checks
// SipHash-2-4 against the reference vector; production uses <1, 3>.
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

// SipHash-1-3 under the process key.
uint64_t KeyedHash(const uint8_t* data, size_t len);

// A fast invertible mixer (MurmurHash3's fmix64) that the tables apply to a caller's key
// before placing it: callers may pass weak hashes (a route index), and an invertible mix keeps
// distinct keys distinct. Not a defence against chosen keys; the keyed hash is.
using base::Mix64;

// The shard of a mixed key among `shards` (Lemire's multiply-shift range reduction, on the
// high half so the slot index inside the shard, taken from the low bits, stays independent).
inline uint32_t ShardOf(uint64_t mixed, uint32_t shards) {
  return static_cast<uint32_t>(((mixed >> 32) * shards) >> 32);
}

}  // namespace detail
}  // namespace torii::ratelimit
