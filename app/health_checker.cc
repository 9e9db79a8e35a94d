// app/health_checker.cc: see health_checker.h.
#include "app/health_checker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <optional>

#include "base/text.h"
#include "http/grpc.h"
#include "http/h2_client_codec.h"
#include "http/proxy_protocol.h"
#include "http/tls_transport.h"

namespace torii::app {

namespace {

// What every check shares: one verdict, reported once. A timeout, a transport error (a failed
// TLS handshake or verification named as such) or the connection's end before the answer
// (`eof_detail`) fails it; a drain (stopping) gives none.
class Probe : public core::ConnHandler {
 public:
  Probe(HealthChecker& checker, uint32_t target, const char* eof_detail)
      : checker_(checker), target_(target), eof_detail_(eof_detail) {}

  void OnEof(core::Conn& conn) override { Finish(conn, false, eof_detail_); }
  void OnError(core::Conn& conn, core::Error error) override {
    // A TLS transport reports a failed handshake or verification as EPROTO.
    Finish(conn, false,
           conn.transport() != nullptr && error.sys_errno == EPROTO ? std::string("TLS failed")
                                                                    : std::string(error.name()));
  }
  void OnTimer(core::Conn& conn) override { Finish(conn, false, "timeout"); }
  void OnDrain(core::Conn& conn) override {
    done_ = true;  // stopping: no verdict
    conn.Close();
  }

 protected:
  bool done() const { return done_; }
  void Finish(core::Conn& conn, bool ok, std::string_view detail) {
    if (done_) {
      return;
    }
    done_ = true;
    conn.Close();
    checker_.OnResult(target_, ok, detail);
  }

 private:
  HealthChecker& checker_;
  uint32_t target_;
  const char* eof_detail_;
  bool done_ = false;
};

// Reads the status line of one check's response.
class HealthProbe final : public Probe {
 public:
  HealthProbe(HealthChecker& checker, uint32_t target, std::string_view request,
              std::vector<conf::StatusRange> expect)
      : Probe(checker, target, "closed before a status line"),
        request_(request),
        expect_(std::move(expect)) {}

  void OnConnected(core::Conn& conn, core::Result<void> result) override {
    if (!result) {
      Finish(conn, false, std::string("connect: ") + std::string(result.error().name()));
      return;
    }
    if (request_.empty()) {
      Finish(conn, true, "connected");  // type = "tcp"
      return;
    }
    conn.Write(request_);  // over TLS: held by the transport until the handshake is done
  }

  void OnRecv(core::Conn& conn, std::span<const char> data) override {
    if (done()) {
      return;
    }
    // "HTTP/1.1 200" is all we need: 12 bytes.
    const size_t want = kStatusLineBytes - std::min(head_.size(), kStatusLineBytes);
    head_.append(data.data(), std::min(want, data.size()));
    if (head_.size() < kStatusLineBytes) {
      return;
    }
    const bool well_formed = head_.starts_with("HTTP/1.") && base::IsDigit(head_[7]) &&
                             head_[8] == ' ' && base::IsDigit(head_[9]) &&
                             base::IsDigit(head_[10]) && base::IsDigit(head_[11]);
    if (!well_formed) {
      Finish(conn, false, "not an HTTP/1.x response");
      return;
    }
    const int status = (head_[9] - '0') * 100 + (head_[10] - '0') * 10 + (head_[11] - '0');
    const bool ok = std::any_of(expect_.begin(), expect_.end(), [&](const conf::StatusRange& r) {
      return status >= r.first && status <= r.last;
    });
    Finish(conn, ok, "status " + std::to_string(status));
  }

 private:
  static constexpr size_t kStatusLineBytes = 12;

  std::string_view request_;  // owned by the checker
  std::vector<conf::StatusRange> expect_;
  std::string head_;
};

// An HTTP/2 check (pools with protocol "h2" / "h2c"): one stream, GET path (judged by its
// status) or the gRPC health protocol's Check (grpc-status 0 and SERVING pass), framed by the
// same client codec as the traffic to these backends (http/h2_client_codec.h).
class H2HealthProbe final : public Probe, private http::H2ClientCodec::Host {
 public:
  struct Request {
    bool grpc = false;
    bool tls = false;
    std::string path;
    std::string authority;
    std::string message;  // gRPC: the framed HealthCheckRequest
  };
  H2HealthProbe(HealthChecker& checker, uint32_t target, Request request,
                std::vector<conf::StatusRange> expect)
      : Probe(checker, target, "closed before the answer"),
        req_(std::move(request)),
        expect_(std::move(expect)) {}

  void OnConnected(core::Conn& conn, core::Result<void> result) override {
    if (!result) {
      Finish(conn, false, std::string("connect: ") + std::string(result.error().name()));
      return;
    }
    codec_.emplace(static_cast<http::H2ClientCodec::Host&>(*this), http::H2ClientCodec::Settings{});
    std::vector<http::H2Field> fields = {{":method", req_.grpc ? "POST" : "GET"},
                                         {":scheme", req_.tls ? "https" : "http"},
                                         {":authority", req_.authority},
                                         {":path", req_.path},
                                         {"user-agent", "torii-health-check"}};
    if (req_.grpc) {
      fields.push_back({"content-type", "application/grpc"});
      fields.push_back({"te", "trailers"});
    }
    stream_ = codec_->Open(fields, /*end_stream=*/!req_.grpc);
    if (stream_ == 0) {
      Finish(conn, false, "HTTP/2 request refused");
      return;
    }
    Flush(conn);
  }

