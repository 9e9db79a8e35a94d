// http/access_log.cc: see access_log.h.
#include "http/access_log.h"

#include <time.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

namespace torii::http {

namespace {
constexpr size_t kFlushAt = 64 * 1024;
constexpr size_t kMaxTarget = 2048;
constexpr size_t kMaxField = 256;
constexpr char kHex[] = "0123456789abcdef";
}  // namespace

void AccessLog::AppendEscaped(std::string_view s, size_t max, bool json) {
  const bool cut = s.size() > max;
  if (cut) {
    s = s.substr(0, max);
  }
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      buf_.push_back(static_cast<char>(c));
    } else if (json) {
      buf_ += "\\u00";
      buf_.push_back(kHex[c >> 4]);
      buf_.push_back(kHex[c & 15]);
    } else {
      buf_ += "\\x";
      buf_.push_back(kHex[c >> 4]);
      buf_.push_back(kHex[c & 15]);
    }
  }
  if (cut) {
    buf_ += "...";
  }
}

void AccessLog::Append(const AccessRecord& r) {
  if (fd_ < 0) {
    return;
  }
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != cached_second_) {
    cached_second_ = ts.tv_sec;
    tm t{};
    gmtime_r(&ts.tv_sec, &t);
    strftime(time_text_, sizeof(time_text_), "%Y-%m-%dT%H:%M:%SZ", &t);
  }
  const bool json = format_ == AccessLogFormat::kJson;
  if (json) {
    buf_ += "{\"time\":\"";
    buf_ += time_text_;
    buf_ += "\",\"client\":\"";
    AppendEscaped(r.client, kMaxField, true);
    buf_ += "\",\"method\":\"";
    AppendEscaped(r.method, kMaxField, true);
    buf_ += "\",\"host\":\"";
    AppendEscaped(r.host, kMaxField, true);
    buf_ += "\",\"target\":\"";
    AppendEscaped(r.target, kMaxTarget, true);
    fmt::format_to(std::back_inserter(buf_),
                   "\",\"protocol\":\"HTTP/{}.{}\",\"status\":{},\"bytes\":{},\"backend\":\"",
                   r.version_major, r.version_minor, r.status, r.bytes_sent);
    AppendEscaped(r.backend, kMaxField, true);
    fmt::format_to(std::back_inserter(buf_), "\",\"duration_ms\":{},\"note\":\"", r.duration_ms);
    AppendEscaped(r.note, kMaxField, true);
    buf_ += '"';
    if (r.tunnel_bytes_up) {
      fmt::format_to(std::back_inserter(buf_), ",\"bytes_up\":{}", *r.tunnel_bytes_up);
    }
    if (!r.peer.empty()) {
      buf_ += ",\"peer\":\"";
      AppendEscaped(r.peer, kMaxField, true);
      buf_ += '"';
    }
    if (!r.user.empty()) {
      buf_ += ",\"user\":\"";
      AppendEscaped(r.user, kMaxField, true);
      buf_ += '"';
    }
    if (!r.client_verify.empty()) {
      buf_ += ",\"client_cert\":{\"verify\":\"";
      AppendEscaped(r.client_verify, kMaxField, true);
      buf_ += "\",\"subject\":\"";
      AppendEscaped(r.client_dn, kMaxField, true);
      buf_ += "\"}";
    }
    if (!r.request_id.empty()) {
      buf_ += ",\"request_id\":\"";
      AppendEscaped(r.request_id, kMaxField, true);
      buf_ += '"';
    }
    if (!r.trace_id.empty()) {
      buf_ += ",\"trace_id\":\"";
      AppendEscaped(r.trace_id, kMaxField, true);
      buf_ += '"';
    }
    if (!r.cache.empty()) {
      buf_ += ",\"cache\":\"";
      AppendEscaped(r.cache, kMaxField, true);
      buf_ += '"';
    }
    if (r.phases != nullptr) {
      buf_ += ",\"phases_ms\":";
      AppendPhasesJson(*r.phases, &buf_);
    }
    if (!r.tls_version.empty()) {
      buf_ += ",\"tls\":{\"version\":\"";
      AppendEscaped(r.tls_version, kMaxField, true);
      buf_ += "\",\"cipher\":\"";
      AppendEscaped(r.tls_cipher, kMaxField, true);
      buf_ += "\",\"sni\":\"";
      AppendEscaped(r.sni, kMaxField, true);
      buf_ += r.tls_resumed ? "\",\"resumed\":true" : "\",\"resumed\":false";
      buf_ += r.early_data ? ",\"early_data\":true}" : "}";
    }
    buf_ += "}\n";
  } else {
    AppendEscaped(r.client, kMaxField, false);
    buf_ += " [";
    buf_ += time_text_;
    buf_ += "] \"";
    AppendEscaped(r.method, kMaxField, false);
    buf_ += ' ';
    AppendEscaped(r.target, kMaxTarget, false);
    fmt::format_to(std::back_inserter(buf_), " HTTP/{}.{}\" {} {} host=\"", r.version_major,
                   r.version_minor, r.status, r.bytes_sent);
    AppendEscaped(r.host, kMaxField, false);
    buf_ += "\" backend=";
    if (r.backend.empty()) {
      buf_ += '-';
    } else {
      AppendEscaped(r.backend, kMaxField, false);
    }
    fmt::format_to(std::back_inserter(buf_), " {}ms", r.duration_ms);
    if (r.tunnel_bytes_up) {
      fmt::format_to(std::back_inserter(buf_), " up={}", *r.tunnel_bytes_up);
    }
    if (!r.note.empty()) {
      buf_ += " note=\"";
      AppendEscaped(r.note, kMaxField, false);
      buf_ += '"';
    }
    if (!r.cache.empty()) {
      buf_ += " cache=\"";
      AppendEscaped(r.cache, kMaxField, false);
      buf_ += '"';
    }
    if (r.phases != nullptr && r.phases->present != 0) {
      buf_ += " phases_ms=";
      AppendPhasesText(*r.phases, &buf_);
    }
    if (!r.tls_version.empty()) {
      buf_ += " tls=";
      AppendEscaped(r.tls_version, kMaxField, false);
      buf_ += '/';
      AppendEscaped(r.tls_cipher, kMaxField, false);
      buf_ += " sni=";
      AppendEscaped(r.sni.empty() ? std::string_view("-") : r.sni, kMaxField, false);
      buf_ += r.tls_resumed ? " resumed=1" : " resumed=0";
      if (r.early_data) {
        buf_ += " early_data=1";
      }
    }
    if (!r.peer.empty()) {
      buf_ += " peer=";
      AppendEscaped(r.peer, kMaxField, false);
    }
    if (!r.user.empty()) {
      buf_ += " user=";
      AppendEscaped(r.user, kMaxField, false);
    }
    if (!r.client_verify.empty()) {
      buf_ += " client_verify=";
      AppendEscaped(r.client_verify, kMaxField, false);
      buf_ += " client_dn=\"";
      AppendEscaped(r.client_dn, kMaxField, false);
      buf_ += '"';
    }
    if (!r.request_id.empty()) {
      buf_ += " rid=";
      AppendEscaped(r.request_id, kMaxField, false);
    }
    if (!r.trace_id.empty()) {
      buf_ += " trace=";
      AppendEscaped(r.trace_id, kMaxField, false);
    }
    buf_ += '\n';
  }
  if (buf_.size() >= kFlushAt) {
    Flush();
  }
}

void AccessLog::Flush() {
  size_t off = 0;
  while (fd_ >= 0 && off < buf_.size()) {
    const ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;  // a log that cannot be written must not stop the proxy
    }
    off += static_cast<size_t>(n);
  }
  buf_.clear();
}

}  // namespace torii::http
