// http/proxy_header_reader.cc: ProxyHeaderReader (proxy_protocol.h), the transport that reads
// a connection's PROXY header before anything else; the parser itself is proxy_protocol.cc.
#include <spdlog/spdlog.h>

#include "core/worker.h"
#include "http/proxy_protocol.h"

namespace torii::http {

void ProxyHeaderReader::OnReceived(core::Conn& conn, std::span<const char> bytes) {
  std::string_view data(bytes.data(), bytes.size());
  if (!held_.empty()) {
    held_.append(data);
    data = held_;
  }
  const ProxyHeader header = ParseProxyHeader(data);
  if (header.result == ProxyHeader::Result::kNeedMore) {
    if (held_.empty()) {
      held_.assign(data);
    }
    return;  // bounded: a header that cannot fit kMaxProxyHeader is an error before this
  }
  if (header.result == ProxyHeader::Result::kError) {
    spdlog::debug("connection closed: bad PROXY header: {}", header.error);
    conn.Close();
    return;
  }
  if (!on_header_(conn, header)) {
    conn.Close();
    return;
  }
  // The rest belongs to the transport after this one (or the handler). Taken out of *this
  // first: putting that transport in place destroys the reader.
  const bool from_held = !held_.empty();
  const std::string rest_owner = std::move(held_);
  const std::string_view rest =
      (from_held ? std::string_view(rest_owner) : data).substr(header.length);
  std::unique_ptr<core::Transport> next = std::move(next_);
  core::Transport* after = next.get();
  conn.set_transport(std::move(next));
  if (rest.empty() || conn.closing()) {
    return;
  }
  if (after != nullptr) {
    after->OnReceived(conn, std::span<const char>(rest.data(), rest.size()));
  } else if (conn.handler() != nullptr) {
    conn.handler()->OnRecv(conn, std::span<const char>(rest.data(), rest.size()));
  }
}

void ProxyHeaderReader::Write(core::Conn& conn, std::string_view bytes) {
  if (next_) {
    next_->Write(conn, bytes);
  } else {
    conn.WriteRaw(bytes);
  }
}

void ProxyHeaderReader::Flush(core::Conn& conn) {
  if (next_) {
    next_->Flush(conn);
  }
}

void ProxyHeaderReader::OnCloseAfterFlush(core::Conn& conn) {
  if (next_) {
    next_->OnCloseAfterFlush(conn);
  }
}

}  // namespace torii::http
