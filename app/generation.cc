// app/generation.cc: see generation.h.
#include "app/generation.h"

#include <re2/re2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <string>
#include <vector>

#include "balancer/health.h"
#include "base/text.h"
#include "http/basic_auth.h"
#include "http/h2_fields.h"
#include "ratelimit/hash.h"

namespace torii::app {

namespace {

// "Name: value\r\n" for each pair, appended to `lines` (values checked by the config loader).
void AppendHeaderLines(const std::vector<std::pair<std::string, std::string>>& pairs,
                       std::string* lines) {
  for (const auto& [name, value] : pairs) {
    lines->append(name).append(": ").append(value).append("\r\n");
  }
}

// A route's header rewrite as the data plane applies it: the names `set` replaces and those
// `remove` drops go to `remove` (lowercase), the lines `set` and `add` write go to `lines`.
void FlattenRewrite(const conf::HeaderRewrite& rewrite, std::vector<std::string>* remove,
                    std::string* lines) {
  for (const auto& [name, value] : rewrite.set) {
    remove->push_back(base::ToLowerAscii(name));
  }
  remove->insert(remove->end(), rewrite.remove.begin(), rewrite.remove.end());
  AppendHeaderLines(rewrite.set, lines);
  AppendHeaderLines(rewrite.add, lines);
}

// A route's regular expression, checked by the config loader already (RE2 syntax).
std::shared_ptr<const re2::RE2> CompileRegex(const std::string& pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  return std::make_shared<const re2::RE2>(pattern, options);
}

// conf/ may not include http/, so a route's field-match kinds are two enums; the cast in
// AddRoutes relies on their order.
using MatchKind = conf::FieldMatch::Kind;
using SpecKind = http::FieldMatchSpec::Kind;
static_assert(int(MatchKind::kExact) == int(SpecKind::kExact) &&
              int(MatchKind::kPresent) == int(SpecKind::kPresent) &&
              int(MatchKind::kAbsent) == int(SpecKind::kAbsent) &&
              int(MatchKind::kRegex) == int(SpecKind::kRegex));

// Client addresses tracked by a listener's max_conns_per_ip.
constexpr size_t kMaxConnKeys = 1 << 20;

// The loader already normalised and checked every CIDR.
ratelimit::IpList IpListOf(const std::vector<std::string>& cidrs) {
  ratelimit::IpList list;
  for (const std::string& text : cidrs) {
    std::string why;
    if (auto cidr = ratelimit::ParseCidr(text, &why)) {
      list.Add(*cidr);
    } else {
      spdlog::critical("CIDR {} passed the loader but not ratelimit::ParseCidr: {}", text, why);
      std::abort();
    }
  }
  return list;
}

// "127.0.0.1:9001" → "127.0.0.1", "[::1]:9001" → "::1": the name a backend is verified
// against when its pool's tls sets no sni.
std::string HostOf(const std::string& address) {
  if (!address.empty() && address.front() == '[') {
    return address.substr(1, address.find(']') - 1);
  }
  return address.substr(0, address.rfind(':'));
}

// [[pool]]s: their backends (listed, or as Discovery found them) and the state their
// requests share across workers (health, least_conn load, max_conns slots, counters).
void AddPools(const conf::Config& c, const TlsContexts& tls, uint32_t workers,
              const Discovery& discovery, http::ProxyConfig* p) {
  for (const conf::PoolConfig& pc : c.pools) {
    http::PoolSpec ps;
    ps.name = pc.name;
    ps.algorithm = pc.algorithm;
    ps.backends = discovery.Backends(p->pools.size());
    ps.connect_timeout_ms = static_cast<uint64_t>(pc.connect_timeout.count());
    ps.response_timeout_ms = static_cast<uint64_t>(pc.response_timeout.count());
    ps.keepalive_timeout_ms = static_cast<uint64_t>(pc.keepalive_timeout.count());
    ps.keepalive = pc.keepalive;
    ps.send_proxy = pc.send_proxy;
    ps.tcp_fastopen = pc.tcp_fastopen;
    ps.splice_min = pc.splice_min;
    ps.h2 = pc.protocol != conf::PoolConfig::Protocol::kHttp11;
    ps.max_streams = pc.max_streams;
    ps.retries = pc.retries;
    ps.slow_start_ms = static_cast<uint64_t>(pc.slow_start.count());
    ps.needs_key_hash = balancer::NeedsKeyHash(ps.algorithm);
    ps.hash_key = pc.hash_key.kind;
    ps.hash_key_name = pc.hash_key.name;
    for (const conf::StatusRange& r : pc.fail_status) {
      ps.fail_status.emplace_back(r.first, r.last);
    }
    balancer::HealthPolicy policy;
    policy.active = pc.health.has_value();
    if (pc.health) {
      policy.rise = pc.health->rise;
      policy.fall = pc.health->fall;
    }
    policy.max_fails = pc.max_fails;
    policy.fail_window_ms = static_cast<uint64_t>(pc.fail_window.count());
    policy.eject_ms = policy.fail_window_ms;
    policy.max_eject_ms = static_cast<uint64_t>(pc.max_eject.count());
    const auto n = static_cast<uint32_t>(ps.backends.size());
    ps.health = std::make_shared<balancer::PoolHealth>(n, policy);
    ps.max_conns = pc.max_conns;
    ps.queue_timeout_ms = static_cast<uint64_t>(pc.queue_timeout.count());
    if (ps.max_conns > 0) {
      ps.slots = std::make_shared<balancer::BackendSlots>(n);
    }
    if (balancer::NeedsLoadCounters(ps.algorithm)) {
      ps.load = std::make_shared<balancer::LoadCounters>(n);
    }
    ps.counters = std::make_shared<http::CounterGrid>(workers, n * http::PoolSpec::kBackendColumns);
    ps.tls = tls.pools[p->pools.size()];
    if (ps.tls) {
      for (const http::BackendTarget& b : ps.backends) {
        ps.tls_names.push_back(!pc.tls->sni.empty() ? pc.tls->sni
                               : !b.host.empty()    ? b.host
                                                    : HostOf(b.name));
        ps.tls_sessions.push_back(std::make_shared<tls::ClientSessionCache>());
      }
    }
    p->pools.push_back(std::move(ps));
  }
}

// [rate_limit.NAME]s: each one's table (and bans, and fleet leases), and [redis].
void AddRateLimits(const conf::Config& c, http::ProxyConfig* p) {
  for (const conf::RateLimitConfig& rc : c.rate_limits) {
    http::RateLimitSpec rl;
    rl.name = rc.name;
    rl.key = rc.key;
    rl.prefix_v4 = rc.prefix_v4;
    rl.prefix_v6 = rc.prefix_v6;
    rl.header = rc.header;
    const auto period_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(rc.rate_period).count());
    rl.window_s = std::max<uint64_t>(1, period_ns / 1000000000);
    rl.quota = rc.rate_count;
    ratelimit::LimitSpec spec;
    spec.rate = ratelimit::Rate{rc.rate_count, period_ns};
    spec.burst = rc.burst;
    spec.max_keys = rc.max_keys;
    spec.delay_mode = rc.delay;
    rl.table = std::make_shared<ratelimit::RateTable>(spec);
    if (rc.ban_after > 0) {
      ratelimit::BanSpec ban;
      ban.ban_after = rc.ban_after;
      ban.window_ns = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(rc.ban_window).count());
      ban.ban_for_ns = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(rc.ban_for).count());
      ban.max_keys = rc.max_keys;
      rl.bans = std::make_shared<ratelimit::BanList>(ban);
      rl.ban_after = rc.ban_after;
      rl.ban_for_s = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::seconds>(rc.ban_for).count());
    }
    if (rc.redis) {
      rl.fleet = static_cast<int32_t>(p->fleet_limits++);
      const uint64_t sync_ns = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(rc.sync_interval).count());
      rl.lease.batch = ratelimit::LeaseBatch(rl.table->interval_ns(), rc.burst, sync_ns);
      rl.lease.hold_ns = sync_ns;
      rl.lease.down_ns = std::max<uint64_t>(1000000000, 2 * sync_ns);
      rl.lease.max_keys = std::min<size_t>(rc.max_keys, 100000);
      rl.leases = std::make_shared<ratelimit::LeaseTable>(rl.lease);
      rl.interval_us = std::to_string(static_cast<double>(rl.table->interval_ns()) / 1000.0);
      rl.tolerance_us = std::to_string(static_cast<double>(rl.table->tolerance_ns()) / 1000.0);
      rl.on_store_error = rc.on_store_error;
    }
    p->rate_limits.push_back(std::move(rl));
  }
  if (c.redis.enabled) {
    p->redis = true;
    p->redis_options.address = c.redis.address.ToString();
    p->redis_options.timeout_ms = static_cast<uint64_t>(c.redis.timeout.count());
    p->redis_pool_size = c.redis.pool_size;
  }
}

