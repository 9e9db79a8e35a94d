// http/fleet_limits.h: one worker's side of the fleet-wide rate limits (store = "redis").
//
// Per worker: a Redis client (redis/client.h, on this worker's ring). The exchange asks the
// limit's LeaseTable (ratelimit/lease.h: the decisions, no I/O; one per process, in the
// RateLimitSpec) and hands the requests it returns to Send(), which runs the lease script in
// Redis and gives the answer back to the table; the request that caused it never waits. A
// sweep task returns unspent tokens every sync interval. A reload keeps the tables of
// unchanged limits (app/ carries them over), and the connection when [redis] is unchanged.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/log_limit.h"
#include "core/counter.h"
#include "core/worker.h"
#include "http/proxy_config.h"
#include "ratelimit/lease.h"
#include "redis/client.h"

namespace torii::http {

class FleetLimits {
 public:
  explicit FleetLimits(core::Worker& worker) : worker_(worker) {}
  FleetLimits(const FleetLimits&) = delete;
  FleetLimits& operator=(const FleetLimits&) = delete;

  // The config in use (at start and on every reload).
  void Configure(std::shared_ptr<const ProxyConfig> config);

  // On the worker's thread (start, reload): opens the Redis connection now, so the first
  // requests find it ready.
  void Connect() {
    if (config_ != nullptr && config_->redis) {
      for (uint64_t key = 0; key < config_->redis_pool_size; ++key) {
        client(key);
      }
    }
  }

  // Closes the connection while the worker's ring still exists (before the worker is
  // destroyed; its answers are dropped).
  void Close() { clients_.clear(); }

  // `limit`'s lease table (limit.fleet >= 0).
  static ratelimit::LeaseTable& table(const RateLimitSpec& limit) { return *limit.leases; }

  // Runs the lease script for `ask` of `limit`; its answer goes back to the limit's table.
  void Send(const RateLimitSpec& limit, ratelimit::LeaseAsk ask);

  // Counters for /metrics (this worker's).
  core::Counter asks;    // lease requests sent
  core::Counter errors;  // failed: Redis down, slow (over [redis] timeout) or an error reply

 private:
  void Sweep();
  // The connection for `key` (made, or made again for a new [redis], on first use).
  redis::Client* client(uint64_t key);

  core::Worker& worker_;
  std::shared_ptr<const ProxyConfig> config_;
  // [redis] pool_size connections; a key's commands all go to one (its answers stay in order).
  std::vector<std::unique_ptr<redis::Client>> clients_;
  std::string client_for_;  // the address clients_ were made for
  std::unique_ptr<redis::Script> script_;
  bool task_made_ = false;
  core::Worker::TaskId task_ = 0;
  bool task_armed_ = false;
  base::LogLimit error_log_;
};

}  // namespace torii::http
