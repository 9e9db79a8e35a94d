// app/ocsp_fetcher.cc: see ocsp_fetcher.h.
#include "app/ocsp_fetcher.h"

#include <netdb.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>
#include <limits>

namespace torii::app {

namespace {

constexpr size_t kMaxResponseBytes = 64 * 1024;

struct Url {
  std::string host;  // as written (the Host header), without the port
  std::string port = "80";
  std::string path = "/";
};

// "http://host[:port][/path]" (the fetch list holds http:// URLs only).
Url ParseUrl(std::string_view url) {
  Url u;
  url.remove_prefix(std::string_view("http://").size());
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) {
    u.path = std::string(url.substr(slash));
  }
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    u.port = std::string(authority.substr(colon + 1));
    authority = authority.substr(0, colon);
  }
  if (authority.size() > 2 && authority.front() == '[' && authority.back() == ']') {
    authority = authority.substr(1, authority.size() - 2);
  }
  u.host = std::string(authority);
  return u;
}

// The body of an HTTP/1.x response to a fetch: 200 and application/ocsp-response bytes (a
// Content-Length, or everything up to the close), or why not.
bool ResponseBody(std::string_view response, std::string_view* body, std::string* why) {
  const size_t end = response.find("\r\n\r\n");
  if (!response.starts_with("HTTP/1.") || response.size() < 12 || end == std::string_view::npos) {
    *why = "not an HTTP/1.x response";
    return false;
  }
  if (response.substr(9, 3) != "200") {
    *why = "status " + std::string(response.substr(9, 3));
    return false;
  }
  *body = response.substr(end + 4);
  const std::string_view head = response.substr(0, end);
  for (size_t at = head.find("\r\n"); at != std::string_view::npos;
       at = head.find("\r\n", at + 2)) {
    const std::string_view line = head.substr(at + 2, head.find("\r\n", at + 2) - at - 2);
    if (line.size() > 15 && strncasecmp(line.data(), "content-length:", 15) == 0) {
      std::string_view v = line.substr(15);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
      }
      size_t n = 0;
      if (std::from_chars(v.data(), v.data() + v.size(), n).ec != std::errc() || n > body->size()) {
        *why = "truncated response";
        return false;
      }
      *body = body->substr(0, n);
    }
  }
  return true;
}

// One fetch: connect, send the request, read the whole answer (HTTP/1.0: up to the close).
class FetchProbe final : public core::ConnHandler {
 public:
  FetchProbe(OcspFetcher& fetcher, uint32_t target, std::string_view request)
      : fetcher_(fetcher), target_(target), request_(request) {}

  void OnConnected(core::Conn& conn, core::Result<void> result) override {
    if (!result) {
      Finish(conn, false, "connect: " + std::string(result.error().name()));
      return;
    }
    conn.Write(request_);
  }
  void OnRecv(core::Conn& conn, std::span<const char> data) override {
    if (response_.size() + data.size() > kMaxResponseBytes) {
      Finish(conn, false, "response over 64 KiB");
      return;
    }
    response_.append(data.data(), data.size());
  }
  void OnEof(core::Conn& conn) override {
    std::string_view body;
    std::string why;
    if (!ResponseBody(response_, &body, &why)) {
      Finish(conn, false, why);
      return;
    }
    Finish(conn, true, body);
  }
  void OnError(core::Conn& conn, core::Error error) override {
    Finish(conn, false, std::string(error.name()));
  }
  void OnTimer(core::Conn& conn) override { Finish(conn, false, "timeout"); }
  void OnDrain(core::Conn& conn) override {
    done_ = true;  // stopping: no verdict
    conn.Close();
  }
  void OnClosed(core::Conn& /*conn*/) override {
    if (!done_) {
      done_ = true;
      fetcher_.OnResult(target_, false, "connection closed");
    }
  }

 private:
  void Finish(core::Conn& conn, bool ok, std::string_view detail) {
    if (done_) {
      return;
    }
    done_ = true;
    const std::string copy(detail);  // may point into response_, which Close keeps alive
    conn.Close();
    fetcher_.OnResult(target_, ok, copy);
  }

  OcspFetcher& fetcher_;
  uint32_t target_;
  std::string_view request_;  // owned by the fetcher
  std::string response_;
  bool done_ = false;
};

}  // namespace