// [cache.NAME]s: each one's store and policy.
void AddCaches(const conf::Config& c, http::ProxyConfig* p) {
  for (const conf::CacheConfig& cc : c.caches) {
    http::CacheSpec cs;
    cs.name = cc.name;
    cache::StoreOptions so;
    so.memory = cc.memory;
    so.max_object = cc.max_object;
    cs.store = std::make_shared<cache::Store>(so, &cache::VaryMatches);
    cs.store_options = so;
    cs.policy.negative_ttl =
        std::chrono::duration_cast<std::chrono::seconds>(cc.negative_ttl).count();
    cs.policy.targeted = cc.targeted;
    cs.policy.set_cookie = cc.set_cookie;
    cs.lock_timeout_ms = static_cast<uint64_t>(cc.lock_timeout.count());
    cs.key_query = cc.key_query;
    cs.key_headers = cc.key_headers;
    cs.purge_allow = IpListOf(cc.purge_allow);
    cs.disk_options = cache::DiskOptions{cc.disk_path, cc.disk_size};
    p->caches.push_back(std::move(cs));
  }
}

// A disk tier stays with its file (whichever cache names it): a new size takes effect at the
// next start.
void CarryDisks(const http::ProxyConfig& old, http::ProxyConfig* fresh) {
  for (http::CacheSpec& cache : fresh->caches) {
    for (const http::CacheSpec& before : old.caches) {
      if (before.disk && !cache.disk_options.path.empty() &&
          before.disk_options.path == cache.disk_options.path) {
        if (before.disk_options.size != cache.disk_options.size && !cache.disk) {
          spdlog::warn("[cache.{}] disk: a new size takes effect when torii restarts", cache.name);
        }
        cache.disk = before.disk;
      }
    }
  }
}

