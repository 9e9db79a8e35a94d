// http/h2_fields.h: HTTP/2 header fields to and from the heads the exchange speaks.
//
// The HTTP/2 session (h2_session.h) gets a request's fields one by one from its codec
// (h2_server_codec.h, which has already applied RFC 9113's syntax rules: lowercase names, no
// connection-specific fields, pseudo-header fields first and only the defined ones, TE only
// "trailers", a Content-Length that matches the DATA). What is left to decide is what torii makes
// of them, here, without sockets:
//  - H2RequestFields collects them within [limits] header_bytes and header_count (431 past
//    them, counted as RFC 9113 §6.5.2 does: name + value + 32 per field) and builds the
//    MessageHead the exchange takes: :method, :path, :authority as Host (a Host sent as well
//    must agree: 400), cookie crumbs joined into one field (§8.2.3) for the HTTP/1.1
//    backend, the body's framing (Content-Length, none when the HEADERS end the stream, else
//    a length known only at its end); an extended CONNECT (RFC 8441, :protocol) becomes the
//    HTTP/1.1 upgrade it stands for: GET of :path with Connection: upgrade and Upgrade;
//  - RequestFields turns a request head written by serialize.h for a backend into HTTP/2
//    fields, so one serialiser decides what a backend gets whatever the protocol (responses
//    to clients: serialize.h's BuildClientResponseFields).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/h1_parser.h"
#include "http/serialize.h"

namespace torii::http {

class H2RequestFields {
 public:
  H2RequestFields(uint64_t max_bytes, uint32_t max_count)
      : max_bytes_(max_bytes), max_count_(max_count) {}

  // Forgets the fields (for another request), keeping the memory.
  void Clear();

  // One field of the request's HEADERS (and CONTINUATION), in order.
  void Add(std::string_view name, std::string_view value);
  // The codec found the header list over the bound itself (and passes no more fields): 431.
  void MarkTooLarge() { too_large_ = true; }
  bool too_large() const { return too_large_; }
  // :method and :path as received (kept even when the head is refused: for the log).
  std::string_view method() const { return method_; }
  std::string_view path() const { return path_; }

  // Why a request cannot go on: the status to answer and the note for the log.
  struct Refusal {
    int status;
    const char* reason;
  };
  // The request head (its views point into this object and stay valid until it changes).
  // `end_stream`: the HEADERS ended the stream (no body). A declared body over `max_body` is
  // refused here (413), before any of it is read.
  std::optional<Refusal> Build(bool end_stream, uint64_t max_body, MessageHead* head);

 private:
  struct Field {
    uint32_t at;
    uint32_t name;
    uint32_t value;
  };
  uint64_t max_bytes_;
  uint32_t max_count_;
  uint64_t bytes_ = 0;
  uint32_t count_ = 0;
  bool too_large_ = false;
  bool malformed_ = false;
  std::string method_;
  std::string path_;
  std::string authority_;
  std::string protocol_;  // :protocol (extended CONNECT)
  std::string store_;  // names and values, back to back
  std::vector<Field> fields_;
  std::vector<HeaderView> views_;
  std::string cookie_;
};

// llhttp's number for a method name, or nullopt for a method llhttp does not know (the same
// set an HTTP/1.1 request may use).
std::optional<uint8_t> MethodId(std::string_view method);

// A request head as serialize.h writes it for a backend ("GET /p HTTP/1.1\r\nHost: h\r\n...")
// as HTTP/2 fields for an HTTP/2 backend: :method, :scheme (`scheme`), :authority (the Host
// field's value), :path, "te: trailers", then the fields lowercased (in place in `head`)
// without Host and the connection-specific ones. The views point into `head`.
void RequestFields(std::string* head, std::string_view scheme, std::vector<H2Field>* out);

}  // namespace torii::http
