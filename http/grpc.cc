// http/grpc.cc: see grpc.h.
#include "http/grpc.h"

#include "base/text.h"

namespace torii::http {

bool IsGrpcContentType(std::string_view content_type) {
  constexpr std::string_view kGrpc = "application/grpc";
  const std::string_view ct = base::TrimOws(content_type);
  if (ct.size() < kGrpc.size() || !base::EqualsIgnoreCase(ct.substr(0, kGrpc.size()), kGrpc)) {
    return false;
  }
  const std::string_view rest = ct.substr(kGrpc.size());
  return rest.empty() || rest.front() == '+' || rest.front() == ';';
}

int GrpcStatusFor(int http_status) {
  switch (http_status) {
    case 408:
    case 504:
      return 4;  // DEADLINE_EXCEEDED
    case 413:
    case 429:
    case 431:
      return 8;  // RESOURCE_EXHAUSTED
    case 502:
    case 503:
      return 14;  // UNAVAILABLE
    case 401:
      return 16;  // UNAUTHENTICATED
    case 403:
      return 7;  // PERMISSION_DENIED
    case 404:
    case 405:
    case 501:
      return 12;  // UNIMPLEMENTED
    default:
      return 13;  // INTERNAL
  }
}

std::optional<uint64_t> ParseGrpcTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) {
    return std::nullopt;
  }
  uint64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  uint64_t ms;
  switch (value.back()) {
    case 'H':
      ms = n * 3600 * 1000;
      break;
    case 'M':
      ms = n * 60 * 1000;
      break;
    case 'S':
      ms = n * 1000;
      break;
    case 'm':
      ms = n;
      break;
    case 'u':
      ms = (n + 999) / 1000;
      break;
    case 'n':
      ms = (n + 999999) / 1000000;
      break;
    default:
      return std::nullopt;
  }
  return ms == 0 && n > 0 ? 1 : ms;
}

void AppendGrpcStatusFields(int grpc_status, std::string_view message, std::string* out) {
  out->append("grpc-status: ");
  base::AppendDecimal(out, static_cast<uint64_t>(grpc_status));
  out->append("\r\ngrpc-message: ");
  // Percent-encoded (gRPC's grpc-message: printable ASCII except '%' as it is).
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : message) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    }
  }
  out->append("\r\n");
}

}  // namespace torii::http
