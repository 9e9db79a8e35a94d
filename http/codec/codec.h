// http/codec/codec.h: HTTP content codings (gzip, Brotli, zstd) as a stage library: the one
// include that gives all of it.
//
// Owns: the Coding enum and its names; Accept-Encoding negotiation (RFC 9110 §12.5.3);
// streaming Encoder/Decoder objects over zlib, libbrotli and libzstd, each in bounded memory;
// the Content-Type allow-list that says which responses are worth compressing.
//
// Leaves out: everything about the HTTP message. Whether a response may be compressed at all
// (HEAD, 204/304, Range/206, Content-Encoding already set, Cache-Control: no-transform,
// min_bytes), the headers a compressed response needs (Vary: Accept-Encoding, Content-Length
// dropped or recomputed, a strong ETag made weak), chunked framing and the cache variants are
// http/'s job. No I/O, no threads, no clock, nothing from core/ or http/ proper. Encoder and
// Decoder objects are not thread-safe; each belongs to one worker (pool them per worker).
//
// Errors: nothing here throws or returns an error for bad peer input. Negotiate() falls back to
// identity; an Encoder/Decoder returns false and stays failed until Reset() (encoders) or is
// dropped (decoders).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace torii::http::codec {

enum class Coding : uint8_t {
  kIdentity,  // no transformation; never has an Encoder/Decoder
  kGzip,      // RFC 1952 gzip member(s) over DEFLATE (zlib); also what "x-gzip" names
  kBrotli,    // RFC 7932 Brotli ("br")
  kZstd,      // RFC 8878 Zstandard ("zstd"), window <= 8 MiB per RFC 9659
};

// The content-coding token: "identity", "gzip", "br", "zstd" ("" for a value outside the enum).
std::string_view Name(Coding c);

// The inverse of Name(), case-insensitive: "gzip", "x-gzip" (RFC 9110 §8.4.1.3: equivalent to
// gzip), "br", "zstd", "identity". No whitespace trimming; anything else (including "deflate",
// which we do not implement) → nullopt. Suits both a config list and a backend's
// Content-Encoding value.
std::optional<Coding> ParseCoding(std::string_view name);

// RFC 9110 §12.5.3 negotiation.
//
// `accept_encoding`: the request's Accept-Encoding field values joined with "," ("" = header
// absent). `server_order`: the server's preference, e.g. {br, zstd, gzip}. Returns the first
// coding in server_order that the client accepts with q > 0, else kIdentity. The client's
// q-values only filter (q = 0 vs q > 0); among the acceptable codings the server's order wins
// (the operator's order, `[compression] algorithms`, decides).
//
// What counts as accepted, member by member (members are split on ',', empty ones skipped):
//  - Header absent or empty → kIdentity. The RFC would allow any coding, but compressing for a
//    client that did not ask is what nginx and HAProxy avoid, and so do we.
//  - A member is `coding *( OWS ";" OWS param )`; tokens and parameter names are
//    case-insensitive; spaces and tabs are allowed around ',', ';' and '='. "x-gzip" is gzip.
//  - q follows RFC 9110 §12.4.2: "0" ["." up to 3 digits] or "1" ["." up to 3 zeros]. "q=0",
//    "q=0.000" exclude. A malformed q ("q=2", "q=abc", "q=0.0001", "q=", "q=1.5"), a repeated q,
//    or any parameter other than q makes that member "not acceptable": it counts as that coding
//    listed with q=0 (so "gzip;q=abc, *" does not send gzip: the client named gzip and we could
//    not read what it meant). Empty parameters ("gzip;") are ignored.
//  - A member whose coding is not a token ("gz ip", "gzip br", "/") is skipped whole. Unknown
//    codings ("deflate", "compress") are parsed and have no effect.
//  - A coding listed more than once: any q=0 among its members excludes it (a refusal wins).
//  - "*" covers the codings that are not listed explicitly (x-gzip lists gzip); "*;q=0" refuses
//    them. "*" repeated: any q=0 wins, as above.
//  - "identity" is parsed and ignored: identity is always what we fall back to, even after
//    "identity;q=0" (we never answer 406). kIdentity inside server_order is returned when it is
//    reached (it stops the search).
// Never allocates; linear in the header's length.
Coding Negotiate(std::string_view accept_encoding, std::span<const Coding> server_order);

