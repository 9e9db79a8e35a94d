// app/report.cc: see report.h.
#include "app/report.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <tuple>
#include <variant>

#include "balancer/picker.h"
#include "core/worker.h"

namespace torii::app {

namespace {

// One reading: absent (not applicable to this row: no cache, no in-flight count), a count, a
// signed count, a real number or a flag.
using Value = std::variant<std::monostate, uint64_t, int64_t, double, bool>;

// A number torii reports, described once. `name` is its Prometheus family ("" = status.json
// only), with `labels` beside the row's own; `json` is its key in the row's status.json object
// ("group.key" nests it in an object "group", written when it holds a value; "" = /metrics
// only). `read` takes the row the table is about.
template <class Row>
struct Metric {
  std::string_view name;
  std::string_view type;  // "counter" | "gauge"
  std::string_view labels;
  std::string_view help;
  std::string_view json;
  Value (*read)(const Row&);
};

// A counter or gauge every worker keeps: its value is the sum over the workers (per_worker:
// /metrics shows each worker's, labelled worker="N").
struct WorkerMetric {
  std::string_view name;
  std::string_view type;
  std::string_view labels;
  std::string_view help;
  std::string_view json;
  uint64_t (*read)(const http::ProxyContext&);
  bool per_worker = false;
};

// A label value for the Prometheus text format: backslash, quote and newline escaped.
std::string Label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// A JSON string (the values here are names and addresses, but escape anyway).
std::string Json(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string PromValue(const Value& v) {
  if (const auto* u = std::get_if<uint64_t>(&v)) {
    return std::to_string(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&v)) {
    return std::to_string(*i);
  }
  if (const auto* d = std::get_if<double>(&v)) {
    return Fixed(*d, 6);
  }
  return std::get<bool>(v) ? "1" : "0";
}

std::string JsonValue(const Value& v) {
  if (const auto* u = std::get_if<uint64_t>(&v)) {
    return std::to_string(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&v)) {
    return std::to_string(*i);
  }
  if (const auto* d = std::get_if<double>(&v)) {
    return Fixed(*d, 3);
  }
  return std::get<bool>(v) ? "true" : "false";
}

std::string JoinLabels(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) {
    return std::string(a.empty() ? b : a);
  }
  return std::string(a) + "," + std::string(b);
}

class PromWriter {
 public:
  // HELP and TYPE, once per family: a table lists a family's entries one after another.
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    if (name == last_family_) {
      return;
    }
    last_family_ = name;
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ");
    out_.append(name).append(" ").append(type).append("\n");
  }
  void Sample(std::string_view name, std::string_view labels, std::string_view value) {
    out_ += name;
    if (!labels.empty()) {
      out_.append("{").append(labels).append("}");
    }
    out_.append(" ").append(value).append("\n");
  }
  // A histogram from its non-cumulative bucket counts (`bounds_us` in µs; one more count than
  // bounds, the last for +Inf) and the sum of the observations in µs; seconds on the wire.
  void Histogram(std::string_view name, std::string_view labels,
                 std::span<const uint64_t> bounds_us, std::span<const uint64_t> counts,
                 uint64_t sum_us) {
    const std::string bucket = std::string(name) + "_bucket";
    uint64_t cumulative = 0;
    for (size_t b = 0; b < counts.size(); ++b) {
      cumulative += counts[b];
      std::string le = "+Inf";
      if (b < bounds_us.size()) {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(bounds_us[b]) / 1e6);
        le = buf;
      }
      Sample(bucket, JoinLabels(labels, "le=\"" + le + "\""), std::to_string(cumulative));
    }
    Sample(std::string(name) + "_sum", labels, Fixed(static_cast<double>(sum_us) / 1e6, 6));
    Sample(std::string(name) + "_count", labels, std::to_string(cumulative));
  }
  // Every family of `table`, a sample per row that has a value.
  template <class Row, size_t N, class LabelsFn>
  void Table(const Metric<Row> (&table)[N], std::span<const Row> rows, LabelsFn labels_of) {
    for (const Metric<Row>& m : table) {
      if (m.name.empty()) {
        continue;
      }
      Family(m.name, m.type, m.help);
      for (const Row& row : rows) {
        const Value v = m.read(row);
        if (!std::holds_alternative<std::monostate>(v)) {
          Sample(m.name, JoinLabels(labels_of(row), m.labels), PromValue(v));
        }
      }
    }
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
  std::string_view last_family_;
};

// One status.json member: its key (see Metric::json) and value.
struct Member {
  std::string_view json;
  Value value;
};

// The members, comma-separated (no braces): plain keys first, then each "group.key" group as an
// object holding its keys, in order of appearance. Absent values are left out (a group with
// none is not written).
std::string JsonMembers(std::span<const Member> members) {
  std::string out;
  std::vector<std::pair<std::string_view, std::string>> groups;
  auto add = [](std::string* to, std::string_view key, const std::string& value) {
    to->append(to->empty() ? "" : ",").append("\"").append(key).append("\":").append(value);
  };
  for (const Member& m : members) {
    if (std::holds_alternative<std::monostate>(m.value)) {
      continue;
    }
    const size_t dot = m.json.find('.');
    if (dot == std::string_view::npos) {
      add(&out, m.json, JsonValue(m.value));
      continue;
    }
    const std::string_view group = m.json.substr(0, dot);
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == group; });
    if (it == groups.end()) {
      it = groups.insert(groups.end(), {group, std::string()});
    }
    add(&it->second, m.json.substr(dot + 1), JsonValue(m.value));
  }
  for (const auto& [group, inner] : groups) {
    add(&out, group, "{" + inner + "}");
  }
  return out;
}

