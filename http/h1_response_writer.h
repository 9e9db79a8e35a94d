// http/h1_response_writer.h: the response half of the HTTP/1.1 downstream codec.
//
// The exchange (exchange.h) decides what the client gets: a response head and its fields,
// body bytes, the end, an interim response, a reply of its own. This class decides how that
// goes on an HTTP/1.x wire, and nothing else: the status line and header block
// (serialize.h), the body's framing for this client (the backend's length when it is known
// and kept, else chunked for HTTP/1.1 and close-delimited for HTTP/1.0), chunk framing, the
// last chunk, and which interim responses an HTTP/1.0 client may not get. H1Session offers
// these operations to the exchange as its Downstream; H2Session's streams do the same in
// HTTP/2 frames.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/worker.h"
#include "http/downstream.h"
#include "http/h1_parser.h"
#include "http/serialize.h"

namespace torii::http {

class H1ResponseWriter {
 public:
  using Body = ResponseBody;

  // A new exchange, from a client that spoke HTTP/1.`client_minor`.
  void Reset(uint8_t client_minor) {
    minor_ = client_minor;
    framing_ = Framing::kNone;
  }

  // An interim response (103 Early Hints): false, and nothing written, for an HTTP/1.0
  // client (RFC 9110 §15.2).
  bool WriteInterim(core::Conn& conn, const MessageHead& head, std::string* scratch) const;
  // "100 Continue" (the exchange is ready for the request body).
  static void WriteContinue(core::Conn& conn);
  // "101 Switching Protocols" with `extra` (Connection and Upgrade): the bytes after it belong
  // to the new protocol.
  void WriteSwitchingProtocols(core::Conn& conn, const MessageHead& head, std::string_view extra,
                               std::string* scratch);

  // The final response head, its body framed as `body` allows for this client. `*close` may
  // be set (a close-delimited body ends the connection); when true, the head says so.
  // `head_request`: the head describes a body that is not sent.
  void WriteHead(core::Conn& conn, const MessageHead& head, Body body, bool head_request,
                 bool* close, std::string_view extra, const HeadEdits& edits, std::string* scratch);
  // Body bytes in the framing WriteHead chose. `lend`: the bytes lie in a receive buffer being
  // delivered now (Conn::WriteFromRecvBuffer), else they are copied.
  // `owner` (a stored body's): the bytes are sent from where they are, `owner` held meanwhile.
  void WriteBody(core::Conn& conn, std::string_view bytes, bool lend, std::string* scratch,
                 const std::shared_ptr<const void>& owner = nullptr) const;
  // The end of the body (the last chunk when chunked, with the forwarded `trailers`). True
  // when the connection must close for the client to see the end (a close-delimited body).
  bool WriteEnd(core::Conn& conn, std::span<const HeaderView> trailers, std::string* scratch) const;

  // A complete reply torii makes itself: `body` of `content_type`, or the status line's text
  // when `content_type` is empty. Returns the body's size.
  size_t WriteLocalReply(core::Conn& conn, int status, bool close, std::string_view extra,
                         std::string_view body, std::string_view content_type,
                         std::string* scratch);

  Framing framing() const { return framing_; }

 private:
  uint8_t minor_ = 1;
  Framing framing_ = Framing::kNone;
};

}  // namespace torii::http
