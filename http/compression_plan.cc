// http/compression_plan.cc: see compression_plan.h.
#include "http/compression_plan.h"

#include <string>

#include "cache/cache_control.h"

namespace torii::http {
CodingRequest ReadCodingRequest(const CompressionSpec& spec, bool route_compress, bool head,
                                std::span<const HeaderView> request_headers) {
  CodingRequest out;
  out.head = head;
  if (!route_compress) {
    return out;
  }
  // Repeated Accept-Encoding fields are one list (RFC 9110 §5.3); one field, the usual case,
  // is read where it lies.
  std::string_view value;
  std::string joined;
  int fields = 0;
  for (const HeaderView& hv : request_headers) {
    if (EqualsIgnoreCase(hv.name, "accept-encoding")) {
      if (++fields == 2) {
        joined.assign(value);
      }
      if (fields >= 2) {
        joined.push_back(',');
        joined.append(hv.value);
      }
      value = hv.value;
    } else if (EqualsIgnoreCase(hv.name, "range")) {
      out.range = true;
    }
  }
  if (fields >= 2) {
    value = joined;
  }
  out.accepted = codec::Negotiate(value, spec.order);
  if (spec.decompress) {
    for (codec::Coding c : {codec::Coding::kGzip, codec::Coding::kBrotli, codec::Coding::kZstd}) {
      if (codec::Negotiate(value, std::span<const codec::Coding>(&c, 1)) == c) {
        out.accepted_mask |= static_cast<uint8_t>(1u << static_cast<int>(c));
      }
    }
  }
  return out;
}

CompressionPlan PlanCompression(const CompressionSpec& spec, bool route_compress,
                                const CodingRequest& request, const MessageHead& response) {
  CompressionPlan plan;
  const uint16_t status = response.status;
  if (!route_compress || status < 200 || status == 204 || status == 206 || status == 304) {
    return plan;
  }
  std::string_view content_type;
  bool encoded = false;
  int codings = 0;
  std::optional<codec::Coding> backend_coding;
  cache::CacheControl cc;
  bool cc_malformed = false;
  for (const HeaderView& hv : response.headers) {
    if (EqualsIgnoreCase(hv.name, "content-type")) {
      content_type = hv.value;
    } else if (EqualsIgnoreCase(hv.name, "content-encoding")) {
      if (!EqualsIgnoreCase(hv.value, "identity")) {
        encoded = true;
        ++codings;
        backend_coding = codec::ParseCoding(hv.value);
      }
    } else if (EqualsIgnoreCase(hv.name, "cache-control")) {
      cache::ParseCacheControl(hv.value, &cc, &cc_malformed);
    } else if (EqualsIgnoreCase(hv.name, "set-cookie")) {
      return plan;  // a response that sets a secret is not compressed (BREACH)
    }
  }
  // no-transform: intermediaries must not change the representation (RFC 9111 §5.2.2.6).
  // private: per-user content, where compression next to reflected input leaks secrets through
  // the compressed size (BREACH); not compressed either, nor is a response whose Cache-Control
  // cannot be read whole (";private", an unterminated quoted string): it may have meant that.
  if (cc.no_transform || cc.private_ || cc_malformed) {
    return plan;
  }
  const bool has_body = response.framing != Framing::kNone;
  const bool body_sent = !request.head && has_body && !request.range;
  if (encoded) {
    // The backend's coding passes through, unless the client does not accept it and
    // decompress = true: then torii decodes it (one coding we know, nothing stacked).
    if (spec.decompress && codings == 1 && backend_coding &&
        *backend_coding != codec::Coding::kIdentity &&
        (request.accepted_mask & (1u << static_cast<int>(*backend_coding))) == 0 && body_sent) {
      plan.decode = backend_coding;
    }
    return plan;
  }
  if (!codec::TypeMatches(content_type, spec.types)) {
    return plan;
  }
  if (response.framing == Framing::kContentLength && response.content_length < spec.min_bytes) {
    return plan;
  }
  // From here the representation depends on Accept-Encoding: say so to caches, compressed or
  // not (nginx gzip_vary).
  plan.vary = true;
  if (body_sent) {
    plan.encode = request.accepted;
  }
  return plan;
}

}  // namespace torii::http
