// app/server.cc: see server.h.
#include "app/server.h"

#include <fcntl.h>
#include <grp.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <re2/re2.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>

#include "app/admin.h"
#include "app/discovery.h"
#include "app/health_checker.h"
#include "balancer/health.h"
#include "base/text.h"
#include "conf/load.h"
#include "core/worker.h"
#include "http/basic_auth.h"
#include "http/proxy_config.h"
#include "http/proxy_context.h"
#include "http/proxy_session.h"

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

// The llhttp id of a method name the loader accepted ("GET" → HTTP_GET).
uint32_t MethodId(std::string_view name) {
  for (uint32_t id = 0; id < 64; ++id) {
    if (name == llhttp_method_name(static_cast<llhttp_method_t>(id))) {
      return id;
    }
  }
  return 63;  // not reached: the loader knows only llhttp's methods
}

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
    ps.counters = std::make_shared<http::CounterGrid>(
        workers, n * http::PoolSpec::kBackendColumns);
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
  }
  for (const conf::CacheConfig& cc : c.caches) {
    http::CacheSpec cs;
    cs.name = cc.name;
    cache::StoreOptions so;
    so.memory = cc.memory;
    so.max_object = cc.max_object;
    cs.store = std::make_shared<cache::Store>(so, &cache::VaryMatches);
    cs.store_options = so;
    cs.policy.negative_ttl = std::chrono::duration_cast<std::chrono::seconds>(cc.negative_ttl).count();
    cs.policy.targeted = cc.targeted;
    cs.policy.set_cookie = cc.set_cookie;
    cs.lock_timeout_ms = static_cast<uint64_t>(cc.lock_timeout.count());
    cs.key_query = cc.key_query;
    cs.key_headers = cc.key_headers;
    cs.purge_allow = IpListOf(cc.purge_allow);
    p->caches.push_back(std::move(cs));
  }
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
      rs.methods |= uint64_t{1} << MethodId(m);
    }
    for (const auto& [from, to] : {std::pair{&rc.headers, &rs.headers},
                                   std::pair{&rc.query, &rs.query}}) {
      for (const conf::FieldMatch& f : *from) {
        http::FieldMatchSpec m;
        m.name = f.name;
        m.kind = static_cast<http::FieldMatchSpec::Kind>(f.kind);
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
  return p;
}

// Binds one SO_REUSEPORT listening socket. Returns the fd or -1 (errno set).
int BindListener(const conf::SocketAddress& addr, uint32_t backlog) {
  const int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (addr.family() == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr.storage), addr.len) != 0 ||
      ::listen(fd, static_cast<int>(backlog)) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// The port the kernel picked for a socket bound to port 0.
uint16_t BoundPort(int fd) {
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  return ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in&>(bound).sin_port
                                          : reinterpret_cast<sockaddr_in6&>(bound).sin6_port);
}

int OpenAccessLog(const std::string& where) {
  if (where == "off") {
    return -1;
  }
  if (where == "-") {
    return STDOUT_FILENO;
  }
  return ::open(where.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

// Switches the process (every thread) to `user` and `group` (default: the user's group), with
// no supplementary groups. Returns "" on success, else what went wrong. Not root: succeeds
// only when already running as that user.
std::string DropPrivileges(const std::string& user, const std::string& group) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return "no such user: " + user;
  }
  gid_t gid = pw.pw_gid;
  if (!group.empty()) {
    std::vector<char> gbuf(16384);
    ::group gr{};
    ::group* gfound = nullptr;
    if (getgrnam_r(group.c_str(), &gr, gbuf.data(), gbuf.size(), &gfound) != 0 ||
        gfound == nullptr) {
      return "no such group: " + group;
    }
    gid = gr.gr_gid;
  }
  if (geteuid() != 0) {
    return geteuid() == pw.pw_uid ? std::string()
                                  : "cannot switch to user " + user + ": not started as root";
  }
  if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(pw.pw_uid) != 0) {
    return "cannot switch to user " + user + ": " + strerror(errno);
  }
  if (getuid() != pw.pw_uid || geteuid() != pw.pw_uid || setuid(0) == 0) {
    return "cannot switch to user " + user + ": root could be regained";
  }
  return {};
}

