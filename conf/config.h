// conf/config.h: the configuration model torii runs from.
//
// This is plain data: the TOML loader (load.cc) fills it and validates it, app/ wires it into
// workers and sessions. Nothing here does I/O or knows about io_uring. Key names are the
// operator contract (added, never renamed); the README documents every key. Where a stage
// library has an option type or enum, the model holds it directly (balancer::Algorithm,
// tls::ServerOptions, cache::Options...), so there is one list of names per enum.
//
// The loader refuses unknown tables and keys with a clear error instead of silently ignoring
// them, so an operator never believes a protection is on when it is not.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "balancer/picker.h"
#include "cache/policy.h"
#include "ratelimit/lease.h"
#include "ratelimit/rate_table.h"
#include "tls/options.h"

namespace torii::conf {

using Duration = std::chrono::milliseconds;

// A numeric socket address ("127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0").
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;
  std::string text;  // as written by the operator, for logs and the ready file

  int family() const { return storage.ss_family; }
  uint16_t port() const;
  void set_port(uint16_t port);
  // "127.0.0.1:8080" / "[::1]:8080" with the current port.
  std::string ToString() const;
};

// Parses "IPv4:port" or "[IPv6]:port". Host names are refused (no resolver on the hot path).
// Returns nullopt and fills *why on error.
std::optional<SocketAddress> ParseSocketAddress(std::string_view text, std::string* why);

// A DNS name and a port ("app.internal:8080"), for backends found by DNS. The name is checked
// as a host name (RFC 1123 labels of letters, digits, '-' and '_' for SRV owners, at most 63
// bytes each and 253 in all) and returned lowercase without a trailing dot; `port_required`
// false accepts a bare name (port 0).
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
std::optional<HostPort> ParseHostPort(std::string_view text, bool port_required, std::string* why);

enum class LogFormat : uint8_t { kText, kJson };

// error_pages = { 404 = "errors/404.html", 503 = "errors/busy.html" }: the body of the 4xx /
// 5xx replies torii makes itself, read when the config loads (at most 64 KiB each; the type
// from the extension: .html, .json, else text/plain).
struct ErrorPage {
  uint16_t status = 0;
  std::string content_type;
  std::string body;
};

struct ServerConfig {
  uint32_t workers = 0;             // 0 = one per CPU
  std::string ready_file;           // empty = none
  std::string access_log = "-";     // "-" = stdout, "off", or a path
  LogFormat access_log_format = LogFormat::kText;
  std::string error_log = "-";      // "-" = stderr, or a path
  std::string log_level = "info";   // trace | debug | info | warn | error | critical | off
  Duration shutdown_grace{std::chrono::seconds(10)};
  uint32_t max_connections = 16384; // per worker, clients + upstreams
  // RLIMIT_NOFILE: 0 = raised at start to what workers x max_connections need (capped by the
  // hard limit, with a warning when that is short); N = set to exactly N (nginx's
  // worker_rlimit_nofile).
  uint32_t max_open_files = 0;
  // io_uring sizing (debug knobs; defaults are fine for production).
  uint32_t sq_entries = 4096;
  uint32_t cq_entries = 0;          // 0 = 4 * sq_entries
  uint32_t recv_buffers = 1024;     // provided buffers per worker (power of two)
  uint32_t recv_buffer_size = 16384;
  // Peers whose X-Forwarded-For is believed (CIDRs): the client is the right-most hop that
  // is not one of them. Empty = the socket peer is always the client.
  std::vector<std::string> trusted_proxies;
  // The latency budget of every request (phases in the access log and /metrics): a few clock
  // reads per request. Routes with server_timing take them whatever this says.
  bool phase_timing = true;
  // Path normalisation (before routing and access decisions) merges runs of '/' into one.
  bool merge_slashes = true;
  // Request IDs: the header that carries one to the backend and back to the client (kept from
  // a trusted proxy, made otherwise); "" turns IDs off. W3C traceparent continued or started.
  std::string request_id_header = "X-Request-Id";
  bool trace_context = true;
  std::vector<ErrorPage> error_pages;  // for every route (a route's own ones come first)
  // Also send RFC 7239 Forwarded (for / host / proto of torii's hop, appended to a trusted
  // proxy's elements; a client's own Forwarded is always dropped).
  bool forwarded_header = false;
  // Drop root after binding the listeners and reading the keys: run as this user (and group;
  // default the user's own). Empty: stay as started.
  std::string user;
  std::string group;
};

