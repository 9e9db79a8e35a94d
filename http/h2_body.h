// http/h2_body.h: the outgoing body of one HTTP/2 stream, for both ends of the proxy.
//
// The bytes of a body (a response to a client, h2_session.h; a request to a backend,
// h2_upstream.h) wait here until they are framed: the connection writes a DATA frame header
// (H2Codec::DataHeader), then the frame's bytes straight from here (Send: DATA is never copied
// into a frame buffer). The end of the body can carry trailer fields, sent as trailing
// HEADERS.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/text.h"
#include "core/worker.h"
#include "http/h1_parser.h"
#include "http/h2_codec.h"
#include "http/h2_fields.h"

namespace torii::http {

// One head's fields, built and encoded within one call: the HTTP/2 connections of a thread
// share one, so an idle connection keeps none.
struct H2HeadScratch {
  std::vector<H2Field> fields;
  std::string store;  // what the fields' views need kept (BuildClientResponseFields)
};
H2HeadScratch& ThreadHeadScratch();

class H2BodyQueue {
 public:
  size_t queued() const { return out_.size() - off_ + pinned_bytes_; }
  bool ended() const { return end_; }
  // The trailer fields End() was given (names lowercased).
  const std::vector<std::pair<std::string, std::string>>& trailers() const { return trailers_; }
  // The same as fields to encode (views into this queue), into `out`.
  void TrailerFields(std::vector<H2Field>* out) const;

  void Append(std::string_view bytes);
  // Bytes `owner` keeps alive (a stored response's body): queued as a reference, and sent
  // from where they are (Conn::WritePinned) instead of copied here first.
  void AppendPinned(std::string_view bytes, const std::shared_ptr<const void>& owner);
  // The end of the body, with its trailer fields (names lowercased here: HTTP/2's rule).
  void End(std::span<const HeaderView> trailers);
  // Empty again for another stream; a buffer grown past `keep` bytes is freed.
  void Clear(size_t keep);

  // `length` queued bytes to `conn` (a DATA frame's payload). True when the queue just fell
  // to the low-water mark from above it (the producer may go on).
  bool Send(core::Conn& conn, size_t length);

 private:
  // Copied bytes first (out_ from off_), then pinned pieces; bytes appended after a pinned
  // piece become a piece of their own, so the order holds.
  struct Piece {
    std::string_view bytes;
    std::shared_ptr<const void> owner;
  };
  std::string out_;
  size_t off_ = 0;
  std::deque<Piece> pinned_;
  size_t pinned_bytes_ = 0;
  std::vector<std::pair<std::string, std::string>> trailers_;
  bool end_ = false;
};

// One step of framing `body` as stream `id`'s DATA on `conn` (not write-blocked), for both ends
// of the proxy: one DATA frame as the windows allow (END_STREAM on the last bytes when the body
// has ended without trailers), or, once everything went, its end (an empty DATA frame with
// END_STREAM, or its trailers, with the codec's frames before them written out).
enum class BodyStep : uint8_t {
  kWaiting,  // nothing queued and no end yet: the next write brings more
  kBlocked,  // bytes queued and the windows closed: a WINDOW_UPDATE brings it back
  kSent,     // a DATA frame went out; more may follow
  kEnded,    // the body's end went out: nothing more for this stream
};
// `*drained` is set when the queue fell to its low-water mark (its producer may go on).
BodyStep SendBodyStep(H2Codec& codec, int32_t id, H2BodyQueue& body, core::Conn& conn,
                      bool* drained);

}  // namespace torii::http
