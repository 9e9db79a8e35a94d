// http/h2_client_codec.h: the client role of torii's HTTP/2 codec (h2_codec.h), for the
// connections to HTTP/2 backends (h2_upstream.h) and the HTTP/2 health probe.
//
// Opens streams with request header blocks and checks what comes back before its fields
// reach the host (RFC 9113 §8.1-8.3): one :status of three digits first (101 refused), lowercase
// token names, values without control characters or surrounding whitespace, no
// connection-specific field, TE only "trailers", a Content-Length that the DATA add up to
// (HEAD, 204 and 304 carry none), 1xx never ending the stream, trailers ending it without
// pseudo-fields, a decoded block within the advertised header list. A malformed response
// resets its stream only (RST_STREAM PROTOCOL_ERROR, and Host::OnMalformed).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "http/h2_codec.h"

namespace torii::http {

class H2ClientCodec final : public H2Codec {
 public:
  H2ClientCodec(Host& host, const Settings& settings) : H2Codec(Role::kClient, host, settings) {}

  // A new stream with these request fields (pseudo-fields first); END_STREAM on the HEADERS
  // when `end_stream`. Returns its id, or 0 when no stream can be opened (ids spent, failed,
  // GOAWAY received).
  int32_t Open(std::span<const H2OutField> fields, bool end_stream);
  // GOAWAY with `code` (last stream 0: a client accepts no stream of the server's).
  void Goaway(H2Error code) { H2Codec::Goaway(code, 0); }

 private:
  bool BeginBlock(int32_t id, bool end_stream, Block* block) override;
  void CheckField(int32_t id, std::string_view name, std::string_view value,
                  uint64_t list) override;
  void EndBlock(int32_t id) override;

  int32_t next_id_ = 1;
};

}  // namespace torii::http