// The status.json members of `row`: every metric of `table` with a key.
template <class Row, size_t N>
std::string JsonMembers(const Metric<Row> (&table)[N], const Row& row) {
  std::vector<Member> members;
  for (const Metric<Row>& m : table) {
    if (!m.json.empty()) {
      members.push_back(Member{m.json, m.read(row)});
    }
  }
  return JsonMembers(members);
}

// ---- The workers' counters, summed ----

constexpr WorkerMetric kWorkerMetrics[] = {
    {"torii_requests_total", "counter", "", "Requests received (complete heads).", "requests",
     [](const http::ProxyContext& c) { return c.stats().requests.get(); }},
    {"torii_responses_total", "counter", "class=\"aborted\"",
     "Responses by status class (aborted: none sent).", "responses.aborted",
     [](const http::ProxyContext& c) { return c.stats().responses_by_class[0].get(); }},
    {"torii_responses_total", "counter", "class=\"1xx\"", "", "responses.1xx",
     [](const http::ProxyContext& c) { return c.stats().responses_by_class[1].get(); }},
    {"torii_responses_total", "counter", "class=\"2xx\"", "", "responses.2xx",
     [](const http::ProxyContext& c) { return c.stats().responses_by_class[2].get(); }},
    {"torii_responses_total", "counter", "class=\"3xx\"", "", "responses.3xx",
     [](const http::ProxyContext& c) { return c.stats().responses_by_class[3].get(); }},
    {"torii_responses_total", "counter", "class=\"4xx\"", "", "responses.4xx",
     [](const http::ProxyContext& c) { return c.stats().responses_by_class[4].get(); }},
    {"torii_responses_total", "counter", "class=\"5xx\"", "", "responses.5xx",
     [](const http::ProxyContext& c) { return c.stats().responses_by_class[5].get(); }},
    {"torii_response_body_bytes_total", "counter", "", "Response body bytes sent to clients.", "",
     [](const http::ProxyContext& c) { return c.stats().bytes_sent.get(); }},
    {"torii_connections", "gauge", "", "Open connections (clients and upstreams) per worker.",
     "connections",
     [](const http::ProxyContext& c) { return c.worker().published().conns_live.get(); },
     /*per_worker=*/true},
    {"torii_accepted_total", "counter", "", "Client connections accepted.", "",
     [](const http::ProxyContext& c) { return c.worker().published().accepted.get(); }},
    {"torii_idle_evicted_total", "counter", "",
     "Idle connections closed to admit a client at max_connections.", "",
     [](const http::ProxyContext& c) { return c.worker().published().idle_evicted.get(); }},
    {"torii_upstream_connects_total", "counter", "", "Upstream connections opened.", "",
     [](const http::ProxyContext& c) { return c.stats().upstream_connects.get(); }},
    {"torii_upstream_reused_total", "counter", "", "Requests sent on a pooled upstream connection.",
     "", [](const http::ProxyContext& c) { return c.stats().upstream_reused.get(); }},
    {"torii_upstream_connect_failures_total", "counter", "",
     "Upstream connects refused or timed out.", "",
     [](const http::ProxyContext& c) { return c.stats().upstream_connect_failures.get(); }},
    {"torii_retries_total", "counter", "",
     "Requests retried on another backend or a fresh connection.", "",
     [](const http::ProxyContext& c) { return c.stats().retries.get(); }},
    {"torii_aborted_total", "counter", "", "Client connections cut mid-response.", "",
     [](const http::ProxyContext& c) { return c.stats().aborted.get(); }},
    {"torii_connections_refused_total", "counter", "",
     "Connections closed at accept by max_conns limits.", "",
     [](const http::ProxyContext& c) { return c.stats().conns_refused.get(); }},
    {"torii_denied_total", "counter", "", "Requests answered 403 by an access list or a ban.",
     "denied", [](const http::ProxyContext& c) { return c.stats().denied.get(); }},
    {"torii_rate_limited_total", "counter", "", "Requests answered 429 by a rate limit.",
     "rate_limited", [](const http::ProxyContext& c) { return c.stats().rate_limited.get(); }},
    {"torii_bans_total", "counter", "", "Clients banned after repeated rate-limit rejections.", "",
     [](const http::ProxyContext& c) { return c.stats().bans.get(); }},
    {"torii_queued_total", "counter", "", "Requests that waited for a backend slot (max_conns).",
     "", [](const http::ProxyContext& c) { return c.stats().queued.get(); }},
    {"torii_redis_requests_total", "counter", "",
     "Lease requests of fleet-wide rate limits sent to Redis.", "",
     [](const http::ProxyContext& c) { return c.fleet().asks.get(); }},
    {"torii_redis_errors_total", "counter", "",
     "Lease requests that failed (Redis down, slow or an error reply).", "",
     [](const http::ProxyContext& c) { return c.fleet().errors.get(); }},
    {"torii_compressed_responses_total", "counter", "", "Responses compressed.",
     "compression.responses",
     [](const http::ProxyContext& c) { return c.stats().compressed.get(); }},
    {"torii_compression_in_bytes_total", "counter", "", "Bytes before compression.",
     "compression.bytes_in",
     [](const http::ProxyContext& c) { return c.stats().compress_in.get(); }},
    {"torii_compression_out_bytes_total", "counter", "", "Bytes after compression.",
     "compression.bytes_out",
     [](const http::ProxyContext& c) { return c.stats().compress_out.get(); }},
    {"torii_spliced_bytes_total", "counter", "",
     "Response body bytes sent from the backend's socket to the client's without passing "
     "through torii's memory (splice_min).",
     "spliced_bytes", [](const http::ProxyContext& c) { return c.stats().spliced_bytes.get(); }},
    {"torii_cache_hits_total", "counter", "", "Requests answered from the response cache.",
     "cache.hits", [](const http::ProxyContext& c) { return c.stats().cache_hits.get(); }},
    {"torii_cache_misses_total", "counter", "",
     "Cacheable requests forwarded: nothing usable stored.", "cache.misses",
     [](const http::ProxyContext& c) { return c.stats().cache_misses.get(); }},
    {"torii_cache_revalidated_total", "counter", "",
     "Stale entries refreshed by a 304 from the backend.", "",
     [](const http::ProxyContext& c) { return c.stats().cache_revalidated.get(); }},
    {"torii_cache_background_refreshes_total", "counter", "",
     "Stale-while-revalidate entries refreshed in the background.", "",
     [](const http::ProxyContext& c) { return c.stats().cache_refreshes.get(); }},
    {"torii_cache_stale_total", "counter", "", "Stale entries served because the backend failed.",
     "", [](const http::ProxyContext& c) { return c.stats().cache_stale.get(); }},
    {"torii_cache_collapsed_total", "counter", "",
     "Requests that waited for another's fetch of the URL.", "",
     [](const http::ProxyContext& c) { return c.stats().cache_collapsed.get(); }},
    {"torii_cache_stored_total", "counter", "", "Responses stored in the cache.", "",
     [](const http::ProxyContext& c) { return c.stats().cache_stored.get(); }},
    {"torii_cache_variants_total", "counter", "", "Compressed variants made from cached responses.",
     "", [](const http::ProxyContext& c) { return c.stats().cache_variants.get(); }},
    {"torii_cache_purged_total", "counter", "",
     "PURGEs and unsafe requests that removed cached entries.", "",
     [](const http::ProxyContext& c) { return c.stats().cache_purged.get(); }},
    {"torii_tunnels_total", "counter", "",
     "Upgraded connections (WebSocket) opened after a backend's 101.", "",
     [](const http::ProxyContext& c) { return c.stats().tunnels_opened.get(); }},
    {"torii_tunnels_active", "gauge", "", "Upgraded connections (WebSocket) open now.", "",
     [](const http::ProxyContext& c) {
       // Closed first: a tunnel opened and closed between the two reads cannot make it
       // negative (a tunnel opens and closes on the same worker).
       const uint64_t closed = c.stats().tunnels_closed.get();
       const uint64_t opened = c.stats().tunnels_opened.get();
       return opened > closed ? opened - closed : 0;
     }},
    {"torii_tunnel_sent_bytes_total", "counter", "", "Tunnel bytes from clients to backends.", "",
     [](const http::ProxyContext& c) { return c.stats().tunnel_bytes_up.get(); }},
    {"torii_tunnel_received_bytes_total", "counter", "", "Tunnel bytes from backends to clients.",
     "", [](const http::ProxyContext& c) { return c.stats().tunnel_bytes_down.get(); }},
    {"torii_http2_connections_total", "counter", "", "Client connections that spoke HTTP/2.", "",
     [](const http::ProxyContext& c) { return c.stats().h2_connections.get(); }},
    {"torii_http2_streams_total", "counter", "", "HTTP/2 request streams from clients.", "",
     [](const http::ProxyContext& c) { return c.stats().h2_streams.get(); }},
    {"torii_http2_resets_total", "counter", "",
     "HTTP/2 client streams that ended with an error code.", "",
     [](const http::ProxyContext& c) { return c.stats().h2_resets.get(); }},
    {"torii_http2_enhance_your_calm_total", "counter", "",
     "HTTP/2 connections ended for resetting streams too fast (rapid reset).", "",
     [](const http::ProxyContext& c) { return c.stats().h2_calm.get(); }},
    {"torii_upstream_http2_connections_total", "counter", "",
     "HTTP/2 connections opened to backends.", "",
     [](const http::ProxyContext& c) { return c.stats().h2_up_connections.get(); }},
    {"torii_upstream_http2_streams_total", "counter", "",
     "Requests sent to backends as HTTP/2 streams.", "",
     [](const http::ProxyContext& c) { return c.stats().h2_up_streams.get(); }},
    {"torii_upstream_http2_refused_total", "counter", "",
     "HTTP/2 streams a backend refused unprocessed (REFUSED_STREAM, or above its GOAWAY).", "",
     [](const http::ProxyContext& c) { return c.stats().h2_up_refused.get(); }},
};

