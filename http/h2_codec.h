// http/h2_codec.h: torii's own HTTP/2 frame layer (RFC 9113) and header encoding (RFC 7541),
// shared by both ends of the proxy: H2ClientCodec (h2_client_codec.h, connections to HTTP/2
// backends) and H2ServerCodec (h2_server_codec.h, clients' HTTP/2 connections).
//
// Owns: reading frames (the client preface on a server connection, frame headers, DATA as it
// comes, other frames whole), SETTINGS both ways, flow control windows in both directions,
// PING, GOAWAY, RST_STREAM, header blocks over HEADERS and CONTINUATION (decoded whole, once
// the block's last frame is in, by hpack.h's decoder, which keeps the peer's dynamic table),
// the state of each stream, and the connection errors the frame layer defines
// (GOAWAY with their code). What the fields of a header block may be, and what a new stream
// is, belong to the role: a subclass checks requests (server) or responses (client) per
// RFC 9113 §8 and resets a malformed message's stream only (RST_STREAM PROTOCOL_ERROR).
//
// Header blocks are encoded without Huffman coding and without the dynamic table: each field
// is a literal, its name taken from the static table when it is there (what HAProxy sends),
// so encoding is a copy and the peer's table never needs an entry of ours.
//
// Leaves out: I/O and timers (the host writes output() to the connection and sends DATA
// payloads itself after DataHeader()), what a stream is for.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http/hpack.h"
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

// RFC 9113 §8.2.1-8.2.2, for both directions: a lowercase token name; a value without
// control characters (HTAB aside) or whitespace at either end; not a connection-specific
// field nor TE other than "trailers".
bool H2ValidName(std::string_view name);
bool H2ValidValue(std::string_view value);
bool H2ForbiddenField(std::string_view name, std::string_view value);

class H2Codec : private HpackDecoder::Sink {
 public:
  // What the codec tells its connection, from within Receive() (none from the send calls).
  class Host {
   public:
    virtual ~Host() = default;
    // A checked field of a stream's header block (pseudo-fields first: a response's :status,
    // a request's :method, :scheme, :authority, :path, :protocol).
    virtual void OnField(int32_t stream, std::string_view name, std::string_view value) = 0;
    // The end of a header block: a message head (a response's interim or final) or trailers.
    virtual void OnHeaders(int32_t stream, bool end_stream) = 0;
    // Body bytes (padding taken out); Consume() gives them back to the peer's window.
    virtual void OnData(int32_t stream, std::string_view bytes) = 0;
    // The message ended with a DATA frame's END_STREAM.
    virtual void OnDataEnd(int32_t stream) = 0;
    // The peer's SETTINGS (the first and any later one) took effect.
    virtual void OnSettings() {}
    // GOAWAY: the peer opens no new stream (a client's streams above its last id are closed
    // as refused: TakeClosed).
    virtual void OnGoaway() {}
    // The answer to our PING.
    virtual void OnPingAck() {}
    // The stream's message broke HTTP/2's rules (RFC 9113 §8): it is being reset
    // (PROTOCOL_ERROR), and TakeClosed will report it.
    virtual void OnMalformed(int32_t /*stream*/) {}
    // (Server) A client's HEADERS opened this stream; its fields follow.
    virtual void OnBegin(int32_t /*stream*/) {}
    // The peer reset a stream that was open (TakeClosed will report it).
    virtual void OnReset(int32_t /*stream*/) {}
    // The codec is resetting an open stream for a stream error of the peer's (a malformed
    // message, a frame its state does not allow, a window broken); TakeClosed will report it.
    virtual void OnStreamError(int32_t /*stream*/) {}
    // (Server) The stream's header block decodes to more than the advertised header list: its
    // further fields are neither checked nor passed on (the host answers 431).
    virtual void OnTooLarge(int32_t /*stream*/) {}
  };

  struct Settings {
    uint32_t max_header_list = 64 * 1024;  // advertised (SETTINGS_MAX_HEADER_LIST_SIZE)
    int32_t connection_window = 8 << 20;   // our receive window for the whole connection
    // Server only.
    uint32_t max_streams = 128;     // SETTINGS_MAX_CONCURRENT_STREAMS
    bool connect_protocol = false;  // SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441)
  };

  virtual ~H2Codec();
  H2Codec(const H2Codec&) = delete;
  H2Codec& operator=(const H2Codec&) = delete;

  // ---- Receiving ----

