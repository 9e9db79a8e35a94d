// app/admin.cc: see admin.h.
#include "app/admin.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <span>
#include <string_view>

#include "balancer/health.h"
#include "http/serialize.h"

namespace torii::app {

namespace {

constexpr size_t kMaxRequestBytes = 8192;

// The live status page: self-contained (no external script, style or font), it polls
// /status.json every 2 s and renders listeners, pools with each backend's health and load,
// traffic and compression. Text is set with textContent only (no HTML injection from names).
constexpr std::string_view kStatusPage = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>torii status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 .2em}h2{font-size:16px;margin:1.5em 0 .4em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:4px 10px;text-align:left}
th{background:#f0f0f0}.up{color:#137333;font-weight:600}.down{color:#c5221f;font-weight:600}
#err{color:#c5221f}.muted{color:#777}
.bar{display:inline-block;height:12px;background:#4a7bd0;vertical-align:middle}
</style></head><body>
<h1>torii</h1><div class="muted" id="summary">loading…</div><div id="err"></div>
<h2>Traffic</h2><table id="traffic"></table>
<h2>Routes</h2><table id="routes"></table>
<h2>Pools</h2><div id="pools"></div>
<h2>Latency budget (average per request, ms)</h2><table id="phases"></table>
<h2>Caches</h2><table id="caches"></table>
<h2>Rate limits</h2><table id="limits"></table>
<script>
"use strict";
function el(tag, text, cls){const e=document.createElement(tag);if(text!==undefined)e.textContent=String(text);if(cls)e.className=cls;return e;}
function row(cells, head){const tr=el("tr");for(const c of cells){tr.appendChild(c instanceof Node?c:el(head?"th":"td",c));}return tr;}
function fill(table, head, rows){table.replaceChildren(row(head,true));for(const r of rows)table.appendChild(row(r));}
function render(s){
  document.getElementById("summary").textContent=`up ${s.uptime_s} s · ${s.workers} worker(s) · ${s.connections} connection(s) · listeners: ${s.listeners.map(l=>l.name+(l.certificates?" ("+l.certificates.map(c=>`${c.name} expires in ${Math.floor(c.expires_in_s/86400)} d`).join(", ")+")":"")).join(", ")}`;
  const r=s.responses;
  fill(document.getElementById("traffic"),["requests","2xx","3xx","4xx","5xx","aborted","rate limited","denied","compressed","compression"],
    [[s.requests,r["2xx"],r["3xx"],r["4xx"],r["5xx"],r.aborted,s.rate_limited,s.denied,s.compression.responses,
      s.compression.bytes_in?(s.compression.bytes_in/Math.max(1,s.compression.bytes_out)).toFixed(2)+"x":"-"]]);
  const pools=document.getElementById("pools");pools.replaceChildren();
  for(const p of s.pools){
    pools.appendChild(el("h3",`${p.name} (${p.algorithm})`));
    const t=el("table");
    fill(t,["backend","state","weight","backup","in flight","selected","avg response ms","ejected for","ejections"],
      p.backends.map(b=>[b.address,el("td",b.up?"UP":(b.checks_passing?"EJECTED":"DOWN"),b.up?"up":"down"),
        b.weight,b.backup?"yes":"",b.in_flight===undefined?"-":b.in_flight,b.selected,
        b.responses?b.avg_response_ms.toFixed(3):"-",b.ejected_ms?(b.ejected_ms/1000).toFixed(1)+" s":"",b.ejections]));
    pools.appendChild(t);
  }
  fill(document.getElementById("limits"),["table","keys"],s.rate_limits.map(l=>[l.name,l.keys]));
  fill(document.getElementById("routes"),["host","path prefix","to","requests","cache hits","misses","revalidated","stale","bytes from cache"],
    (s.routes||[]).map(r=>[r.host,r.path_prefix,r.to,r.requests].concat(r.cache?[r.cache.hits,r.cache.misses,r.cache.revalidated,r.cache.stale,r.cache.bytes]:["","","","",""])));
  const ph=s.phases||[];const top=Math.max(0.001,...ph.map(p=>p.avg_ms));
  fill(document.getElementById("phases"),["phase","avg ms","","requests"],
    ph.map(p=>{const b=el("td");const bar=el("span","", "bar");bar.style.width=Math.round(300*p.avg_ms/top)+"px";b.appendChild(bar);
      return [p.name,p.avg_ms.toFixed(3),b,p.count];}));
  const hits=s.cache.hits,all=s.cache.hits+s.cache.misses;
  fill(document.getElementById("caches"),["cache","entries","bytes","capacity","hit ratio (all caches)"],
    s.caches.map(c=>[c.name,c.entries,c.bytes,c.capacity,all?(100*hits/all).toFixed(1)+" %":"-"]));
}
async function tick(){
  try{const res=await fetch("status.json",{cache:"no-store"});render(await res.json());document.getElementById("err").textContent="";}
  catch(e){document.getElementById("err").textContent="cannot reach torii: "+e;}
}
tick();setInterval(tick,2000);
</script></body></html>
)html";
constexpr uint64_t kRequestTimeoutMs = 10000;

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

class Writer {
 public:
  // A histogram from its non-cumulative bucket counts (`bounds_us` in µs; one more count than
  // bounds, the last for +Inf) and the sum of the observations in µs; seconds on the wire.
  void Histogram(std::string_view name, std::string_view labels,
                 std::span<const uint64_t> bounds_us, std::span<const uint64_t> counts,
                 uint64_t sum_us) {
    const std::string bucket = std::string(name) + "_bucket";
    const std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
    uint64_t cumulative = 0;
    for (size_t b = 0; b < counts.size(); ++b) {
      cumulative += counts[b];
      std::string le = "+Inf";
      if (b < bounds_us.size()) {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(bounds_us[b]) / 1e6);
        le = buf;
      }
      Sample(bucket, prefix + "le=\"" + le + "\"", cumulative);
    }
    Sample(std::string(name) + "_sum", labels, static_cast<double>(sum_us) / 1e6);
    Sample(std::string(name) + "_count", labels, cumulative);
  }
  void Help(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void Sample(std::string_view name, std::string_view labels, uint64_t value) {
    Line(name, labels, std::to_string(value));
  }
  void SampleSigned(std::string_view name, std::string_view labels, int64_t value) {
    Line(name, labels, std::to_string(value));
  }
  void Line(std::string_view name, std::string_view labels, std::string_view value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  void Sample(std::string_view name, std::string_view labels, double value) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.6f", value);
    Line(name, labels, buf);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Backend in-flight requests when the pool counts them (least_conn load or max_conns slots).
std::optional<uint64_t> InFlight(const http::PoolSpec& pool, uint32_t b) {
  if (pool.slots) {
    return pool.slots->InUse(b);
  }
  if (pool.load) {
    return pool.load->Get(b);
  }
  return std::nullopt;
}

class AdminSession final : public core::ConnHandler {
 public:
  AdminSession(Admin& admin, core::Conn& conn) : admin_(admin) {
    conn.SetTimer(conn.worker().now_ms() + kRequestTimeoutMs);
  }

  void OnRecv(core::Conn& conn, std::span<const char> data) override {
    if (done_) {
      return;
    }
    in_.append(data.data(), std::min(data.size(), kMaxRequestBytes + 4 - in_.size()));
    const size_t end = in_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (in_.size() > kMaxRequestBytes) {
        Reply(conn, 431, "text/plain", "request head too large\n");
      }
      return;
    }
    // "METHOD SP target SP HTTP/1.x"
    const std::string_view line = std::string_view(in_).substr(0, in_.find("\r\n"));
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || !line.substr(sp2 + 1).starts_with("HTTP/1.")) {
      Reply(conn, 400, "text/plain", "bad request\n");
      return;
    }
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));
    head_only_ = method == "HEAD";
    if (!admin_.Allowed(ratelimit::IpFromSockaddr(conn.peer()))) {
      Reply(conn, 403, "text/plain", "forbidden\n");
    } else if (method != "GET" && method != "HEAD") {
      Reply(conn, 405, "text/plain", "method not allowed\n");
    } else if (target == "/metrics") {
      Reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", admin_.Metrics());
    } else if (target == "/status.json") {
      Reply(conn, 200, "application/json", admin_.StatusJson());
    } else if (target == "/" || target == "/status") {
      Reply(conn, 200, "text/html; charset=utf-8", std::string(kStatusPage));
    } else {
      Reply(conn, 404, "text/plain", "not found: try /, /metrics or /status.json\n");
    }
  }
  void OnEof(core::Conn& conn) override {
    if (!done_) {
      conn.Close();
    }
  }
  void OnError(core::Conn& conn, core::Error /*error*/) override { conn.Close(); }
  void OnTimer(core::Conn& conn) override { conn.Close(); }
  void OnWritable(core::Conn& /*conn*/) override {}
  void OnDrain(core::Conn& conn) override {
    if (!done_) {
      conn.Close();
    }
  }
  void OnClosed(core::Conn& /*conn*/) override {}