// [[route]]s, in order: matchers, rewrites, limits and caches by index, header edits.
void AddRoutes(const conf::Config& c, uint32_t workers, http::ProxyConfig* p) {
  for (const conf::RouteConfig& rc : c.routes) {
    http::RouteSpec rs;
    rs.allow = IpListOf(rc.allow);
    rs.deny = IpListOf(rc.deny);
    rs.rate_limit = rc.rate_limit.empty() ? -1 : static_cast<int32_t>(rc.rate_limit_index);
    rs.cache = rc.cache.empty() ? -1 : static_cast<int32_t>(rc.cache_index);
    rs.requests = std::make_shared<http::CounterGrid>(workers, http::RouteSpec::kColumns);
    rs.host = rc.host;
    rs.path_prefix = rc.path_prefix;
    rs.pool = rc.pool_index;
    if (!rc.redirect.empty()) {
      rs.redirect = rc.redirect;
      rs.redirect_prefix = rc.redirect_prefix;
      rs.redirect_status = rc.redirect_status;
    }
    rs.server_timing = rc.server_timing;
    p->timing = p->timing || rc.server_timing;
    rs.compress = rc.compress;
    AppendHeaderLines(rc.add_headers, &rs.add_headers);
    rs.path_exact = rc.path_exact;
    if (!rc.path_regex.empty()) {
      rs.path_regex = CompileRegex(rc.path_regex);
    }
    for (const std::string& m : rc.methods) {
      const std::optional<uint8_t> id = http::MethodId(m);
      if (!id) {
        // The loader's method list is a subset of llhttp's: a wiring bug.
        spdlog::critical("route method {} passed the loader but llhttp does not know it", m);
        std::abort();
      }
      rs.methods |= uint64_t{1} << *id;
    }
    for (const auto& [from, to] :
         {std::pair{&rc.headers, &rs.headers}, std::pair{&rc.query, &rs.query}}) {
      for (const conf::FieldMatch& f : *from) {
        http::FieldMatchSpec m;
        m.name = f.name;
        m.kind = static_cast<http::FieldMatchSpec::Kind>(f.kind);  // same order: asserted above
        m.value = f.value;
        if (f.kind == conf::FieldMatch::Kind::kRegex) {
          m.regex = CompileRegex(f.value);
        }
        to->push_back(std::move(m));
      }
    }
    for (const conf::RouteConfig::SplitTarget& t : rc.split) {
      rs.split.push_back(http::RouteSpec::SplitTarget{t.pool_index, t.weight});
      rs.split_total += t.weight;
    }
    rs.split_sticky = rc.split_sticky;
    rs.connect_timeout_ms =
        rc.connect_timeout ? static_cast<uint64_t>(rc.connect_timeout->count()) : 0;
    rs.response_timeout_ms =
        rc.response_timeout ? static_cast<uint64_t>(rc.response_timeout->count()) : 0;
    if (rc.split_by) {
      rs.split_by = rc.split_by->kind;
      rs.split_by_name = rc.split_by->name;
    }
    for (const conf::ErrorPage& e : rc.error_pages) {
      rs.error_pages.push_back(http::ErrorPage{e.status, e.content_type, e.body});
    }
    rs.return_status = rc.return_status;
    rs.return_body = rc.return_body;
    rs.strip_prefix = rc.strip_prefix;
    rs.has_replace_prefix = rc.replace_prefix.has_value();
    rs.replace_prefix = rc.replace_prefix.value_or("");
    if (!rc.rewrite_pattern.empty()) {
      rs.rewrite_regex = CompileRegex(rc.rewrite_pattern);
      rs.rewrite_substitution = rc.rewrite_substitution;
    }
    rs.host_rewrite = rc.host_rewrite;
    rs.upgrades = rc.upgrades;
    p->upgrades = p->upgrades || !rc.upgrades.empty();
    rs.trailers = rc.trailers;
    rs.require_client_cert = rc.require_client_cert;
    rs.client_cert_allow = rc.client_cert_allow;
    rs.upstream_remove = p->replaced_request_fields;
    FlattenRewrite(rc.request_headers, &rs.upstream_remove, &rs.upstream_add);
    if (rc.auth) {
      rs.auth = std::make_shared<http::BasicAuth>(rc.auth->users, rc.auth->realm);
      if (!rc.auth->forward) {
        rs.upstream_remove.push_back("authorization");  // the password stays here
      }
    }
    FlattenRewrite(rc.response_headers, &rs.response_remove, &rs.add_headers);
    p->routes.push_back(std::move(rs));
  }
}

