// balancer/mask_scan.h: sets of backends as 64-bit words, and reading a pick's masks into them.
// Internal to balancer/ (round_robin.cc and least_conn.cc; ip_hash.cc uses TierRanks); not part
// of picker.h's interface.
//
// A picker keeps its fixed sets (the primaries, each tier of backups) as words, bit i of word i /
// 64 standing for backend i, with no bit set at or past the pool's size. A pick restricts one of
// them to the backends that are healthy and not excluded, reading both masks a word at a time
// through BackendMask::word() (Eligible), and then visits only the backends it must: those set,
// or those clear (ForEachSet, ForEachClear), in ascending order. Everything here is O(words)
// plus the backends visited, and allocates nothing.
//
// Deliberately left out: anything per algorithm (which class to try first, what to do with the
// backends visited), which stays in the pickers.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include "balancer/picker.h"

namespace torii::balancer::mask_scan {

// The words that hold `n` backends.
inline uint32_t WordCount(uint32_t n) { return static_cast<uint32_t>((uint64_t{n} + 63) / 64); }

// Bit i of `words` (which must hold at least i / 64 + 1 words).
inline bool Test(const uint64_t* words, uint32_t i) {
  return ((words[i / 64] >> (i % 64)) & 1) != 0;
}

// The bits of word `w` (< WordCount(n)) that stand for backends below `n`: all 64 but in a
// partial last word.
inline uint64_t ValidBits(uint32_t n, uint32_t w) {
  const uint32_t bits = n - w * 64;
  return bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
}

// A pool's backends by class, as words: WordCount(specs.size()) each, no bit past the pool.
// tiers[0] holds the primaries (the lowest tier present; possibly none), then each higher tier
// present, in order: a pick tries them in turn and takes the first with an eligible backend.
struct Classes {
  std::vector<std::vector<uint64_t>> tiers;  // at least one
};

// Each backend's tier as a rank among the tiers present (ranks[i]; tier 0, the primaries, is
// rank 0 even when it has no backend), and how many ranks there are: the order a pick tries them.
inline uint32_t TierRanks(const std::vector<BackendSpec>& specs, std::vector<uint32_t>* ranks) {
  std::array<uint32_t, 256> rank_of{};  // 1 where a tier is present, then each tier's rank
  rank_of[0] = 1;
  for (const BackendSpec& s : specs) {
    rank_of[s.tier] = 1;
  }
  uint32_t count = 0;
  for (uint32_t& r : rank_of) {
    const uint32_t present = r;
    r = count;
    count += present;
  }
  ranks->resize(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    (*ranks)[i] = rank_of[specs[i].tier];
  }
  return count;
}

inline Classes SplitByClass(const std::vector<BackendSpec>& specs) {
  const auto n = static_cast<uint32_t>(specs.size());
  std::vector<uint32_t> ranks;
  Classes classes;
  classes.tiers.assign(TierRanks(specs, &ranks), std::vector<uint64_t>(WordCount(n), 0));
  for (uint32_t i = 0; i < n; ++i) {
    classes.tiers[ranks[i]][i / 64] |= uint64_t{1} << (i % 64);
  }
  return classes;
}

// out = the backends of `cls` that are set in `healthy` and clear in `exclude`, word by word
// (out.size() == cls.size()). Masks of any size are fine: a backend past a mask's size reads as
// clear in it (BackendMask::word()). No bit past the pool is set in out, since none is in cls.
// Returns whether any backend is.
inline bool Eligible(std::span<const uint64_t> cls, const BackendMask& healthy,
                     const BackendMask& exclude, std::span<uint64_t> out) {
  uint64_t any = 0;
  for (uint32_t w = 0; w < cls.size(); ++w) {
    out[w] = cls[w] & healthy.word(w) & ~exclude.word(w);
    any |= out[w];
  }
  return any != 0;
}

// Calls f(i) for each backend i set in words[0..count), in ascending order.
template <class F>
void ForEachSet(const uint64_t* words, uint32_t count, F f) {
  for (uint32_t w = 0; w < count; ++w) {
    for (uint64_t rest = words[w]; rest != 0; rest &= rest - 1) {
      f(w * 64 + static_cast<uint32_t>(std::countr_zero(rest)));
    }
  }
}

// Calls f(i) for each backend i < n clear in `words` (WordCount(n) of them), in ascending order.
template <class F>
void ForEachClear(const uint64_t* words, uint32_t n, F f) {
  for (uint32_t w = 0; w < WordCount(n); ++w) {
    for (uint64_t rest = ~words[w] & ValidBits(n, w); rest != 0; rest &= rest - 1) {
      f(w * 64 + static_cast<uint32_t>(std::countr_zero(rest)));
    }
  }
}

}  // namespace torii::balancer::mask_scan
