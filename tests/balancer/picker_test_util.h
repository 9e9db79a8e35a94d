// tests/balancer/picker_test_util.h: helpers the picker tests share (round_robin_test.cc,
// least_conn_test.cc). Picks are made with key_hash 0 and without OnRequestStart().
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "balancer/picker.h"

namespace torii::balancer::test {

// Primary backends with these weights.
inline std::vector<BackendSpec> Weights(std::initializer_list<uint32_t> weights) {
  std::vector<BackendSpec> specs;
  for (uint32_t w : weights) {
    specs.push_back(BackendSpec{w, /*backup=*/false});
  }
  return specs;
}

// `n` picks as a string of letters ('a' = backend 0), '-' for nullopt.
inline std::string Sequence(Picker& picker, int n, const BackendMask& healthy,
                            const BackendMask& exclude = BackendMask()) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    std::optional<uint32_t> pick = picker.Pick(/*key_hash=*/0, healthy, exclude);
    out += pick ? static_cast<char>('a' + *pick) : '-';
  }
  return out;
}

// Picks per backend over `n` picks; every pick must find a backend.
inline std::map<uint32_t, int> Counts(Picker& picker, int n, const BackendMask& healthy,
                                      const BackendMask& exclude = BackendMask()) {
  std::map<uint32_t, int> counts;
  for (int i = 0; i < n; ++i) {
    std::optional<uint32_t> pick = picker.Pick(/*key_hash=*/0, healthy, exclude);
    EXPECT_TRUE(pick.has_value());
    if (pick) {
      ++counts[*pick];
    }
  }
  return counts;
}

}  // namespace torii::balancer::test
