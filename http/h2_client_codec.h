// http/h2_client_codec.h: torii's own HTTP/2 client framing (RFC 9113) and header encoding
// (RFC 7541), for the connections to HTTP/2 backends (h2_upstream.h).
//
// Owns: the frame layer of one client connection (the preface, SETTINGS both ways, flow
// control windows in both directions, PING, GOAWAY, RST_STREAM, HEADERS and CONTINUATION), the
// state of each stream, and the checks a response must pass before its fields reach the host
// (RFC 9113 §8.1-8.3: one :status of three digits first, lowercase token names, values without
// NUL, CR, LF, other controls or surrounding whitespace, no connection-specific field, a
// Content-Length that the DATA add up to, a decoded block within the advertised header list).
// A protocol error of the peer's fails the whole connection (GOAWAY); a malformed response
// resets its stream only (RST_STREAM PROTOCOL_ERROR, and Host::OnMalformed).
//
// Header blocks are encoded without Huffman coding and without the dynamic table (each field
// is a literal, its name taken from the static table when it is there: what HAProxy sends),
// so encoding is a copy; decoding uses nghttp2's HPACK inflater (its public hd API), which
// keeps the peer's dynamic table and decodes Huffman strings.
//
// Leaves out: I/O and timers (the host writes output() to the connection and sends DATA
// payloads itself after DataHeader()), what a stream is for (h2_upstream.h, and the HTTP/2
// health probe in app/health_checker.cc).
#pragma once

#include <nghttp2/nghttp2.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http/serialize.h"

namespace torii::http {

// RFC 9113 §7 error codes.
enum class H2Error : uint32_t {
  kNoError = 0x0,
  kProtocol = 0x1,
  kInternal = 0x2,
  kFlowControl = 0x3,
  kSettingsTimeout = 0x4,
  kStreamClosed = 0x5,
  kFrameSize = 0x6,
  kRefusedStream = 0x7,
  kCancel = 0x8,
  kCompression = 0x9,
  kConnect = 0xa,
  kEnhanceYourCalm = 0xb,
  kInadequateSecurity = 0xc,
  kHttp11Required = 0xd,
};

// One field to encode: a lowercase name and its value.
using H2OutField = H2Field;

// Appends `fields` as one HPACK header block: a dynamic table size update to 0 first when
// `table_update`, then each field as a literal never entered into a table ("never indexed" for
// authorization and cookie fields, so no intermediary indexes them either), or as a static
// table entry when name and value are one.
void EncodeHeaderBlock(std::span<const H2OutField> fields, bool table_update, std::string* out);

class H2ClientCodec {
 public:
  // What the codec tells its connection, from within Receive() (none from the send calls).
  class Host {
   public:
    virtual ~Host() = default;
    // A field of a stream's response head or trailers, checked (pseudo-fields: :status only).
    virtual void OnField(int32_t stream, std::string_view name, std::string_view value) = 0;
    // The end of a header block: a response head (interim or final) or trailers.
    virtual void OnHeaders(int32_t stream, bool end_stream) = 0;
    // Response body bytes (padding taken out); Consume() gives them back to the peer's window.
    virtual void OnData(int32_t stream, std::string_view bytes) = 0;
    // The response ended with a DATA frame's END_STREAM.
    virtual void OnDataEnd(int32_t stream) = 0;
    // The peer's SETTINGS (the first and any later one) took effect.
    virtual void OnSettings() = 0;
    // GOAWAY: no new stream; streams above its last id are closed as refused (TakeClosed).
    virtual void OnGoaway() = 0;
    // The answer to our PING.
    virtual void OnPingAck() = 0;
    // The stream's response broke HTTP/2's rules (RFC 9113 §8): it is being reset
    // (PROTOCOL_ERROR), and TakeClosed will report it.
    virtual void OnMalformed(int32_t stream) = 0;
  };

  struct Settings {
    uint32_t max_header_list = 64 * 1024;  // advertised (SETTINGS_MAX_HEADER_LIST_SIZE)
    int32_t connection_window = 8 << 20;   // our receive window for the whole connection
  };

  H2ClientCodec(Host& host, const Settings& settings, nghttp2_mem* mem);
  ~H2ClientCodec();
  H2ClientCodec(const H2ClientCodec&) = delete;
  H2ClientCodec& operator=(const H2ClientCodec&) = delete;

  // ---- Receiving ----

  // Bytes from the peer. False once the connection failed (a GOAWAY is in output()).
  bool Receive(std::string_view bytes);
  // `n` bytes of `stream`'s DATA were taken: WINDOW_UPDATEs go out as half a window is taken.
  void Consume(int32_t stream, size_t n);

  // ---- Sending ----

  // A new stream with these request fields (pseudo-fields first); END_STREAM on the HEADERS
  // when `end_stream`. Returns its id, or 0 when no stream can be opened (ids spent, failed,
  // GOAWAY received).
  int32_t Open(std::span<const H2OutField> fields, bool end_stream);
  // How many body bytes `stream` may send now (both windows), at most one frame's worth.
  size_t Sendable(int32_t stream) const;
  // The 9-byte header of a DATA frame of `n` bytes (n <= Sendable()), whose payload the caller
  // writes right after it; the windows shrink by `n`. With `end_stream` the request is done.
  std::array<char, 9> DataHeader(int32_t stream, size_t n, bool end_stream);
  // Trailers: a HEADERS frame that ends the request (into output()).
  void SendTrailers(int32_t stream, std::span<const H2OutField> fields);
  // RST_STREAM with `code`; the stream is closed here (TakeClosed reports it).
  void Reset(int32_t stream, H2Error code);
  void Ping();
  // GOAWAY with `code` (last stream 0: a client accepts no stream of the server's).
  void Goaway(H2Error code);