// ---- Process-wide numbers ----

struct Process {
  uint64_t uptime_s;
  uint64_t reloads;
  uint64_t workers;
};

constexpr Metric<Process> kProcessMetrics[] = {
    {"torii_workers", "gauge", "", "Worker threads (one io_uring each).", "workers",
     [](const Process& p) -> Value { return p.workers; }},
    {"torii_config_reloads_total", "counter", "", "Configurations swapped in by SIGHUP.",
     "reloads", [](const Process& p) -> Value { return p.reloads; }},
    {"torii_uptime_seconds", "gauge", "", "Seconds since torii started.", "uptime_s",
     [](const Process& p) -> Value { return p.uptime_s; }},
};

// ---- Backends ----

struct BackendRow {
  const http::PoolSpec* pool;
  uint32_t b;
  uint64_t now_ms;
  // Read once, so that one backend's numbers agree with each other.
  bool checks_up;
  uint64_t ejected_until;
  uint64_t column(uint32_t c) const {
    return pool->counters->Sum(b * http::PoolSpec::kBackendColumns + c);
  }
};

// Requests in flight when the pool counts them (least_conn load or max_conns slots).
Value InFlight(const BackendRow& r) {
  if (r.pool->slots) {
    return uint64_t{r.pool->slots->InUse(r.b)};
  }
  if (r.pool->load) {
    return uint64_t{r.pool->load->Get(r.b)};
  }
  return {};
}

