// http/codec/brotli.h: the Brotli content coding ("br", RFC 7932) over libbrotli.
//
// Encoder: quality = level (0..11), BROTLI_PARAM_LGWIN 16 (a 64 KiB window; the library's
// default is 22 = 4 MiB), generic mode. Why 16 and not 18: the window is not what costs memory
// at quality >= 2, the rest of the encoder sizes itself from it. The meta-block buffer is
// 2^(lgwin+1) bytes of input, with up to 16 bytes of commands per 2-4 input bytes, and at
// quality 5-9 a window above 64 KiB switches to the H5/H6 hashers (2^(quality-1) slots per
// bucket: 37 MiB at quality 9 with lgwin 18), where lgwin 16 keeps the fixed-size H40-42.
// Measured on 59 rust-doc HTML/JS/CSS files (5.2 MB, one stream per file, 16 KiB writes),
// compressed size / input:
//   quality 4: lgwin 16 18.65%, 1.8 MiB | lgwin 17 18.46%, 2.6 MiB | lgwin 18 18.35%, 3.5 MiB
//   quality 5: lgwin 16 17.23%, 1.8 MiB | lgwin 18 16.92%, 4.0 MiB
//   quality 9: lgwin 16 16.74%, 2.6 MiB | lgwin 18 16.22%, 37 MiB
// so lgwin 16 costs 1.5-3% of output size and halves memory at the default level, and keeps
// every level bounded. (For comparison gzip 5 gives 18.78% there, zstd 3 19.29%.)
// Memory per encoder (memory_bytes() mid-stream, 256 KiB writes; see codec_test):
//   quality 0: 262 KiB  1: 390 KiB  2-3: 0.95 MiB  4-8: 1.7 MiB  9: 2.5 MiB  10-11: 2.2 MiB
//   (10-11 peak at ~6 MiB while a meta-block is optimised, and run at ~0.5 MB/s: for
//   compress-once cached variants, not on the fly).
// libbrotli 1.0.9 has no encoder reset: Reset() destroys the instance and creates a new one
// (one round of allocations per pooled reuse).
//
// Decoder: the stream's own window decides its memory (~90 KiB for our lgwin 16 streams; a
// ring buffer up to 16 MiB for a backend's lgwin 24, less for short streams) and libbrotli has
// no parameter to cap it; the large-window
// extension stays off (it is not the "br" coding). Bytes after the end of the stream are an
// error.
#pragma once

#include <cstdint>
#include <memory>

#include "http/codec/codec.h"

namespace torii::http::codec {

// nullptr if level is outside 0..11 or libbrotli cannot allocate.
std::unique_ptr<Encoder> MakeBrotliEncoder(int level);
// nullptr if libbrotli cannot allocate.
std::unique_ptr<Decoder> MakeBrotliDecoder(uint64_t max_output);

}  // namespace torii::http::codec
