// http/h2_mem.h: the allocator every nghttp2 session of torii uses (both HTTP/2 codecs).
//
// nghttp2 allocates for each stream and frame it handles (the stream's state, each outbound
// item, the header fields it copies, HPACK table entries): about eight allocations per
// proxied request, whose malloc/free showed as 5-6 % of a worker's CPU on the HTTP/2 paths.
// H2Memory() serves them from per-thread free lists in eleven size classes (64 B to 2 KiB
// blocks, each about 1.5 times the last, 16 bytes of each a header that names the class);
// larger requests (a session's own state and tables, kept for its life) go to malloc. A freed
// block waits in its thread's list for the next allocation of its class, at most
// kMaxCachedBytes per thread, so what a burst leaves behind is bounded and goes back to
// malloc past it. Blocks waiting in a list are poisoned for AddressSanitizer, which therefore
// still sees a use after free.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <vector>

namespace torii::http {

inline constexpr size_t kH2MemMaxCachedBytes = 1 << 20;

// The allocator to give nghttp2_session_*_new3 (its functions keep no pointer to the caller).
nghttp2_mem* H2Memory();

// One nghttp2 session's own allocator, for sessions that may sit idle a long time (a client's
// HTTP/2 connection): blocks under a page come from H2Memory()'s lists; blocks of a page or
// more are page-aligned and noted, so that an idle session can give their resident pages back
// to the kernel (ReleaseIdlePages). Such a session holds two: its outbound frame buffer
// (16 KiB, of which the frames written so far touched a page or two) and its stream table
// (4 KiB, all zero without a stream). An idle HTTP/2 connection keeps ~8 KiB less for it.
class H2SessionMemory {
 public:
  H2SessionMemory();
  H2SessionMemory(const H2SessionMemory&) = delete;
  H2SessionMemory& operator=(const H2SessionMemory&) = delete;
  // Every block was freed before (nghttp2_session_del).
  ~H2SessionMemory() = default;

  // For nghttp2_session_*_new3 (it copies the struct; this object must outlive the session).
  nghttp2_mem* mem() { return &mem_; }

  // Right after the session was made: its block of kFrameBufferBytes or more is its outbound
  // frame buffer (when there is exactly one such block; otherwise none is taken). nghttp2
  // makes that buffer at creation and no other block as large then; it packs every frame
  // afresh into it, so its bytes are dead once the session has nothing left to send.
  void NoteSessionMade();

  // The session has no stream and nothing to send (nghttp2_session_want_write is 0): the
  // pages of its frame buffer, and every page of its other large blocks that reads all zero,
  // are given back (MADV_DONTNEED: a later touch maps a fresh zero page). Returns the bytes
  // given back, resident or not.
  size_t ReleaseIdlePages();

  // How many blocks NoteSessionMade took for the frame buffer (tests: exactly one, or an
  // nghttp2 that makes its session differently would have pages given back that hold data).
  size_t frame_blocks() const;

  static constexpr size_t kPageBytes = 4096;
  static constexpr size_t kFrameBufferBytes = 16384;

 private:
  struct Large {
    void* ptr;
    size_t size;          // what the caller asked for
    bool frames = false;  // the outbound frame buffer
  };
  static void* Malloc(size_t size, void* self);
  static void Free(void* ptr, void* self);
  static void* Calloc(size_t n, size_t size, void* self);
  static void* Realloc(void* ptr, size_t size, void* self);
  void* Allocate(size_t size);
  Large* FindLarge(void* ptr);
  void FreeLarge(Large* large);

  nghttp2_mem mem_;
  std::vector<Large> large_;  // a few: scanned on each free
};

// What this thread's free lists hold now (tests and metrics).
size_t H2MemoryCachedBytes();

}  // namespace torii::http