struct AdminConfig {
  bool enabled = false;
  SocketAddress address;
  std::vector<std::string> allow;   // CIDRs
};

struct LimitsConfig {
  uint64_t header_bytes = 16 * 1024;          // 431 (414 when the request line alone exceeds it)
  uint32_t header_count = 100;                // 431
  uint64_t body_bytes = 16ull * 1024 * 1024;  // 413
  Duration header_timeout{std::chrono::seconds(10)};  // 408, close
  Duration idle_timeout{std::chrono::seconds(60)};    // keep-alive idle, then close
  Duration body_timeout{std::chrono::seconds(60)};    // no body byte for this long: 408, close
  // Slow POST: after a 10 s grace, a request body arriving slower than this (bytes per second
  // on average since the head) gets 408 and close. 0 = off.
  uint64_t body_min_rate = 256;
  Duration body_rate_grace{std::chrono::seconds(10)};
  Duration send_timeout{std::chrono::seconds(60)};    // client not reading: close
  // An upgraded connection (WebSocket) with no byte either way for this long is closed.
  Duration tunnel_idle_timeout{std::chrono::minutes(5)};
  uint32_t keepalive_requests = 1000;         // then Connection: close
  uint32_t max_concurrent_streams = 128;      // HTTP/2: SETTINGS_MAX_CONCURRENT_STREAMS
};

struct ListenerConfig {
  std::string name;
  SocketAddress address;
  uint32_t backlog = 4096;
  // TCP Fast Open (RFC 7413): a client holding a cookie may send its first bytes (request or
  // TLS ClientHello) in the SYN, saving a round trip; this many such connections may wait
  // for their handshake at once. 0 = off. Data in a SYN can be replayed by the network: off
  // by default, as in nginx and HAProxy.
  uint32_t tcp_fastopen = 0;
  // Access: a client matching `deny`, or not matching a non-empty `allow`, gets 403.
  std::vector<std::string> allow;  // normalised CIDRs
  std::vector<std::string> deny;
  // Concurrent connections per client address and on the whole listener (all workers);
  // over either, a new connection is closed at accept. 0 = no limit.
  uint32_t max_conns_per_ip = 0;
  uint32_t max_conns = 0;
  // TLS termination (tls = { ... }); absent = plain HTTP. Certificate paths are resolved
  // against the config file's directory; the files are checked when the server context is
  // built (torii -t does that too).
  std::optional<tls::ServerOptions> tls;
  // Plain listeners: answer every request with a redirect to https://HOST/TARGET (301 for
  // GET and HEAD, 308 otherwise).
  bool http_to_https = false;
  bool h2c = false;  // plain listener: HTTP/2 with prior knowledge (the preface) is served too
  // Paths with an encoded '/' or '\' (%2F, %5C) or NUL (%00) are refused with 400 unless
  // allowed here; allowed ones are forwarded still encoded.
  bool allow_encoded_slash = false;
  bool allow_encoded_nul = false;
  // Every connection starts with a PROXY protocol header (v1 or v2), read before TLS and
  // accepted only from [server] trusted_proxies; its source is the client.
  bool proxy_protocol = false;
  // client_auth = { ca, mode, crl, verify_depth, forward } (in tls->client_auth, but for
  // `forward`): a verified client certificate goes to the backend as RFC 9440 Client-Cert and
  // Client-Cert-Chain unless forward = false.
  bool client_cert_forward = true;
};