constexpr Metric<BackendRow> kBackendMetrics[] = {
    {"torii_backend_up", "gauge", "",
     "1 when the backend may take traffic (health checks passing, not ejected).", "up",
     [](const BackendRow& r) -> Value { return r.checks_up && r.ejected_until <= r.now_ms; }},
    {"", "", "", "", "checks_passing", [](const BackendRow& r) -> Value { return r.checks_up; }},
    {"", "", "", "", "ejected_ms",
     [](const BackendRow& r) -> Value {
       return r.ejected_until > r.now_ms ? r.ejected_until - r.now_ms : uint64_t{0};
     }},
    {"torii_backend_ejections", "gauge", "", "Consecutive passive ejections of the backend.",
     "ejections",
     [](const BackendRow& r) -> Value { return uint64_t{r.pool->health->ejections(r.b)}; }},
    {"torii_backend_in_flight", "gauge", "",
     "Requests in flight to the backend (pools with least_conn or max_conns).", "in_flight",
     &InFlight},
    {"torii_backend_selections_total", "counter", "", "Requests sent to the backend.", "selected",
     [](const BackendRow& r) -> Value { return r.column(http::PoolSpec::kSelected); }},
    {"torii_backend_responses_total", "counter", "", "Response heads received from the backend.",
     "responses",
     [](const BackendRow& r) -> Value { return r.column(http::PoolSpec::kResponses); }},
    {"", "", "", "", "avg_response_ms",
     [](const BackendRow& r) -> Value {
       const uint64_t responses = r.column(http::PoolSpec::kResponses);
       return responses ? static_cast<double>(r.column(http::PoolSpec::kTtfbUs)) / 1e3 /
                              static_cast<double>(responses)
                        : 0.0;
     }},
    {"torii_backend_response_seconds_sum", "counter", "",
     "Time from sending a request to its response head, summed (with phase_timing); divide by "
     "torii_backend_responses_total for the average.",
     "",
     [](const BackendRow& r) -> Value {
       return static_cast<double>(r.column(http::PoolSpec::kTtfbUs)) / 1e6;
     }},
};

// ---- Routes ----

struct RouteRow {
  const http::RouteSpec* route;
  const http::ProxyConfig* proxy;
  // A cache column of a route with a cache; nothing for the others.
  Value cache(uint32_t column) const {
    return route->cache >= 0 ? Value(route->requests->Sum(column)) : Value();
  }
};

