// http/serialize.h: writing HTTP/1.1 heads. torii never forwards raw header bytes.
//
// Every head torii sends is rebuilt from parsed, validated fields: exactly one framing header
// of our own, hop-by-hop headers and the headers named in Connection dropped, client-supplied
// forwarding headers replaced by ours, names with an underscore dropped (a backend may read
// Content_Length as Content-Length). Values that reach here were checked by H1Parser (no CR,
// LF, NUL or other CTL) or by the config loader, so nothing can split a header.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/h1_parser.h"

namespace torii::http {

// The request head for the backend: origin-form `target`, `host` as the Host header, the
// client's end-to-end headers, X-Forwarded-For (`forwarded_for`: the socket peer, or behind a
// trusted proxy its chain with the peer appended), X-Forwarded-Proto (`proto`: the scheme the
// client used), X-Forwarded-Host (`forwarded_host`, when not empty), Via, and framing
// (Content-Length: N / Transfer-Encoding: chunked / nothing). The client's own forwarding
// headers are never copied: the caller decides what of them to believe.
// `edits` names client fields not to copy and adds the exchange's own lines.
struct UpstreamHeadEdits {
  std::span<const std::string> remove;  // lowercase names of client fields not copied
  std::string_view add;                 // pre-serialised "Name: value\r\n" lines added
};
void BuildUpstreamRequestHead(const MessageHead& req, std::string_view host,
                              std::string_view target, std::string_view forwarded_for,
                              Framing framing, std::string* out,
                              std::string_view proto = "http",
                              std::string_view forwarded_host = {},
                              const UpstreamHeadEdits& edits = {});

// The response head for the client. `framing` is how torii sends the body (which may differ
// from the backend's). `head_request`: keep the backend's Content-Length (it describes the
// GET body) without sending a body. `extra` holds pre-serialised "Name: value\r\n" lines.
void BuildClientResponseHead(const MessageHead& resp, Framing framing, bool head_request,
                             bool close, uint8_t client_minor, std::string_view extra,
                             std::string* out);

// What compression changes in a response head: the coding it is now in, a Vary that names
// Accept-Encoding (merged into the backend's Vary), and a strong ETag made weak (the bytes
// differ from the backend's, RFC 9110 §8.8.1).
struct HeadEdits {
  std::string_view content_encoding;  // empty = unchanged
  bool vary_accept_encoding = false;
  bool weaken_etag = false;
  bool drop_content_encoding = false;  // the body was decoded (decompress = true)
  std::span<const std::string> remove;  // lowercase names of the backend's fields dropped
  // The message's names are lowercase (a stored response's): HTTP/1.1 gets them in the usual
  // capitalisation ("content-type" as "Content-Type"), as a response from the backend would.
  bool title_case = false;
  // The message's fields as RenderStoredFields wrote them: an HTTP/1.1 head copies them
  // instead of vetting and spelling each field again, wherever the edits above leave them as
  // they were rendered (title_case, nothing removed or recoded, a Vary that needs no change);
  // otherwise, and for HTTP/2, the fields are written from the message as usual.
  std::string_view rendered;
};
void BuildClientResponseHead(const MessageHead& resp, Framing framing, bool head_request,
                             bool close, uint8_t client_minor, std::string_view extra,
                             const HeadEdits& edits, std::string* out);

// A stored response's fields (lowercase names) as BuildClientResponseHead sends them to an
// HTTP/1.1 client with `title_case` and nothing else edited: the "Name: value\r\n" lines
// between its status line and its framing, rendered once when the response is stored
// (HeadEdits::rendered) so that each hit copies them.
std::string RenderStoredFields(std::span<const HeaderView> headers);

// Whether a Vary value already names Accept-Encoding (or is "*", which covers everything).
bool VaryCoversAcceptEncoding(std::string_view vary);

// One header field of an HTTP/2 message (RFC 9113 §8.2): a lowercase name.
struct H2Field {
  std::string_view name;
  std::string_view value;
};

// The same response head as HTTP/2 fields, decided by the same rules (one serialiser decides
// what a client gets, whatever the protocol): ":status" first, then the fields with lowercase
// names, without the connection-specific ones HTTP/2 forbids (RFC 9113 §8.2.2; `extra` may
// name them: a tunnel's Connection and Upgrade). Built straight from `resp`: no text is
// written and parsed again. The views point into `resp`'s fields, `extra` and `store` (what
// torii had to write: lowercased names, merged values, numbers), which is overwritten.
void BuildClientResponseFields(const MessageHead& resp, Framing framing, bool head_request,
                               std::string_view extra, const HeadEdits& edits, std::string* store,
                               std::vector<H2Field>* out);
// A local reply's head (BuildLocalReply's) as HTTP/2 fields, for a body of `body_size` bytes of
// `content_type`.
void BuildLocalReplyFields(int status, std::string_view extra, size_t body_size,
                           std::string_view content_type, std::string* store,
                           std::vector<H2Field>* out);

// Whether a response with this status carries no content (1xx, 204, 304: RFC 9110 §6.4.1). A
// local reply with one is sent without a body, Content-Type or Content-Length.
constexpr bool StatusHasNoContent(int status) {
  return status < 200 || status == 204 || status == 304;
}

// A complete local reply (status line, headers, short text body) into `out`. Returns the body.
// `extra` holds pre-serialised "Name: value\r\n" lines (Location, add_headers).
std::string_view BuildLocalReply(int status, bool close, std::string_view extra,
                                 std::string* out);
// The same with `body` (of `content_type`) as the body.
std::string_view BuildLocalReply(int status, bool close, std::string_view extra,
                                 std::string_view body, std::string_view content_type,
                                 std::string* out);
inline std::string_view BuildLocalReply(int status, bool close, std::string* out) {
  return BuildLocalReply(status, close, {}, out);
}
// The body of a local reply that has none of its own, into `buf`: the status line's text
// ("503 Service Unavailable\n").
std::string_view LocalReplyText(int status, std::array<char, 64>* buf);

// "1a2b\r\n"
void AppendChunkHeader(size_t size, std::string* out);

// Trailer fields torii passes on: none that belongs in a head (framing, routing,
// authentication, caching, content description, hop-by-hop, forwarding fields it writes
// itself), RFC 9110 §6.5.1.
bool IsForwardedTrailer(std::string_view name);
// Into `kept`: the `trailers` a route passes on, those named in `allow` (lowercase) that
// IsForwardedTrailer allows.
void KeepTrailers(std::span<const HeaderView> trailers, std::span<const std::string> allow,
                  std::vector<HeaderView>* kept);
// The end of a chunked body: "0\r\n", the `trailers` (as KeepTrailers left them), "\r\n".
void AppendLastChunk(std::span<const HeaderView> trailers, std::string* out);

// "1234" (base/text.h)
using base::AppendDecimal;

// True when `name` is listed in one of the Connection fields of `headers` (so it is hop-by-hop
// for this message, RFC 9110 §7.6.1).
bool NamedInConnection(std::span<const HeaderView> headers, std::string_view name);

// Response header fields torii never passes on as they are: hop-by-hop ones (RFC 9110 §7.6.1)
// and the framing it writes itself (Content-Length, Transfer-Encoding).
bool IsDroppedResponseHeader(std::string_view name);

// Fields HTTP/2 forbids in any message (RFC 9113 §8.2.2): Connection and the fields it
// implies (Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade). Any case.
bool IsConnectionSpecificField(std::string_view name);

std::string_view ReasonPhrase(int status);

// Validates a Host value (reg-name or IP literal, optional :port). Returns the host without
// the port, or nullopt for an empty, malformed or hostile value ("a,b", "a/b@c", "..").
std::optional<std::string_view> ValidateHost(std::string_view host);

}  // namespace torii::http