// [rate_limit.NAME]: a request rate per key (GCRA), shared by every worker.
struct RateLimitConfig {
  using Key = ratelimit::LimitKey;
  std::string name;
  Key key = Key::kClientIp;
  uint8_t prefix_v4 = 32;      // client_ip/N: the key is the client's /N (v4) ...
  uint8_t prefix_v6 = 128;     // ... or /N (v6); "client_ip/24" sets v4 24 and v6 56 unless both are given
  std::string header;          // Key::kHeader: lowercase header name
  uint64_t rate_count = 0;     // "100/s" = 100 per 1000 ms
  Duration rate_period{1000};
  uint32_t burst = 0;          // requests allowed at once beyond the steady rate
  bool delay = false;          // mode = "delay": hold excess requests (up to burst) instead of 429
  uint32_t max_keys = 100000;  // keys tracked; idle ones are evicted first
  // Automatic bans: ban_after rejections within ban_window deny the key for ban_for (403).
  uint32_t ban_after = 0;      // 0 = no bans
  Duration ban_window{std::chrono::minutes(1)};
  Duration ban_for{std::chrono::minutes(10)};
  // store = "redis": one limit for every torii sharing [redis] (leases, ratelimit/lease.h).
  bool redis = false;
  Duration sync_interval{100};  // unspent leased requests go back after this
  using OnStoreError = ratelimit::OnStoreError;
  OnStoreError on_store_error = OnStoreError::kLocal;  // Redis slow or down
};

// [redis]: the store of fleet-wide rate limits and bans.
struct RedisConfig {
  bool enabled = false;
  SocketAddress address;  // numeric
  Duration timeout{50};   // per command; longer counts as the store down
  uint32_t pool_size = 1;  // connections per worker (a key's commands keep to one of them)
};

using Algorithm = balancer::Algorithm;  // names: balancer::AlgorithmName

struct BackendConfig {
  SocketAddress address;  // a numeric address (len 0 when `host` is set)
  // resolve = true with a name: the DNS name (lowercase, no trailing dot) and port; its A and
  // AAAA records are the backends, re-resolved at their TTL (app/discovery.h).
  std::string host;
  uint16_t port = 0;
  uint32_t weight = 1;  // 1..256
  bool backup = false;
  // "10.0.0.1:9000" or "app.internal:8080", for messages.
  std::string Label() const {
    return host.empty() ? address.ToString() : host + ":" + std::to_string(port);
  }
};

// [dns]: the resolver of the backends given by name (resolve = true) or found by SRV
// (discover), and how often it asks again.
struct DnsConfig {
  std::vector<std::string> servers;           // "IP:port"; empty: /etc/resolv.conf
  Duration timeout{std::chrono::seconds(2)};  // per attempt
  uint32_t attempts = 2;
  Duration min_ttl{std::chrono::seconds(1)};  // TTLs are clamped to [min_ttl, max_ttl]
  Duration max_ttl{std::chrono::hours(1)};
  // Start-up (and reload) fails when a name does not resolve; false: start without its
  // backends and keep asking.
  bool resolve_at_start = true;
};

// An inclusive range of HTTP status codes ("2xx" is {200, 299}).
struct StatusRange {
  uint16_t first = 0;
  uint16_t last = 0;
  bool operator==(const StatusRange&) const = default;
};

struct HealthConfig {
  // kHttp: GET path, judged by the status (over HTTP/2 for an HTTP/2 pool); kTcp: a
  // completed TCP connect passes (no TLS handshake, no request); kGrpc (HTTP/2 pools): the
  // gRPC health protocol, grpc.health.v1.Health/Check for `service`, passes when SERVING.
  enum class Type : uint8_t { kHttp, kTcp, kGrpc };
  Type type = Type::kHttp;
  std::string path = "/";
  std::string service;  // kGrpc: the service asked about ("" = the server as a whole)
  std::string host;  // Host header of the check; empty = the backend's address
  Duration interval{std::chrono::seconds(2)};
  Duration timeout{std::chrono::seconds(1)};
  uint32_t rise = 2;
  uint32_t fall = 3;
  std::vector<StatusRange> expect_status{{200, 399}};
};

