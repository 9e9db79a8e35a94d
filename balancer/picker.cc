// balancer/picker.cc: BackendMask and the algorithm name → factory table.
//
// The table is a plain array rather than self-registration (HAProxy INITCALL, Envoy
// REGISTER_FACTORY): with a handful of algorithms it is simpler and has no static
// initialization order to get wrong (STYLE.md E). Algorithms live in their own files
// (round_robin.cc; least_conn.cc and ip_hash.cc arrive with issue #4).
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

// An index outside 0..size-1 reads as clear: a mask built for fewer backends (or a
// default-constructed one) simply holds none of the extra ones.
bool BackendMask::test(uint32_t i) const {
  if (i >= size_) {
    return false;
  }
  return (words_[i / 64] >> (i % 64)) & 1;
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

using Factory = std::unique_ptr<Picker> (*)(std::vector<BackendSpec>);

struct Algorithm {
  std::string_view name;
  Factory make;
};

// Config names (conf/config.h Algorithm) → constructors. Not listed yet: "least_conn",
// "ip_hash" (issue #4); MakePicker() returns nullptr for them.
constexpr Algorithm kAlgorithms[] = {
    {"round_robin", &MakeRoundRobin},
};

}  // namespace

std::unique_ptr<Picker> MakePicker(std::string_view algorithm, std::vector<BackendSpec> backends) {
  for (const Algorithm& entry : kAlgorithms) {
    if (entry.name == algorithm) {
      return entry.make(std::move(backends));
    }
  }
  return nullptr;
}

}  // namespace torii::balancer