// Streaming compressor.
//
// Bounded memory: the codec's own state is fixed when the encoder is made (see memory_bytes()
// and the table in the back end's header); the output grows only by what each call produces.
// Each call appends the compressed bytes produced so far to *out, which it never clears (the
// caller owns *out; it may be the same string across calls, or a new one each time).
//  - Write() may produce nothing (the codec buffers up to its block size).
//  - Flush() forces out everything written so far as a decodable prefix (Z_SYNC_FLUSH /
//    BROTLI_OPERATION_FLUSH / ZSTD_e_flush). Flushing with nothing written since the last
//    Flush() is a no-op (no empty block is emitted). Every Flush costs a few bytes and some
//    ratio: call it when the upstream goes quiet (end of an upstream read), not per write.
//  - Finish() ends the stream (gzip trailer, Brotli last meta-block, zstd epilogue + checksum).
//    A stream with no Write() still finishes as a valid stream of zero bytes.
//  - Reset() starts a new stream with the same coding and level; it may be called at any time
//    (a stream cut short is discarded) and is how a worker pools encoders.
// Return values: true on success; false on an internal codec error (out of memory) or misuse
// (Write/Flush/Finish after Finish(), or after a failure). After false the encoder stays failed
// until Reset() returns true. Nothing throws.
class Encoder {
 public:
  virtual ~Encoder() = default;
  virtual Coding coding() const = 0;
  virtual bool Write(std::string_view in, std::string* out) = 0;
  virtual bool Flush(std::string* out) = 0;
  virtual bool Finish(std::string* out) = 0;
  virtual bool Reset() = 0;
  // Bytes consumed / produced by the current stream (Reset() zeroes them).
  virtual size_t total_in() const = 0;
  virtual size_t total_out() const = 0;
  // Bytes the codec library currently holds for this encoder (counted through our allocator
  // hooks), excluding the Encoder object itself (< 200 bytes). For metrics and tests.
  virtual size_t memory_bytes() const { return 0; }
};

// Level ranges and defaults. gzip 1..9, br 0..11, zstd 1..19; identity has none (0..0).
int MinLevel(Coding coding);
int MaxLevel(Coding coding);
// The default levels and why. Measured on 59 rust-doc HTML/JS/CSS files (5.2 MB, one stream
// per file), compressed size / input and rough single-core speed (noisy, shared machine):
//   gzip 1: 22.7% ~120 MB/s   gzip 5: 18.8% ~60 MB/s   gzip 6: 18.4% ~43 MB/s
//   gzip 9: 18.2%  ~16 MB/s   br 4:   18.7% ~80 MB/s   br 5:   17.2% ~58 MB/s
//   br 11:  15.0% ~0.6 MB/s   zstd 3: 19.3% ~275 MB/s  zstd 19: 16.1% ~1.2 MB/s
//  - gzip 5: 99% of level 9's savings and within 2% of level 6's output size, at ~1.4x level
//    6's speed. nginx's default of 1 makes output ~20% larger; with cached variants (compress
//    once, serve many) those bytes matter more than the CPU. For the wrk comparison with nginx,
//    set both to the same level.
//  - br 4: the usual on-the-fly Brotli level: faster than gzip 5 and a little smaller. br 5 is
//    ~8% smaller for ~30% more CPU at the same memory (brotli.h). 10-11 are for compress-once
//    cached variants only.
//  - zstd 3: zstd's own default; the fastest of the three by far, at about gzip 4's size.
int DefaultLevel(Coding coding);