  void OnRecv(core::Conn& conn, std::span<const char> data) override {
    if (done()) {
      return;
    }
    if (!codec_->Receive(std::string_view(data.data(), data.size()))) {
      Finish(conn, false, "HTTP/2 protocol error");
      return;
    }
    for (const auto& [id, code] : codec_->TakeClosed()) {
      if (id == stream_) {
        Judge(conn, code);
        return;
      }
    }
    Flush(conn);
  }

 private:
  // ---- http::H2ClientCodec::Host ----
  void OnField(int32_t /*stream*/, std::string_view n, std::string_view v) override {
    if (n == ":status") {
      status_ = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');  // checked: 3 digits
    } else if (n == "grpc-status") {
      grpc_status_ = std::string(v);
    }
  }
  void OnHeaders(int32_t /*stream*/, bool /*end_stream*/) override {}
  void OnData(int32_t stream, std::string_view bytes) override {
    if (body_.size() < kMaxBody) {
      body_.append(bytes.substr(0, kMaxBody - body_.size()));
    }
    codec_->Consume(stream, bytes.size());
  }
  void OnDataEnd(int32_t /*stream*/) override {}
  void OnSettings() override {}
  void OnGoaway() override {}
  void OnPingAck() override {}
  void OnMalformed(int32_t /*stream*/) override { malformed_ = true; }

  // The stream closed: the verdict.
  void Judge(core::Conn& conn, http::H2Error code) {
    if (malformed_) {
      Finish(conn, false, "malformed response");
    } else if (code != http::H2Error::kNoError) {
      Finish(conn, false, "stream reset");
    } else if (!req_.grpc) {
      const bool ok = std::any_of(expect_.begin(), expect_.end(), [&](const conf::StatusRange& r) {
        return status_ >= r.first && status_ <= r.last;
      });
      Finish(conn, ok, "status " + std::to_string(status_));
    } else if (status_ != 200 || grpc_status_ != "0") {
      Finish(conn, false, "status " + std::to_string(status_) + ", grpc-status " + grpc_status_);
    } else {
      const std::optional<uint32_t> serving = http::GrpcHealthStatus(body_);
      Finish(conn, serving == 1u,
             serving ? "health status " + std::to_string(*serving) : "bad HealthCheckResponse");
    }
  }

  // The codec's frames, then the gRPC request message as the windows allow.
  void Flush(core::Conn& conn) {
    std::string& out = codec_->output();
    if (!out.empty()) {
      conn.Write(out);
      out.clear();
    }
    while (req_.grpc && sent_ < req_.message.size()) {
      const size_t n = std::min(req_.message.size() - sent_, codec_->Sendable(stream_));
      if (n == 0) {
        break;  // a WINDOW_UPDATE brings the rest
      }
      const bool last = sent_ + n == req_.message.size();
      const std::array<char, 9> h = codec_->DataHeader(stream_, n, last);
      conn.Write(std::string_view(h.data(), h.size()));
      conn.Write(std::string_view(req_.message).substr(sent_, n));
      sent_ += n;
    }
  }
  static constexpr size_t kMaxBody = 1024;  // a HealthCheckResponse is a few bytes

