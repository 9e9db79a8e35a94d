// http/codec/zstd.h: the Zstandard content coding ("zstd", RFC 8878) over libzstd.
//
// Encoder: compression level = level (1..19), with the level's own parameters (those for an
// input of unknown size) capped to bound memory: windowLog <= 19 (512 KiB; RFC 9659 allows up
// to 8 MiB for HTTP), hashLog <= 17, chainLog <= 17. Levels 1-3 keep their hash and chain
// sizes; from level 4 on the caps trade a little ratio for memory. Measured on 59 rust-doc
// HTML/JS/CSS files (5.2 MB, one stream per file, 16 KiB writes), compressed size / input:
//   level 3:  windowLog 19 19.29%, 2.0 MiB | 20 19.23%, 2.5 MiB | 21 (default) 19.22%, 3.5 MiB
//   level 6:  caps 17 17.54%, 2.0 MiB | caps 18 17.48%, 2.8 MiB (windowLog 19)
//   level 19: caps 17 16.11%, 3.0 MiB | caps 18 15.74%, 4.0 MiB (windowLog 19)
// Content checksum on (4 bytes per stream, like the zstd CLI; gzip has its CRC too).
// Reset() is ZSTD_CCtx_reset(session_only): no allocation.
// Memory per encoder (memory_bytes() mid-stream; allocated on the first Write, kept by Reset):
//   level 1: 1.3 MiB  2: 1.5 MiB  3: 2.0 MiB  4-17: 2.0-2.4 MiB  18-19: 3.0 MiB
//
// Decoder: ZSTD_d_windowLogMax 23 (8 MiB, RFC 9659's limit): a frame asking for a larger
// window is refused as an error instead of allocating it. Memory: the frame's window plus
// ~0.5 MiB (~1 MiB for our own 512 KiB-window streams; up to ~8.5 MiB).
// Concatenated frames and skippable frames decode as one body.
#pragma once

#include <cstdint>
#include <memory>

#include "http/codec/codec.h"

namespace torii::http::codec {

// nullptr if level is outside 1..19 or libzstd cannot allocate.
std::unique_ptr<Encoder> MakeZstdEncoder(int level);
// nullptr if libzstd cannot allocate.
std::unique_ptr<Decoder> MakeZstdDecoder(uint64_t max_output);

}  // namespace torii::http::codec
