// app/discovery.cc: see discovery.h.
#include "app/discovery.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

namespace torii::app {

namespace {

const char* TypeName(dns::Type type) {
  switch (type) {
    case dns::Type::kA:
      return "A";
    case dns::Type::kAaaa:
      return "AAAA";
    case dns::Type::kSrv:
      return "SRV";
    default:
      return "?";
  }
}

// A resolved address with a port, as a backend: its socket address and its "IP:port" name.
http::BackendTarget TargetOf(const dns::IpAddress& ip, uint16_t port, const std::string& host,
                             uint32_t weight, uint8_t tier) {
  http::BackendTarget t;
  if (ip.family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&t.addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, ip.bytes.data(), 16);
    t.addr_len = sizeof(sockaddr_in6);
    t.name = "[" + ip.ToString() + "]:" + std::to_string(port);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&t.addr);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, ip.bytes.data(), 4);
    t.addr_len = sizeof(sockaddr_in);
    t.name = ip.ToString() + ":" + std::to_string(port);
  }
  t.host = host;
  t.weight = weight;
  t.tier = tier;
  return t;
}

bool SameList(const std::vector<http::BackendTarget>& a,
              const std::vector<http::BackendTarget>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.name == y.name && x.weight == y.weight && x.tier == y.tier;
  });
}

constexpr dns::Type kAddressTypes[] = {dns::Type::kA, dns::Type::kAaaa};

}  // namespace

std::vector<SrvBackend> SrvBackends(const std::vector<dns::SrvTarget>& records) {
  std::vector<uint16_t> priorities;  // distinct, ascending
  for (const dns::SrvTarget& r : records) {
    const auto at = std::lower_bound(priorities.begin(), priorities.end(), r.priority);
    if (at == priorities.end() || *at != r.priority) {
      priorities.insert(at, r.priority);
    }
  }
  std::vector<uint32_t> heaviest(priorities.size(), 0);
  auto rank = [&](uint16_t priority) {
    return static_cast<size_t>(std::lower_bound(priorities.begin(), priorities.end(), priority) -
                               priorities.begin());
  };
  for (const dns::SrvTarget& r : records) {
    uint32_t& h = heaviest[rank(r.priority)];
    h = std::max<uint32_t>(h, r.weight);
  }
  std::vector<SrvBackend> out;
  out.reserve(records.size());
  for (const dns::SrvTarget& r : records) {
    const size_t tier = rank(r.priority);
    const uint32_t h = heaviest[tier];
    uint32_t weight = r.weight;
    if (h > 256) {
      weight = static_cast<uint32_t>((uint64_t{r.weight} * 256 + h / 2) / h);
    }
    out.push_back(SrvBackend{r.target, r.port, std::clamp<uint32_t>(weight, 1, 256),
                             static_cast<uint8_t>(std::min<size_t>(tier, 255))});
  }
  return out;
}

Discovery::Discovery(const conf::Config& config) {
  resolver_options_.servers = config.dns.servers;
  resolver_options_.timeout_ms = static_cast<uint64_t>(config.dns.timeout.count());
  resolver_options_.attempts = config.dns.attempts;
  policy_.min_ttl_ms = static_cast<uint64_t>(config.dns.min_ttl.count());
  policy_.max_ttl_ms = static_cast<uint64_t>(config.dns.max_ttl.count());
  resolve_at_start_ = config.dns.resolve_at_start;
  pools_.resize(config.pools.size());
  for (size_t p = 0; p < config.pools.size(); ++p) {
    const conf::PoolConfig& pc = config.pools[p];
    PoolSources& pool = pools_[p];
    pool.name = pc.name;
    pool.backends = pc.backends;
    pool.srv = pc.discover_srv;
    for (const conf::BackendConfig& b : pc.backends) {
      if (!b.host.empty()) {
        for (dns::Type type : kAddressTypes) {
          Want(b.host, type);
        }
      }
    }
    if (!pool.srv.empty()) {
      Want(pool.srv, dns::Type::kSrv);
    }
  }
  published_.resize(pools_.size());
  status_.resize(pools_.size());
  added_.resize(pools_.size());
  for (size_t p = 0; p < pools_.size(); ++p) {
    published_[p] = Compute(pools_[p]);
  }
}

Discovery::~Discovery() {
  // After the workers stopped (app/server.cc): worker 0's ring and timers still exist.
  if (worker_ != nullptr && resolver_ != nullptr) {
    worker_->RemoveTask(task_);
  }
  resolver_.reset();
}