  // Bytes from the peer. False once the connection failed (a GOAWAY is in output()).
  bool Receive(std::string_view bytes);
  // The same, stopping at a frame's start once output() holds more than `output_limit` bytes
  // (a peer whose frames make the codec answer faster than it reads is read no further until
  // the host has written the answers): *taken says how many bytes it took, the rest are to be
  // given again.
  bool Receive(std::string_view bytes, size_t output_limit, size_t* taken);
  // `n` bytes of `stream`'s DATA were taken (stream 0: bytes of a stream that is gone, the
  // connection's only): WINDOW_UPDATEs go out as half a window is taken.
  void Consume(int32_t stream, size_t n);

  // ---- Sending ----

  // How many body bytes `stream` may send now (both windows), at most one frame's worth.
  size_t Sendable(int32_t stream);
  // The 9-byte header of a DATA frame of `n` bytes (n <= Sendable()), whose payload the caller
  // writes right after it; the windows shrink by `n`. With `end_stream` the message is done.
  std::array<char, 9> DataHeader(int32_t stream, size_t n, bool end_stream);
  // Trailers: a HEADERS frame that ends the stream's message (into output()).
  void SendTrailers(int32_t stream, std::span<const H2OutField> fields);
  // RST_STREAM with `code`; the stream is closed here (TakeClosed reports it).
  void Reset(int32_t stream, H2Error code);
  void Ping();

  // Gives back the memory of buffers that hold nothing now (an idle connection's): what is
  // left is the stream-independent state and the peer's HPACK table.
  void Trim();

  // Frames made and not yet taken (control frames, HEADERS): the host writes them, then
  // clears the string, before any DATA it writes itself. Answers to the peer's PING and
  // SETTINGS left here past 64 KiB (a peer flooding them while it does not read) fail the
  // connection.
  std::string& output() { return out_; }
  // Streams that closed since the last call, with the error code that closed them (NO_ERROR
  // for a stream both sides ended), oldest first.
  std::vector<std::pair<int32_t, H2Error>> TakeClosed();
  // The same into `into` (emptied first), the two vectors' memory kept for the next call.
  void TakeClosed(std::vector<std::pair<int32_t, H2Error>>* into);

  bool failed() const { return failed_; }
  bool goaway_received() const { return goaway_received_; }
  bool settings_received() const { return settings_received_; }
  uint32_t peer_max_streams() const { return peer_max_streams_; }
  size_t open_streams() const { return streams_.size(); }
  // Whether a stream is open (not closed by either side's END_STREAMs or a reset).
  bool is_open(int32_t stream) { return Find(stream) != nullptr; }
  // A header block begun and not ended (CONTINUATION frames due).
  bool in_header_block() const { return block_id_ != 0; }
  // Why the connection failed, for a debug log line.
  const std::string& failure() const { return failure_; }

 protected:
  enum class Role : uint8_t { kClient, kServer };
  struct Stream {
    int64_t send_window = 0;
    int32_t recv_window = 0;      // what the peer may still send
    uint32_t unacked = 0;         // bytes taken, not yet given back by WINDOW_UPDATE
    int64_t content_length = -1;  // the message's, once its head is in
    uint64_t received = 0;        // DATA bytes so far
    uint16_t status = 0;          // a response's
    uint8_t pseudo = 0;           // a request's pseudo-fields seen (H2ServerCodec's bits)
    bool local_ended = false;
    bool remote_ended = false;
    bool final_head = false;  // the message's (final) head came: DATA may follow
    bool head_request = false;
    bool saw_regular = false;  // the current block had a regular field (pseudo after it: bad)
    bool malformed = false;    // the current block broke a rule (reset at its end)
    bool content_length_seen = false;
    bool too_large = false;  // the current block passed the header list bound
    // A request's (H2ServerCodec).
    bool connect = false;   // :method CONNECT
    bool options = false;   // :method OPTIONS
    bool asterisk = false;  // :path "*"
  };
  // What a header block is: a message head, trailers, or one nobody takes (decoded all the
  // same, for the table to follow the peer's).
  enum class Block : uint8_t { kHead, kTrailers, kIgnored };

  H2Codec(Role role, Host& host, const Settings& settings);

  // ---- The role's part ----
  // A HEADERS frame begins a block on `id` (checked: not stream 0): which kind, or false
  // after Fail() when the frame breaks the connection's rules.
  virtual bool BeginBlock(int32_t id, bool end_stream, Block* block) = 0;
  // One decoded field of a block that is not ignored, `list` its size so far as
  // SETTINGS_MAX_HEADER_LIST_SIZE counts.
  virtual void CheckField(int32_t id, std::string_view name, std::string_view value,
                          uint64_t list) = 0;
  // The block on `id` ended (its fields all passed through CheckField).
  virtual void EndBlock(int32_t id) = 0;