// ip_hash's key: the client address (default), or a request header or cookie (falling back to
// the client address when the request has none).
struct HashKeyConfig {
  using Kind = balancer::HashKey;
  Kind kind = Kind::kClientIp;
  std::string name;  // header (lowercase) or cookie name
};

struct PoolConfig {
  std::string name;
  Algorithm algorithm = Algorithm::kRoundRobin;
  std::vector<BackendConfig> backends;
  // discover = { srv = "_http._tcp.app.internal" }: backends from these SRV records (targets,
  // ports, weights; the lowest priority serves, each higher one a further backup tier), besides
  // `backends`.
  std::string discover_srv;
  // A backend DNS adds while torii runs gets its full share of requests over this long (0 = at
  // once). round_robin and least_conn only.
  Duration slow_start{0};
  // Some backends come from DNS (a resolve = true name, or discover).
  bool dynamic() const {
    if (!discover_srv.empty()) {
      return true;
    }
    for (const BackendConfig& b : backends) {
      if (!b.host.empty()) {
        return true;
      }
    }
    return false;
  }
  std::optional<HealthConfig> health;
  Duration connect_timeout{std::chrono::seconds(3)};
  Duration response_timeout{std::chrono::seconds(60)};  // first byte of the response: 504
  Duration keepalive_timeout{std::chrono::seconds(30)}; // idle pooled upstream connection
  uint32_t keepalive = 64;  // idle upstream connections kept per backend per worker
  uint32_t retries = 1;     // extra attempts on another backend (safe cases only)
  HashKeyConfig hash_key;   // ip_hash only
  // Passive health: max_fails failures within fail_window eject a backend for fail_window,
  // doubling per consecutive ejection up to max_eject. max_fails = 0 turns it off.
  uint32_t max_fails = 3;
  Duration fail_window{std::chrono::seconds(10)};
  Duration max_eject{std::chrono::minutes(5)};
  std::vector<StatusRange> fail_status;  // responses that count as failures (default: none)
  // At most max_conns requests in flight per backend (all workers together; 0 = no limit).
  // A request finding every eligible backend full waits up to queue_timeout, then 503.
  uint32_t max_conns = 0;
  Duration queue_timeout{std::chrono::seconds(5)};
  // TLS to the backends (tls = { verify, ca, sni }); absent = plain HTTP.
  std::optional<tls::ClientOptions> tls;
  // send_proxy = "v1" | "v2": a PROXY protocol header on each backend connection (0 = none).
  uint8_t send_proxy = 0;
  // protocol = "http/1.1" (one request per connection at a time, pooled), "h2" (over tls,
  // ALPN h2) or "h2c" (prior knowledge): HTTP/2 connections each carry up to max_streams
  // requests at once (and no more than the backend's SETTINGS_MAX_CONCURRENT_STREAMS).
  enum class Protocol : uint8_t { kHttp11, kH2, kH2c };
  Protocol protocol = Protocol::kHttp11;
  uint32_t max_streams = 128;
  // TCP Fast Open to the backends (HTTP/1.1 pools): a new connection carries the request (or
  // the ClientHello) in its SYN once the kernel holds the backend's cookie.
  bool tcp_fastopen = false;
  // Response bodies of at least splice_min bytes (Content-Length) from an HTTP/1.1 backend to
  // a plain HTTP/1.1 client, sent as they are (not compressed, not stored), go from socket to
  // socket through a pipe (splice(2)) instead of through torii's memory. 0 = never.
  uint64_t splice_min = 64 * 1024;
};