constexpr Metric<RouteRow> kRouteMetrics[] = {
    {"torii_route_requests_total", "counter", "", "Requests routed to each route.", "requests",
     [](const RouteRow& r) -> Value { return r.route->requests->Sum(http::RouteSpec::kRequests); }},
    {"torii_route_cache_requests_total", "counter", "outcome=\"hit\"",
     "What the cache of each route with one did: hit, miss, revalidated (304), stale (served "
     "because the backend failed).",
     "cache.hits", [](const RouteRow& r) { return r.cache(http::RouteSpec::kCacheHits); }},
    {"torii_route_cache_requests_total", "counter", "outcome=\"miss\"", "", "cache.misses",
     [](const RouteRow& r) { return r.cache(http::RouteSpec::kCacheMisses); }},
    {"torii_route_cache_requests_total", "counter", "outcome=\"revalidated\"", "",
     "cache.revalidated",
     [](const RouteRow& r) { return r.cache(http::RouteSpec::kCacheRevalidated); }},
    {"torii_route_cache_requests_total", "counter", "outcome=\"stale\"", "", "cache.stale",
     [](const RouteRow& r) { return r.cache(http::RouteSpec::kCacheStale); }},
    {"torii_route_cache_sent_bytes_total", "counter", "",
     "Body bytes each route with a cache sent from it.", "cache.bytes",
     [](const RouteRow& r) { return r.cache(http::RouteSpec::kCacheBytes); }},
};

// ---- Rate-limit tables and caches ----

constexpr Metric<const http::RateLimitSpec*> kRateLimitMetrics[] = {
    {"torii_rate_limit_keys", "gauge", "", "Keys tracked by each rate limit table.", "keys",
     [](const http::RateLimitSpec* const& r) -> Value { return uint64_t{r->table->size()}; }},
};

constexpr Metric<const http::CacheSpec*> kCacheMetrics[] = {
    {"torii_cache_bytes", "gauge", "", "Bytes held by each cache (bodies, headers, keys).", "bytes",
     [](const http::CacheSpec* const& c) -> Value { return uint64_t{c->store->bytes()}; }},
    {"torii_cache_capacity_bytes", "gauge", "", "Each cache's memory bound.", "capacity",
     [](const http::CacheSpec* const& c) -> Value { return uint64_t{c->store->capacity()}; }},
    {"torii_cache_entries", "gauge", "", "Responses (and compressed variants) stored.", "entries",
     [](const http::CacheSpec* const& c) -> Value { return uint64_t{c->store->entries()}; }},
    {"torii_cache_evictions_total", "counter", "", "Entries evicted to make room.", "",
     [](const http::CacheSpec* const& c) -> Value { return c->store->Stats().evictions; }},
    // The disk tier (cache/disk.h); zero for a cache without one.
    {"torii_cache_disk_entries", "gauge", "", "Responses each cache's disk tier holds.",
     "disk_entries",
     [](const http::CacheSpec* const& c) -> Value {
       return uint64_t{c->disk ? c->disk->Stats().entries : 0};
     }},
    {"torii_cache_disk_bytes", "gauge", "", "Space the disk tier's records take.", "disk_bytes",
     [](const http::CacheSpec* const& c) -> Value { return c->disk ? c->disk->Stats().bytes : 0; }},
    {"torii_cache_disk_capacity_bytes", "gauge", "", "Space for records in each disk tier's file.",
     "disk_capacity",
     [](const http::CacheSpec* const& c) -> Value {
       return c->disk ? c->disk->Stats().capacity : 0;
     }},
    {"torii_cache_disk_ready", "gauge", "",
     "1 once the disk tier's start-up scan is done (it misses until then).", "disk_ready",
     [](const http::CacheSpec* const& c) -> Value {
       return uint64_t{c->disk && c->disk->ready() ? 1u : 0u};
     }},
    {"torii_cache_disk_loaded", "gauge", "", "Records the disk tier's start-up scan found.",
     "disk_loaded",
     [](const http::CacheSpec* const& c) -> Value {
       return c->disk ? c->disk->Stats().loaded : 0;
     }},
    {"torii_cache_disk_reads_total", "counter", "outcome=\"hit\"",
     "Memory misses looked up on disk, by outcome.", "disk_hits",
     [](const http::CacheSpec* const& c) -> Value { return c->disk ? c->disk->Stats().hits : 0; }},
    {"torii_cache_disk_reads_total", "counter", "outcome=\"miss\"", "", "disk_misses",
     [](const http::CacheSpec* const& c) -> Value {
       return c->disk ? c->disk->Stats().misses : 0;
     }},
    {"torii_cache_disk_reads_total", "counter", "outcome=\"corrupt\"", "", "disk_corrupt",
     [](const http::CacheSpec* const& c) -> Value {
       return c->disk ? c->disk->Stats().corrupt : 0;
     }},
    {"torii_cache_disk_mapped_total", "counter", "",
     "Disk hits served in place from the file's mapping (the others were read).", "disk_mapped",
     [](const http::CacheSpec* const& c) -> Value {
       return c->disk ? c->disk->Stats().mapped : 0;
     }},
    {"torii_cache_disk_pinned", "gauge", "",
     "Records held in place by the responses being sent from them.", "disk_pinned",
     [](const http::CacheSpec* const& c) -> Value {
       return uint64_t{c->disk ? c->disk->Stats().pinned : 0};
     }},
    {"torii_cache_disk_writes_total", "counter", "outcome=\"ok\"",
     "Records written to the disk tier, by outcome.", "disk_writes",
     [](const http::CacheSpec* const& c) -> Value {
       return c->disk ? c->disk->Stats().writes : 0;
     }},
    {"torii_cache_disk_writes_total", "counter", "outcome=\"error\"", "", "disk_write_errors",
     [](const http::CacheSpec* const& c) -> Value {
       return c->disk ? c->disk->Stats().write_errors : 0;
     }},
};