  bool Fail(H2Error code, std::string why);
  // A regular (not pseudo-) field of a block, checked as both roles must (RFC 9113 §8.2: name,
  // value, forbidden fields; a head's one numeric Content-Length kept in `s`), then passed on;
  // otherwise the block is marked malformed.
  void RegularField(int32_t id, Stream& s, std::string_view name, std::string_view value);
  // A block that passed its role's checks: the host hears OnHeaders, and END_STREAM on it ends
  // the peer's side of the stream.
  void BlockDone(int32_t id, Stream& s);
  void WriteFrameHeader(uint32_t length, uint8_t type, uint8_t flags, int32_t id);
  // A header block as HEADERS (and CONTINUATION past the peer's frame size) into output().
  void WriteHeaders(int32_t id, std::span<const H2OutField> fields, bool end_stream);
  void Goaway(H2Error code, int32_t last_stream);
  // RST_STREAM for a stream that need not be open (one refused before it was).
  void WriteReset(int32_t stream, H2Error code);
  void CloseStream(int32_t id, H2Error code);
  void MaybeClose(int32_t id, Stream& s);
  // The host hears of a malformed message, then the stream is reset with `code`
  // (StreamError).
  void Malformed(int32_t id, H2Error code = H2Error::kProtocol);
  // A stream error of the peer's making: the host hears of it (OnStreamError), then the stream
  // is reset with `code`.
  void StreamError(int32_t id, H2Error code);
  Stream* Find(int32_t id);
  // A new stream's state, its windows at their initial sizes; `id` becomes the highest.
  Stream& OpenStream(int32_t id);
  // A stream of the peer's numbering (odd) that is open or closed already, not idle.
  bool Known(int32_t id) const { return (id & 1) == 1 && id <= max_opened_; }

  Host& host_;
  Settings settings_;
  Role role_;
  std::unordered_map<int32_t, Stream> streams_;
  int32_t found_id_ = 0;  // Find's last answer (found_ null: none)
  Stream* found_ = nullptr;
  std::string out_;
  int32_t max_opened_ = 0;  // the highest stream id opened (by either side: odd ids only)
  int32_t last_taken_ = 0;  // a server's: the highest stream whose request it took
  uint32_t peer_initial_window_ = 65535;
  uint32_t peer_max_frame_ = 16384;
  uint32_t peer_max_streams_ = 100;  // until its SETTINGS say (RFC 9113 recommends >= 100)
  uint32_t peer_table_size_ = 4096;
  bool table_update_due_ = false;  // our encoder's table size (0) to be announced
  bool settings_acked_ = false;    // the peer acknowledged our SETTINGS
  bool goaway_received_ = false;
  bool failed_ = false;
  // The block being decoded.
  bool block_end_stream_ = false;
  Block block_ = Block::kHead;

 private:
  // One whole frame (DATA aside), its payload in `p`.
  bool OnFrame(uint8_t type, uint8_t flags, int32_t id, std::string_view p);
  bool OnSettingsFrame(uint8_t flags, int32_t id, std::string_view p);
  bool OnHeadersFrame(uint8_t flags, int32_t id, std::string_view p);
  bool OnHeaderFragment(std::string_view fragment, bool end_headers);
  // HpackDecoder::Sink: a field of the block being decoded, to the role's CheckField.
  void Field(std::string_view name, std::string_view value) override;
  bool OnDataStart(uint8_t flags, int32_t id, uint32_t length);
  bool DataBytes(std::string_view bytes);
  bool DataDone();
  void WindowUpdate(int32_t id, uint32_t increment);

  HpackDecoder hpack_;
  std::vector<std::pair<int32_t, H2Error>> closed_;
  size_t reply_bytes_ = 0;  // answers to the peer's PING and SETTINGS in out_, unwritten
  std::string in_;          // an incomplete frame header or non-DATA payload
  std::string block_scratch_;
  std::string block_in_;         // a header block spread over frames, until its last one
  int64_t send_window_ = 65535;  // the connection's, toward the peer
  int64_t recv_window_ = 65535;  // the connection's, from the peer
  uint32_t unacked_ = 0;         // connection-level bytes taken, not yet given back
  size_t preface_left_ = 0;      // client preface bytes still to check (server)
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
  uint32_t block_bytes_ = 0;
  uint64_t block_list_ = 0;  // the decoded fields' size, as SETTINGS_MAX_HEADER_LIST_SIZE counts
  uint32_t continuations_ = 0;
  bool preface_settings_ = false;  // the peer's first frame (SETTINGS) came
  bool settings_received_ = false;
  std::string failure_;
};

}  // namespace torii::http