// [[listener]]s, by index: access lists, connection limits, TLS, path options.
void AddListeners(const conf::Config& c, const TlsContexts& tls, http::ProxyConfig* p) {
  for (const conf::ListenerConfig& l : c.listeners) {
    http::ListenerSpec ls;
    ls.name = l.name;
    ls.allow = IpListOf(l.allow);
    ls.deny = IpListOf(l.deny);
    ls.max_conns_per_ip = l.max_conns_per_ip;
    if (l.max_conns_per_ip > 0) {
      // One key per client address; a flood of distinct addresses is bounded by the table.
      ls.per_ip = std::make_shared<ratelimit::ConnLimiter>(l.max_conns_per_ip, kMaxConnKeys);
    }
    ls.max_conns = l.max_conns;
    if (l.max_conns > 0) {
      ls.conns = std::make_shared<std::atomic<uint32_t>>(0);
    }
    ls.tls = tls.listeners[p->listeners.size()];
    ls.http_to_https = l.http_to_https;
    ls.h2c = l.h2c;
    ls.proxy_protocol = l.proxy_protocol;
    ls.client_auth = l.tls && l.tls->client_auth.mode != tls::ClientAuthOptions::Mode::kOff;
    ls.client_cert_forward = l.client_cert_forward;
    ls.path.merge_slashes = c.server.merge_slashes;
    ls.path.allow_encoded_slash = l.allow_encoded_slash;
    ls.path.allow_encoded_nul = l.allow_encoded_nul;
    p->listeners.push_back(std::move(ls));
  }
}

}  // namespace