 private:
  void Reply(core::Conn& conn, int status, std::string_view type, const std::string& body) {
    done_ = true;
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " +
                       std::string(http::ReasonPhrase(status)) +
                       "\r\nServer: torii\r\nContent-Type: " + std::string(type) +
                       "\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    conn.Write(head);
    if (!head_only_) {
      conn.Write(body);
    }
    conn.CloseAfterFlush();
  }

  Admin& admin_;
  std::string in_;
  bool done_ = false;
  bool head_only_ = false;
};

}  // namespace

Admin::Admin(const conf::Config& config, std::shared_ptr<const http::ProxyConfig> proxy,
             std::vector<const http::ProxyContext*> contexts)
    : proxy_(std::move(proxy)), contexts_(std::move(contexts)), started_ms_(core::MonotonicMs()) {
  std::vector<std::string> allow = config.admin.allow;
  if (allow.empty()) {
    allow = {"127.0.0.0/8", "::1/128"};  // loopback only unless configured
  }
  for (const std::string& text : allow) {
    std::string why;
    if (auto cidr = ratelimit::ParseCidr(text, &why)) {
      allow_.Add(*cidr);
    }
  }
  for (const conf::ListenerConfig& l : config.listeners) {
    listener_names_.push_back(l.name);
  }
}

