// balancer/ip_hash.cc: consistent hashing through a Maglev lookup table (Eisenbud et al.,
// "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016, §3.4), and
// HashBytes(), the hash callers use for keys and backend identities.
//
// The table has M slots (M prime, at least 65537 and at least 100 per backend). Each backend
// derives from its identity (BackendSpec::id) an offset and a skip, which give it a preference
// order over all slots (offset, offset + skip, offset + 2·skip, ... mod M; a permutation since
// M is prime). Backends then take turns claiming their next preferred free slot until the table
// is full; a weight-w backend gets w turns per round (spread evenly through the round, as in
// Envoy's MaglevTable, so a round cut short by the full table shortchanges no one). A key picks
// slot ⌊mix(key) · M / 2^64⌋ and its owner: O(1), one table read.
//
// Properties, and what they cost:
// - Balance: each backend owns its weighted share of the slots to within a slot or two.
// - Disruption: removing one backend of N hands its slots to the others and moves about 1/N of
//   the keys; because the remaining backends now claim slots in a different order, a small
//   extra fraction also moves between backends that stayed (measured with 200k keys: 0.2–0.3%
//   of keys at N = 10, under 1% at N = 200). That surplus is the price of Maglev's perfect
//   balance and O(1) lookup; a ring (ketama) or rendezvous hashing avoids it at the cost of
//   balance or of O(log N) / O(N) picks.
// - Identity, not position: tables are built from ids sorted, so reordering backends in the
//   config moves nothing, and every worker and every restart builds the same table.
// - Failover without state: a key whose backend is unhealthy or excluded probes forward through
//   the table, slot + k·step for k = 1, 2, ... (mod M), to the first slot whose owner is
//   eligible, and returns the moment its backend is healthy again. The step is derived from the
//   key (double hashing), not 1: neighbouring slots of a Maglev table are correlated (every
//   backend claims slots along an arithmetic progression), so a walk to slot + 1 handed one
//   neighbour up to 40% of a failed backend's keys in a 5-backend pool; a per-key step spreads
//   them over the eligible backends by weight. M prime makes any step visit every slot once, so
//   the walk is bounded by M and misses no one. Backups get a table of their own, consulted
//   only when no primary is eligible.
//
// Deliberately left out: bounded-load consistent hashing (moving keys off an overloaded
// backend), and sharing one table between the workers (each worker builds its own, ~256 KiB per
// pool for up to 655 backends; the build is a few milliseconds at start-up and on reload).
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "balancer/mask_scan.h"
#include "balancer/picker.h"
#include "base/hash.h"

namespace torii::balancer {
namespace {

// The 8 bytes at `p` as a little-endian integer, whatever the host's byte order, so that
// HashBytes() gives the same value on every machine.
uint64_t LoadLittleEndian64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::big) {
    v = std::byteswap(v);
  }
  return v;
}

// The `n` < 8 bytes at `p` as a little-endian integer, zero-padded.
uint64_t LoadLittleEndianTail(const unsigned char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    v |= uint64_t{p[i]} << (8 * i);
  }
  return v;
}

constexpr uint32_t kMinTableSize = 65537;  // prime; Envoy's default Maglev table size
constexpr uint32_t kSlotsPerBackend = 100;
constexpr uint32_t kEmpty = UINT32_MAX;
// Seeds that make a backend's offset and skip independent of each other.
constexpr uint64_t kOffsetSeed = 0x6d61676c65762d6full;  // "maglev-o"
constexpr uint64_t kSkipSeed = 0x6d61676c65762d73ull;    // "maglev-s"
// Seed for a key's probe step, independent of the slot the key maps to.
constexpr uint64_t kProbeSeed = 0x70726f6265737470ull;  // "probestp"

// Trial division: called once per table build with n below a few million.
bool IsPrime(uint64_t n) {
  if (n < 2) {
    return false;
  }
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) {
      return false;
    }
  }
  return true;
}

// The smallest prime that is at least 65537 and at least 100 slots per backend.
uint32_t TableSize(uint32_t backends) {
  uint64_t size = std::max<uint64_t>(kMinTableSize, uint64_t{kSlotsPerBackend} * backends);
  while (!IsPrime(size)) {
    ++size;
  }
  return static_cast<uint32_t>(size);
}

// One class of backends (the primaries, or one tier of backups) and its lookup table.
struct HashClass {
  std::vector<uint32_t> members;  // backend indexes of this class, ascending
  std::vector<uint32_t> table;    // slot → backend index; empty when the class is empty