  // Frames made and not yet taken (control frames, HEADERS): the host writes them, then
  // clears the string, before any DATA it writes itself. Answers to the peer's PING and
  // SETTINGS left here past 64 KiB (a peer flooding them while it does not read) fail the
  // connection.
  std::string& output() { return out_; }
  // Streams that closed since the last call, with the error code that closed them (NO_ERROR
  // for a stream both sides ended), oldest first.
  std::vector<std::pair<int32_t, H2Error>> TakeClosed();

  bool failed() const { return failed_; }
  bool goaway_received() const { return goaway_received_; }
  bool settings_received() const { return settings_received_; }
  uint32_t peer_max_streams() const { return peer_max_streams_; }
  size_t open_streams() const { return streams_.size(); }
  // Why the connection failed, for a debug log line.
  const std::string& failure() const { return failure_; }

 private:
  struct Stream {
    int64_t send_window = 0;
    int32_t recv_window = 0;      // what the peer may still send
    uint32_t unacked = 0;         // bytes taken, not yet given back by WINDOW_UPDATE
    int64_t content_length = -1;  // the response's, once its head is in
    uint64_t received = 0;        // DATA bytes so far
    uint16_t status = 0;
    bool local_ended = false;
    bool remote_ended = false;
    bool final_head = false;  // a final (non-1xx) head came
    bool head_request = false;
    bool saw_regular = false;  // the current block had a regular field (pseudo after it: bad)
    bool malformed = false;    // the current block broke a rule (reset at its end)
    bool content_length_seen = false;
  };
  enum class Block : uint8_t { kHead, kTrailers, kIgnored };

  bool Fail(H2Error code, std::string why);
  // One whole frame (DATA aside), its payload in `p`.
  bool OnFrame(uint8_t type, uint8_t flags, int32_t id, std::string_view p);
  bool OnSettingsFrame(uint8_t flags, int32_t id, std::string_view p);
  bool OnHeadersFrame(uint8_t flags, int32_t id, std::string_view p);
  bool OnHeaderFragment(std::string_view fragment, bool end_headers);
  bool OnDataStart(uint8_t flags, int32_t id, uint32_t length);
  bool DataBytes(std::string_view bytes);
  bool DataDone();
  void CheckField(int32_t id, Stream& s, std::string_view name, std::string_view value);
  void EndBlock(int32_t id);
  void CloseStream(int32_t id, H2Error code);
  void MaybeClose(int32_t id, Stream& s);
  void StreamError(int32_t id, H2Error code);
  // The host hears of a malformed response, then the stream is reset with `code`.
  void Malformed(int32_t id, H2Error code = H2Error::kProtocol);
  void WriteFrameHeader(uint32_t length, uint8_t type, uint8_t flags, int32_t id);
  void WriteHeaders(int32_t id, std::span<const H2OutField> fields, bool end_stream);
  void WindowUpdate(int32_t id, uint32_t increment);
  Stream* Find(int32_t id);

  Host& host_;
  Settings settings_;
  nghttp2_hd_inflater* inflater_ = nullptr;
  std::unordered_map<int32_t, Stream> streams_;
  std::vector<std::pair<int32_t, H2Error>> closed_;
  std::string out_;
  size_t reply_bytes_ = 0;  // answers to the peer's PING and SETTINGS in out_, unwritten
  std::string in_;  // an incomplete frame header or non-DATA payload
  std::string block_scratch_;
  int32_t next_id_ = 1;
  int32_t max_opened_ = 0;  // the highest stream id opened
  // The peer's settings.
  uint32_t peer_max_streams_ = 100;  // until its SETTINGS say (RFC 9113 recommends >= 100)
  uint32_t peer_initial_window_ = 65535;
  uint32_t peer_max_frame_ = 16384;
  uint32_t peer_table_size_ = 4096;
  bool table_update_due_ = true;  // our encoder's table size (0) not yet announced
  int64_t send_window_ = 65535;   // the connection's, toward the peer
  int64_t recv_window_ = 65535;   // the connection's, from the peer
  uint32_t unacked_ = 0;          // connection-level bytes taken, not yet given back
  // The frame being read.
  enum class State : uint8_t { kHeader, kPayload, kData } state_ = State::kHeader;
  uint8_t type_ = 0;
  uint8_t flags_ = 0;
  int32_t id_ = 0;
  uint32_t length_ = 0;            // the current frame's payload length
  uint32_t data_left_ = 0;         // DATA: payload bytes still to come (data and padding)
  uint32_t pad_left_ = 0;          // DATA: padding bytes at the end of data_left_
  uint32_t padding_ = 0;           // DATA: the pad length byte and the padding, once known
  bool pad_pending_ = false;       // DATA: the pad length byte is still to come
  Stream* data_stream_ = nullptr;  // DATA: the stream it goes to (nullptr: dropped)
  // A header block spread over HEADERS and CONTINUATION frames.
  int32_t block_id_ = 0;  // nonzero while CONTINUATION frames are due
  Block block_ = Block::kHead;
  bool block_end_stream_ = false;
  uint32_t block_bytes_ = 0;
  uint64_t block_list_ = 0;  // the decoded fields' size, as SETTINGS_MAX_HEADER_LIST_SIZE counts
  uint32_t continuations_ = 0;
  bool preface_settings_ = false;  // the peer's first frame (SETTINGS) came
  bool settings_received_ = false;
  bool goaway_received_ = false;
  bool failed_ = false;
  std::string failure_;
};

}  // namespace torii::http