bool WriteReadyFile(const std::string& path, const std::vector<std::string>& lines) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    return false;
  }
  for (const std::string& l : lines) {
    std::fputs(l.c_str(), f);
    std::fputc('\n', f);
  }
  const bool ok = std::fclose(f) == 0;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

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
    if (previous != nullptr && previous_contexts != nullptr && i < previous->listeners.size() &&
        previous->listeners[i].tls && previous_contexts->listeners[i]) {
      const tls::ServerOptions& before = *previous->listeners[i].tls;
      const auto& old = previous_contexts->listeners[i];
      stats = old->stats_ptr();
      if (before.session_tickets == l.tls->session_tickets &&
          before.ticket_rotation_s == l.tls->ticket_rotation_s &&
          before.session_ticket_key_file == l.tls->session_ticket_key_file &&
          l.tls->session_ticket_key_file.empty()) {
        keys = old->ticket_keys();
      }
    }
    auto ctx = tls::ServerContext::Create(*l.tls, keys, stats);
    if (!ctx) {
      return std::unexpected("listener " + l.name + " tls: " + ctx.error());
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

// The session-ticket key sets of a config's TLS listeners (rotated by worker 0).
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

// Hot reload keeps what must outlive a config version: a pool's health, load and max_conns
// state and TLS sessions when its fingerprint is unchanged, a rate-limit table (and its bans)
// with the same settings, a cache store of the same size (entries survive a reload), and every
// listener's connection counters (listeners themselves do not change on reload).
void CarryOver(const http::ProxyConfig& old, http::ProxyConfig* fresh) {
  for (http::PoolSpec& pool : fresh->pools) {
    for (const http::PoolSpec& before : old.pools) {
      if (before.name != pool.name || before.carry_key() != pool.carry_key()) {
        continue;
      }
      const bool same_backends = std::equal(
          before.backends.begin(), before.backends.end(), pool.backends.begin(),
          pool.backends.end(), [](const http::BackendTarget& a, const http::BackendTarget& b) {
            return a.name == b.name && a.weight == b.weight && a.backup == b.backup;
          });
      if (same_backends) {
        pool.health = before.health;
        pool.load = before.load;
        pool.slots = before.slots;
        pool.tls_sessions = before.tls_sessions;
        pool.counters = before.counters;
        continue;
      }
      // The backends changed (DNS, or an edit): an address that stays keeps its health and
      // TLS sessions; a new one starts with none. In-flight counts (least_conn, max_conns)
      // start over: requests in flight finish on the previous generation's counters.
      for (size_t i = 0; i < pool.backends.size(); ++i) {
        for (size_t j = 0; j < before.backends.size(); ++j) {
          if (pool.backends[i].name != before.backends[j].name) {
            continue;
          }
          pool.health->Adopt(static_cast<uint32_t>(i), *before.health, static_cast<uint32_t>(j));
          if (i < pool.tls_sessions.size() && j < before.tls_sessions.size()) {
            pool.tls_sessions[i] = before.tls_sessions[j];
          }
        }
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
  for (size_t i = 0; i < fresh->listeners.size() && i < old.listeners.size(); ++i) {
    http::ListenerSpec& l = fresh->listeners[i];
    const http::ListenerSpec& before = old.listeners[i];
    l.max_conns = before.max_conns;
    l.conns = before.conns;
    l.max_conns_per_ip = before.max_conns_per_ip;
    l.per_ip = before.per_ip;
  }
}

// What a reload cannot change (the sockets and threads are made once): empty when `fresh` may
// replace `old`, else why not.
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
        a.backlog != b.backlog) {
      return "listener " + b.name + ": name, address or backlog changed";
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

// RLIMIT_NOFILE for `workers` x max_connections sockets (each a client or an upstream) plus
// the listeners, logs and rings: raised as far as the hard limit allows, or set to
// max_open_files. False (logged) when max_open_files is above the hard limit.
static bool SetOpenFileLimit(const conf::ServerConfig& server, uint32_t workers) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return true;
  }
  const uint64_t needed = uint64_t{workers} * server.max_connections + 256;
  uint64_t want = server.max_open_files != 0 ? server.max_open_files : needed;
  if (want > lim.rlim_max) {
    if (server.max_open_files != 0) {
      spdlog::critical(
          "max_open_files {} is above the hard RLIMIT_NOFILE {} (raise it: "
          "ulimit -Hn, LimitNOFILE= in the unit)",
          want, static_cast<uint64_t>(lim.rlim_max));
      return false;
    }
    want = lim.rlim_max;
    spdlog::warn(
        "RLIMIT_NOFILE: the hard limit {} is below the {} that {} worker(s) x "
        "max_connections {} need; connections past it get 503 or wait (raise it: "
        "ulimit -Hn, LimitNOFILE= in the unit)",
        want, needed, workers, server.max_connections);
  }
  if (want != lim.rlim_cur && (server.max_open_files != 0 || want > lim.rlim_cur)) {
    lim.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      spdlog::warn("RLIMIT_NOFILE: cannot set the soft limit to {}: {}", want, strerror(errno));
    }
  }
  return true;
}

int RunServer(const conf::Config& config, const ReopenFn& reopen_error_log) {
  // Signals are taken synchronously by this thread; workers inherit the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  uint32_t workers = config.server.workers;
  if (workers == 0) {
    workers = std::max(1u, std::thread::hardware_concurrency());
  }
  if (!SetOpenFileLimit(config.server, workers)) {
    return 1;
  }

  // Listeners: worker 0's socket binds first (port 0 picks a port), the others reuse it.
  std::vector<std::vector<int>> fds(workers);
  std::vector<std::string> ready_lines;
  for (uint32_t li = 0; li < config.listeners.size(); ++li) {
    const conf::ListenerConfig& l = config.listeners[li];
    conf::SocketAddress addr = l.address;
    for (uint32_t w = 0; w < workers; ++w) {
      const int fd = BindListener(addr, l.backlog);
      if (fd < 0) {
        spdlog::critical("listener {}: cannot listen on {}: {}", l.name, addr.ToString(),
                         strerror(errno));
        return 1;
      }
      if (w == 0 && addr.port() == 0) {
        addr.set_port(BoundPort(fd));
      }
      fds[w].push_back(fd);
    }
    ready_lines.push_back(l.name + " " + addr.ToString());
    spdlog::info("listener {} on {} ({} workers)", l.name, addr.ToString(), workers);
  }

  // The admin listener: one socket, served by worker 0.
  int admin_fd = -1;
  const auto admin_index = static_cast<uint32_t>(config.listeners.size());
  if (config.admin.enabled) {
    conf::SocketAddress addr = config.admin.address;
    admin_fd = BindListener(addr, 128);
    if (admin_fd < 0) {
      spdlog::critical("[admin]: cannot listen on {}: {}", addr.ToString(), strerror(errno));
      return 1;
    }
    if (addr.port() == 0) {
      addr.set_port(BoundPort(admin_fd));
    }
    ready_lines.push_back("admin " + addr.ToString());
    spdlog::info("admin on {} (/metrics, /status.json)", addr.ToString());
  }

  const int log_fd = OpenAccessLog(config.server.access_log);
  if (log_fd < 0 && config.server.access_log != "off") {
    spdlog::critical("access_log {}: {}", config.server.access_log, strerror(errno));
    return 1;
  }
  const auto log_format = config.server.access_log_format == conf::LogFormat::kJson
                              ? http::AccessLogFormat::kJson
                              : http::AccessLogFormat::kText;
  auto tls_contexts = BuildTls(config);
  if (!tls_contexts) {
    spdlog::critical("{}", tls_contexts.error());
    return 1;
  }
  // Backends given by name: resolved once now (start-up fails when one does not resolve,
  // unless [dns] resolve_at_start = false), then kept current on worker 0's ring. Every
  // config's Discovery (one per reload) is kept until the workers stop.
  std::vector<std::unique_ptr<Discovery>> discoveries;
  discoveries.push_back(std::make_unique<Discovery>(config));
  Discovery* discovery = discoveries.back().get();
  if (!discovery->empty()) {
    if (std::string why = discovery->ResolveNow(); !why.empty()) {
      spdlog::critical("{}", why);
      return 1;
    }
  }
  std::shared_ptr<const http::ProxyConfig> proxy_config =
      BuildProxyConfig(config, *tls_contexts, workers, *discovery);
  // Hot reload's state: the configs read since start (each one's HealthChecker refers to it)
  // and the TLS contexts in use.
  TlsContexts current_tls = *tls_contexts;
  std::vector<std::unique_ptr<conf::Config>> configs;

  // Active health checks run on worker 0's ring; a checker outlives every worker (a reload
  // stops the running one and starts another: all are kept until exit, their probes may be in
  // flight).
  // The checker of the config in use; replaced ones are kept on worker 0 until their probes in
  // flight are done (DNS may replace the checker often).
  std::shared_ptr<HealthChecker> checker = std::make_shared<HealthChecker>(config, *proxy_config);
  auto retired_checkers = std::make_shared<std::vector<std::shared_ptr<HealthChecker>>>();
  // The ticket keys worker 0 rotates (replaced on reload, on worker 0's thread).
  auto ticket_keys = TicketKeysOf(*proxy_config);
  std::unique_ptr<Admin> admin;  // made once the contexts exist; outlives the workers
  std::vector<std::unique_ptr<core::Worker>> ws;
  std::vector<std::unique_ptr<http::ProxyContext>> contexts;
  for (uint32_t w = 0; w < workers; ++w) {
    core::WorkerOptions o;
    o.id = w;
    o.sq_entries = config.server.sq_entries;
    o.cq_entries = config.server.cq_entries;
    o.recv_buffers = config.server.recv_buffers;
    o.recv_buffer_size = config.server.recv_buffer_size;
    o.max_conns = config.server.max_connections;
    o.drain_grace_ms = static_cast<uint64_t>(config.server.shutdown_grace.count());
    auto worker = std::make_unique<core::Worker>(o);
    auto ctx = std::make_unique<http::ProxyContext>(
        *worker, proxy_config, std::make_unique<http::AccessLog>(log_fd, log_format));
    for (uint32_t li = 0; li < fds[w].size(); ++li) {
      worker->AddListener(fds[w][li], li);
    }
    if (w == 0 && admin_fd >= 0) {
      worker->AddListener(admin_fd, admin_index);
    }
    http::ProxyContext* ctx_ptr = ctx.get();
    worker->set_accept_fn([ctx_ptr, &admin, admin_index](core::Conn& conn, uint32_t listener) {
      if (listener == admin_index) {
        return admin->Accept(conn);
      }
      return http::NewClientSession(*ctx_ptr, conn, listener);
    });
    worker->set_on_turn_end([ctx_ptr] { ctx_ptr->log().Flush(); });
    if (w == 0) {
      // Once per process, on worker 0's ring: active health checks, and the rotation of the
      // TLS session-ticket keys (checked every minute; each key set rotates on its interval).
      worker->set_on_start([checker = checker.get(), discovery, ticket_keys,
                            ctx_ptr](core::Worker& self) {
        ctx_ptr->fleet().Connect();
        if (!checker->empty()) {
          checker->Start(*ctx_ptr);
        }
        if (!discovery->empty()) {
          discovery->Start(self);
        }
        auto task = std::make_shared<core::Worker::TaskId>();
        *task = self.AddTask([&self, ticket_keys, task] {
          for (const auto& k : *ticket_keys) {
            k->Rotate(core::MonotonicMs());  // the first call starts a key set's clock
          }
          self.ArmTask(*task, self.now_ms() + 60000);
        });
        for (const auto& k : *ticket_keys) {
          k->Rotate(core::MonotonicMs());
        }
        self.ArmTask(*task, self.now_ms() + 60000);
      });
    } else {
      // Each worker's own Redis connection (fleet-wide rate limits), made before it serves.
      worker->set_on_start([ctx_ptr](core::Worker&) { ctx_ptr->fleet().Connect(); });
    }
    ws.push_back(std::move(worker));
    contexts.push_back(std::move(ctx));
  }

  {
    // Request coalescing wakes waiters on other workers through their contexts.
    auto all = std::make_shared<std::vector<http::ProxyContext*>>();
    for (const auto& c : contexts) {
      all->push_back(c.get());
    }
    for (const auto& c : contexts) {
      c->set_siblings(all);
    }
  }
  if (admin_fd >= 0) {
    std::vector<const http::ProxyContext*> views;
    for (const auto& c : contexts) {
      views.push_back(c.get());
    }
    admin = std::make_unique<Admin>(config, proxy_config, std::move(views));
    admin->SetDiscovery(discovery);
  }

  // Everything that needs root is done (listeners bound, logs open, keys read, rings set
  // up): the ready file is written, then root is given up before any request is served.
  if (!config.server.ready_file.empty() && !WriteReadyFile(config.server.ready_file, ready_lines)) {
    spdlog::error("cannot write ready_file {}: {}", config.server.ready_file, strerror(errno));
  }
  if (!config.server.user.empty()) {
    if (std::string why = DropPrivileges(config.server.user, config.server.group); !why.empty()) {
      spdlog::critical("{}", why);
      return 1;
    }
    spdlog::info("running as user {} (uid {}, gid {})", config.server.user, getuid(), getgid());
  }

  std::atomic<uint32_t> exited{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (uint32_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      auto r = ws[w]->Run();
      if (!r) {
        failed = true;
      } else if (w == 0) {
        spdlog::debug("worker 0 ring: {}", ws[w]->ring_flags_note());
      }
      exited.fetch_add(1);
    });
  }

  spdlog::info("torii serving with {} worker(s)", workers);

  // Hands every worker `next` as its new generation (requests in flight finish on theirs), and
  // worker 0 the checker and Discovery that go with it: SIGHUP, and DNS changing a pool.
  auto install = [&](std::shared_ptr<http::ProxyConfig> next, const conf::Config& conf,
                     Discovery* next_discovery, bool reload) {
    CarryOver(*proxy_config, next.get());
    proxy_config = next;
    std::shared_ptr<HealthChecker> previous_checker = std::move(checker);
    checker = std::make_shared<HealthChecker>(conf, *proxy_config);
    Discovery* previous_discovery = discovery;
    discovery = next_discovery;
    auto keys = TicketKeysOf(*proxy_config);
    for (const auto& c : contexts) {
      http::ProxyContext* ctx = c.get();
      ctx->worker().Post([ctx, cfg = proxy_config] { ctx->Reload(cfg); });
    }
    core::Worker* w0 = ws[0].get();
    http::ProxyContext* ctx0 = contexts[0].get();
    w0->Post([w0, ctx0, previous_checker, next_checker = checker.get(), retired_checkers,
              previous_discovery, next_discovery, reload, &admin, cfg = proxy_config, keys,
              ticket_keys] {
      previous_checker->Stop();
      retired_checkers->push_back(previous_checker);
      std::erase_if(*retired_checkers, [](const auto& c) { return !c->busy(); });
      if (!next_checker->empty()) {
        next_checker->Start(*ctx0);
      }
      if (previous_discovery != next_discovery) {
        previous_discovery->Stop();
        if (!next_discovery->empty()) {
          next_discovery->Start(*w0);
        }
      }
      if (admin) {
        admin->SetProxyConfig(cfg);
        admin->SetDiscovery(next_discovery);
        if (reload) {
          admin->CountReload();
        }
      }
      *ticket_keys = *keys;  // worker 0's rotation task reads it on this thread
    });
  };

  bool stopping = false;
  int exit_code = 0;
  while (exited.load() < workers) {
    timespec timeout{0, 200 * 1000 * 1000};
    siginfo_t info{};
    const int sig = sigtimedwait(&set, &info, &timeout);
    if (!stopping && discovery->TakeChanged()) {
      // DNS changed a pool's backends: the next generation, from the running config.
      const conf::Config& running = configs.empty() ? config : *configs.back();
      install(BuildProxyConfig(running, current_tls, workers, *discovery), running, discovery,
              /*reload=*/false);
    }
    if (failed.load() && !stopping) {
      spdlog::critical("a worker failed to start; stopping");
      exit_code = 1;
      stopping = true;
      for (auto& w : ws) {
        w->RequestStop();
      }
    }
    if (sig == SIGINT || sig == SIGTERM) {
      if (!stopping) {
        spdlog::info("{} received: stopping gracefully (grace {} ms)",
                     sig == SIGINT ? "SIGINT" : "SIGTERM", config.server.shutdown_grace.count());
        stopping = true;
        for (auto& w : ws) {
          w->RequestStop();
        }
      } else {
        spdlog::warn("second stop signal: exiting now");
        std::_Exit(exit_code);
      }
    } else if (sig == SIGHUP && !stopping) {
      // Hot reload: read and check everything off the workers' threads, then hand each worker
      // the new generation. Anything wrong leaves the running configuration as it is.
      const conf::Config& running = configs.empty() ? config : *configs.back();
      auto fresh = conf::LoadConfigFile(running.source);
      std::string refused;
      std::expected<TlsContexts, std::string> tls = std::unexpected(std::string());
      if (!fresh) {
        refused = fresh.error().ToString();
      } else if (std::string why = ReloadBlocker(running, *fresh); !why.empty()) {
        refused = running.source + ": " + why + " (that needs a restart)";
      } else if (tls = BuildTls(*fresh, &running, &current_tls); !tls) {
        refused = running.source + ": " + tls.error();
      }
      if (!refused.empty()) {
        spdlog::error("SIGHUP: reload refused, still serving the previous configuration: {}",
                      refused);
        continue;
      }
      auto next_discovery = std::make_unique<Discovery>(*fresh);
      if (!next_discovery->empty()) {
        if (std::string why = next_discovery->ResolveNow(); !why.empty()) {
          spdlog::error("SIGHUP: reload refused, still serving the previous configuration: {}",
                        why);
          continue;
        }
      }
      std::shared_ptr<http::ProxyConfig> next =
          BuildProxyConfig(*fresh, *tls, workers, *next_discovery);
      current_tls = std::move(*tls);
      configs.push_back(std::make_unique<conf::Config>(std::move(*fresh)));
      discoveries.push_back(std::move(next_discovery));
      install(next, *configs.back(), discoveries.back().get(), /*reload=*/true);
      spdlog::info("SIGHUP: reloaded {} ({} reload(s)); new requests use it, requests in flight "
                   "finish on the previous one", configs.back()->source, configs.size());
    } else if (sig == SIGUSR1) {
      // logrotate: the files were moved aside; write new ones at the configured paths.
      bool ok = true;
      if (log_fd > STDERR_FILENO) {
        // The workers keep writing to the same descriptor number, now the new file (dup2 is
        // atomic: no line is lost or split between the two files).
        const int fresh = OpenAccessLog(config.server.access_log);
        if (fresh < 0 || ::dup2(fresh, log_fd) < 0) {
          ok = false;
          spdlog::error("SIGUSR1: cannot reopen access_log {}: {} (still writing the old file)",
                        config.server.access_log, strerror(errno));
        }
        if (fresh >= 0) {
          ::close(fresh);
        }
      }
      if (reopen_error_log && !reopen_error_log()) {
        ok = false;
      }
      if (ok) {
        spdlog::info("SIGUSR1 received: log files reopened");
      }
    }
  }
  for (auto& t : threads) {
    t.join();
  }
  // The resolvers first (they unwatch their sockets on worker 0's ring, which must still
  // exist), then the workers: their connections' handlers hand their buffers back to the
  // contexts.
  discoveries.clear();
  for (const auto& c : contexts) {
    c->fleet().Close();
  }
  ws.clear();
  contexts.clear();
  if (failed.load()) {
    exit_code = 1;
  }
  if (!config.server.ready_file.empty()) {
    ::unlink(config.server.ready_file.c_str());
  }
  spdlog::info("torii stopped");
  return exit_code;
}

}  // namespace torii::app
