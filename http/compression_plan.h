// http/compression_plan.h: what compression does to one exchange, as pure functions.
//
// Owns: reading what the client accepts (Accept-Encoding negotiated against the server's
// order, Range) and deciding, from the response head, whether torii encodes the body, decodes
// the backend's coding (decompress = true), or leaves it, and whether the response varies on
// Accept-Encoding. The rules (nginx's gzip module semantics): nothing for
// 1xx/204/206/304, a route without `compress`, Cache-Control no-transform or private, or a
// response that sets a cookie (BREACH); the backend's own coding passes through (decoded only
// when the client refuses it and decompress is on); otherwise only listed types of at least
// min_bytes, and never the body of a HEAD or a Range request.
//
// Leaves out: the encoders themselves (http/codec/), the head edits (serialize.h HeadEdits)
// and the cache's stored variants (session_cache.cc): the exchange applies the plan.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "http/codec/codec.h"
#include "http/h1_parser.h"
#include "http/proxy_config.h"

namespace torii::http {

// What the request says about codings (read once at its head).
struct CodingRequest {
  codec::Coding accepted = codec::Coding::kIdentity;  // the best coding both sides take
  uint8_t accepted_mask = 0;  // bit per codec::Coding with q > 0 (read when decompress is on)
  bool head = false;          // HEAD: no body is sent, whatever the plan
  bool range = false;         // a Range request: the body is never transformed
};

// What compression does to a response.
struct CompressionPlan {
  bool vary = false;  // the representation depends on Accept-Encoding (Vary it)
  codec::Coding encode = codec::Coding::kIdentity;  // encode the body so
  std::optional<codec::Coding> decode;  // undo the backend's coding (decompress = true)
};

// The request's side, from its header fields. Nothing is read when the route does not
// compress (`route_compress` false gives the default: identity, nothing accepted).
CodingRequest ReadCodingRequest(const CompressionSpec& spec, bool route_compress, bool head,
                                std::span<const HeaderView> request_headers);

// The plan for a response with `response` as its head, to a request read as `request`.
CompressionPlan PlanCompression(const CompressionSpec& spec, bool route_compress,
                                const CodingRequest& request, const MessageHead& response);

}  // namespace torii::http