// ---- Served certificates ----

struct CertRow {
  const http::ListenerSpec* listener;
  const tls::ServerContext::Certificate* cert;
  int64_t unix_now;
};

constexpr Metric<CertRow> kCertMetrics[] = {
    {"torii_tls_certificate_expiry_seconds", "gauge", "",
     "Seconds until each served certificate's notAfter (negative once expired).", "expires_in_s",
     [](const CertRow& r) -> Value { return int64_t{r.cert->not_after - r.unix_now}; }},
};

// ---- Rows, read once per document ----

std::vector<BackendRow> BackendRows(const http::PoolSpec& pool, uint64_t now_ms) {
  std::vector<BackendRow> rows;
  for (uint32_t b = 0; b < pool.backends.size(); ++b) {
    rows.push_back(BackendRow{&pool, b, now_ms, pool.health->up(b), pool.health->ejected_until(b)});
  }
  return rows;
}

std::vector<CertRow> CertRows(const http::ListenerSpec& l, int64_t unix_now) {
  std::vector<CertRow> rows;
  if (l.tls) {
    for (const tls::ServerContext::Certificate& cert : l.tls->certificates()) {
      rows.push_back(CertRow{&l, &cert, unix_now});
    }
  }
  return rows;
}

template <class Spec>
std::vector<const Spec*> Pointers(const std::vector<Spec>& specs) {
  std::vector<const Spec*> out;
  for (const Spec& s : specs) {
    out.push_back(&s);
  }
  return out;
}

uint64_t Sum(std::span<const http::ProxyContext* const> contexts, const WorkerMetric& m) {
  uint64_t total = 0;
  for (const http::ProxyContext* c : contexts) {
    total += m.read(*c);
  }
  return total;
}

// A histogram summed over the workers: non-cumulative bucket counts and the sum in µs.
struct Histogram {
  std::vector<uint64_t> counts;
  uint64_t sum_us = 0;
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t c : counts) {
      n += c;
    }
    return n;
  }
};

// One histogram summed over the workers: `stats_of` gives a worker's buckets and its sum.
template <class StatsOf>
Histogram SumOf(std::span<const http::ProxyContext* const> contexts, size_t buckets,
                StatsOf stats_of) {
  Histogram h{std::vector<uint64_t>(buckets)};
  for (const http::ProxyContext* c : contexts) {
    const auto [counts, sum] = stats_of(c->stats());
    for (size_t b = 0; b < h.counts.size(); ++b) {
      h.counts[b] += counts[b].get();
    }
    h.sum_us += sum.get();
  }
  return h;
}

Histogram LatencyOf(std::span<const http::ProxyContext* const> contexts) {
  return SumOf(contexts, http::ProxyStats::kLatencyBuckets, [](const http::ProxyStats& s) {
    return std::forward_as_tuple(s.latency_buckets, s.latency_sum_us);
  });
}

Histogram PhaseOf(std::span<const http::ProxyContext* const> contexts, size_t phase) {
  return SumOf(contexts, http::ProxyStats::kPhaseBuckets, [phase](const http::ProxyStats& s) {
    return std::forward_as_tuple(s.phase_buckets[phase], s.phase_sum_us[phase]);
  });
}

std::string PoolLabels(const BackendRow& r) {
  return "pool=\"" + Label(r.pool->name) + "\",backend=\"" + Label(r.pool->backends[r.b].name) +
         "\"";
}

}  // namespace