Discovery::Question& Discovery::Want(const std::string& name, dns::Type type) {
  auto [it, inserted] = questions_.try_emplace(Key{name, type}, name, type, policy_);
  ++it->second.users;
  return it->second;
}

void Discovery::Unwant(const std::string& name, dns::Type type) {
  auto it = questions_.find(Key{name, type});
  if (it == questions_.end()) {
    return;
  }
  if (--it->second.users == 0 && !it->second.in_flight) {
    questions_.erase(it);
  }
}

bool Discovery::Apply(const Key& key, const dns::QueryResult& result, uint64_t now_ms) {
  auto it = questions_.find(key);
  if (it == questions_.end()) {
    return false;
  }
  Question& q = it->second;
  q.in_flight = false;
  bool changed = false;
  if (result) {
    const bool had = q.tracker.resolved();
    changed = q.tracker.OnAnswer(*result, now_ms);
    if (changed && had) {
      spdlog::info("dns: {} {}: {} record(s), ttl {} s", q.name, TypeName(q.type),
                   result->srv.empty() ? result->addresses.size() : result->srv.size(),
                   result->ttl ? *result->ttl : 0);
    }
  } else {
    q.tracker.OnFailure(result.error(), now_ms);
    if (q.tracker.failures() == 1) {  // once per run of failures
      spdlog::warn("dns: {} {}: {}{}", q.name, TypeName(q.type), result.error(),
                   q.tracker.resolved() ? "; keeping the last answer until it resolves again" : "");
    }
  }
  if (q.users == 0) {
    questions_.erase(it);
  }
  return changed;
}

void Discovery::SyncSrvTargets(PoolSources& pool) {
  if (pool.srv.empty()) {
    return;
  }
  std::vector<std::string> targets;
  auto it = questions_.find(Key{pool.srv, dns::Type::kSrv});
  if (it != questions_.end() && it->second.tracker.resolved()) {
    for (const dns::SrvTarget& t : it->second.tracker.answer().srv) {
      if (std::find(targets.begin(), targets.end(), t.target) == targets.end()) {
        targets.push_back(t.target);
      }
    }
  } else {
    targets = pool.srv_targets;  // nothing known yet: keep what is asked
  }
  for (const std::string& t : targets) {
    if (std::find(pool.srv_targets.begin(), pool.srv_targets.end(), t) == pool.srv_targets.end()) {
      for (dns::Type type : kAddressTypes) {
        Want(t, type);
      }
    }
  }
  for (const std::string& t : pool.srv_targets) {
    if (std::find(targets.begin(), targets.end(), t) == targets.end()) {
      for (dns::Type type : kAddressTypes) {
        Unwant(t, type);
      }
    }
  }
  pool.srv_targets = std::move(targets);
}

std::vector<http::BackendTarget> Discovery::Compute(const PoolSources& pool) const {
  std::vector<http::BackendTarget> out;
  std::set<std::string> seen;
  auto add = [&](http::BackendTarget t) {
    if (seen.insert(t.name).second) {
      out.push_back(std::move(t));
    }
  };
  auto addresses = [&](const std::string& host, uint16_t port, uint32_t weight, uint8_t tier) {
    for (dns::Type type : kAddressTypes) {
      auto it = questions_.find(Key{host, type});
      if (it == questions_.end() || !it->second.tracker.resolved()) {
        continue;
      }
      for (const dns::IpAddress& ip : it->second.tracker.answer().addresses) {
        add(TargetOf(ip, port, host, weight, tier));
      }
    }
  };
  for (const conf::BackendConfig& b : pool.backends) {
    if (b.host.empty()) {
      http::BackendTarget t;
      t.addr = b.address.storage;
      t.addr_len = b.address.len;
      t.name = b.address.ToString();
      t.weight = b.weight;
      t.tier = b.backup ? 1 : 0;
      add(std::move(t));
    } else {
      addresses(b.host, b.port, b.weight, b.backup ? 1 : 0);
    }
  }
  if (!pool.srv.empty()) {
    auto it = questions_.find(Key{pool.srv, dns::Type::kSrv});
    if (it != questions_.end() && it->second.tracker.resolved()) {
      const std::vector<dns::SrvTarget>& records = it->second.tracker.answer().srv;
      for (const SrvBackend& s : SrvBackends(records)) {
        addresses(s.target, s.port, s.weight, s.tier);
      }
    }
  }
  return out;
}