OcspFetcher::OcspFetcher(const http::ProxyConfig& proxy) {
  for (const http::ListenerSpec& l : proxy.listeners) {
    if (!l.tls) {
      continue;
    }
    for (const tls::ServerContext::OcspFetch& f : l.tls->ocsp_fetches()) {
      Target t;
      t.listener = l.name;
      t.ctx = l.tls;
      t.fetch = &f;
      const Url url = ParseUrl(f.url);
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* found = nullptr;
      // The main thread, building a generation: a blocking lookup is allowed here.
      const int rc = getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found);
      if (rc != 0 || found == nullptr || found->ai_addrlen > sizeof(t.addr)) {
        t.resolve_error = "cannot resolve " + url.host + ": " + gai_strerror(rc);
      } else {
        std::memcpy(&t.addr, found->ai_addr, found->ai_addrlen);
        t.addr_len = found->ai_addrlen;
      }
      if (found != nullptr) {
        freeaddrinfo(found);
      }
      t.request = "POST " + url.path + " HTTP/1.0\r\nHost: " + url.host +
                  (url.port == "80" ? "" : ":" + url.port) +
                  "\r\nContent-Type: application/ocsp-request\r\nContent-Length: " +
                  std::to_string(f.request.size()) + "\r\nUser-Agent: torii\r\n\r\n" + f.request;
      t.retry_ms = kFirstRetryMs;
      targets_.push_back(std::move(t));
    }
  }
}

void OcspFetcher::Start(core::Worker& worker) {
  worker_ = &worker;
  task_ = worker_->AddTask([this] { Round(); });
  Round();
}

void OcspFetcher::Stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  if (worker_ != nullptr) {
    worker_->RemoveTask(task_);
  }
}

bool OcspFetcher::busy() const {
  return std::any_of(targets_.begin(), targets_.end(), [](const Target& t) { return t.in_flight; });
}

void OcspFetcher::Round() {
  if (stopped_ || worker_->draining()) {
    return;
  }
  const uint64_t now = worker_->now_ms();
  uint64_t next = std::numeric_limits<uint64_t>::max();
  for (uint32_t i = 0; i < targets_.size(); ++i) {
    Target& t = targets_[i];
    if (now >= t.due_ms && !t.in_flight) {
      t.due_ms = std::numeric_limits<uint64_t>::max();  // set again by the result
      Fetch(i);
    }
    next = std::min(next, targets_[i].due_ms);
  }
  if (next != std::numeric_limits<uint64_t>::max()) {
    worker_->ArmTask(task_, next);
  }
}

void OcspFetcher::Fetch(uint32_t target) {
  Target& t = targets_[target];
  if (!t.resolve_error.empty()) {
    Failed(t, t.resolve_error);
    return;
  }
  spdlog::debug("listener {}: fetching the OCSP response for {} from {}", t.listener,
                t.fetch->certificate, t.fetch->url);
  auto conn = worker_->Connect(reinterpret_cast<const sockaddr*>(&t.addr), t.addr_len,
                               std::make_unique<FetchProbe>(*this, target, t.request));
  if (!conn) {
    Failed(t, "connect: " + std::string(conn.error().name()));
    return;
  }
  t.in_flight = true;
  (*conn)->SetTimer(worker_->now_ms() + kTimeoutMs);
}

void OcspFetcher::OnResult(uint32_t target, bool ok, std::string_view body_or_error) {
  Target& t = targets_[target];
  t.in_flight = false;
  if (stopped_) {
    return;  // a reload replaced this fetcher
  }
  if (!ok) {
    Failed(t, body_or_error);
  } else if (auto next_update = t.ctx->UpdateStaple(*t.fetch, body_or_error); !next_update) {
    Failed(t, "response refused: " + next_update.error());
  } else {
    if (t.failing) {
      spdlog::info("listener {}: OCSP response for {} fetched from {} again", t.listener,
                   t.fetch->certificate, t.fetch->url);
    }
    spdlog::debug("listener {}: OCSP response for {} stapled (nextUpdate {})", t.listener,
                  t.fetch->certificate, *next_update);
    t.failing = false;
    t.retry_ms = kFirstRetryMs;
    // Halfway to its nextUpdate, between 1 min and 12 h from now.
    const int64_t left = *next_update != 0 ? *next_update - std::time(nullptr) : 0;
    const uint64_t refresh_s = left > 0 ? static_cast<uint64_t>(left) / 2 : 12 * 3600;
    t.due_ms = worker_->now_ms() + std::clamp<uint64_t>(refresh_s, 60, 12 * 3600) * 1000;
  }
  Round();
}

void OcspFetcher::Failed(Target& t, std::string_view why) {
  if (!t.failing) {
    const int64_t next_update = t.ctx->staple_next_update(*t.fetch);
    spdlog::warn("listener {}: OCSP response for {} from {} failed: {}; retrying, {}", t.listener,
                 t.fetch->certificate, t.fetch->url, why,
                 next_update != 0 ? "the previous response stays stapled until its nextUpdate"
                                  : "nothing is stapled meanwhile");
  }
  t.failing = true;
  t.due_ms = worker_->now_ms() + t.retry_ms;
  t.retry_ms = std::min(t.retry_ms * 2, kMaxRetryMs);
}

}  // namespace torii::app