std::string PrometheusText(const ReportInputs& in) {
  PromWriter w;
  for (const WorkerMetric& m : kWorkerMetrics) {
    w.Family(m.name, m.type, m.help);
    if (!m.per_worker) {
      w.Sample(m.name, m.labels, std::to_string(Sum(in.contexts, m)));
      continue;
    }
    for (const http::ProxyContext* c : in.contexts) {
      w.Sample(m.name, JoinLabels("worker=\"" + std::to_string(c->worker().id()) + "\"", m.labels),
               std::to_string(m.read(*c)));
    }
  }
  w.Family("torii_request_duration_seconds", "histogram",
           "Time from a request's first byte to the end of its response.");
  const Histogram latency = LatencyOf(in.contexts);
  w.Histogram("torii_request_duration_seconds", "", http::ProxyStats::kLatencyBoundsUs,
              latency.counts, latency.sum_us);
  w.Family("torii_phase_duration_seconds", "histogram",
           "The latency budget: time per request in each phase torii controls (accept, tls, "
           "head, access, cache, wait, connect, backend, stream, compress, total).");
  for (size_t p = 0; p < http::kPhaseCount; ++p) {
    const Histogram h = PhaseOf(in.contexts, p);
    w.Histogram("torii_phase_duration_seconds",
                "phase=\"" + std::string(http::kPhaseNames[p]) + "\"",
                http::ProxyStats::kPhaseBoundsUs, h.counts, h.sum_us);
  }

  const uint64_t now_ms = core::MonotonicMs();
  std::vector<BackendRow> backends;
  for (const http::PoolSpec& pool : in.proxy.pools) {
    std::vector<BackendRow> rows = BackendRows(pool, now_ms);
    backends.insert(backends.end(), rows.begin(), rows.end());
  }
  w.Table(kBackendMetrics, std::span<const BackendRow>(backends), &PoolLabels);
  std::vector<RouteRow> routes;
  for (const http::RouteSpec& r : in.proxy.routes) {
    routes.push_back(RouteRow{&r, &in.proxy});
  }
  w.Table(kRouteMetrics, std::span<const RouteRow>(routes), [](const RouteRow& r) {
    return "host=\"" + Label(r.route->host) + "\",path_prefix=\"" + Label(r.route->path_prefix) +
           "\"";
  });
  const auto limits = Pointers(in.proxy.rate_limits);
  w.Table(kRateLimitMetrics, std::span<const http::RateLimitSpec* const>(limits),
          [](const http::RateLimitSpec* r) { return "table=\"" + Label(r->name) + "\""; });
  const auto caches = Pointers(in.proxy.caches);
  w.Table(kCacheMetrics, std::span<const http::CacheSpec* const>(caches),
          [](const http::CacheSpec* c) { return "cache=\"" + Label(c->name) + "\""; });

  // TLS: handshakes by kind and failures by reason per listener (the reasons are tls::'s
  // table), and each served certificate's expiry.
  w.Family("torii_tls_handshakes_total", "counter",
           "TLS handshakes completed on each listener, full or resumed (session tickets).");
  for (const http::ListenerSpec& l : in.proxy.listeners) {
    if (l.tls) {
      const std::string name = "listener=\"" + Label(l.name) + "\"";
      w.Sample("torii_tls_handshakes_total", name + ",kind=\"full\"",
               std::to_string(l.tls->stats().full.load(std::memory_order_relaxed)));
      w.Sample("torii_tls_handshakes_total", name + ",kind=\"resumed\"",
               std::to_string(l.tls->stats().resumed.load(std::memory_order_relaxed)));
    }
  }
  w.Family("torii_tls_early_data_total", "counter",
           "TLS early data (0-RTT) offered on listeners with early_data: accepted, or refused "
           "because its ticket had carried early data before (a replay).");
  for (const http::ListenerSpec& l : in.proxy.listeners) {
    if (l.tls && l.tls->early_data()) {
      const std::string name = "listener=\"" + Label(l.name) + "\"";
      w.Sample("torii_tls_early_data_total", name + ",result=\"accepted\"",
               std::to_string(l.tls->stats().early_data_accepted.load(std::memory_order_relaxed)));
      w.Sample("torii_tls_early_data_total", name + ",result=\"refused\"",
               std::to_string(l.tls->stats().early_data_refused.load(std::memory_order_relaxed)));
    }
  }
  w.Family("torii_tls_handshake_failures_total", "counter",
           "TLS handshakes (and sessions) that failed, by reason.");
  for (const http::ListenerSpec& l : in.proxy.listeners) {
    for (size_t f = 1; l.tls && f < tls::kFailureCount; ++f) {
      const auto failure = static_cast<tls::Failure>(f);
      w.Sample("torii_tls_handshake_failures_total",
               "listener=\"" + Label(l.name) + "\",reason=\"" +
                   Label(std::string(tls::FailureName(failure))) + "\"",
               std::to_string(l.tls->stats().failures(failure)));
    }
  }
  const auto unix_now = static_cast<int64_t>(std::time(nullptr));
  std::vector<CertRow> certs;
  for (const http::ListenerSpec& l : in.proxy.listeners) {
    std::vector<CertRow> rows = CertRows(l, unix_now);
    certs.insert(certs.end(), rows.begin(), rows.end());
  }
  w.Table(kCertMetrics, std::span<const CertRow>(certs), [](const CertRow& r) {
    return "listener=\"" + Label(r.listener->name) + "\",certificate=\"" + Label(r.cert->file) +
           "\",name=\"" + Label(r.cert->name) + "\"";
  });

  const Process process{in.uptime_s, in.reloads, in.contexts.size()};
  w.Table(kProcessMetrics, std::span<const Process>(&process, 1),
          [](const Process&) { return std::string(); });
  return w.take();
}

