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

#include "app/report.h"
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

ReportInputs Admin::Inputs() const {
  return ReportInputs{*proxy_, contexts_, listener_names_, discovery_,
                      (core::MonotonicMs() - started_ms_) / 1000, reloads_};
}

std::string Admin::Metrics() const { return PrometheusText(Inputs()); }

std::string Admin::StatusJson() const { return app::StatusJson(Inputs()); }

}  // namespace torii::app