// A new encoder for `coding` at `level`. nullptr for kIdentity, a level outside
// [MinLevel, MaxLevel], or when the codec cannot allocate its state.
//
// Memory per encoder (the codec's state, measured with memory_bytes(); tables in gzip.h,
// brotli.h and zstd.h). Zlib: windowBits 15, memLevel 8; Brotli: lgwin 16; zstd: windowLog
// 19 and hashLog/chainLog 17:
//  - gzip: 261 KiB at levels 4-9 (zlib); at most 228 KiB at levels 1-3 (ISA-L).
//  - br: 1.7 MiB at level 4; <= 2.5 MiB at levels 0-9 (10-11 peak at ~6 MiB).
//  - zstd: 2.0 MiB at level 3 (allocated on the first Write); <= 3 MiB at any level.
// These are per stream in flight: a worker that compresses N responses at once holds N of them,
// so the caller bounds N (pool size), not this library.
// Brotli has no reset in libbrotli 1.0.9: its Reset() frees and recreates the state.
std::unique_ptr<Encoder> MakeEncoder(Coding coding, int level);

// Streaming decompressor, for backends that compress when the client does not accept it
// (`decompress = true`).
//  - Write() appends to *out everything decodable from the input so far. False on corrupt
//    input, on trailing bytes after the end of a Brotli stream, or once the total output would
//    exceed `max_output` (zip bombs: at most max_output bytes are ever appended).
//  - Finish() (no more input) is false if the stream was truncated. A body of zero bytes is
//    not truncated: it decodes to zero bytes (servers label empty bodies too; curl accepts it).
//  - gzip accepts concatenated members (RFC 1952 §2.2, as `gzip -d` does) and zlib-wrapped
//    deflate (servers mislabel it); zstd accepts concatenated and skippable frames.
//  - After false, every call returns false and error() says why (a static string). Write()
//    after Finish(), or a second Finish(), is refused the same way.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual bool Write(std::string_view in, std::string* out) = 0;
  virtual bool Finish(std::string* out) = 0;
  virtual std::string_view error() const = 0;
  virtual size_t total_in() const { return 0; }
  virtual size_t total_out() const { return 0; }
  // As Encoder::memory_bytes(). gzip: 38 KiB. zstd: the frame's window + ~0.5 MiB, at most
  // ~8.5 MiB (windowLogMax 23, RFC 9659's limit; a larger window is refused as an error).
  // br: set by the stream's own window: ~90 KiB for lgwin 16, up to ~16 MiB for lgwin 24
  // (libbrotli offers no cap).
  virtual size_t memory_bytes() const { return 0; }
};
// nullptr for kIdentity or when the codec cannot allocate.
std::unique_ptr<Decoder> MakeDecoder(Coding coding, uint64_t max_output);

// Content-Type matching for "compress only these types". `content_type` is the response's
// Content-Type value: media type, then parameters after ';' that are ignored; surrounding
// whitespace and case are ignored. A pattern is "type/subtype" (exact), "type/*" or "*/*",
// case-insensitive; a malformed pattern matches nothing. Empty or malformed content type (no
// '/', empty type or subtype) → false.
bool TypeMatches(std::string_view content_type, std::span<const std::string> patterns);
// True for the patterns TypeMatches understands; for config validation.
bool IsValidTypePattern(std::string_view pattern);
// The default list (like Caddy's `encode` defaults and a wider nginx gzip_types): text/*; JSON
// and JSON-based types; JavaScript; XML, XHTML, RSS, Atom; SVG and icons; uncompressed fonts
// (ttf, otf, eot); application/wasm (binary, but brotli typically shrinks it by 60-70%, and
// Caddy and Cloudflare compress it). Not included: images other than SVG/ICO/BMP, video, audio,
// woff/woff2, archives, PDF: already compressed.
std::vector<std::string> DefaultTypes();

}  // namespace torii::http::codec
