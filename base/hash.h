// base/hash.h: 64-bit integer mixers (bijections with full avalanche). Not keyed: a caller
// whose keys come from a peer hashes them with a keyed hash first (ratelimit/hash.h).
#pragma once

#include <cstdint>

namespace torii::base {

// MurmurHash3's fmix64: spreads weak keys (indices, counters) before they pick a slot.
constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// splitmix64's finalizer (Stafford's "Mix13"), as ip_hash's Maglev permutations use it.
constexpr uint64_t Mix64Stafford13(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace torii::base
