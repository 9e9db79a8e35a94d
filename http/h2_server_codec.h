// http/h2_server_codec.h: the server role of torii's HTTP/2 codec (h2_codec.h), for clients'
// HTTP/2 connections (h2_session.h).
//
// Checks the client preface, takes the streams clients open and checks each request before its
// fields reach the host (RFC 9113 §8.1-8.3, RFC 8441 §4): pseudo-fields first, once each, only
// :method, :scheme, :authority, :path (and :protocol once SETTINGS_ENABLE_CONNECT_PROTOCOL was
// sent); :method, :scheme and :path present ("*" only for OPTIONS, otherwise a path that
// begins with "/"), a CONNECT with :authority and neither of the others unless it is an
// extended CONNECT; lowercase token names, values without control characters or surrounding
// whitespace, no connection-specific field, TE only "trailers"; a Content-Length the DATA add
// up to; trailers that end the stream without pseudo-fields. A malformed request resets its
// stream only (RST_STREAM PROTOCOL_ERROR, and Host::OnMalformed). A header list that decodes
// past the advertised size is not reset: its further fields are dropped and the host told
// (Host::OnTooLarge), to answer 431. Every stream error of the client's making is told too
// (Host::OnStreamError), for the host to count against its rapid-reset budget.
//
// Streams over SETTINGS_MAX_CONCURRENT_STREAMS are refused (REFUSED_STREAM) until the client
// acknowledged the setting, and a connection error after (PROTOCOL_ERROR, RFC 9113 §5.1.2);
// streams opened after our GOAWAY are refused.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "http/h2_codec.h"

namespace torii::http {

class H2ServerCodec final : public H2Codec {
 public:
  H2ServerCodec(Host& host, const Settings& settings) : H2Codec(Role::kServer, host, settings) {}

  // A response head (an interim one: a 1xx :status without `end_stream`) on an open stream;
  // END_STREAM when `end_stream`. False when the stream is closed or its response was done.
  bool SendHeaders(int32_t stream, std::span<const H2OutField> fields, bool end_stream);
  // GOAWAY with `code`, naming the last stream whose request was taken; streams the client
  // opens after it are refused.
  void Goaway(H2Error code);
  bool goaway_sent() const { return goaway_sent_; }
  // The highest stream whose request the host was given.
  int32_t last_stream() const { return last_taken_; }

 private:
  bool BeginBlock(int32_t id, bool end_stream, Block* block) override;
  void CheckField(int32_t id, std::string_view name, std::string_view value,
                  uint64_t list) override;
  void EndBlock(int32_t id) override;
  // A new stream the client may not open now: reset, its header block decoded and dropped.
  void Refuse(int32_t id, Block* block);

  bool goaway_sent_ = false;
};

}  // namespace torii::http
