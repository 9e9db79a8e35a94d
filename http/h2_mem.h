// http/h2_mem.h: the allocator every nghttp2 session of torii uses (both HTTP/2 codecs).
//
// nghttp2 allocates for each stream and frame it handles (the stream's state, each outbound
// item, the header fields it copies, HPACK table entries): about eight allocations per
// proxied request, whose malloc/free showed as 5-6 % of a worker's CPU on the HTTP/2 paths.
// H2Memory() serves them from per-thread free lists in eleven size classes (64 B to 2 KiB
// blocks, each 1.5 times the last, 16 bytes of each a header that names the class); larger
// requests (a session's own state and tables, kept for its life) go to malloc. A freed
// block waits in its thread's list for the next allocation of its class, at most
// kMaxCachedBytes per thread, so what a burst leaves behind is bounded and goes back to
// malloc past it. Blocks waiting in a list are poisoned for AddressSanitizer, which therefore
// still sees a use after free.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>

namespace torii::http {

inline constexpr size_t kH2MemMaxCachedBytes = 1 << 20;

// The allocator to give nghttp2_session_*_new3 (its functions keep no pointer to the caller).
nghttp2_mem* H2Memory();

// What this thread's free lists hold now (tests and metrics).
size_t H2MemoryCachedBytes();

}  // namespace torii::http
