// balancer/picker.cc: BackendMask and the algorithm name → factory table.
//
// The table is a plain array rather than self-registration (HAProxy INITCALL, Envoy
// REGISTER_FACTORY): with a handful of algorithms it is simpler and has no static
// initialization order to get wrong (STYLE.md E). Each entry also says what the algorithm needs
// from its caller (HAProxy BE_LB_NEED_*), for config loading to check. Algorithms live in their
// own files: round_robin.cc, least_conn.cc, ip_hash.cc.
#include "balancer/picker.h"

#include <bit>
#include <cassert>
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

struct Algorithm {
  std::string_view name;
  Factory make;
  bool needs_key_hash;       // Pick() reads key_hash (NeedsKeyHash)
  bool needs_load_counters;  // shares LoadCounters across workers (NeedsLoadCounters)
};

// Config names (conf/config.h Algorithm) → constructors and the inputs each needs. The
// algorithms that take no counters ignore them.
constexpr Algorithm kAlgorithms[] = {
    {"round_robin",
     [](std::vector<BackendSpec> backends, std::shared_ptr<LoadCounters> /*load*/) {
       return MakeRoundRobin(std::move(backends));
     },
     /*needs_key_hash=*/false, /*needs_load_counters=*/false},
    {"least_conn", &MakeLeastConn, /*needs_key_hash=*/false, /*needs_load_counters=*/true},
    {"ip_hash",
     [](std::vector<BackendSpec> backends, std::shared_ptr<LoadCounters> /*load*/) {
       return MakeIpHash(std::move(backends));
     },
     /*needs_key_hash=*/true, /*needs_load_counters=*/false},
};

// The table entry named `algorithm` (exact, case-sensitive), or nullptr.
const Algorithm* Find(std::string_view algorithm) {
  for (const Algorithm& entry : kAlgorithms) {
    if (entry.name == algorithm) {
      return &entry;
    }
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<Picker> MakePicker(std::string_view algorithm, std::vector<BackendSpec> backends,
                                   std::shared_ptr<LoadCounters> load) {
  const Algorithm* entry = Find(algorithm);
  if (entry == nullptr) {
    return nullptr;
  }
  return entry->make(std::move(backends), std::move(load));
}

std::unique_ptr<Picker> MakePicker(std::string_view algorithm, std::vector<BackendSpec> backends) {
  return MakePicker(algorithm, std::move(backends), nullptr);
}

bool NeedsKeyHash(std::string_view algorithm) {
  const Algorithm* entry = Find(algorithm);
  return entry != nullptr && entry->needs_key_hash;
}

bool NeedsLoadCounters(std::string_view algorithm) {
  const Algorithm* entry = Find(algorithm);
  return entry != nullptr && entry->needs_load_counters;
}

}  // namespace torii::balancer
