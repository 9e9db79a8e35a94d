// http/h1_parser.h: llhttp (strict mode) plus the checks llhttp does not make.
//
// One class for both directions. The caller owns a contiguous input buffer and calls Next()
// with all of it; the parser walks from where it stopped last time and returns one step:
// the head is complete, a body span is ready, the message is complete, it needs more bytes,
// or the input is bad (with the status to answer). While a head is incomplete the caller must
// only append to the buffer, never erase, because header positions are kept as offsets into it
// (so the buffer may grow and move). Once Next() has reported kHead, the caller may drop the
// consumed prefix with DropConsumed().
//
// What it adds to llhttp (checks llhttp 8 does not make, or makes too leniently):
//  - limits: header bytes (431, 414 for the request line), header count (431), body (413,
//    checked against Content-Length and every chunk size before any byte is read);
//  - empty header names, obs-fold anywhere, CTLs and NUL in values → 400 / 502;
//  - HTTP/0.9 → 400, versions other than 1.x → 505, HTTP/1.0 + Transfer-Encoding → 400;
//  - Transfer-Encoding other than exactly "chunked" → 400 / 501, CL + TE → 400;
//  - trailer fields are checked and bounded as header fields are (header_bytes, header_count)
//    and kept apart from the head (trailers()); chunk extensions are bounded (4 KiB a line)
//    and never forwarded;
//  - responses: HEAD / 1xx / 204 / 304 have no body whatever Content-Length says; status
//    outside 100..599 → 502.
// Nothing here allocates per message once the header vector has grown to its working size.
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/text.h"

namespace torii::http {

struct HeaderView {
  std::string_view name;
  std::string_view value;
};

enum class Framing : uint8_t {
  kNone,           // no body
  kContentLength,  // exactly content_length bytes
  kChunked,        // chunked transfer coding
  kUntilClose,     // response only: body ends when the connection closes
};

// Where a header field sits in the caller's buffer while a head is parsed (offsets, so the
// buffer may grow and move until the head is complete).
struct FieldOffsets {
  uint32_t name_off = 0;
  uint32_t name_len = 0;
  uint32_t value_off = 0;
  uint32_t value_len = 0;
};

// The growable storage of one head. A connection borrows one from a per-worker pool while it
// has a message in progress (H1Parser::set_storage), so an idle connection holds none and a
// busy one allocates nothing per request once the pool is warm.
struct HeadStorage {
  std::vector<FieldOffsets> fields;
  std::vector<HeaderView> headers;
  void clear() {
    fields.clear();
    headers.clear();
  }
};

struct MessageHead {
  // Request fields.
  std::string_view method;
  std::string_view target;
  uint8_t method_id = 0;  // llhttp_method_t
  // Response fields.
  uint16_t status = 0;
  std::string_view reason;
  // Both.
  uint8_t version_major = 1;  // 2 for a head an HTTP/2 stream carried
  uint8_t version_minor = 1;  // HTTP/1.x
  std::span<const HeaderView> headers;  // in the parser's HeadStorage
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;  // llhttp_should_keep_alive after the head
  bool upgrade = false;    // request carried Upgrade (http/upgrade.h decides what is tunnelled)
  // An HTTP/2 extended CONNECT (RFC 8441) shown as the upgrade it stands for: its client
  // takes a 2xx as the tunnel's opening.
  bool connect_protocol = false;
  bool has_content_length = false;  // a Content-Length header was present (even 0)
};

class H1Parser {
 public:
  enum class Kind : uint8_t { kRequest, kResponse };
  struct Limits {
    uint32_t header_bytes = 16 * 1024;
    uint32_t header_count = 100;
    uint64_t body_bytes = ~uint64_t{0};
  };
  enum class Event : uint8_t { kNeedMore, kHead, kBody, kDone, kError };
  struct Step {
    Event event = Event::kNeedMore;
    std::string_view body;  // kBody: a span of decoded body bytes (inside the caller's buffer)
  };

  H1Parser() : H1Parser(Kind::kRequest, Limits{}) {}
  H1Parser(Kind kind, const Limits& limits);
  // Starts over as a fresh parser (between messages only: a pooled parser is re-used by
  // another connection this way).
  void Init(Kind kind, const Limits& limits);
  H1Parser(const H1Parser&) = delete;
  H1Parser& operator=(const H1Parser&) = delete;

  // Parses buf[consumed()..len). The views in head() point into `buf`: they are valid until the
  // caller modifies the buffer.
  Step Next(const char* buf, size_t len);
  // The same on a mutable buffer: requests may then say HTTP/1.2..1.9 (read as HTTP/1.1,
  // RFC 9112 §2.3), which llhttp's strict mode would refuse.
  Step Next(char* buf, size_t len);
  // Bytes of the buffer already consumed by the parser.
  size_t consumed() const { return consumed_; }
  // Tells the parser that the caller erased the first consumed() bytes of its buffer.
  // Allowed only outside a head (after kHead, kBody or kDone).
  void DropConsumed() { consumed_ = 0; }
  bool in_head() const { return !head_done_; }
  // True when some byte of the current message has been seen (for idle vs. reading timeouts).
  bool started() const { return started_; }

