// http/fleet_limits.cc: see fleet_limits.h.
#include "http/fleet_limits.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace torii::http {

void FleetLimits::Configure(std::shared_ptr<const ProxyConfig> config) {
  config_ = std::move(config);
}

redis::Client* FleetLimits::client(uint64_t key) {
  const std::string& address = config_->redis_options.address;
  const size_t size = std::max<uint32_t>(config_->redis_pool_size, 1);
  if (client_for_ != address || clients_.size() != size) {
    clients_.clear();  // another [redis]: every connection is made again
    clients_.resize(size);
    client_for_ = address;
  }
  std::unique_ptr<redis::Client>& c = clients_[key % size];
  if (c != nullptr) {
    return c.get();
  }
  auto made = redis::Client::Create(worker_, config_->redis_options);
  if (!made) {
    return nullptr;
  }
  c = std::move(*made);
  if (!script_) {
    script_ = std::make_unique<redis::Script>(ratelimit::LeaseScript());
  }
  return c.get();
}

void FleetLimits::Send(const RateLimitSpec& limit, ratelimit::LeaseAsk ask) {
  if (!task_made_) {
    task_made_ = true;
    task_ = worker_.AddTask([this] { Sweep(); });
  }
  if (!task_armed_) {
    task_armed_ = true;
    worker_.ArmTask(task_, worker_.now_ms() + std::max<uint64_t>(limit.lease.hold_ns / 1000000, 1));
  }
  std::weak_ptr<ratelimit::LeaseTable> table = limit.leases;
  const uint64_t key = ask.key;
  const uint32_t seq = ask.seq;
  redis::Client* c = client(key);
  // A connection still being made (or remade) is tried again after [redis] timeout, a failed
  // request after the table's down time.
  const uint64_t connecting_ns =
      c != nullptr && !c->connected() ? config_->redis_options.timeout_ms * 1000000 : 0;
  auto fail = [this, table, key, seq, connecting_ns](std::string_view why) {
    errors++;
    if (auto t = table.lock()) {
      t->OnStoreError(key, seq, core::MonotonicNs(), connecting_ns);
    }
    if (uint64_t suppressed = 0; error_log_.Allow(worker_.now_ms(), &suppressed)) {
      spdlog::warn(
          "redis: a fleet rate limit request failed: {} ({} more since the last message; "
          "on_store_error applies meanwhile)",
          why, suppressed);
    }
  };
  if (c == nullptr) {
    fail("no client for " + config_->redis_options.address);
    return;
  }
  asks++;
  const std::string prefix = ":" + limit.name + ":";
  c->Eval(*script_, {"torii:rl" + prefix + ask.store_key, "torii:ban" + prefix + ask.store_key},
          {limit.interval_us, limit.tolerance_us, std::to_string(ask.want),
           std::to_string(ask.give_back), std::to_string(ask.ban_ms)},
          [table, key, seq, fail](redis::Result result) {
            auto t = table.lock();
            if (!t) {
              return;  // the limit went away with a reload
            }
            if (!result) {
              fail(result.error());
              return;
            }
            const redis::Reply& r = *result;
            if (r.kind != redis::Reply::Kind::kArray || r.elements.size() != 5 ||
                std::any_of(r.elements.begin(), r.elements.end(), [](const redis::Reply& e) {
                  return e.kind != redis::Reply::Kind::kInteger || e.integer < 0;
                })) {
              fail(r.kind == redis::Reply::Kind::kError ? r.str : "unexpected reply to the script");
              return;
            }
            ratelimit::LeaseTable::Grant g;
            g.granted = static_cast<uint32_t>(std::min<int64_t>(r.elements[0].integer, UINT32_MAX));
            g.retry_after_ns = static_cast<uint64_t>(r.elements[1].integer) * 1000;
            g.remaining =
                static_cast<uint32_t>(std::min<int64_t>(r.elements[2].integer, UINT32_MAX));
            g.reset_ns = static_cast<uint64_t>(r.elements[3].integer) * 1000;
            g.banned_ns = static_cast<uint64_t>(r.elements[4].integer) * 1000000;
            t->OnGrant(key, seq, g, core::MonotonicNs());
          });
}

void FleetLimits::Sweep() {
  task_armed_ = false;
  if (config_ == nullptr) {
    return;
  }
  const uint64_t now = core::MonotonicNs();
  std::vector<ratelimit::LeaseAsk> out;
  uint64_t next_ms = UINT64_MAX;
  bool any = false;
  for (const RateLimitSpec& limit : config_->rate_limits) {
    if (limit.fleet < 0) {
      continue;
    }
    ratelimit::LeaseTable& t = *limit.leases;
    out.clear();
    t.Sweep(now, &out);
    for (ratelimit::LeaseAsk& ask : out) {
      Send(limit, std::move(ask));
    }
    any = any || t.size() > 0;
    next_ms = std::min<uint64_t>(next_ms, std::max<uint64_t>(limit.lease.hold_ns / 1000000, 1));
  }
  if (any && !task_armed_) {
    task_armed_ = true;
    worker_.ArmTask(task_, worker_.now_ms() + next_ms);
  }
}

}  // namespace torii::http
