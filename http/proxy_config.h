// http/proxy_config.h: what the proxy session needs to know, as plain data.
//
// http/ does not read the config file: app/ translates conf::Config into this (conf/ is wired
// by app/; the data plane sees only its own and the stage libraries' option types). One
// ProxyConfig is immutable once built and shared by every worker through a shared_ptr, so a
// reload can swap in a new one while requests in flight finish on the old.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "balancer/health.h"
#include "balancer/load.h"
#include "balancer/picker.h"
#include "balancer/slots.h"
#include "cache/disk.h"
#include "cache/policy.h"
#include "cache/store.h"
#include "http/basic_auth.h"
#include "http/codec/codec.h"
#include "http/counter_grid.h"
#include "http/path.h"
#include "ratelimit/ban_list.h"
#include "ratelimit/client_ip.h"
#include "ratelimit/conn_limit.h"
#include "ratelimit/hash.h"
#include "ratelimit/ip.h"
#include "ratelimit/lease.h"
#include "ratelimit/rate_table.h"
#include "redis/client.h"
#include "tls/client_context.h"
#include "tls/server_context.h"

namespace re2 {
class RE2;
}

namespace torii::http {

struct BackendTarget {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string name;  // "127.0.0.1:9001": logs and metrics
  std::string host;  // the DNS name it was found by ("" = listed by address): SNI, check Host
  // When DNS added it while torii ran (monotonic ms; 0 = there from the start): the pool's
  // slow_start ramps its share from then.
  uint64_t added_ms = 0;
  uint32_t weight = 1;
  // 0: a primary; 1, 2, ...: a backup tier (`backup = true` is 1; SRV priorities rank from 0),
  // serving only when no backend of a lower tier can (balancer::BackendSpec::tier).
  uint8_t tier = 0;
};

struct PoolSpec {
  std::string name;
  balancer::Algorithm algorithm = balancer::Algorithm::kRoundRobin;
  std::vector<BackendTarget> backends;
  uint64_t connect_timeout_ms = 3000;
  uint64_t response_timeout_ms = 60000;
  uint64_t keepalive_timeout_ms = 30000;
  uint32_t keepalive = 64;  // idle upstream connections kept per backend per worker
  uint32_t retries = 1;
  // A backend DNS adds takes part in a pick with the probability elapsed / slow_start_ms (at
  // least 1/20) until slow_start_ms has passed (0 = full share at once).
  uint64_t slow_start_ms = 0;
  // ip_hash: what to hash (the client address when the header or cookie is absent).
  using HashKey = balancer::HashKey;
  bool needs_key_hash = false;  // the algorithm reads Pick()'s key_hash (ip_hash)
  HashKey hash_key = HashKey::kClientIp;
  std::string hash_key_name;  // lowercase header name, or cookie name
  // Responses whose status counts as a passive health failure (inclusive ranges).
  std::vector<std::pair<uint16_t, uint16_t>> fail_status;
  // Process-wide state shared by every worker (the config itself stays immutable): the
  // backends' health (written by the checker and by passive observations) and least_conn's
  // active-request counts (null for the other algorithms).
  std::shared_ptr<balancer::PoolHealth> health;
  std::shared_ptr<balancer::LoadCounters> load;
  // max_conns: requests in flight per backend across workers (slots non-null when > 0).
  uint32_t max_conns = 0;
  uint64_t queue_timeout_ms = 5000;
  std::shared_ptr<balancer::BackendSlots> slots;
  // TLS to the backends (null: plain): the pool's context, and per backend the name to send
  // as SNI and verify, and the session cache that lets pooled connections resume.
  std::shared_ptr<const tls::ClientContext> tls;
  std::vector<std::string> tls_names;
  std::vector<std::shared_ptr<tls::ClientSessionCache>> tls_sessions;
  // A PROXY protocol header (1 or 2; 0 = none) opens each backend connection. It names one
  // client, so such connections are never pooled for another request.
  uint8_t send_proxy = 0;
  // TCP Fast Open on new backend connections (the request rides in the SYN).
  bool tcp_fastopen = false;
  // Bodies of at least this many bytes go to plain HTTP/1.1 clients by splice (0 = never).
  uint64_t splice_min = 64 * 1024;
  // HTTP/2 to the backends (h2 over tls, or h2c): multiplexed connections, each carrying up to
  // max_streams requests at once (h2_upstream.h); false: HTTP/1.1, one request at a time.
  bool h2 = false;
  uint32_t max_streams = 128;
  // Per backend, per worker: kSelected (requests sent to it), kResponses (response heads
  // received), kTtfbUs (their time to first byte, summed, µs; with phase_timing).
  enum BackendColumn : uint32_t { kSelected, kResponses, kTtfbUs, kBackendColumns };
  std::shared_ptr<CounterGrid> counters;  // column = backend * kBackendColumns + BackendColumn
  // The settings the shared state above depends on, backends aside: hot reload keeps that
  // state when the new config's pool of the same name has equal ones (all of it when the
  // backends are the same too, else each staying address's health and TLS sessions).
  auto carry_key() const {
    return std::tuple(algorithm, max_conns, health->policy(), tls != nullptr, h2);
  }
};

// The body of a 4xx/5xx reply torii makes itself ([server] / [[route]] error_pages).
struct ErrorPage {
  uint16_t status = 0;
  std::string content_type;
  std::string body;
};

// A request header or query parameter a route matches on (router.h).
struct FieldMatchSpec {
  enum class Kind : uint8_t { kExact, kPresent, kAbsent, kRegex };
  std::string name;  // headers: lowercase
  Kind kind = Kind::kPresent;
  std::string value;
  std::shared_ptr<const re2::RE2> regex;  // kRegex
};

struct RouteSpec {
  std::string host = "*";  // lowercase: exact, "*.suffix" or "*"
  std::string path_prefix = "/";
  std::string path_exact;                      // instead of path_prefix when not empty
  std::shared_ptr<const re2::RE2> path_regex;  // instead of both when set
  uint64_t methods = 0;                        // bit per llhttp method id; 0 = any
  std::vector<FieldMatchSpec> headers;
  std::vector<FieldMatchSpec> query;
  // Weighted split over pools instead of `pool` (empty: `pool`): split_total is the sum of
  // the weights; split_sticky picks by the client's address; split_by names a request header
  // or cookie whose value, when it is one of the split's pool names, picks that pool.
  struct SplitTarget {
    uint32_t pool = 0;
    uint32_t weight = 1;
  };
  std::vector<SplitTarget> split;
  uint64_t split_total = 0;
  // The pool's timeouts for this route's requests (0 = the pool's).
  uint64_t connect_timeout_ms = 0;
  uint64_t response_timeout_ms = 0;
  bool split_sticky = false;
  PoolSpec::HashKey split_by = PoolSpec::HashKey::kClientIp;  // kClientIp: no split_by
  std::string split_by_name;                                  // header (lowercase) or cookie name
  std::vector<ErrorPage> error_pages;  // looked up before ProxyConfig::error_pages
  // A return route answers itself: this status and text body (0 = not a return route).
  uint16_t return_status = 0;
  std::string return_body;
  uint32_t pool = 0;
  // A redirect route answers itself with redirect_status and Location = redirect (plus the
  // request target when redirect_prefix); `pool` is unused then.
  std::string redirect;
  bool redirect_prefix = false;
  uint16_t redirect_status = 0;  // 0 = not a redirect route
  bool server_timing = false;
  bool compress = false;  // encode responses per ProxyConfig::compression
  // Pre-serialised "Name: value\r\n" lines (validated by the config loader).
  std::string add_headers;
  // Access: deny wins; a non-empty allow admits only its members (403 otherwise).
  ratelimit::IpList allow;
  ratelimit::IpList deny;
  int32_t rate_limit = -1;  // index into ProxyConfig::rate_limits, or -1
  int32_t cache = -1;       // index into ProxyConfig::caches, or -1
  // Per worker: requests routed here, and for a route with a cache what it did with them.
  enum Column : uint32_t {
    kRequests,
    kCacheHits,         // answered from the store (fresh, collapsed, stale-while-revalidate)
    kCacheMisses,       // forwarded: nothing usable stored
    kCacheRevalidated,  // a stale entry refreshed by a 304
    kCacheStale,        // served stale because the backend failed (stale-if-error)
    kCacheBytes,        // body bytes sent from the store
    kColumns
  };
  std::shared_ptr<CounterGrid> requests;
  // Rewrites toward the backend (RewriteTarget in router.h; validated by the config loader).
  std::string strip_prefix;
  std::string replace_prefix;
  bool has_replace_prefix = false;
  // regex_rewrite: the path (without the query) through RE2::Replace when it matches.
  std::shared_ptr<const re2::RE2> rewrite_regex;
  std::string rewrite_substitution;
  std::string host_rewrite;  // the Host the backend gets ("" = the client's)
  // Mutual TLS: a verified client certificate (listed in client_cert_allow, by subject CN or
  // SAN, when that is not empty) or 403.
  bool require_client_cert = false;
  std::vector<std::string> client_cert_allow;
  // HTTP Basic authentication (null: none); its verdicts are shared by every worker.
  std::shared_ptr<BasicAuth> auth;
  // Upgrade protocols tunnelled after the backend's 101 (lowercase; empty: none).
  std::vector<std::string> upgrades;
  // Trailer fields passed on both ways (lowercase), those IsForwardedTrailer allows.
  std::vector<std::string> trailers;
  // Client fields not copied to the backend (lowercase): the server-wide replaced ones
  // (request ID, traceparent) plus this route's request_headers set / remove.
  std::vector<std::string> upstream_remove;
  std::string upstream_add;  // "Name: value\r\n" lines: request_headers set and add
  // Backend response fields dropped (lowercase): response_headers set / remove. The set and
  // add values are in add_headers.
  std::vector<std::string> response_remove;
};

struct ListenerSpec {
  std::string name;
  ratelimit::IpList allow;
  ratelimit::IpList deny;
  // Connection limits, counted across workers; a connection over either is closed at accept.
  uint32_t max_conns_per_ip = 0;
  std::shared_ptr<ratelimit::ConnLimiter> per_ip;  // set when max_conns_per_ip > 0
  uint32_t max_conns = 0;
  std::shared_ptr<std::atomic<uint32_t>> conns;    // set when max_conns > 0
  // TLS termination (null: plain HTTP). One context per listener, shared by every worker.
  std::shared_ptr<const tls::ServerContext> tls;
  bool http_to_https = false;  // plain listener: every request is redirected to https://
  bool h2c = false;            // plain listener: HTTP/2 with prior knowledge too
  // Path normalisation before routing ([server] merge_slashes; the listener's
  // allow_encoded_slash / allow_encoded_nul).
  PathOptions path;
  bool proxy_protocol = false;  // a PROXY header first, from trusted_proxies only
  bool client_auth = false;     // tls asks clients for certificates (client_auth)
  bool client_cert_forward = true;  // RFC 9440 Client-Cert(-Chain) to the backend
  const char* scheme() const { return tls ? "https" : "http"; }
};

// One [rate_limit.NAME]: the shared table (and bans) plus how to key a request.
struct RateLimitSpec {
  using Key = ratelimit::LimitKey;
  std::string name;
  Key key = Key::kClientIp;
  uint8_t prefix_v4 = 32;
  uint8_t prefix_v6 = 128;
  std::string header;  // lowercase
  uint64_t window_s = 1;  // the rate's period in seconds (RateLimit-Policy w=)
  uint64_t quota = 0;     // requests per window (RateLimit-Policy q=)
  std::shared_ptr<ratelimit::RateTable> table;
  std::shared_ptr<ratelimit::BanList> bans;  // null when ban_after = 0
  uint64_t ban_for_s = 0;
  uint32_t ban_after = 0;
  // store = "redis": one limit for the whole fleet, spent from leases of a budget kept in Redis
  // (ratelimit/lease.h; the requests to Redis go through each worker's http/fleet_limits.h).
  // -1: this process only.
  int32_t fleet = -1;
  std::shared_ptr<ratelimit::LeaseTable> leases;  // this process's leases (kept by a reload)
  ratelimit::LeaseSpec lease;
  std::string interval_us;  // the GCRA's T and tau for the store, in µs as decimal text
  std::string tolerance_us;
  using OnStoreError = ratelimit::OnStoreError;
  OnStoreError on_store_error = OnStoreError::kLocal;
  // Every setting of the table, its bans and leases: hot reload keeps them when equal.
  auto carry_key() const {
    return std::tuple(key, prefix_v4, prefix_v6, std::string_view(header), table->spec(),
                      bans ? bans->spec() : ratelimit::BanSpec{}, fleet >= 0, lease,
                      on_store_error);
  }
};

struct ProxyLimits {
  uint32_t header_bytes = 16 * 1024;
  uint32_t header_count = 100;
  uint64_t body_bytes = 16ull * 1024 * 1024;
  uint64_t header_timeout_ms = 10000;
  uint64_t idle_timeout_ms = 60000;
  uint64_t body_timeout_ms = 60000;
  uint64_t body_min_rate = 256;        // bytes/s on average after body_grace_ms; 0 = off
  uint64_t body_grace_ms = 10000;
  uint64_t send_timeout_ms = 60000;
  uint64_t tunnel_idle_timeout_ms = 300000;
  uint32_t keepalive_requests = 1000;
  uint32_t max_concurrent_streams = 128;  // HTTP/2 streams open at once per connection
};

struct CompressionSpec {
  std::vector<codec::Coding> order{codec::Coding::kBrotli, codec::Coding::kZstd,
                                   codec::Coding::kGzip};
  uint64_t min_bytes = 256;
  std::vector<std::string> types;  // Content-Type patterns
  int level[4] = {0, 5, 4, 3};     // by codec::Coding
  bool decompress = false;
  uint64_t max_decoded = 1ull << 30;  // a backend's compressed body may expand to this much
};

// One [cache.NAME]: the shared store and how requests are keyed and answered from it.
struct CacheSpec {
  std::string name;
  std::shared_ptr<cache::Store> store;
  cache::StoreOptions store_options;  // what `store` was made with (hot reload keeps it when equal)
  // The disk tier (cache/disk.h), when configured: opened once (OpenDiskTiers, app/), kept by
  // every reload that keeps its path.
  cache::DiskOptions disk_options;
  std::shared_ptr<cache::DiskStore> disk;
  cache::Options policy;
  uint64_t lock_timeout_ms = 5000;       // request coalescing: the longest a request waits
  bool key_query = true;                 // the query string is part of the key
  std::vector<std::string> key_headers;  // lowercase request headers appended to the key
  ratelimit::IpList purge_allow;         // who may PURGE (empty: nobody)
};

struct ProxyConfig {
  ProxyLimits limits;
  std::vector<PoolSpec> pools;
  std::vector<RouteSpec> routes;
  std::vector<ListenerSpec> listeners;  // by listener index
  std::vector<RateLimitSpec> rate_limits;
  // [redis]: the store of the fleet-wide limits (rate_limits with fleet >= 0; fleet_limits of
  // them). Each worker opens its own connection when it first needs one.
  bool redis = false;
  redis::ClientOptions redis_options;
  uint32_t redis_pool_size = 1;  // connections per worker for the limits
  uint32_t fleet_limits = 0;
  // Peers whose X-Forwarded-For names the client (empty: the peer is the client).
  ratelimit::IpList trusted_proxies;
  CompressionSpec compression;
  std::vector<CacheSpec> caches;
  // Sessions take phase timestamps: [server] phase_timing, or some route has server_timing.
  bool timing = false;
  // Some route tunnels upgrades: HTTP/2 clients are offered extended CONNECT (RFC 8441).
  bool upgrades = false;
  // Request IDs ([server] request_id_header; empty: off) and W3C trace context
  // ([server] trace_context): the client fields the exchange replaces (lowercase names).
  std::string request_id_header;
  bool trace_context = false;
  std::vector<ErrorPage> error_pages;  // [server] error_pages
  bool forwarded_header = false;       // [server] forwarded_header (RFC 7239)
  std::vector<std::string> replaced_request_fields;
};

}  // namespace torii::http
