// ratelimit/rate_table.cc: GCRA over a sharded, bounded key table (rate_table.h).
#include "ratelimit/rate_table.h"

#include <limits>
#include <mutex>

namespace torii::ratelimit {
namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kMaxCount = 1000000000;

uint64_t SatAdd(uint64_t a, uint64_t b) { return a > kNever - b ? kNever : a + b; }
uint64_t SatMul(uint64_t a, uint64_t b) { return b != 0 && a > kNever / b ? kNever : a * b; }

}  // namespace

std::optional<Rate> ParseRate(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash > 10) {
    return std::nullopt;
  }
  uint64_t count = 0;
  for (char c : text.substr(0, slash)) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    count = count * 10 + static_cast<uint64_t>(c - '0');  // at most 10 digits: no overflow
  }
  if (count == 0 || count > kMaxCount) {
    return std::nullopt;
  }
  const std::string_view unit = text.substr(slash + 1);
  uint64_t period_ns = 0;
  if (unit == "s") {
    period_ns = 1000000000ull;
  } else if (unit == "m") {
    period_ns = 60ull * 1000000000ull;
  } else if (unit == "h") {
    period_ns = 3600ull * 1000000000ull;
  } else if (unit == "d") {
    period_ns = 86400ull * 1000000000ull;
  } else {
    return std::nullopt;
  }
  return Rate{count, period_ns};
}

RateTable::RateTable(const LimitSpec& spec, uint32_t shards) : spec_(spec) {
  if (spec_.max_keys == 0) {
    spec_.max_keys = 1;
  }
  const uint64_t count = spec_.rate.count == 0 ? 1 : spec_.rate.count;
  interval_ns_ = spec_.rate.period_ns / count;
  if (interval_ns_ == 0) {
    interval_ns_ = 1;
  }
  tolerance_ns_ = SatMul(spec_.burst, interval_ns_);
  horizon_ns_ = SatAdd(tolerance_ns_, interval_ns_);

  shard_count_ = shards == 0 ? 1 : shards;
  if (shard_count_ > spec_.max_keys) {
    shard_count_ = static_cast<uint32_t>(spec_.max_keys);
  }
  shards_ = std::make_unique<Shard[]>(shard_count_);
  // Split max_keys exactly: the first (max_keys % shards) shards take one more, so the sum of
  // the shards' bounds is max_keys, not max_keys rounded up.
  const size_t base = spec_.max_keys / shard_count_;
  const size_t extra = spec_.max_keys % shard_count_;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    shards_[i].table.SetCapacity(base + (i < extra ? 1 : 0));
  }
}

Decision RateTable::Check(uint64_t key_hash, uint64_t now_ns, uint32_t cost) {
  const uint64_t mixed = detail::Mix64(key_hash);
  Shard& shard = shards_[detail::ShardOf(mixed, shard_count_)];
  const uint64_t T = interval_ns_;
  const uint64_t increment = SatMul(cost, T);

  std::lock_guard<detail::SpinLock> hold(shard.lock);
  Entry* entry = shard.table.Find(key_hash, mixed);
  const uint64_t tat = entry != nullptr ? entry->tat : 0;  // absent = idle = TAT of `now`
  const uint64_t start = tat > now_ns ? tat : now_ns;
  const uint64_t new_tat = SatAdd(start, increment);

  Decision d;
  uint64_t kept_tat = tat;  // the TAT after this decision
  if (new_tat - now_ns <= horizon_ns_) {
    d.allowed = true;
    d.delay_ns = spec_.delay_mode ? start - now_ns : 0;
    if (cost != 0) {
      kept_tat = new_tat;
      if (entry != nullptr) {
        entry->tat = new_tat;
      } else {
        if (shard.table.full()) {
          Evict(shard, now_ns);
        }
        shard.table.Insert(key_hash, mixed, Entry{new_tat});
        shard.size.store(shard.table.size(), std::memory_order_relaxed);
      }
    }
  } else {
    d.allowed = false;
    // The earliest t with max(TAT, t) + cost*T - t <= tau + T; TAT > now here, and t stays
    // below TAT, so t = new_tat - (tau + T).
    d.retry_after_ns = increment > horizon_ns_ ? kNever : new_tat - horizon_ns_ - now_ns;
  }
  const uint64_t backlog = kept_tat > now_ns ? kept_tat - now_ns : 0;
  if (backlog < horizon_ns_) {
    const uint64_t left = (horizon_ns_ - backlog) / T;
    d.remaining = left > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                              : static_cast<uint32_t>(left);
  }
  d.reset_ns = backlog;
  return d;
}

void RateTable::Evict(Shard& shard, uint64_t now_ns) {
  detail::EvictBatch(
      shard.table, now_ns, [](const Entry& e) { return e.tat; }, [](const Entry&) {});
}

size_t RateTable::size() const {
  size_t n = 0;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    n += shards_[i].size.load(std::memory_order_relaxed);
  }
  return n;
}

}  // namespace torii::ratelimit