  Request req_;
  std::vector<conf::StatusRange> expect_;
  std::optional<http::H2ClientCodec> codec_;
  int32_t stream_ = 0;
  size_t sent_ = 0;
  int status_ = 0;
  bool malformed_ = false;
  std::string grpc_status_;
  std::string body_;
};

}  // namespace

HealthChecker::HealthChecker(const conf::Config& config, const http::ProxyConfig& proxy) {
  for (size_t p = 0; p < config.pools.size(); ++p) {
    const conf::PoolConfig& pool = config.pools[p];
    if (!pool.health) {
      continue;
    }
    const conf::HealthConfig& h = *pool.health;
    const http::PoolSpec& spec = proxy.pools[p];
    for (size_t b = 0; b < spec.backends.size(); ++b) {
      const http::BackendTarget& backend = spec.backends[b];
      Target t;
      t.pool = pool.name;
      t.backend = backend.name;
      t.index = static_cast<uint32_t>(b);
      t.addr = backend.addr;
      t.addr_len = backend.addr_len;
      // The Host a check sends by default: the name the backend was found by, else its address.
      const std::string host = !h.host.empty() ? h.host
                               : backend.host.empty()
                                   ? backend.name
                                   : backend.host + backend.name.substr(backend.name.rfind(':'));
      const bool h2 = pool.protocol != conf::PoolConfig::Protocol::kHttp11;
      if (h.type != conf::HealthConfig::Type::kTcp && h2) {
        t.h2 = true;
        t.grpc = h.type == conf::HealthConfig::Type::kGrpc;
        t.path = t.grpc ? "/grpc.health.v1.Health/Check" : h.path;
        t.authority = host;
        if (t.grpc) {
          t.grpc_message = http::GrpcHealthCheckRequest(h.service);
        }
      } else if (h.type == conf::HealthConfig::Type::kHttp) {
        t.request = "GET " + h.path + " HTTP/1.1\r\nHost: " + host +
                    "\r\nUser-Agent: torii-health-check\r\nAccept: */*\r\n"
                    "Connection: close\r\n\r\n";
      }
      if (h.type != conf::HealthConfig::Type::kTcp && spec.tls) {
        t.tls = spec.tls;
        t.tls_name = spec.tls_names[b];
        t.tls_sessions = spec.tls_sessions[b];
      }
      t.send_proxy = spec.send_proxy;
      t.interval_ms = static_cast<uint64_t>(h.interval.count());
      t.timeout_ms = static_cast<uint64_t>(h.timeout.count());
      t.expect = h.expect_status;
      t.health = spec.health;
      targets_.push_back(std::move(t));
    }
  }
}

void HealthChecker::Start(http::ProxyContext& ctx) {
  ctx_ = &ctx;
  worker_ = &ctx.worker();
  task_ = worker_->AddTask([this] { Round(); });
  Round();
}

void HealthChecker::Stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  if (worker_ != nullptr) {
    worker_->RemoveTask(task_);
  }
}

bool HealthChecker::busy() const {
  for (const Target& t : targets_) {
    if (t.in_flight) {
      return true;
    }
  }
  return false;
}

void HealthChecker::Round() {
  if (stopped_ || worker_->draining()) {
    return;  // stopping: no new checks, and no re-arm
  }
  const uint64_t now = worker_->now_ms();
  uint64_t next = std::numeric_limits<uint64_t>::max();
  for (uint32_t i = 0; i < targets_.size(); ++i) {
    Target& t = targets_[i];
    if (now >= t.next_due_ms) {
      t.next_due_ms = now + t.interval_ms;
      if (!t.in_flight) {
        StartProbe(i);
      }
    }
    next = std::min(next, t.next_due_ms);
  }
  if (next != std::numeric_limits<uint64_t>::max()) {
    worker_->ArmTask(task_, next);
  }
}

void HealthChecker::StartProbe(uint32_t target) {
  Target& t = targets_[target];
  std::unique_ptr<core::ConnHandler> probe;
  if (t.h2) {
    probe = std::make_unique<H2HealthProbe>(
        *this, target,
        H2HealthProbe::Request{t.grpc, t.tls != nullptr, t.path, t.authority, t.grpc_message},
        t.expect);
  } else {
    probe = std::make_unique<HealthProbe>(*this, target, t.request, t.expect);
  }
  auto conn = worker_->Connect(reinterpret_cast<const sockaddr*>(&t.addr), t.addr_len,
                               std::move(probe));
  if (!conn) {
    if (conn.error().code == core::Errc::kTooManyConns || conn.error().code == core::Errc::kNoFds) {
      // Our own limit, not the backend's fault: skip this round rather than fail the check.
      spdlog::debug("pool {} backend {}: health check skipped: {}", t.pool, t.backend,
                    conn.error().name());
      return;
    }
    OnResult(target, false, std::string("connect: ") + std::string(conn.error().name()));
    return;
  }
  if (t.send_proxy != 0) {
    // A backend that expects a PROXY header gets one naming no client (HAProxy's
    // check-send-proxy), before the TLS handshake.
    std::string header;
    http::AppendLocalProxyHeader(t.send_proxy, &header);
    (*conn)->WriteRaw(header);
  }
  if (t.tls) {
    (*conn)->set_transport(std::make_unique<http::TlsClientTransport>(
        *ctx_, **conn, t.tls, t.tls_name, t.tls_sessions));
  }
  t.in_flight = true;
  (*conn)->SetTimer(worker_->now_ms() + t.timeout_ms);
}

void HealthChecker::OnResult(uint32_t target, bool ok, std::string_view detail) {
  Target& t = targets_[target];
  t.in_flight = false;
  if (stopped_) {
    return;  // replaced by a reload: its successor reports
  }
  t.fails_in_row = ok ? 0 : t.fails_in_row + 1;
  const balancer::HealthChange change = t.health->ReportCheck(t.index, ok, worker_->now_ms());
  if (change == balancer::HealthChange::kDown) {
    spdlog::warn("pool {} backend {} is DOWN: {} failed health checks in a row (last: {})", t.pool,
                 t.backend, t.fails_in_row, detail);
  } else if (change == balancer::HealthChange::kUp) {
    spdlog::info("pool {} backend {} is UP: {} passing health checks in a row ({})", t.pool,
                 t.backend, t.health->policy().rise, detail);
  } else if (!ok) {
    spdlog::debug("pool {} backend {} health check failed: {}", t.pool, t.backend, detail);
  }
}

}  // namespace torii::app
