// http/codec/gzip.h: the gzip content coding (RFC 1952) over ISA-L and zlib.
//
// Encoder, levels 1-3: ISA-L's igzip at its levels 1-3 (a generic gzip header, CRC-32 and
// length trailer), several times faster than zlib's levels 1-3 at about their ratio (100 KiB
// of the README, one run: isal 1 42.7% at 229 MB/s, zlib 1 43.2% at 29 MB/s; isal 3 40.3%;
// through the proxy, bench/README.md: 4.7x nginx's zlib level 1 per CPU-second). Memory: the
// ~80 KiB stream state and a level buffer, 228 KiB at most (level 1: 228 KiB, 2: 212 KiB,
// 3: 228 KiB). Levels 4-9: deflateInit2 with windowBits 15 + 16 (gzip wrapper: 10-byte header,
// CRC-32 and length trailer), memLevel 8, Z_DEFAULT_STRATEGY; zlib's documented
// (1 << (windowBits + 2)) + (1 << (memLevel + 9)) = 256 KiB plus the ~5.7 KiB deflate_state:
// 262 KiB (measured, see codec_test). Reset() allocates nothing with either.
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