std::shared_ptr<http::ProxyConfig> BuildProxyConfig(const conf::Config& c, const TlsContexts& tls,
                                                    uint32_t workers, const Discovery& discovery) {
  auto p = std::make_shared<http::ProxyConfig>();
  p->limits.header_bytes = static_cast<uint32_t>(c.limits.header_bytes);
  p->limits.header_count = c.limits.header_count;
  p->limits.body_bytes = c.limits.body_bytes;
  p->limits.header_timeout_ms = static_cast<uint64_t>(c.limits.header_timeout.count());
  p->limits.idle_timeout_ms = static_cast<uint64_t>(c.limits.idle_timeout.count());
  p->limits.body_timeout_ms = static_cast<uint64_t>(c.limits.body_timeout.count());
  p->limits.body_min_rate = c.limits.body_min_rate;
  p->limits.body_grace_ms = static_cast<uint64_t>(c.limits.body_rate_grace.count());
  p->limits.send_timeout_ms = static_cast<uint64_t>(c.limits.send_timeout.count());
  p->limits.tunnel_idle_timeout_ms = static_cast<uint64_t>(c.limits.tunnel_idle_timeout.count());
  p->limits.keepalive_requests = c.limits.keepalive_requests;
  p->limits.max_concurrent_streams = c.limits.max_concurrent_streams;
  p->timing = c.server.phase_timing;
  p->request_id_header = c.server.request_id_header;
  p->forwarded_header = c.server.forwarded_header;
  for (const conf::ErrorPage& e : c.server.error_pages) {
    p->error_pages.push_back(http::ErrorPage{e.status, e.content_type, e.body});
  }
  p->trace_context = c.server.trace_context;
  if (!p->request_id_header.empty()) {
    p->replaced_request_fields.push_back(base::ToLowerAscii(p->request_id_header));
  }
  if (p->trace_context) {
    p->replaced_request_fields.push_back("traceparent");
  }
  AddPools(c, tls, workers, discovery, p.get());
  AddRateLimits(c, p.get());
  AddCaches(c, p.get());
  p->trusted_proxies = IpListOf(c.server.trusted_proxies);
  p->compression.order.clear();
  for (const std::string& name : c.compression.algorithms) {
    p->compression.order.push_back(
        *http::codec::ParseCoding(name));  // the loader checked the names
  }
  p->compression.min_bytes = c.compression.min_bytes;
  p->compression.types =
      c.compression.types.empty() ? http::codec::DefaultTypes() : c.compression.types;
  p->compression.level[static_cast<int>(http::codec::Coding::kGzip)] = c.compression.gzip_level;
  p->compression.level[static_cast<int>(http::codec::Coding::kBrotli)] = c.compression.br_level;
  p->compression.level[static_cast<int>(http::codec::Coding::kZstd)] = c.compression.zstd_level;
  p->compression.decompress = c.compression.decompress;
  AddRoutes(c, workers, p.get());
  AddListeners(c, tls, p.get());
  return p;
}