std::string StatusJson(const ReportInputs& in) {
  const Process process{in.uptime_s, in.reloads, in.contexts.size()};
  std::string o = "{" + JsonMembers(kProcessMetrics, process);
  std::vector<Member> totals;
  for (const WorkerMetric& m : kWorkerMetrics) {
    if (!m.json.empty()) {
      totals.push_back(Member{m.json, Sum(in.contexts, m)});
    }
  }
  o += "," + JsonMembers(totals);

  o += ",\"listeners\":[";
  const auto unix_now = static_cast<int64_t>(std::time(nullptr));
  for (size_t i = 0; i < in.listener_names.size(); ++i) {
    o += (i ? "," : "") + std::string("{\"name\":") + Json(in.listener_names[i]);
    if (i < in.proxy.listeners.size() && in.proxy.listeners[i].tls) {
      o += ",\"certificates\":[";
      const std::vector<CertRow> certs = CertRows(in.proxy.listeners[i], unix_now);
      for (size_t c = 0; c < certs.size(); ++c) {
        o += (c ? "," : "") + std::string("{\"file\":") + Json(certs[c].cert->file) +
             ",\"name\":" + Json(certs[c].cert->name) + "," +
             JsonMembers(kCertMetrics, certs[c]) + "}";
      }
      o += "]";
    }
    o += "}";
  }

  o += "],\"pools\":[";
  const uint64_t now_ms = core::MonotonicMs();
  for (size_t p = 0; p < in.proxy.pools.size(); ++p) {
    const http::PoolSpec& pool = in.proxy.pools[p];
    o += (p ? "," : "") + std::string("{\"name\":") + Json(pool.name) +
         ",\"algorithm\":" + Json(balancer::AlgorithmName(pool.algorithm)) + ",\"backends\":[";
    const std::vector<BackendRow> rows = BackendRows(pool, now_ms);
    for (const BackendRow& r : rows) {
      const http::BackendTarget& b = pool.backends[r.b];
      o += (r.b ? "," : "") + std::string("{\"address\":") + Json(b.name) +
           ",\"weight\":" + std::to_string(b.weight) +
           ",\"backup\":" + (b.tier > 0 ? "true" : "false") +
           ",\"tier\":" + std::to_string(b.tier) + "," + JsonMembers(kBackendMetrics, r) + "}";
    }
    o += "]";
    // Backends found by DNS: each name asked, what it answered, and whether that answer is
    // stale (the resolver failed since: the last good addresses stay in use).
    const std::vector<Discovery::NameStatus> names =
        in.discovery != nullptr ? in.discovery->Status(p) : std::vector<Discovery::NameStatus>();
    if (!names.empty()) {
      o += ",\"dns\":[";
      for (size_t i = 0; i < names.size(); ++i) {
        const Discovery::NameStatus& n = names[i];
        o += (i ? "," : "") + std::string("{\"name\":") + Json(n.name) +
             ",\"type\":" + Json(n.type) + ",\"records\":" + std::to_string(n.records) +
             ",\"resolved\":" + (n.resolved ? "true" : "false") +
             ",\"negative\":" + (n.negative ? "true" : "false") +
             ",\"stale\":" + (n.stale ? "true" : "false") + ",\"error\":" + Json(n.error) +
             ",\"next_query_ms\":" +
             std::to_string(n.next_query_ms > now_ms ? n.next_query_ms - now_ms : 0) + "}";
      }
      o += "]";
    }
    o += "}";
  }

  o += "],\"routes\":[";
  for (size_t i = 0; i < in.proxy.routes.size(); ++i) {
    const http::RouteSpec& r = in.proxy.routes[i];
    const std::string to = r.redirect_status != 0 ? "redirect " + r.redirect
                                                   : "pool " + in.proxy.pools[r.pool].name;
    o += (i ? "," : "") + std::string("{\"host\":") + Json(r.host) +
         ",\"path_prefix\":" + Json(r.path_prefix) + ",\"to\":" + Json(to) + "," +
         JsonMembers(kRouteMetrics, RouteRow{&r, &in.proxy}) + "}";
  }
  o += "],\"rate_limits\":[";
  for (size_t i = 0; i < in.proxy.rate_limits.size(); ++i) {
    const http::RateLimitSpec* r = &in.proxy.rate_limits[i];
    o += (i ? "," : "") + std::string("{\"name\":") + Json(r->name) + "," +
         JsonMembers(kRateLimitMetrics, r) + "}";
  }
  o += "],\"caches\":[";
  for (size_t i = 0; i < in.proxy.caches.size(); ++i) {
    const http::CacheSpec* c = &in.proxy.caches[i];
    o += (i ? "," : "") + std::string("{\"name\":") + Json(c->name) + "," +
         JsonMembers(kCacheMetrics, c) + "}";
  }
  // The latency budget: each phase's count and average from its /metrics histogram.
  o += "],\"phases\":[";
  for (size_t p = 0; p < http::kPhaseCount; ++p) {
    const Histogram h = PhaseOf(in.contexts, p);
    const uint64_t count = h.count();
    o += (p ? "," : "") + std::string("{\"name\":\"") + std::string(http::kPhaseNames[p]) +
         "\",\"count\":" + std::to_string(count) + ",\"avg_ms\":" +
         Fixed(count ? static_cast<double>(h.sum_us) / 1e3 / static_cast<double>(count) : 0.0, 3) +
         "}";
  }
  o += "]}\n";
  return o;
}

}  // namespace torii::app
