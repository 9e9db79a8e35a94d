// balancer/picker.cc: BackendMask and the algorithm table (names, factories, needs).
//
// The table is a plain array rather than self-registration (HAProxy INITCALL, Envoy
// REGISTER_FACTORY): with a handful of algorithms it is simpler and has no static
// initialization order to get wrong. Each entry also says what the algorithm needs
// from its caller (HAProxy BE_LB_NEED_*), for config loading to check. Algorithms live in their
// own files: round_robin.cc, least_conn.cc, ip_hash.cc.
#include "balancer/picker.h"

#include <bit>
#include <cassert>
#include <iterator>
#include <utility>

namespace torii::balancer {

// `all_set` sets exactly bits 0..size-1; the unused tail of the last word stays clear so that
// count() never sees bits past size().
BackendMask::BackendMask(uint32_t size, bool all_set)
    : size_(size), words_((static_cast<size_t>(size) + 63) / 64, all_set ? ~uint64_t{0} : 0) {
  if (all_set && size % 64 != 0) {
    words_.back() = (uint64_t{1} << (size % 64)) - 1;
  }
}

// Setting an index outside 0..size-1 is a caller bug: asserted in debug builds, ignored in
// release so that it can never write out of bounds.
void BackendMask::set(uint32_t i, bool value) {
  assert(i < size_);
  if (i >= size_) {
    return;
  }
  const uint64_t bit = uint64_t{1} << (i % 64);
  if (value) {
    words_[i / 64] |= bit;
  } else {
    words_[i / 64] &= ~bit;
  }
}

void BackendMask::Reset(uint32_t size) {
  size_ = size;
  words_.assign((static_cast<size_t>(size) + 63) / 64, 0);
}

uint32_t BackendMask::count() const {
  uint32_t n = 0;
  for (uint64_t word : words_) {
    n += static_cast<uint32_t>(std::popcount(word));
  }
  return n;
}

namespace {

using Factory = std::unique_ptr<Picker> (*)(std::vector<BackendSpec>,
                                            std::shared_ptr<LoadCounters>);

struct Entry {
  Algorithm algorithm;
  std::string_view name;
  Factory make;
  bool needs_key_hash;       // Pick() reads key_hash (NeedsKeyHash)
  bool needs_load_counters;  // shares LoadCounters across workers (NeedsLoadCounters)
};

// Indexed by Algorithm: config names, constructors and the inputs each needs. The algorithms
// that take no counters ignore them.
constexpr Entry kEntries[] = {
    {Algorithm::kRoundRobin, "round_robin",
     [](std::vector<BackendSpec> backends, std::shared_ptr<LoadCounters> /*load*/) {
       return MakeRoundRobin(std::move(backends));
     },
     /*needs_key_hash=*/false, /*needs_load_counters=*/false},
    {Algorithm::kLeastConn, "least_conn", &MakeLeastConn, /*needs_key_hash=*/false,
     /*needs_load_counters=*/true},
    {Algorithm::kIpHash, "ip_hash",
     [](std::vector<BackendSpec> backends, std::shared_ptr<LoadCounters> /*load*/) {
       return MakeIpHash(std::move(backends));
     },
     /*needs_key_hash=*/true, /*needs_load_counters=*/false},
};
// Each entry sits at its algorithm's index (EntryOf indexes the table).
constexpr bool InOrder() {
  for (size_t i = 0; i < std::size(kEntries); ++i) {
    if (kEntries[i].algorithm != kAlgorithms[i] || static_cast<size_t>(kAlgorithms[i]) != i) {
      return false;
    }
  }
  return std::size(kEntries) == std::size(kAlgorithms);
}
static_assert(InOrder());

const Entry& EntryOf(Algorithm algorithm) { return kEntries[static_cast<size_t>(algorithm)]; }

}  // namespace

std::string_view AlgorithmName(Algorithm algorithm) { return EntryOf(algorithm).name; }

std::optional<Algorithm> ParseAlgorithm(std::string_view name) {
  for (Algorithm a : kAlgorithms) {
    if (AlgorithmName(a) == name) {
      return a;
    }
  }
  return std::nullopt;
}

std::unique_ptr<Picker> MakePicker(Algorithm algorithm, std::vector<BackendSpec> backends,
                                   std::shared_ptr<LoadCounters> load) {
  return EntryOf(algorithm).make(std::move(backends), std::move(load));
}

std::unique_ptr<Picker> MakePicker(std::string_view algorithm, std::vector<BackendSpec> backends,
                                   std::shared_ptr<LoadCounters> load) {
  const std::optional<Algorithm> a = ParseAlgorithm(algorithm);
  return a ? MakePicker(*a, std::move(backends), std::move(load)) : nullptr;
}

bool NeedsKeyHash(Algorithm algorithm) { return EntryOf(algorithm).needs_key_hash; }
bool NeedsLoadCounters(Algorithm algorithm) { return EntryOf(algorithm).needs_load_counters; }

bool NeedsKeyHash(std::string_view algorithm) {
  const std::optional<Algorithm> a = ParseAlgorithm(algorithm);
  return a && NeedsKeyHash(*a);
}

bool NeedsLoadCounters(std::string_view algorithm) {
  const std::optional<Algorithm> a = ParseAlgorithm(algorithm);
  return a && NeedsLoadCounters(*a);
}

}  // namespace torii::balancer
