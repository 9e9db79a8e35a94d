// http/h2_mem.h: the allocator torii's HPACK decoders (nghttp2's inflater, h2_codec.h) use.
//
// nghttp2's inflater allocates for what a peer enters into its dynamic table (each entry and
// its strings) and frees as entries are evicted: churn on every connection whose peer indexes
// fields that change. H2Memory() serves it from per-thread free lists in eleven size classes
// (64 B to 2 KiB blocks, each about 1.5 times the last, 16 bytes of each a header that names
// the class); larger requests (the table's ring, kept for the connection's life) go to malloc. A
// freed block waits in its thread's list for the next allocation of its class, at most
// kMaxCachedBytes per thread, so what a burst leaves behind is bounded and goes back to
// malloc past it. Blocks waiting in a list are poisoned for AddressSanitizer, which therefore
// still sees a use after free.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>

namespace torii::http {

inline constexpr size_t kH2MemMaxCachedBytes = 1 << 20;

// The allocator to give nghttp2_hd_inflate_new2 (its functions keep no pointer to the caller).
nghttp2_mem* H2Memory();

// What this thread's free lists hold now (tests and metrics).
size_t H2MemoryCachedBytes();

}  // namespace torii::http