// request_headers / response_headers = { set = {...}, add = {...}, remove = [...] }.
struct HeaderRewrite {
  std::vector<std::pair<std::string, std::string>> set;  // replace any field of that name
  std::vector<std::pair<std::string, std::string>> add;  // add next to the ones there
  std::vector<std::string> remove;                       // lowercase names dropped
};

// A request field a route matches on: headers = [{ name = "X-Canary", value = "1" }], or
// present = true / false, or regex = "..." (RE2, the whole value); the same for query = [...]
// (parameters of the query string, values percent-decoded).
struct FieldMatch {
  enum class Kind : uint8_t { kExact, kPresent, kAbsent, kRegex };
  std::string name;  // headers: lowercase; query: as written
  Kind kind = Kind::kPresent;
  std::string value;  // kExact: the value; kRegex: the pattern
};

// auth = { users_file = "htpasswd", realm = "...", forward = false }: HTTP Basic
// authentication (http/basic_auth.h). The users are read by the loader (and again on reload).
struct BasicAuthConfig {
  std::string users_file;  // resolved against the config file's directory
  std::string realm = "torii";
  bool forward = false;  // pass the Authorization field on to the backend
  std::vector<std::pair<std::string, std::string>> users;  // (name, libcrypt hash)
};

struct RouteConfig {
  std::string host = "*";         // exact, "*.example.com", or "*"
  // The path: a prefix (default), or path_exact, or path_regex (RE2 against the whole
  // normalised path, query excluded). With the matchers below, all must hold.
  std::string path_prefix = "/";
  std::string path_exact;
  std::string path_regex;
  std::vector<std::string> methods;  // uppercase; empty = any
  std::vector<FieldMatch> headers;
  std::vector<FieldMatch> query;
  // split = [{ pool = "v1", weight = 95 }, { pool = "v2", weight = 5 }] instead of pool: each
  // request goes to one of them by weight; split_sticky keeps a client on one (by its
  // address); split_by = "header:NAME" / "cookie:NAME" sends a request whose field names one
  // of the pools there (canary by header). `pool` then holds the first one's name.
  struct SplitTarget {
    std::string pool;
    uint32_t pool_index = 0;
    uint32_t weight = 1;
  };
  std::vector<SplitTarget> split;
  bool split_sticky = false;
  std::vector<ErrorPage> error_pages;  // this route's, before [server] error_pages
  // Override the pool's connect_timeout / response_timeout for this route's requests.
  std::optional<Duration> connect_timeout;
  std::optional<Duration> response_timeout;
  std::optional<HashKeyConfig> split_by;
  // return = { status = 403, body = "..." }: the route answers itself with that status and
  // text body (no pool).
  uint16_t return_status = 0;
  std::string return_body;
  std::string pool;               // name of a [[pool]]; empty for a redirect route
  uint32_t pool_index = 0;        // resolved by the loader
  // A redirect route answers itself: Location = redirect, plus the request's path and query
  // when redirect_prefix (HAProxy's "redirect prefix", nginx's "return 301 https://x$request_uri").
  std::string redirect;
  bool redirect_prefix = false;
  uint16_t redirect_status = 302;  // 301, 302, 303, 307 or 308
  bool compress = false;
  bool server_timing = false;
  std::vector<std::pair<std::string, std::string>> add_headers;
  std::string rate_limit;          // name of a [rate_limit.*] table, or empty
  uint32_t rate_limit_index = 0;   // resolved by the loader
  std::string cache;               // name of a [cache.*] table, or empty
  uint32_t cache_index = 0;        // resolved by the loader
  std::vector<std::string> allow;  // normalised CIDRs (403 as for listeners)
  std::vector<std::string> deny;
  // Rewrites toward the backend (after routing and access decisions, which use the client's
  // normalised request): the path's leading strip_prefix removed, or the matched path_prefix
  // replaced by replace_prefix; the Host sent; request and response header fields.
  std::string strip_prefix;
  std::optional<std::string> replace_prefix;
  // Or regex_rewrite = { pattern, substitution }: RE2 over the whole path (query excluded),
  // \1..\9 in the substitution naming its groups (Envoy's regex_rewrite).
  std::string rewrite_pattern;
  std::string rewrite_substitution;
  std::string host_rewrite;
  // The Upgrade protocols (lowercase) tunnelled to the backend after its 101 (RFC 9110 §7.8);
  // a request asking for another one is forwarded without the upgrade. [] = none.
  std::vector<std::string> upgrades{"websocket"};
  // Trailer fields (lowercase) passed on after a chunked body or as HTTP/2 trailing HEADERS,
  // both ways; any other trailer is dropped (never merged into the head), and so are fields
  // that belong in a head (framing, routing, authentication, caching, content description) even if
  // listed.
  std::vector<std::string> trailers{"grpc-status", "grpc-message", "grpc-status-details-bin"};
  HeaderRewrite request_headers;
  HeaderRewrite response_headers;
  std::optional<BasicAuthConfig> auth;
  // Mutual TLS per route: a verified client certificate required (403 otherwise), and when
  // client_cert_allow is not empty, one whose subject CN or a SAN is listed.
  bool require_client_cert = false;
  std::vector<std::string> client_cert_allow;
};

