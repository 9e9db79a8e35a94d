// http/h2_body.h: the outgoing body of one HTTP/2 stream, shared by both HTTP/2 codecs.
//
// The bytes of a body (a response to a client, h2_session.h; a request to a backend,
// h2_upstream.h) wait here until they are framed. On the client side nghttp2 frames them: its
// data source reads how much goes in the next DATA frame (Read), and its send_data callback
// writes them straight from here to the connection (SendDataFrame; DATA is never copied into
// nghttp2). Toward a backend torii's own codec frames them (H2UpstreamConn::SendBodies: a DATA
// frame header, then Send). The end of the body can carry trailer fields, sent as trailing
// HEADERS.
#pragma once

#include <nghttp2/nghttp2.h>

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
#include "http/h2_fields.h"

namespace torii::http {

// A header field for nghttp2 to copy (it never keeps the pointers).
inline nghttp2_nv Nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

// The fields `fields` (views nghttp2 copies) into `nv`. Those whose value is new on every
// message, the request ID (`request_id_field`, its configured name) and the trace context,
// are sent without HPACK indexing: entered into the dynamic table they would only evict
// entries the next message can use.
template <typename Fields>
void AppendNv(const Fields& fields, std::string_view request_id_field,
              std::vector<nghttp2_nv>* nv) {
  for (const auto& f : fields) {
    nghttp2_nv v = Nv(f.name, f.value);
    if (f.name == "traceparent" ||
        (!request_id_field.empty() && base::EqualsIgnoreCase(f.name, request_id_field))) {
      v.flags = NGHTTP2_NV_FLAG_NO_INDEX;
    }
    nv->push_back(v);
  }
}

// One head's fields and nghttp2's view of them, built and handed to nghttp2 (which copies
// them) within one call: the HTTP/2 codecs of a thread share one, so an idle connection keeps
// none.
struct H2HeadScratch {
  std::vector<H2Field> fields;
  std::string store;  // what the fields' views need kept (BuildClientResponseFields)
  std::vector<nghttp2_nv> nv;
};
H2HeadScratch& ThreadHeadScratch();

// nghttp2's pending frames to `conn` while it holds less than the high-water mark (a peer that
// does not read holds nghttp2 back, not the connection's memory). False on an nghttp2 error
// (the connection is beyond saving).
bool SendFrames(nghttp2_session* ng, core::Conn& conn);

class H2BodyQueue {
 public:
  size_t queued() const { return out_.size() - off_ + pinned_bytes_; }
  bool ended() const { return end_; }
  // The trailer fields End() was given (names lowercased).
  const std::vector<std::pair<std::string, std::string>>& trailers() const { return trailers_; }

  void Append(std::string_view bytes);
  // Bytes `owner` keeps alive (a stored response's body): queued as a reference, and sent
  // from where they are (Conn::WritePinned) instead of copied here first.
  void AppendPinned(std::string_view bytes, const std::shared_ptr<const void>& owner);
  // The end of the body, with its trailer fields (names lowercased here: HTTP/2's rule).
  void End(std::span<const HeaderView> trailers);
  // Empty again for another stream; a buffer grown past `keep` bytes is freed.
  void Clear(size_t keep);

  // nghttp2's data source read callback for stream `id`: the length of the next DATA frame,
  // or NGHTTP2_ERR_DEFERRED until more bytes come (Resume). At the end, EOF; with trailers they
  // are submitted here and END_STREAM goes on them.
  ssize_t Read(nghttp2_session* ng, int32_t id, size_t length, uint32_t* flags);
  // Wakes nghttp2 when its data source waits for bytes (after Append or End).
  void Resume(nghttp2_session* ng, int32_t id);
  // send_data: `length` queued bytes to `conn`. True when the queue just fell to the
  // low-water mark from above it (the producer may go on).
  bool Send(core::Conn& conn, size_t length);

  // The whole send_data callback: frame header, padding and the bytes of `queue`.
  static void SendDataFrame(core::Conn& conn, const nghttp2_frame& frame, const uint8_t* framehd,
                            size_t length, H2BodyQueue& queue, bool* drained);

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
  bool deferred_ = false;  // nghttp2 waits for bytes (resume_data)
};

}  // namespace torii::http
