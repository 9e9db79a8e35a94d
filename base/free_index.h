// base/free_index.h: a table whose entries are reused by index (connection slots, watches,
// file operations): the index to fill next is the last one given back, else a new one at the
// end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace torii::base {

// Takes the last index in `free`, or, when there is none, calls `grow` (which appends one entry
// to the table that had `size` entries) and returns `size`.
template <class Grow>
uint32_t TakeIndex(std::vector<uint32_t>& free, std::size_t size, Grow&& grow) {
  if (!free.empty()) {
    const uint32_t index = free.back();
    free.pop_back();
    return index;
  }
  grow();
  return static_cast<uint32_t>(size);
}

}  // namespace torii::base