std::unique_ptr<core::ConnHandler> Admin::Accept(core::Conn& conn) {
  return std::make_unique<AdminSession>(*this, conn);
}

bool Admin::Allowed(const ratelimit::IpAddr& client) const { return allow_.Contains(client); }

std::string Admin::Metrics() const {
  Writer w;
  auto sum = [&](auto member) {
    uint64_t total = 0;
    for (const http::ProxyContext* c : contexts_) {
      total += member(c->stats());
    }
    return total;
  };
  struct Plain {
    std::string_view name;
    std::string_view help;
    uint64_t (*get)(const http::ProxyStats&);
  };
  static constexpr Plain kCounters[] = {
      {"torii_requests_total", "Requests received (complete heads).",
       [](const http::ProxyStats& s) { return s.requests.get(); }},
      {"torii_response_body_bytes_total", "Response body bytes sent to clients.",
       [](const http::ProxyStats& s) { return s.bytes_sent.get(); }},
      {"torii_upstream_connects_total", "Upstream connections opened.",
       [](const http::ProxyStats& s) { return s.upstream_connects.get(); }},
      {"torii_upstream_reused_total", "Requests sent on a pooled upstream connection.",
       [](const http::ProxyStats& s) { return s.upstream_reused.get(); }},
      {"torii_upstream_connect_failures_total", "Upstream connects refused or timed out.",
       [](const http::ProxyStats& s) { return s.upstream_connect_failures.get(); }},
      {"torii_retries_total", "Requests retried on another backend or a fresh connection.",
       [](const http::ProxyStats& s) { return s.retries.get(); }},
      {"torii_aborted_total", "Client connections cut mid-response.",
       [](const http::ProxyStats& s) { return s.aborted.get(); }},
      {"torii_connections_refused_total", "Connections closed at accept by max_conns limits.",
       [](const http::ProxyStats& s) { return s.conns_refused.get(); }},
      {"torii_denied_total", "Requests answered 403 by an access list or a ban.",
       [](const http::ProxyStats& s) { return s.denied.get(); }},
      {"torii_rate_limited_total", "Requests answered 429 by a rate limit.",
       [](const http::ProxyStats& s) { return s.rate_limited.get(); }},
      {"torii_bans_total", "Clients banned after repeated rate-limit rejections.",
       [](const http::ProxyStats& s) { return s.bans.get(); }},
      {"torii_queued_total", "Requests that waited for a backend slot (max_conns).",
       [](const http::ProxyStats& s) { return s.queued.get(); }},
      {"torii_compressed_responses_total", "Responses compressed.",
       [](const http::ProxyStats& s) { return s.compressed.get(); }},
      {"torii_compression_in_bytes_total", "Bytes before compression.",
       [](const http::ProxyStats& s) { return s.compress_in.get(); }},
      {"torii_compression_out_bytes_total", "Bytes after compression.",
       [](const http::ProxyStats& s) { return s.compress_out.get(); }},
      {"torii_cache_hits_total", "Requests answered from the response cache.",
       [](const http::ProxyStats& s) { return s.cache_hits.get(); }},
      {"torii_cache_misses_total", "Cacheable requests forwarded: nothing usable stored.",
       [](const http::ProxyStats& s) { return s.cache_misses.get(); }},
      {"torii_cache_revalidated_total", "Stale entries refreshed by a 304 from the backend.",
       [](const http::ProxyStats& s) { return s.cache_revalidated.get(); }},
      {"torii_cache_stale_total", "Stale entries served because the backend failed.",
       [](const http::ProxyStats& s) { return s.cache_stale.get(); }},
      {"torii_cache_collapsed_total", "Requests that waited for another's fetch of the URL.",
       [](const http::ProxyStats& s) { return s.cache_collapsed.get(); }},
      {"torii_cache_stored_total", "Responses stored in the cache.",
       [](const http::ProxyStats& s) { return s.cache_stored.get(); }},
      {"torii_cache_variants_total", "Compressed variants made from cached responses.",
       [](const http::ProxyStats& s) { return s.cache_variants.get(); }},
      {"torii_cache_purged_total", "PURGEs and unsafe requests that removed cached entries.",
       [](const http::ProxyStats& s) { return s.cache_purged.get(); }},
      {"torii_tunnels_total", "Upgraded connections (WebSocket) opened after a backend's 101.",
       [](const http::ProxyStats& s) { return s.tunnels_opened.get(); }},
      {"torii_tunnel_sent_bytes_total", "Tunnel bytes from clients to backends.",
       [](const http::ProxyStats& s) { return s.tunnel_bytes_up.get(); }},
      {"torii_tunnel_received_bytes_total", "Tunnel bytes from backends to clients.",
       [](const http::ProxyStats& s) { return s.tunnel_bytes_down.get(); }},
      {"torii_http2_connections_total", "Client connections that spoke HTTP/2.",
       [](const http::ProxyStats& s) { return s.h2_connections.get(); }},
      {"torii_http2_streams_total", "HTTP/2 request streams from clients.",
       [](const http::ProxyStats& s) { return s.h2_streams.get(); }},
      {"torii_http2_resets_total", "HTTP/2 client streams that ended with an error code.",
       [](const http::ProxyStats& s) { return s.h2_resets.get(); }},
      {"torii_http2_enhance_your_calm_total",
       "HTTP/2 connections ended for resetting streams too fast (rapid reset).",
       [](const http::ProxyStats& s) { return s.h2_calm.get(); }},
      {"torii_upstream_http2_connections_total", "HTTP/2 connections opened to backends.",
       [](const http::ProxyStats& s) { return s.h2_up_connections.get(); }},
      {"torii_upstream_http2_streams_total", "Requests sent to backends as HTTP/2 streams.",
       [](const http::ProxyStats& s) { return s.h2_up_streams.get(); }},
      {"torii_upstream_http2_refused_total",
       "HTTP/2 streams a backend refused unprocessed (REFUSED_STREAM, or above its GOAWAY).",
       [](const http::ProxyStats& s) { return s.h2_up_refused.get(); }},
  };
  for (const Plain& p : kCounters) {
    w.Help(p.name, "counter", p.help);
    w.Sample(p.name, "", sum(p.get));
  }

  // Fleet-wide rate limits (store = "redis"): lease requests to Redis, and the failed ones
  // (down, slower than [redis] timeout, or an error reply: on_store_error applied).
  {
    uint64_t asks = 0;
    uint64_t errors = 0;
    for (const http::ProxyContext* c : contexts_) {
      asks += c->fleet().asks.get();
      errors += c->fleet().errors.get();
    }
    w.Help("torii_redis_requests_total", "counter",
           "Lease requests of fleet-wide rate limits sent to Redis.");
    w.Sample("torii_redis_requests_total", "", asks);
    w.Help("torii_redis_errors_total", "counter",
           "Lease requests that failed (Redis down, slow or an error reply).");
    w.Sample("torii_redis_errors_total", "", errors);
  }

  w.Help("torii_tunnels_active", "gauge", "Upgraded connections (WebSocket) open now.");
  {
    // Closed first: a tunnel opened and closed between the two reads cannot make it negative.
    const uint64_t closed = sum([](const http::ProxyStats& s) { return s.tunnels_closed.get(); });
    const uint64_t opened = sum([](const http::ProxyStats& s) { return s.tunnels_opened.get(); });
    w.Sample("torii_tunnels_active", "", opened > closed ? opened - closed : 0);
  }

  w.Help("torii_responses_total", "counter", "Responses by status class (aborted: none sent).");
  static constexpr std::string_view kClasses[] = {"aborted", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (size_t i = 0; i < std::size(kClasses); ++i) {
    uint64_t total = 0;
    for (const http::ProxyContext* c : contexts_) {
      total += c->stats().responses_by_class[i].get();
    }
    w.Sample("torii_responses_total", "class=\"" + std::string(kClasses[i]) + "\"", total);
  }

  w.Help("torii_request_duration_seconds", "histogram",
         "Time from a request's first byte to the end of its response.");
  {
    std::vector<uint64_t> counts(http::ProxyStats::kLatencyBuckets);
    uint64_t sum_us = 0;
    for (const http::ProxyContext* c : contexts_) {
      for (size_t b = 0; b < counts.size(); ++b) {
        counts[b] += c->stats().latency_buckets[b].get();
      }
      sum_us += c->stats().latency_sum_us.get();
    }
    w.Histogram("torii_request_duration_seconds", "", http::ProxyStats::kLatencyBoundsUs, counts,
                sum_us);
  }

  w.Help("torii_connections", "gauge", "Open connections (clients and upstreams) per worker.");
  for (const http::ProxyContext* c : contexts_) {
    w.Sample("torii_connections", "worker=\"" + std::to_string(c->worker().id()) + "\"",
             c->worker().published().conns_live.get());
  }
  w.Help("torii_accepted_total", "counter", "Client connections accepted.");
  w.Help("torii_idle_evicted_total", "counter",
         "Idle connections closed to admit a client at max_connections.");
  uint64_t accepted = 0;
  uint64_t evicted = 0;
  for (const http::ProxyContext* c : contexts_) {
    accepted += c->worker().published().accepted.get();
    evicted += c->worker().published().idle_evicted.get();
  }
  w.Sample("torii_accepted_total", "", accepted);
  w.Sample("torii_idle_evicted_total", "", evicted);

  w.Help("torii_backend_up", "gauge",
         "1 when the backend may take traffic (health checks passing, not ejected).");
  w.Help("torii_backend_ejections", "gauge", "Consecutive passive ejections of the backend.");
  w.Help("torii_backend_in_flight", "gauge",
         "Requests in flight to the backend (pools with least_conn or max_conns).");
  const uint64_t now = core::MonotonicMs();
  for (const http::PoolSpec& pool : proxy_->pools) {
    for (uint32_t b = 0; b < pool.backends.size(); ++b) {
      const std::string labels = "pool=\"" + Label(pool.name) + "\",backend=\"" +
                                 Label(pool.backends[b].name) + "\"";
      const bool up = pool.health->up(b) && pool.health->ejected_until(b) <= now;
      w.Sample("torii_backend_up", labels, uint64_t{up ? 1u : 0u});
      w.Sample("torii_backend_ejections", labels, uint64_t{pool.health->ejections(b)});
      if (auto n = InFlight(pool, b)) {
        w.Sample("torii_backend_in_flight", labels, *n);
      }
    }
  }
  w.Help("torii_backend_selections_total", "counter", "Requests sent to the backend.");
  w.Help("torii_backend_responses_total", "counter", "Response heads received from the backend.");
  w.Help("torii_backend_response_seconds_sum", "counter",
         "Time from sending a request to its response head, summed (with phase_timing); "
         "divide by torii_backend_responses_total for the average.");
  for (const http::PoolSpec& pool : proxy_->pools) {
    for (uint32_t b = 0; b < pool.backends.size(); ++b) {
      const std::string labels = "pool=\"" + Label(pool.name) + "\",backend=\"" +
                                 Label(pool.backends[b].name) + "\"";
      const uint32_t base = b * http::PoolSpec::kBackendColumns;
      w.Sample("torii_backend_selections_total", labels,
               pool.counters->Sum(base + http::PoolSpec::kSelected));
      w.Sample("torii_backend_responses_total", labels,
               pool.counters->Sum(base + http::PoolSpec::kResponses));
      w.Sample("torii_backend_response_seconds_sum", labels,
               static_cast<double>(pool.counters->Sum(base + http::PoolSpec::kTtfbUs)) / 1e6);
    }
  }
  w.Help("torii_route_requests_total", "counter", "Requests routed to each route.");
  w.Help("torii_route_cache_requests_total", "counter",
         "What the cache of each route with one did: hit, miss, revalidated (304), stale (served "
         "because the backend failed).");
  w.Help("torii_route_cache_sent_bytes_total", "counter",
         "Body bytes each route with a cache sent from it.");
  for (const http::RouteSpec& route : proxy_->routes) {
    const std::string labels =
        "host=\"" + Label(route.host) + "\",path_prefix=\"" + Label(route.path_prefix) + "\"";
    w.Sample("torii_route_requests_total", labels, route.requests->Sum(http::RouteSpec::kRequests));
    if (route.cache < 0) {
      continue;
    }
    static constexpr std::pair<std::string_view, uint32_t> kOutcomes[] = {
        {"hit", http::RouteSpec::kCacheHits},
        {"miss", http::RouteSpec::kCacheMisses},
        {"revalidated", http::RouteSpec::kCacheRevalidated},
        {"stale", http::RouteSpec::kCacheStale}};
    for (const auto& [outcome, column] : kOutcomes) {
      w.Sample("torii_route_cache_requests_total",
               labels + ",outcome=\"" + std::string(outcome) + "\"", route.requests->Sum(column));
    }
    w.Sample("torii_route_cache_sent_bytes_total", labels,
             route.requests->Sum(http::RouteSpec::kCacheBytes));
  }
  w.Help("torii_rate_limit_keys", "gauge", "Keys tracked by each rate limit table.");
  for (const http::RateLimitSpec& r : proxy_->rate_limits) {
    w.Sample("torii_rate_limit_keys", "table=\"" + Label(r.name) + "\"",
             static_cast<uint64_t>(r.table->size()));
  }
  w.Help("torii_cache_bytes", "gauge", "Bytes held by each cache (bodies, headers, keys).");
  w.Help("torii_cache_capacity_bytes", "gauge", "Each cache's memory bound.");
  w.Help("torii_cache_entries", "gauge", "Responses (and compressed variants) stored.");
  w.Help("torii_cache_evictions_total", "counter", "Entries evicted to make room.");
  for (const http::CacheSpec& cache : proxy_->caches) {
    const std::string labels = "cache=\"" + Label(cache.name) + "\"";
    w.Sample("torii_cache_bytes", labels, static_cast<uint64_t>(cache.store->bytes()));
    w.Sample("torii_cache_capacity_bytes", labels, static_cast<uint64_t>(cache.store->capacity()));
    w.Sample("torii_cache_entries", labels, static_cast<uint64_t>(cache.store->entries()));
    w.Sample("torii_cache_evictions_total", labels, cache.store->Stats().evictions);
  }
  w.Help("torii_tls_handshakes_total", "counter",
         "TLS handshakes completed on each listener, full or resumed (session tickets).");
  w.Help("torii_tls_handshake_failures_total", "counter",
         "TLS handshakes (and sessions) that failed, by reason.");
  for (const http::ListenerSpec& l : proxy_->listeners) {
    if (!l.tls) {
      continue;
    }
    const tls::HandshakeStats& st = l.tls->stats();
    const std::string name = "listener=\"" + Label(l.name) + "\"";
    w.Sample("torii_tls_handshakes_total", name + ",kind=\"full\"",
             st.full.load(std::memory_order_relaxed));
    w.Sample("torii_tls_handshakes_total", name + ",kind=\"resumed\"",
             st.resumed.load(std::memory_order_relaxed));
    for (size_t f = 1; f < tls::kFailureCount; ++f) {
      const auto failure = static_cast<tls::Failure>(f);
      w.Sample("torii_tls_handshake_failures_total",
               name + ",reason=\"" + Label(std::string(tls::FailureName(failure))) + "\"",
               st.failures(failure));
    }
  }
  w.Help("torii_tls_certificate_expiry_seconds", "gauge",
         "Seconds until each served certificate's notAfter (negative once expired).");
  {
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    for (const http::ListenerSpec& l : proxy_->listeners) {
      if (!l.tls) {
        continue;
      }
      for (const tls::ServerContext::Certificate& cert : l.tls->certificates()) {
        w.SampleSigned("torii_tls_certificate_expiry_seconds",
                       "listener=\"" + Label(l.name) + "\",certificate=\"" + Label(cert.file) +
                           "\",name=\"" + Label(cert.name) + "\"",
                       cert.not_after - now);
      }
    }
  }
  w.Help("torii_phase_duration_seconds", "histogram",
         "The latency budget: time per request in each phase torii controls (accept, tls, "
         "head, access, cache, wait, connect, backend, stream, compress, total).");
  for (size_t p = 0; p < http::kPhaseCount; ++p) {
    std::vector<uint64_t> counts(http::ProxyStats::kPhaseBuckets);
    uint64_t sum_us = 0;
    for (const http::ProxyContext* c : contexts_) {
      for (size_t b = 0; b < counts.size(); ++b) {
        counts[b] += c->stats().phase_buckets[p][b].get();
      }
      sum_us += c->stats().phase_sum_us[p].get();
    }
    w.Histogram("torii_phase_duration_seconds",
                "phase=\"" + std::string(http::kPhaseNames[p]) + "\"",
                http::ProxyStats::kPhaseBoundsUs, counts, sum_us);
  }
  w.Help("torii_workers", "gauge", "Worker threads (one io_uring each).");
  w.Sample("torii_workers", "", static_cast<uint64_t>(contexts_.size()));
  w.Help("torii_config_reloads_total", "counter", "Configurations swapped in by SIGHUP.");
  w.Sample("torii_config_reloads_total", "", reloads_);
  w.Help("torii_uptime_seconds", "gauge", "Seconds since torii started.");
  w.Sample("torii_uptime_seconds", "", (now - started_ms_) / 1000);
  return w.take();
}

std::string Admin::StatusJson() const {
  const uint64_t now = core::MonotonicMs();
  uint64_t requests = 0;
  uint64_t classes[6] = {};
  uint64_t conns = 0;
  uint64_t compressed = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t rate_limited = 0;
  uint64_t denied = 0;
  uint64_t comp_in = 0;
  uint64_t comp_out = 0;
  for (const http::ProxyContext* c : contexts_) {
    const http::ProxyStats& s = c->stats();
    requests += s.requests.get();
    for (size_t i = 0; i < 6; ++i) {
      classes[i] += s.responses_by_class[i].get();
    }
    conns += c->worker().published().conns_live.get();
    compressed += s.compressed.get();
    hits += s.cache_hits.get();
    rate_limited += s.rate_limited.get();
    denied += s.denied.get();
    misses += s.cache_misses.get();
    comp_in += s.compress_in.get();
    comp_out += s.compress_out.get();
  }
  std::string o = "{";
  o += "\"uptime_s\":" + std::to_string((now - started_ms_) / 1000);
  o += ",\"reloads\":" + std::to_string(reloads_);
  o += ",\"rate_limited\":" + std::to_string(rate_limited);
  o += ",\"denied\":" + std::to_string(denied);
  o += ",\"workers\":" + std::to_string(contexts_.size());
  o += ",\"connections\":" + std::to_string(conns);
  o += ",\"requests\":" + std::to_string(requests);
  o += ",\"responses\":{\"aborted\":" + std::to_string(classes[0]);
  for (size_t i = 1; i < 6; ++i) {
    o += ",\"" + std::to_string(i) + "xx\":" + std::to_string(classes[i]);
  }
  o += "},\"listeners\":[";
  const int64_t unix_now = static_cast<int64_t>(std::time(nullptr));
  for (size_t i = 0; i < listener_names_.size(); ++i) {
    o += (i ? "," : "") + std::string("{\"name\":") + Json(listener_names_[i]);
    if (i < proxy_->listeners.size() && proxy_->listeners[i].tls) {
      o += ",\"certificates\":[";
      bool first = true;
      for (const tls::ServerContext::Certificate& cert : proxy_->listeners[i].tls->certificates()) {
        o += first ? "" : ",";
        first = false;
        o += "{\"file\":" + Json(cert.file) + ",\"name\":" + Json(cert.name) +
             ",\"expires_in_s\":" + std::to_string(cert.not_after - unix_now) + "}";
      }
      o += "]";
    }
    o += "}";
  }
  o += "],\"pools\":[";
  for (size_t p = 0; p < proxy_->pools.size(); ++p) {
    const http::PoolSpec& pool = proxy_->pools[p];
    o += p ? "," : "";
    o += "{\"name\":" + Json(pool.name) +
         ",\"algorithm\":" + Json(balancer::AlgorithmName(pool.algorithm)) + ",\"backends\":[";
    for (uint32_t b = 0; b < pool.backends.size(); ++b) {
      const uint64_t until = pool.health->ejected_until(b);
      const bool checks_up = pool.health->up(b);
      o += b ? "," : "";
      o += "{\"address\":" + Json(pool.backends[b].name) +
           ",\"weight\":" + std::to_string(pool.backends[b].weight) +
           ",\"backup\":" + (pool.backends[b].backup ? "true" : "false") +
           ",\"up\":" + (checks_up && until <= now ? "true" : "false") +
           ",\"checks_passing\":" + (checks_up ? "true" : "false") +
           ",\"ejected_ms\":" + std::to_string(until > now ? until - now : 0) +
           ",\"ejections\":" + std::to_string(pool.health->ejections(b));
      if (auto n = InFlight(pool, b)) {
        o += ",\"in_flight\":" + std::to_string(*n);
      }
      const uint32_t base = b * http::PoolSpec::kBackendColumns;
      const uint64_t responses = pool.counters->Sum(base + http::PoolSpec::kResponses);
      char avg[32];
      std::snprintf(avg, sizeof(avg), "%.3f",
                    responses ? static_cast<double>(
                                    pool.counters->Sum(base + http::PoolSpec::kTtfbUs)) /
                                    1e3 / static_cast<double>(responses)
                              : 0.0);
      o += ",\"selected\":" + std::to_string(pool.counters->Sum(base + http::PoolSpec::kSelected)) +
           ",\"responses\":" + std::to_string(responses) + ",\"avg_response_ms\":" + avg;
      o += "}";
    }
    o += "]";
    // Backends found by DNS: each name asked, what it answered, and whether that answer is
    // stale (the resolver failed since: the last good addresses stay in use).
    if (discovery_ != nullptr) {
      const std::vector<Discovery::NameStatus> names = discovery_->Status(p);
      if (!names.empty()) {
        o += ",\"dns\":[";
        const uint64_t mono = core::MonotonicMs();
        for (size_t i = 0; i < names.size(); ++i) {
          const Discovery::NameStatus& n = names[i];
          o += (i ? "," : "") + std::string("{\"name\":") + Json(n.name) +
               ",\"type\":" + Json(n.type) + ",\"records\":" + std::to_string(n.records) +
               ",\"resolved\":" + (n.resolved ? "true" : "false") +
               ",\"negative\":" + (n.negative ? "true" : "false") +
               ",\"stale\":" + (n.stale ? "true" : "false") + ",\"error\":" + Json(n.error) +
               ",\"next_query_ms\":" +
               std::to_string(n.next_query_ms > mono ? n.next_query_ms - mono : 0) + "}";
        }
        o += "]";
      }
    }
    o += "}";
  }
  o += "],\"routes\":[";
  for (size_t i = 0; i < proxy_->routes.size(); ++i) {
    const http::RouteSpec& r = proxy_->routes[i];
    const std::string to = r.redirect_status != 0 ? "redirect " + r.redirect
                                                   : "pool " + proxy_->pools[r.pool].name;
    o += (i ? "," : "") + std::string("{\"host\":") + Json(r.host) +
         ",\"path_prefix\":" + Json(r.path_prefix) + ",\"to\":" + Json(to) +
         ",\"requests\":" + std::to_string(r.requests->Sum(http::RouteSpec::kRequests));
    if (r.cache >= 0) {
      o += ",\"cache\":{\"hits\":" + std::to_string(r.requests->Sum(http::RouteSpec::kCacheHits)) +
           ",\"misses\":" + std::to_string(r.requests->Sum(http::RouteSpec::kCacheMisses)) +
           ",\"revalidated\":" +
           std::to_string(r.requests->Sum(http::RouteSpec::kCacheRevalidated)) +
           ",\"stale\":" + std::to_string(r.requests->Sum(http::RouteSpec::kCacheStale)) +
           ",\"bytes\":" + std::to_string(r.requests->Sum(http::RouteSpec::kCacheBytes)) + "}";
    }
    o += "}";
  }
  o += "],\"rate_limits\":[";
  for (size_t i = 0; i < proxy_->rate_limits.size(); ++i) {
    const http::RateLimitSpec& r = proxy_->rate_limits[i];
    o += (i ? "," : "") + std::string("{\"name\":") + Json(r.name) +
         ",\"keys\":" + std::to_string(r.table->size()) + "}";
  }
  o += "],\"caches\":[";
  for (size_t i = 0; i < proxy_->caches.size(); ++i) {
    const http::CacheSpec& cache = proxy_->caches[i];
    o += (i ? "," : "") + std::string("{\"name\":") + Json(cache.name) +
         ",\"bytes\":" + std::to_string(cache.store->bytes()) +
         ",\"capacity\":" + std::to_string(cache.store->capacity()) +
         ",\"entries\":" + std::to_string(cache.store->entries()) + "}";
  }
  o += "],\"phases\":[";
  for (size_t p = 0; p < http::kPhaseCount; ++p) {
    uint64_t count = 0;
    uint64_t sum_us = 0;
    for (const http::ProxyContext* c : contexts_) {
      for (size_t b = 0; b < http::ProxyStats::kPhaseBuckets; ++b) {
        count += c->stats().phase_buckets[p][b].get();
      }
      sum_us += c->stats().phase_sum_us[p].get();
    }
    char avg[32];
    std::snprintf(avg, sizeof(avg), "%.3f",
                  count ? static_cast<double>(sum_us) / 1e3 / static_cast<double>(count) : 0.0);
    o += (p ? "," : "") + std::string("{\"name\":\"") + std::string(http::kPhaseNames[p]) +
         "\",\"count\":" + std::to_string(count) + ",\"avg_ms\":" + avg + "}";
  }
  o += "],\"cache\":{\"hits\":" + std::to_string(hits) + ",\"misses\":" + std::to_string(misses);
  o += "},\"compression\":{\"responses\":" + std::to_string(compressed) +
       ",\"bytes_in\":" + std::to_string(comp_in) + ",\"bytes_out\":" + std::to_string(comp_out) +
       "}}\n";
  return o;
}

}  // namespace torii::app
