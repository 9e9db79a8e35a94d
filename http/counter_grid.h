// http/counter_grid.h: per-worker rows of counters that belong to a config's routes and pools.
//
// A route's request count and a backend's selections, responses and time to first byte are
// written on the request path by whichever worker serves the request, and summed by the admin
// endpoint. Each worker writes only its own row (core::Counter: single writer, relaxed), and
// rows are separate allocations padded past a cache line, so workers never write a line that
// another worker writes (nothing shared on the request path). The grid lives in the
// ProxyConfig (shared_ptr) and is carried across a reload with the route or pool it counts.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/counter.h"

namespace torii::http {

class CounterGrid {
 public:
  CounterGrid(uint32_t workers, uint32_t columns) : columns_(columns) {
    // Rounded up to whole cache lines, plus one line of padding: the next allocation never
    // shares a line with this row's counters.
    const uint32_t per_row = (columns + 7) / 8 * 8 + 8;
    rows_.reserve(workers);
    for (uint32_t w = 0; w < workers; ++w) {
      rows_.push_back(std::make_unique<core::Counter[]>(per_row));
    }
  }
  CounterGrid(const CounterGrid&) = delete;
  CounterGrid& operator=(const CounterGrid&) = delete;

  // The owning worker's counter (a worker id beyond the grid, after a reload that added
  // workers, cannot happen: reload refuses a change of workers).
  core::Counter& at(uint32_t worker, uint32_t column) { return rows_[worker][column]; }
  uint64_t Sum(uint32_t column) const {
    uint64_t total = 0;
    for (const auto& row : rows_) {
      total += row[column].get();
    }
    return total;
  }
  uint32_t columns() const { return columns_; }

 private:
  uint32_t columns_;
  std::vector<std::unique_ptr<core::Counter[]>> rows_;
};

}  // namespace torii::http