std::expected<TlsContexts, std::string> BuildTls(const conf::Config& config,
                                                 const conf::Config* previous,
                                                 const TlsContexts* previous_contexts) {
  TlsContexts out;
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const conf::ListenerConfig& l = config.listeners[i];
    if (!l.tls) {
      out.listeners.push_back(nullptr);
      continue;
    }
    std::shared_ptr<tls::TicketKeys> keys;
    std::shared_ptr<tls::HandshakeStats> stats;
    std::shared_ptr<tls::EarlyDataGuard> spent;
    const tls::ServerContext* old = nullptr;  // this listener's context before a reload
    if (previous != nullptr && previous_contexts != nullptr && i < previous->listeners.size() &&
        previous->listeners[i].tls && previous_contexts->listeners[i]) {
      const tls::ServerOptions& before = *previous->listeners[i].tls;
      old = previous_contexts->listeners[i].get();
      stats = old->stats_ptr();
      spent = old->early_data_guard();  // tickets spent on early data stay spent
      if (before.session_tickets == l.tls->session_tickets &&
          before.ticket_rotation_s == l.tls->ticket_rotation_s &&
          before.session_ticket_key_file == l.tls->session_ticket_key_file &&
          before.shared_ticket_keys == l.tls->shared_ticket_keys &&
          l.tls->session_ticket_key_file.empty()) {
        keys = old->ticket_keys();
      }
    }
    auto ctx = tls::ServerContext::Create(*l.tls, keys, stats, spent);
    if (!ctx) {
      return std::unexpected("listener " + l.name + " tls: " + ctx.error());
    }
    if (old != nullptr) {  // staple what the previous context fetched meanwhile
      (*ctx)->AdoptStaples(*old);
    }
    // At start, reload and torii -t: a certificate close to its end is worth a warning
    // (torii_tls_certificate_expiry_seconds tracks it in between).
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    for (const tls::ServerContext::Certificate& cert : (*ctx)->certificates()) {
      if (cert.not_after - now < 30 * 24 * 3600) {
        spdlog::warn("listener {}: certificate {} ({}) expires in {} day(s)", l.name, cert.file,
                     cert.name, (cert.not_after - now) / (24 * 3600));
      }
    }
    out.listeners.push_back(std::move(*ctx));
  }
  for (const conf::PoolConfig& pc : config.pools) {
    if (!pc.tls) {
      out.pools.push_back(nullptr);
      continue;
    }
    auto ctx = tls::ClientContext::Create(*pc.tls);
    if (!ctx) {
      return std::unexpected("pool " + pc.name + " tls: " + ctx.error());
    }
    out.pools.push_back(std::move(*ctx));
  }
  return out;
}

std::shared_ptr<std::vector<std::shared_ptr<tls::TicketKeys>>> TicketKeysOf(
    const http::ProxyConfig& proxy) {
  auto keys = std::make_shared<std::vector<std::shared_ptr<tls::TicketKeys>>>();
  for (const http::ListenerSpec& l : proxy.listeners) {
    if (l.tls && l.tls->ticket_keys()) {
      keys->push_back(l.tls->ticket_keys());
    }
  }
  return keys;
}

