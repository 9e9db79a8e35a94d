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
#include "base/siphash.h"

namespace torii::ratelimit {

// The keyed hash of `bytes`, for keys built from text ("header:X-Api-Key" values, routes).
// Distinct tables may share a hash: each table is its own key space.
uint64_t HashKey(std::string_view bytes);

namespace detail {

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