  const MessageHead& head() const { return head_; }
  // kError: the status to answer (400, 413, 414, 431, 501, 505 for requests; 502 for
  // responses) and a short reason for the log.
  int error_status() const { return error_status_; }
  const char* error_reason() const { return error_reason_; }

  // Responses: the method of the request this response answers (HEAD has no body), set
  // before the response head is parsed.
  void set_request_was_head(bool v) { request_was_head_ = v; }
  // Lends the storage for heads (nullptr: the parser's own). Change it only between
  // messages: the current head's views point into it.
  void set_storage(HeadStorage* storage) { storage_ = storage != nullptr ? storage : &own_; }
  // Limits can change per request (route-specific bodies later).
  void set_limits(const Limits& limits) { limits_ = limits; }
  // After kDone: true when the connection must not carry another message (Connection:
  // close, HTTP/1.0 without keep-alive, close-delimited body, upgrade).
  bool must_close() const { return must_close_; }
  uint64_t body_bytes_seen() const { return body_seen_; }
  // After kDone: the chunked body's trailer fields (names and values checked, values trimmed),
  // in the parser's own storage; valid until the next message begins.
  std::span<const HeaderView> trailers() const { return trailer_views_; }
  // Response: the status line was seen (some byte of a response arrived).
  bool any_response_byte() const { return started_; }
  // Resets for a new message on the same connection (called automatically after kDone is
  // returned and Next() is called again).
  void Reset();
  // Response read until EOF: tells the parser the peer closed. Returns kDone when the body
  // was close-delimited, kError otherwise (truncated message).
  Step Finish();

 private:
  static int OnMessageBegin(llhttp_t* p);
  static int OnUrl(llhttp_t* p, const char* at, size_t len);
  static int OnStatus(llhttp_t* p, const char* at, size_t len);
  static int OnMethod(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderFieldComplete(llhttp_t* p);
  static int OnHeaderValueComplete(llhttp_t* p);
  static int OnUrlComplete(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t len);
  static int OnMessageComplete(llhttp_t* p);
  static int OnChunkHeader(llhttp_t* p);
  static int OnChunkExt(llhttp_t* p, const char* at, size_t len);
  static int OnChunkComplete(llhttp_t* p);
  static const llhttp_settings_t& Settings();

  int Fail(int status, const char* reason);
  bool IsOtherHttpVersion(const char* buf, size_t len) const;
  int ValidateHead();
  void Extend(uint32_t& off, uint32_t& len, const char* at, size_t n);
  // Trailer bytes copied aside, `len` (a field's name or value length) growing with them.
  int AppendTrailer(uint32_t& len, const char* at, size_t n);

  Kind kind_;
  Limits limits_;
  llhttp_t parser_{};
  const char* base_ = nullptr;  // buffer of the current Next() call
  size_t consumed_ = 0;
  MessageHead head_;
  HeadStorage own_;
  HeadStorage* storage_ = &own_;
  uint32_t method_off_ = 0, method_len_ = 0;
  uint32_t target_off_ = 0, target_len_ = 0;
  uint32_t reason_off_ = 0, reason_len_ = 0;
  uint32_t head_start_ = 0;
  std::string_view body_span_;
  uint64_t body_seen_ = 0;
  uint32_t chunk_ext_bytes_ = 0;
  std::string trailer_text_;  // the trailer section's names and values, back to back
  std::vector<FieldOffsets> trailer_fields_;  // ... where each field is in it
  std::vector<HeaderView> trailer_views_;     // ... and as views, once the message is complete
  int error_status_ = 0;
  const char* error_reason_ = "";
  Event pending_ = Event::kNeedMore;  // what the callbacks of the current execute produced
  bool started_ = false;
  bool head_done_ = false;
  bool head_reported_ = false;
  bool url_done_ = false;
  bool in_field_ = false;
  bool in_value_ = false;
  bool message_done_ = false;
  bool must_close_ = false;
  bool request_was_head_ = false;
  bool paused_ = false;
  bool version_patched_ = false;
  uint16_t tail_ = 0;  // last two bytes consumed
};

// Case-insensitive ASCII comparison for header names and tokens (base/text.h).
using base::EqualsIgnoreCase;
// RFC 9110 token characters (header names, methods; base/text.h).
using base::IsToken;
// A header value torii is willing to forward: no NUL, CR, LF or other CTL except HTAB.
bool IsCleanValue(std::string_view s);

}  // namespace torii::http
