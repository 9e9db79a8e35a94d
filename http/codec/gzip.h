// http/codec/gzip.h: the gzip content coding (RFC 1952) over zlib.
//
// Encoder: deflateInit2 with windowBits 15 + 16 (gzip wrapper: 10-byte header, CRC-32 and
// length trailer), memLevel 8, Z_DEFAULT_STRATEGY, levels 1..9. Memory per encoder: zlib's
// documented (1 << (windowBits + 2)) + (1 << (memLevel + 9)) = 256 KiB, plus the ~5.7 KiB
// deflate_state: 262 KiB at every level (measured, see codec_test). Reset() is deflateReset:
// no allocation.
//
// Decoder: inflateInit2 with windowBits 15 + 32, so a zlib-wrapped stream mislabelled as gzip
// decodes too; concatenated gzip members decode as one body (what `gzip -d` does); anything
// after a member that is not another member is corrupt. Memory: ~7 KiB state + a 32 KiB window
// (allocated on the first output).
//
// Leaves out: raw deflate and the "deflate" content coding (RFC 9110 §8.4.1.2: ambiguous in
// practice, and no client prefers it over gzip).
#pragma once

#include <cstdint>
#include <memory>

#include "http/codec/codec.h"

namespace torii::http::codec {

// nullptr if level is outside 1..9 or zlib cannot allocate.
std::unique_ptr<Encoder> MakeGzipEncoder(int level);
// nullptr if zlib cannot allocate.
std::unique_ptr<Decoder> MakeGzipDecoder(uint64_t max_output);

}  // namespace torii::http::codec