void CarryOver(const http::ProxyConfig& old, http::ProxyConfig* fresh) {
  for (http::PoolSpec& pool : fresh->pools) {
    for (const http::PoolSpec& before : old.pools) {
      if (before.name != pool.name || before.carry_key() != pool.carry_key()) {
        continue;
      }
      const bool same_backends = std::equal(
          before.backends.begin(), before.backends.end(), pool.backends.begin(),
          pool.backends.end(), [](const http::BackendTarget& a, const http::BackendTarget& b) {
            return a.name == b.name && a.weight == b.weight && a.tier == b.tier;
          });
      if (same_backends) {
        pool.health = before.health;
        pool.load = before.load;
        pool.slots = before.slots;
        pool.tls_sessions = before.tls_sessions;
        pool.counters = before.counters;
        continue;
      }
      // The backends changed (DNS, or an edit): an address that stays keeps its health, TLS
      // sessions and requests in flight (least_conn load, max_conns slots: the old counters
      // hand over to the new ones, where the requests in flight under the old list end); a new
      // one starts with none.
      std::vector<uint32_t> map(before.backends.size(), balancer::kGone);
      for (size_t i = 0; i < pool.backends.size(); ++i) {
        for (size_t j = 0; j < before.backends.size(); ++j) {
          if (pool.backends[i].name != before.backends[j].name) {
            continue;
          }
          map[j] = static_cast<uint32_t>(i);
          pool.health->Adopt(static_cast<uint32_t>(i), *before.health, static_cast<uint32_t>(j));
          if (i < pool.tls_sessions.size() && j < before.tls_sessions.size()) {
            pool.tls_sessions[i] = before.tls_sessions[j];
          }
        }
      }
      if (before.load != nullptr && pool.load != nullptr) {
        before.load->HandOver(pool.load, map);
      }
      if (before.slots != nullptr && pool.slots != nullptr) {
        before.slots->HandOver(pool.slots, std::move(map));
      }
    }
  }
  for (http::RouteSpec& route : fresh->routes) {
    for (const http::RouteSpec& before : old.routes) {
      if (before.host == route.host && before.path_prefix == route.path_prefix) {
        route.requests = before.requests;  // a route's count survives edits to its settings
      }
    }
  }
  for (http::RateLimitSpec& limit : fresh->rate_limits) {
    for (const http::RateLimitSpec& before : old.rate_limits) {
      if (before.name == limit.name && before.carry_key() == limit.carry_key()) {
        limit.table = before.table;
        limit.bans = before.bans;
        limit.leases = before.leases;
      }
    }
  }
  for (http::CacheSpec& cache : fresh->caches) {
    for (const http::CacheSpec& before : old.caches) {
      if (before.name == cache.name && before.store_options == cache.store_options) {
        cache.store = before.store;
      }
    }
  }
  CarryDisks(old, fresh);
  for (size_t i = 0; i < fresh->listeners.size() && i < old.listeners.size(); ++i) {
    http::ListenerSpec& l = fresh->listeners[i];
    const http::ListenerSpec& before = old.listeners[i];
    l.max_conns = before.max_conns;
    l.conns = before.conns;
    l.max_conns_per_ip = before.max_conns_per_ip;
    l.per_ip = before.per_ip;
  }
}

std::string OpenDiskTiers(http::ProxyConfig* proxy, const http::ProxyConfig* previous) {
  if (previous != nullptr) {
    CarryDisks(*previous, proxy);
  }
  for (http::CacheSpec& cache : proxy->caches) {
    if (cache.disk || cache.disk_options.path.empty()) {
      continue;
    }
    std::string error;
    cache.disk = cache::DiskStore::Open(cache.disk_options, &ratelimit::HashKey, &error);
    if (!cache.disk) {
      return "[cache." + cache.name + "] " + error;
    }
  }
  return {};
}

std::string ReloadBlocker(const conf::Config& old, const conf::Config& fresh) {
  if (fresh.server.workers != old.server.workers) {
    return "[server] workers changed";
  }
  if (fresh.listeners.size() != old.listeners.size()) {
    return "listeners were added or removed";
  }
  for (size_t i = 0; i < fresh.listeners.size(); ++i) {
    const conf::ListenerConfig& a = old.listeners[i];
    const conf::ListenerConfig& b = fresh.listeners[i];
    if (a.name != b.name || a.address.ToString() != b.address.ToString() ||
        a.backlog != b.backlog || a.tcp_fastopen != b.tcp_fastopen) {
      return "listener " + b.name + ": name, address, backlog or tcp_fastopen changed";
    }
    if (a.tls.has_value() != b.tls.has_value()) {
      return "listener " + b.name + ": tls turned on or off";
    }
    if (a.max_conns != b.max_conns || a.max_conns_per_ip != b.max_conns_per_ip) {
      return "listener " + b.name + ": max_conns or max_conns_per_ip changed";
    }
  }
  if (fresh.admin.enabled != old.admin.enabled ||
      (fresh.admin.enabled && (fresh.admin.address.ToString() != old.admin.address.ToString() ||
                               fresh.admin.allow != old.admin.allow))) {
    return "[admin] changed";
  }
  if (fresh.server.access_log != old.server.access_log ||
      fresh.server.access_log_format != old.server.access_log_format ||
      fresh.server.error_log != old.server.error_log) {
    return "log files or formats changed";
  }
  return {};
}

}  // namespace torii::app
