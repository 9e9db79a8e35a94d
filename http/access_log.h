// http/access_log.h: one line per request, per worker, written without locks.
//
// Each worker formats its lines into its own buffer (fmt, spdlog's formatting library) and
// writes the buffer with one write(2) per loop turn (Flush() from the worker's end-of-turn
// hook), or sooner when it passes 64 KiB. Lines are never split across writes, and the file
// is opened O_APPEND, so workers sharing a file interleave whole lines. spdlog's own sinks
// would take a lock per line (the _mt sinks) or could cut a line between two workers' writes
// (the _st sinks flush on buffer size, not on line boundaries), hence this small writer.
// Hostile bytes in logged fields (CR, LF, ANSI escapes, quotes) are escaped and long fields
// truncated, so one request is always one line and a client cannot forge log lines.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/phases.h"

namespace torii::http {

enum class AccessLogFormat : uint8_t { kText, kJson };

struct AccessRecord {
  std::string_view client;   // the client: the peer, or the address a trusted proxy named
  std::string_view peer;     // the socket peer when it is not the client ("" otherwise)
  std::string_view request_id;  // "" when request IDs are off
  std::string_view user;        // the Basic-authenticated user, or ""  (never the password)
  // client_auth listeners: the certificate's verification ("SUCCESS", "FAILED:why", "NONE")
  // and subject; "" elsewhere.
  std::string_view client_verify;
  std::string_view client_dn;
  std::string_view trace_id;    // the W3C trace id (32 hex), "" when trace context is off
  std::string_view method;
  std::string_view target;
  std::string_view host;
  int version_major = 1;
  int version_minor = 1;
  int status = 0;
  uint64_t bytes_sent = 0;  // body bytes sent to the client (a tunnel: bytes to the client)
  // A tunnel (status 101): bytes from the client to the backend; nullopt otherwise.
  std::optional<uint64_t> tunnel_bytes_up;
  std::string_view backend;  // "" when answered locally
  uint64_t duration_ms = 0;
  std::string_view note;     // why a local reply was sent, or ""
  std::string_view cache;    // the Cache-Status of a cached route's response, or ""
  const PhaseTimes* phases = nullptr;  // the latency budget (null: phase_timing off)
  // TLS listeners: what the handshake agreed (empty version = plain HTTP).
  std::string_view tls_version;
  std::string_view tls_cipher;
  std::string_view sni;
  bool tls_resumed = false;
  bool early_data = false;  // the request came in TLS early data (0-RTT)
};

class AccessLog {
 public:
  // `fd` < 0 disables the log. The fd is shared (not owned) by every worker's AccessLog.
  AccessLog(int fd, AccessLogFormat format) : fd_(fd), format_(format) {}
  ~AccessLog() { Flush(); }
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  bool enabled() const { return fd_ >= 0; }
  void Append(const AccessRecord& r);
  void Flush();
  // The pending text (tests).
  const std::string& pending() const { return buf_; }

 private:
  void AppendEscaped(std::string_view s, size_t max, bool json);
  int fd_;
  AccessLogFormat format_;
  std::string buf_;
  int64_t cached_second_ = -1;
  char time_text_[64] = {};
};

}  // namespace torii::http
