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

namespace {

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// A protobuf varint from *in (consumed); nullopt when truncated or over 10 bytes.
std::optional<uint64_t> ReadVarint(std::string_view* in) {
  uint64_t v = 0;
  for (int shift = 0; shift < 70 && !in->empty(); shift += 7) {
    const auto b = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      return v;
    }
  }
  return std::nullopt;
}

}  // namespace

std::string GrpcHealthCheckRequest(std::string_view service) {
  std::string message;
  if (!service.empty()) {
    message.push_back(0x0a);  // field 1 (service), length-delimited
    AppendVarint(service.size(), &message);
    message.append(service);
  }
  std::string framed(1, '\0');  // not compressed
  const auto n = static_cast<uint32_t>(message.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    framed.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  framed.append(message);
  return framed;
}

std::optional<uint32_t> GrpcHealthStatus(std::string_view framed) {
  if (framed.size() < 5 || framed[0] != 0) {
    return std::nullopt;  // absent, or compressed (never asked for)
  }
  uint32_t n = 0;
  for (int i = 1; i <= 4; ++i) {
    n = (n << 8) | static_cast<unsigned char>(framed[i]);
  }
  std::string_view in = framed.substr(5);
  if (in.size() != n) {
    return std::nullopt;
  }
  uint32_t status = 0;  // proto3: absent is the default, UNKNOWN
  while (!in.empty()) {
    const auto key = ReadVarint(&in);
    if (!key) {
      return std::nullopt;
    }
    switch (*key & 7) {
      case 0: {
        const auto v = ReadVarint(&in);
        if (!v) {
          return std::nullopt;
        }
        if ((*key >> 3) == 1) {
          status = static_cast<uint32_t>(*v);
        }
        break;
      }
      case 1:
      case 5: {
        const size_t skip = (*key & 7) == 1 ? 8 : 4;
        if (in.size() < skip) {
          return std::nullopt;
        }
        in.remove_prefix(skip);
        break;
      }
      case 2: {
        const auto len = ReadVarint(&in);
        if (!len || *len > in.size()) {
          return std::nullopt;
        }
        in.remove_prefix(*len);
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return status;
}

}  // namespace torii::http
