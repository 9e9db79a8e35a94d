// dns/resolver.h: DNS queries on a worker's io_uring loop (c-ares).
//
// c-ares builds the queries, picks the servers, retries, and falls back to TCP for truncated
// answers; it never blocks: its sockets are polled by the worker's ring (core::Worker::Watch)
// and its retransmission deadline is a worker task. The raw response goes to ParseAnswer()
// (message.h), which reads the TTLs and the SOA that c-ares's own parsers drop, so callers get
// both the records and how long to keep them, negative answers included (RFC 2308).
//
// QueryAll() does the same with a blocking poll() loop, for a thread that is no worker (the
// main thread, before the workers run or while it validates a reload).
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/worker.h"
#include "dns/message.h"

namespace torii::dns {

struct ResolverOptions {
  // "IP:port" or "[IPv6]:port" (port defaults to 53 when absent); empty: /etc/resolv.conf.
  std::vector<std::string> servers;
  uint64_t timeout_ms = 2000;  // per attempt
  uint32_t attempts = 2;       // tries per server
};

using QueryResult = std::expected<Answer, std::string>;
using QueryCallback = std::function<void(QueryResult)>;

class Resolver {
 public:
  // On `worker`'s thread. Fails when c-ares cannot be set up (bad server list, no resolv.conf).
  static std::expected<std::unique_ptr<Resolver>, std::string> Create(
      core::Worker& worker, const ResolverOptions& options);
  // Queries in flight end without their callbacks being called.
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Asks for `name`'s records of `type` (kA, kAaaa, kSrv); `done` runs once, on the worker's
  // thread, with the answer or why there is none (timeout, SERVFAIL, malformed...). It may start
  // other queries; it must not destroy the resolver.
  void Query(const std::string& name, Type type, QueryCallback done);
  uint32_t in_flight() const { return in_flight_; }

 private:
  struct Channel;
  Resolver(core::Worker& worker, std::unique_ptr<Channel> channel);
  void OnSocketState(int fd, bool readable, bool writable);
  void Process(int read_fd, int write_fd);
  void ArmTimeout();

  core::Worker& worker_;
  std::unique_ptr<Channel> channel_;
  std::vector<std::pair<int, core::Worker::WatchId>> watches_;  // by socket
  core::Worker::TaskId timeout_task_ = 0;
  uint32_t in_flight_ = 0;
  bool destroying_ = false;
};

// Blocking: asks every (name, type) at once and waits until all are answered or have failed
// (each bounded by the options' timeout × attempts). Not for a worker's thread.
std::vector<QueryResult> QueryAll(const ResolverOptions& options,
                                  const std::vector<std::pair<std::string, Type>>& questions);

}  // namespace torii::dns