// [compression]: how routes with compress = true encode responses.
struct CompressionConfig {
  // Server preference among the codings the client accepts: "br", "zstd", "gzip".
  std::vector<std::string> algorithms{"br", "zstd", "gzip"};
  uint64_t min_bytes = 256;        // smaller bodies (by Content-Length) are sent as they are
  std::vector<std::string> types;  // Content-Type patterns ("text/*"); empty = the default list
  int gzip_level = 5;              // 1..9
  int br_level = 4;                // 0..11
  int zstd_level = 3;              // 1..19
  // Decode a backend's gzip/br/zstd body for a client that does not accept that coding.
  bool decompress = false;
};

// [cache.NAME]: an RFC 9111 shared response cache, used by routes with cache = "NAME". One
// store per table, shared by every worker.
struct CacheConfig {
  std::string name;
  uint64_t memory = 256ull * 1024 * 1024;  // bound on stored bytes (bodies, headers, keys)
  uint64_t max_object = 8ull * 1024 * 1024;  // larger responses pass through, not stored
  // 404 / 410 without freshness information are stored this long (0 = not stored).
  Duration negative_ttl{0};
  // Request coalescing: how long a request waits for another request's fetch of the same URL
  // before it goes to the backend itself.
  Duration lock_timeout{std::chrono::seconds(5)};
  bool key_query = true;                 // the query string is part of the key
  std::vector<std::string> key_headers;  // lowercase request headers added to the key
  std::vector<std::string> purge_allow;  // CIDRs allowed to send PURGE (empty: nobody)
  // Responses with Set-Cookie: set_cookie = "strip" | "bypass" | "store" (cache/policy.h).
  cache::Options::SetCookie set_cookie = cache::Options::SetCookie::kStrip;
  // Targeted Cache-Control fields (RFC 9213), lowercase, first found wins.
  std::vector<std::string> targeted{"cdn-cache-control"};
  // disk = { path = "...", size = "10GiB" }: the disk tier (cache/disk.h); empty path = none.
  std::string disk_path;
  uint64_t disk_size = 0;
};

struct Config {
  std::string source;  // file the config came from (or a label)
  ServerConfig server;
  AdminConfig admin;
  LimitsConfig limits;
  std::vector<ListenerConfig> listeners;
  std::vector<PoolConfig> pools;
  std::vector<RouteConfig> routes;
  std::vector<RateLimitConfig> rate_limits;
  std::vector<CacheConfig> caches;
  CompressionConfig compression;
  DnsConfig dns;
  RedisConfig redis;
};

}  // namespace torii::conf
