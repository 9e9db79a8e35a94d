// http/proxy_protocol.h: the PROXY protocol (HAProxy's, versions 1 and 2), both ways.
//
// A load balancer in front of torii that works at the TCP level (HAProxy in tcp mode, AWS NLB,
// a Kubernetes ingress) can only tell torii who the client is by writing a PROXY header before
// the connection's first byte. A listener with `proxy_protocol = true` requires one from every
// connection, reads it before anything else (before the TLS handshake), and accepts it only
// from a peer in trusted_proxies; the header's source is then the connection's client for
// every decision (access lists, rate limits, X-Forwarded-For, the log). A pool with
// `send_proxy = "v1" | "v2"` writes one on each connection it opens to a backend.
//
// The parser is strict: a header that is not exactly one of the two formats, an address that
// does not parse, a v1 line over 107 bytes or a v2 header over kMaxProxyHeader is an error
// and the connection is closed (never read as HTTP).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/transport.h"

namespace torii::http {

// The longest header accepted: v2's 16 bytes plus addresses and TLVs (AWS and GCP send tens of
// bytes of TLVs; HAProxy's SSL TLVs stay well under this).
constexpr size_t kMaxProxyHeader = 16 + 1024;

struct ProxyHeader {
  enum class Result : uint8_t { kNeedMore, kOk, kError };
  Result result = Result::kNeedMore;
  size_t length = 0;  // kOk: bytes the header took
  // kOk: no addresses (v1 UNKNOWN, v2 LOCAL or an unspecified family: the balancer's own
  // connection, a health check); the socket's addresses stand.
  bool local = false;
  sockaddr_storage source{};  // the client, when !local
  sockaddr_storage dest{};    // the address it connected to
  const char* error = "";     // kError: why, for the log
};

// Parses the PROXY header at the start of `bytes` (v1 or v2, told apart by the first byte).
ProxyHeader ParseProxyHeader(std::string_view bytes);

// Appends a header for a connection from `source` to `dest` (both AF_INET or both AF_INET6;
// otherwise v1 UNKNOWN / v2 LOCAL). `version`: 1 or 2.
void AppendProxyHeader(int version, const sockaddr* source, const sockaddr* dest, std::string* out);
// A header that carries no client: v1 "PROXY UNKNOWN", v2 LOCAL (health checks).
void AppendLocalProxyHeader(int version, std::string* out);

// Reads the PROXY header of an accepted connection before anything else sees a byte. It sits
// where the transport goes (core/transport.h) and holds the transport that follows it (TLS,
// or none); once the header is complete it hands it to `on_header`, puts that transport in its
// own place (which destroys the reader) and passes it the bytes after the header. A bad header
// closes the connection.
class ProxyHeaderReader final : public core::Transport {
 public:
  // Called once, with a kOk header; returns false to refuse the connection.
  using OnHeader = bool (*)(core::Conn& conn, const ProxyHeader& header);
  ProxyHeaderReader(std::unique_ptr<core::Transport> next, OnHeader on_header)
      : next_(std::move(next)), on_header_(on_header) {}

  void OnReceived(core::Conn& conn, std::span<const char> bytes) override;
  void Write(core::Conn& conn, std::string_view bytes) override;
  size_t pending() const override { return next_ ? next_->pending() : 0; }
  void Flush(core::Conn& conn) override;
  void OnCloseAfterFlush(core::Conn& conn) override;

 private:
  std::unique_ptr<core::Transport> next_;
  OnHeader on_header_;
  std::string held_;  // a header split across receives
};

}  // namespace torii::http
