// base/name_set.h: a fixed set of header names, looked up ignoring ASCII case, built at
// compile time (the lists of fields a serialiser drops or a codec forbids, asked once per field
// on every message).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/text.h"

namespace torii::base {

// A fixed set of lowercase names (header fields) to look a name up in, ignoring ASCII case.
// Only the members as long as the name are compared: a look-up costs a few instructions
// instead of one comparison per member. Built at compile time:
//   static constexpr std::string_view kNames[] = {"connection", "te"};
//   static constexpr base::NameSet<std::size(kNames)> kSet(kNames);
template <size_t N>
class NameSet {
 public:
  static constexpr size_t kMaxLength = 40;

  constexpr explicit NameSet(const std::string_view (&names)[N]) {
    // Counting sort by length: first_[len] .. first_[len + 1] index sorted_.
    std::array<uint8_t, kMaxLength + 2> count{};
    for (std::string_view n : names) {
      if (n.size() > kMaxLength) {
        throw "NameSet: a name longer than kMaxLength";  // a compile-time error
      }
      ++count[n.size() + 1];
    }
    for (size_t len = 0; len <= kMaxLength; ++len) {
      first_[len + 1] = static_cast<uint8_t>(first_[len] + count[len + 1]);
    }
    std::array<uint8_t, kMaxLength + 1> next{};
    for (size_t len = 0; len <= kMaxLength; ++len) {
      next[len] = first_[len];
    }
    for (std::string_view n : names) {
      sorted_[next[n.size()]++] = n;
    }
  }

  constexpr bool Contains(std::string_view name) const {
    if (name.size() > kMaxLength) {
      return false;
    }
    for (size_t i = first_[name.size()]; i < first_[name.size() + 1]; ++i) {
      if (EqualsIgnoreCase(name, sorted_[i])) {
        return true;
      }
    }
    return false;
  }

 private:
  static_assert(N < 256, "indices are bytes");
  std::array<std::string_view, N> sorted_{};
  std::array<uint8_t, kMaxLength + 2> first_{};
};

}  // namespace torii::base