void Discovery::Publish(bool log) {
  const uint64_t now = core::MonotonicMs();
  for (size_t p = 0; p < pools_.size(); ++p) {
    std::vector<http::BackendTarget> list = Compute(pools_[p]);
    std::vector<NameStatus> status;
    auto describe = [&](const std::string& name, dns::Type type) {
      auto it = questions_.find(Key{name, type});
      if (it == questions_.end()) {
        return;
      }
      const dns::Tracker& t = it->second.tracker;
      NameStatus s;
      s.name = name;
      s.type = TypeName(type);
      s.records = static_cast<uint32_t>(type == dns::Type::kSrv ? t.answer().srv.size()
                                                                : t.answer().addresses.size());
      s.resolved = t.resolved();
      s.negative = t.resolved() && t.answer().negative;
      s.stale = t.stale();
      s.error = t.last_error();
      s.next_query_ms = t.next_query_ms();
      status.push_back(std::move(s));
    };
    for (const conf::BackendConfig& b : pools_[p].backends) {
      if (!b.host.empty()) {
        for (dns::Type type : kAddressTypes) {
          describe(b.host, type);
        }
      }
    }
    if (!pools_[p].srv.empty()) {
      describe(pools_[p].srv, dns::Type::kSrv);
      for (const std::string& target : pools_[p].srv_targets) {
        for (dns::Type type : kAddressTypes) {
          describe(target, type);
        }
      }
    }
    // An address keeps the time it first appeared while it stays; one that leaves and comes
    // back is new again.
    std::map<std::string, uint64_t> added;
    for (http::BackendTarget& t : list) {
      auto it = added_[p].find(t.name);
      t.added_ms = it != added_[p].end() ? it->second : (started_ ? std::max<uint64_t>(now, 1) : 0);
      added.emplace(t.name, t.added_ms);
    }
    added_[p] = std::move(added);
    std::lock_guard<std::mutex> lock(mu_);
    status_[p] = std::move(status);
    if (SameList(list, published_[p])) {
      continue;
    }
    if (log) {
      std::string names;
      for (const http::BackendTarget& t : list) {
        names += (names.empty() ? "" : ", ") + t.name +
                 (t.tier > 0 ? " (backup tier " + std::to_string(t.tier) + ")" : "");
      }
      spdlog::info("pool {}: DNS changed its backends: {}", pools_[p].name,
                   names.empty() ? std::string("none") : names);
    }
    published_[p] = std::move(list);
    changed_ = true;
  }
}

std::string Discovery::ResolveNow() {
  // Round 1 asks the names and SRV owners, round 2 the SRV targets (their A/AAAA questions
  // exist once the SRV answers are in); a third catches targets of SRV records that changed.
  for (int round = 0; round < 3; ++round) {
    std::vector<std::pair<std::string, dns::Type>> ask;
    std::vector<Key> keys;
    for (const auto& [key, q] : questions_) {
      if (!q.tracker.resolved() && q.tracker.failures() == 0) {
        ask.emplace_back(q.name, q.type);
        keys.push_back(key);
      }
    }
    if (ask.empty()) {
      break;
    }
    const std::vector<dns::QueryResult> results = dns::QueryAll(resolver_options_, ask);
    const uint64_t now = core::MonotonicMs();
    for (size_t i = 0; i < keys.size(); ++i) {
      Apply(keys[i], results[i], now);
    }
    for (PoolSources& pool : pools_) {
      SyncSrvTargets(pool);
    }
  }
  Publish(/*log=*/false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed_ = false;  // the config is built from these answers: nothing to rebuild yet
  }

  std::string problems;
  auto why_not = [&](const std::string& name) {
    std::string why;
    for (dns::Type type : kAddressTypes) {
      auto it = questions_.find(Key{name, type});
      if (it == questions_.end()) {
        continue;
      }
      const dns::Tracker& t = it->second.tracker;
      why += std::string(why.empty() ? "" : ", ") + TypeName(type) + " " +
             (!t.resolved()         ? t.last_error()
              : t.answer().nxdomain ? "NXDOMAIN"
              : t.answer().negative ? "no records"
                                    : "ok");
    }
    return why;
  };
  auto has_addresses = [&](const std::string& name) {
    for (dns::Type type : kAddressTypes) {
      auto it = questions_.find(Key{name, type});
      if (it != questions_.end() && !it->second.tracker.answer().addresses.empty()) {
        return true;
      }
    }
    return false;
  };
  for (const PoolSources& pool : pools_) {
    for (const conf::BackendConfig& b : pool.backends) {
      if (!b.host.empty() && !has_addresses(b.host)) {
        problems += (problems.empty() ? "" : "; ") + std::string("pool ") + pool.name +
                    ": backend " + b.Label() + " does not resolve (" + why_not(b.host) + ")";
      }
    }
    if (!pool.srv.empty()) {
      bool any = false;
      for (const std::string& t : pool.srv_targets) {
        any = any || has_addresses(t);
      }
      if (!any) {
        auto it = questions_.find(Key{pool.srv, dns::Type::kSrv});
        const dns::Tracker* t = it == questions_.end() ? nullptr : &it->second.tracker;
        std::string why = t == nullptr || !t->resolved() ? (t ? t->last_error() : "not asked")
                          : t->answer().nxdomain         ? "NXDOMAIN"
                          : t->answer().srv.empty()      ? "no SRV records"
                                                         : "no target has an address";
        problems += (problems.empty() ? "" : "; ") + std::string("pool ") + pool.name +
                    ": discover srv " + pool.srv + " gives no backend (" + why + ")";
      }
    }
  }
  if (problems.empty() || resolve_at_start_) {
    return problems;
  }
  spdlog::warn("{} (resolve_at_start = false: starting without them, asking again)", problems);
  return "";
}