  // Fills `table` from `members` (Maglev's Populate). `specs` is the whole pool. Terminates:
  // every backend's preference order is a permutation of the slots, so a free slot is always
  // found, and every pass of the outer loop fills at least one slot.
  void Build(const std::vector<BackendSpec>& specs) {
    if (members.empty()) {
      return;
    }
    struct Builder {
      uint32_t index;   // backend index
      uint64_t id;      // identity hashed into offset and skip
      uint32_t weight;  // 1..256
      uint64_t next;    // next preferred slot
      uint64_t skip;    // 1..M-1
      uint64_t target;  // turn credit (Envoy's target_weight)
    };
    const uint32_t m = TableSize(static_cast<uint32_t>(members.size()));
    std::vector<Builder> builders;
    builders.reserve(members.size());
    uint32_t max_weight = 1;
    for (uint32_t index : members) {
      const BackendSpec& spec = specs[index];
      // Without an id, the index stands in (stable only while backends are appended).
      const uint64_t id = spec.id != 0 ? spec.id : base::Mix64Stafford13(uint64_t{index} + 1);
      const uint32_t weight = std::clamp<uint32_t>(spec.weight, 1, 256);
      max_weight = std::max(max_weight, weight);
      builders.push_back(Builder{index, id, weight, base::Mix64Stafford13(id ^ kOffsetSeed) % m,
                                 base::Mix64Stafford13(id ^ kSkipSeed) % (m - 1) + 1, 0});
    }
    // Claim order by identity, not by position in the config: reordering backends changes
    // nothing, and removing one leaves the others' relative order as it was.
    std::sort(builders.begin(), builders.end(), [](const Builder& a, const Builder& b) {
      return a.id != b.id ? a.id < b.id : a.index < b.index;
    });
    for (Builder& b : builders) {
      b.target = max_weight;
    }
    table.assign(m, kEmpty);
    uint32_t filled = 0;
    // Iteration t gives a weight-w backend a turn whenever t·w has reached its credit, which
    // then grows by max_weight: w turns every max_weight iterations, evenly spread.
    for (uint64_t iteration = 1; filled < m; ++iteration) {
      for (Builder& b : builders) {
        if (iteration * b.weight < b.target) {
          continue;
        }
        b.target += max_weight;
        while (table[b.next] != kEmpty) {
          b.next = b.next + b.skip >= m ? b.next + b.skip - m : b.next + b.skip;
        }
        table[b.next] = b.index;
        if (++filled == m) {
          break;
        }
      }
    }
  }

  // The owner of `key`'s slot if eligible, else the first eligible owner along the key's probe
  // sequence, else nullopt when no member is eligible. One table read in the common case.
  std::optional<uint32_t> Pick(uint64_t key, const BackendMask& healthy,
                               const BackendMask& exclude) const {
    if (table.empty()) {
      return std::nullopt;
    }
    auto eligible = [&](uint32_t i) { return healthy.test(i) && !exclude.test(i); };
    const auto m = static_cast<uint32_t>(table.size());
    // Lemire's multiply-shift maps the key onto 0..m-1 without a division.
    uint32_t slot = static_cast<uint32_t>((static_cast<unsigned __int128>(key) * m) >> 64);
    if (eligible(table[slot])) {
      return table[slot];
    }
    // Walk only when it can succeed, so a class with nothing eligible costs O(members), not
    // O(m).
    std::optional<uint32_t> any;
    for (uint32_t i : members) {
      if (eligible(i)) {
        any = i;
        break;
      }
    }
    if (!any) {
      return std::nullopt;
    }
    // Double hashing: a per-key step in 1..m-1 from other bits of the key.
    const uint32_t step =
        static_cast<uint32_t>(base::Mix64Stafford13(key ^ kProbeSeed) % (m - 1)) + 1;
    for (uint32_t probe = 1; probe < m; ++probe) {
      slot = slot >= m - step ? slot - (m - step) : slot + step;
      if (eligible(table[slot])) {
        return table[slot];
      }
    }
    // Only a backend whose weighted share rounds to no slot at all (a weight-1 backend among
    // hundreds of weight-256 ones) is eligible: it is the last resort.
    return any;
  }
};

class IpHash final : public Picker {
 public:
  explicit IpHash(std::vector<BackendSpec> backends)
      : size_(static_cast<uint32_t>(backends.size())) {
    std::vector<uint32_t> ranks;
    tiers_.resize(mask_scan::TierRanks(backends, &ranks));
    for (uint32_t i = 0; i < size_; ++i) {
      tiers_[ranks[i]].members.push_back(i);
    }
    for (HashClass& tier : tiers_) {
      tier.Build(backends);
    }
  }

  // The lowest tier's table first (the primaries'); a higher tier's only when no backend of a
  // lower one is eligible. The key is mixed once more so that a caller passing a weak hash (a
  // raw IPv4 address) still spreads.
  std::optional<uint32_t> Pick(uint64_t key_hash, const BackendMask& healthy,
                               const BackendMask& exclude) override {
    const uint64_t key = base::Mix64Stafford13(key_hash);
    for (const HashClass& tier : tiers_) {
      if (std::optional<uint32_t> pick = tier.Pick(key, healthy, exclude)) {
        return pick;
      }
    }
    return std::nullopt;
  }

  uint32_t size() const override { return size_; }

 private:
  uint32_t size_;
  std::vector<HashClass> tiers_;  // by tier rank (mask_scan::TierRanks); the primaries first
};

}  // namespace

std::unique_ptr<Picker> MakeIpHash(std::vector<BackendSpec> backends) {
  return std::make_unique<IpHash>(std::move(backends));
}

// Eight bytes at a time, each word mixed into the state through Mix64 (a bijection, so no input
// can zero the state); the length enters at both ends so that "a" and "a\0" differ. Short keys
// (an IPv6 address and port) cost three or four Mix64 rounds.
uint64_t HashBytes(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  uint64_t h = 0x746f7269692d6862ull ^ base::Mix64Stafford13(n);  // "torii-hb"
  for (; n >= 8; p += 8, n -= 8) {
    h = base::Mix64Stafford13(h ^ LoadLittleEndian64(p));
  }
  if (n > 0) {
    h = base::Mix64Stafford13(h ^ LoadLittleEndianTail(p, n));
  }
  return base::Mix64Stafford13(h ^ (uint64_t{bytes.size()} * 0x9e3779b97f4a7c15ull));
}

}  // namespace torii::balancer