std::vector<http::BackendTarget> Discovery::Backends(size_t pool) const {
  std::lock_guard<std::mutex> lock(mu_);
  return pool < published_.size() ? published_[pool] : std::vector<http::BackendTarget>{};
}

std::vector<Discovery::NameStatus> Discovery::Status(size_t pool) const {
  std::lock_guard<std::mutex> lock(mu_);
  return pool < status_.size() ? status_[pool] : std::vector<NameStatus>{};
}

bool Discovery::TakeChanged() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(changed_, false);
}

void Discovery::Start(core::Worker& worker) {
  worker_ = &worker;
  auto resolver = dns::Resolver::Create(worker, resolver_options_);
  if (!resolver) {
    spdlog::error("dns: cannot start the resolver: {}; backends given by name stay as they are",
                  resolver.error());
    return;
  }
  resolver_ = std::move(*resolver);
  started_ = true;
  task_ = worker.AddTask([this] { Tick(); });
  Tick();
}

void Discovery::Stop() {
  stopped_ = true;
  if (worker_ != nullptr && resolver_ != nullptr) {
    worker_->RemoveTask(task_);
  }
  resolver_.reset();
}

void Discovery::Ask(const Key& key) {
  auto it = questions_.find(key);
  if (it == questions_.end() || it->second.in_flight) {
    return;
  }
  it->second.in_flight = true;
  resolver_->Query(key.first, key.second, [this, key](dns::QueryResult result) {
    if (stopped_) {
      return;
    }
    const bool changed = Apply(key, result, worker_->now_ms());
    if (changed && key.second == dns::Type::kSrv) {
      for (PoolSources& pool : pools_) {
        if (pool.srv == key.first) {
          SyncSrvTargets(pool);
        }
      }
    }
    if (changed || !result) {
      Publish(/*log=*/true);
    }
    Tick();
  });
}

void Discovery::Tick() {
  if (stopped_ || resolver_ == nullptr || worker_->draining()) {
    return;
  }
  if (ticking_) {
    tick_again_ = true;  // an answer came back inside Ask (c-ares may call back at once)
    return;
  }
  ticking_ = true;
  do {
    tick_again_ = false;
    TickOnce();
  } while (tick_again_ && !stopped_);
  ticking_ = false;
}

void Discovery::TickOnce() {
  const uint64_t now = worker_->now_ms();
  std::vector<Key> due;
  uint64_t next = std::numeric_limits<uint64_t>::max();
  for (const auto& [key, q] : questions_) {
    if (q.in_flight) {
      continue;
    }
    if (q.tracker.next_query_ms() <= now) {
      due.push_back(key);
    } else {
      next = std::min(next, q.tracker.next_query_ms());
    }
  }
  for (const Key& key : due) {
    Ask(key);
  }
  if (tick_again_) {
    return;  // an answer changed the times: the loop in Tick() computes them again
  }
  if (next != std::numeric_limits<uint64_t>::max()) {
    worker_->ArmTask(task_, next);
  }
}

}  // namespace torii::app
