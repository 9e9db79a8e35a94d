// tests/http/h2_mem_test.cc: the allocator nghttp2 sessions use (http/h2_mem.h).
#include "http/h2_mem.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "http/h2_body.h"

namespace torii::http {
namespace {

// Blocks of every class come back usable, aligned and distinct, and a freed block serves the
// next allocation of its class from this thread's list.
TEST(H2Memory, ClassesAreReused) {
  nghttp2_mem* mem = H2Memory();
  const size_t before = H2MemoryCachedBytes();
  for (size_t size : {1, 40, 48, 49, 100, 500, 1500, 2032}) {
    void* a = mem->malloc(size, mem->mem_user_data);
    void* b = mem->malloc(size, mem->mem_user_data);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(a, b);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 16, 0u);
    std::memset(a, 0xab, size);
    std::memset(b, 0xcd, size);
    mem->free(a, mem->mem_user_data);
    EXPECT_GT(H2MemoryCachedBytes(), before);
    void* again = mem->malloc(size, mem->mem_user_data);
    EXPECT_EQ(again, a) << size;  // the block just freed
    mem->free(again, mem->mem_user_data);
    mem->free(b, mem->mem_user_data);
  }
  mem->free(nullptr, mem->mem_user_data);
}

// Each size gets the smallest class that holds it with the block's 16-byte header (a freed
// block adds its class's bytes to the cache), and sizes past the largest class none.
TEST(H2Memory, EachSizeGetsTheSmallestClassThatHoldsIt) {
  nghttp2_mem* mem = H2Memory();
  constexpr size_t kClassBytes[] = {64, 96, 128, 192, 256, 384, 512, 768, 1040, 1536, 2048};
  // Empty lists first (an earlier test may have filled the cache to its bound).
  std::vector<void*> held;
  for (size_t bytes : kClassBytes) {
    for (size_t before = SIZE_MAX; H2MemoryCachedBytes() < before;) {
      before = H2MemoryCachedBytes();
      held.push_back(mem->malloc(bytes - 16, mem->mem_user_data));
    }
  }
  ASSERT_EQ(H2MemoryCachedBytes(), 0u);
  for (size_t size = 0; size <= 2100; ++size) {
    size_t expect = 0;
    for (size_t bytes : kClassBytes) {
      if (size + 16 <= bytes) {
        expect = bytes;
        break;
      }
    }
    void* p = mem->malloc(size, mem->mem_user_data);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x5a, size);
    const size_t before = H2MemoryCachedBytes();
    mem->free(p, mem->mem_user_data);
    ASSERT_EQ(H2MemoryCachedBytes() - before, expect) << size;
    void* again = mem->malloc(size, mem->mem_user_data);  // takes it off the list again
    if (expect != 0) {
      ASSERT_EQ(again, p) << size;
    }
    mem->free(again, mem->mem_user_data);
  }
  for (void* p : held) {
    mem->free(p, mem->mem_user_data);
  }
}

// Larger than the largest class: malloc's, never cached.
TEST(H2Memory, LargeBlocksGoToMalloc) {
  nghttp2_mem* mem = H2Memory();
  const size_t before = H2MemoryCachedBytes();
  void* big = mem->malloc(100000, mem->mem_user_data);
  ASSERT_NE(big, nullptr);
  std::memset(big, 1, 100000);
  mem->free(big, mem->mem_user_data);
  EXPECT_EQ(H2MemoryCachedBytes(), before);
}

TEST(H2Memory, CallocZeroesAndReallocKeepsTheBytes) {
  nghttp2_mem* mem = H2Memory();
  // A recycled block is zeroed by calloc.
  void* dirty = mem->malloc(200, mem->mem_user_data);
  std::memset(dirty, 0xff, 200);
  mem->free(dirty, mem->mem_user_data);
  auto* zeroed = static_cast<unsigned char*>(mem->calloc(10, 20, mem->mem_user_data));
  ASSERT_NE(zeroed, nullptr);
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(zeroed[i], 0) << i;
  }
  EXPECT_EQ(mem->calloc(SIZE_MAX / 2, 4, mem->mem_user_data), nullptr);  // overflow
  // Growing through the classes and past them, then shrinking: the bytes stay.
  auto* p = static_cast<unsigned char*>(mem->realloc(nullptr, 10, mem->mem_user_data));
  for (int i = 0; i < 10; ++i) {
    p[i] = static_cast<unsigned char>(i);
  }
  for (size_t size : {30, 60, 1000, 20000, 50}) {
    p = static_cast<unsigned char*>(mem->realloc(p, size, mem->mem_user_data));
    ASSERT_NE(p, nullptr);
    for (int i = 0; i < 10; ++i) {
      ASSERT_EQ(p[i], i) << size;
    }
  }
  mem->free(p, mem->mem_user_data);
  mem->free(zeroed, mem->mem_user_data);
}

// What a burst frees is cached up to the bound; the rest goes back to malloc.
TEST(H2Memory, CacheIsBounded) {
  nghttp2_mem* mem = H2Memory();
  std::vector<void*> blocks;
  for (int i = 0; i < 2000; ++i) {
    blocks.push_back(mem->malloc(1000, mem->mem_user_data));
  }
  for (void* b : blocks) {
    mem->free(b, mem->mem_user_data);
  }
  EXPECT_LE(H2MemoryCachedBytes(), kH2MemMaxCachedBytes);
  EXPECT_GT(H2MemoryCachedBytes(), kH2MemMaxCachedBytes / 2);
}

// How many of the pages of [p, p + n) are resident (p page-aligned).
size_t ResidentPages(void* p, size_t n) {
  const size_t pages = (n + H2SessionMemory::kPageBytes - 1) / H2SessionMemory::kPageBytes;
  std::vector<unsigned char> in(pages);
  EXPECT_EQ(mincore(p, n, in.data()), 0);
  size_t resident = 0;
  for (unsigned char v : in) {
    resident += v & 1;
  }
  return resident;
}

// Small blocks come from the lists; blocks of a page or more are page-aligned, survive
// reallocation both ways, and go back to malloc when freed.
TEST(H2SessionMemory, LargeBlocksArePageAligned) {
  H2SessionMemory m;
  nghttp2_mem* mem = m.mem();
  void* small = mem->malloc(100, mem->mem_user_data);
  auto* big = static_cast<unsigned char*>(mem->malloc(5000, mem->mem_user_data));
  ASSERT_NE(small, nullptr);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % H2SessionMemory::kPageBytes, 0u);
  for (int i = 0; i < 5000; ++i) {
    big[i] = static_cast<unsigned char>(i);
  }
  // Within its pages, then past them, then back under a page: the bytes stay.
  for (size_t size : {8000, 30000, 200}) {
    big = static_cast<unsigned char*>(mem->realloc(big, size, mem->mem_user_data));
    ASSERT_NE(big, nullptr);
    for (size_t i = 0; i < std::min<size_t>(size, 5000); ++i) {
      ASSERT_EQ(big[i], static_cast<unsigned char>(i)) << size;
    }
  }
  // A small block grown past a page, and a large one made by realloc(nullptr).
  auto* grown = static_cast<char*>(mem->realloc(small, 10000, mem->mem_user_data));
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(grown) % H2SessionMemory::kPageBytes, 0u);
  void* fresh = mem->realloc(nullptr, 4096, mem->mem_user_data);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(fresh) % H2SessionMemory::kPageBytes, 0u);
  auto* zeroed = static_cast<unsigned char*>(mem->calloc(2, 4096, mem->mem_user_data));
  for (int i = 0; i < 8192; ++i) {
    ASSERT_EQ(zeroed[i], 0) << i;
  }
  EXPECT_EQ(mem->calloc(SIZE_MAX / 2, 4, mem->mem_user_data), nullptr);
  for (void* p :
       {static_cast<void*>(big), static_cast<void*>(grown), fresh, static_cast<void*>(zeroed)}) {
    mem->free(p, mem->mem_user_data);
  }
  mem->free(nullptr, mem->mem_user_data);
}

// An idle session gives back its frame buffer's pages (whatever they hold) and the all-zero
// pages of its other large blocks; a page with data in it stays.
TEST(H2SessionMemory, IdlePagesGoBack) {
  H2SessionMemory m;
  nghttp2_mem* mem = m.mem();
  const size_t page = H2SessionMemory::kPageBytes;
  auto* frames = static_cast<char*>(mem->malloc(16394, mem->mem_user_data));
  auto* table = static_cast<char*>(mem->calloc(1, 2 * page, mem->mem_user_data));
  m.NoteSessionMade();
  EXPECT_EQ(m.frame_blocks(), 1u);
  auto* later = static_cast<char*>(mem->malloc(20000, mem->mem_user_data));  // not the frames
  std::memset(frames, 'f', 16394);
  std::memset(later, 'l', 20000);
  table[page + 7] = 1;  // its second page holds data; its first is all zero (but resident)
  EXPECT_EQ(ResidentPages(frames, 16394), 5u);
  EXPECT_EQ(ResidentPages(table, 2 * page), 2u);
  EXPECT_EQ(m.ReleaseIdlePages(), 5 * page + page);
  EXPECT_EQ(ResidentPages(frames, 16394), 0u);
  EXPECT_EQ(ResidentPages(table, 2 * page), 1u);
  EXPECT_EQ(ResidentPages(later, 20000), 5u);
  EXPECT_EQ(table[page + 7], 1);
  EXPECT_EQ(table[0], 0);
  EXPECT_EQ(later[19999], 'l');
  frames[0] = 'x';  // usable again: a fresh zero page
  EXPECT_EQ(frames[1], 0);
  for (void* p : {frames, table, later}) {
    mem->free(p, mem->mem_user_data);
  }
  // Two blocks that large at creation: neither is taken for the frame buffer.
  H2SessionMemory two;
  nghttp2_mem* m2 = two.mem();
  void* a = m2->malloc(16394, m2->mem_user_data);
  void* b = m2->malloc(32768, m2->mem_user_data);
  two.NoteSessionMade();
  EXPECT_EQ(two.frame_blocks(), 0u);
  std::memset(a, 'a', 16394);
  std::memset(b, 'b', 32768);
  EXPECT_EQ(two.ReleaseIdlePages(), 0u);  // no frame buffer, no zero page
  EXPECT_EQ(static_cast<char*>(a)[100], 'a');
  EXPECT_EQ(static_cast<char*>(b)[32767], 'b');
  m2->free(a, m2->mem_user_data);
  m2->free(b, m2->mem_user_data);
}

// A real nghttp2 server session on this allocator answers a request, goes idle and gives its
// pages back, then answers the next request on the same connection (its HPACK state and stream
// table intact): the frame buffer's bytes were dead, as the allocator assumes.
TEST(H2SessionMemory, ServerSessionWorksAfterGivingPagesBack) {
  H2SessionMemory m;
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  struct Seen {
    std::vector<int32_t> requests;
    std::vector<std::string> statuses;
    std::vector<std::string> long_values;  // x-long as each side decoded it
  } seen;
  nghttp2_session_callbacks_set_on_frame_recv_callback(
      cbs, [](nghttp2_session*, const nghttp2_frame* f, void* user) {
        if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
          static_cast<Seen*>(user)->requests.push_back(f->hd.stream_id);
        }
        return 0;
      });
  nghttp2_session_callbacks_set_on_header_callback(
      cbs, [](nghttp2_session*, const nghttp2_frame*, const uint8_t* name, size_t namelen,
              const uint8_t* value, size_t valuelen, uint8_t, void* user) {
        const std::string_view n(reinterpret_cast<const char*>(name), namelen);
        const std::string v(reinterpret_cast<const char*>(value), valuelen);
        if (n == ":status") {
          static_cast<Seen*>(user)->statuses.push_back(v);
        } else if (n == "x-long") {
          static_cast<Seen*>(user)->long_values.push_back(v);
        }
        return 0;
      });
  nghttp2_session* server = nullptr;
  nghttp2_session* client = nullptr;
  ASSERT_EQ(nghttp2_session_server_new3(&server, cbs, &seen, nullptr, m.mem()), 0);
  m.NoteSessionMade();
  // The allocator's assumption about this nghttp2: one block that large at creation.
  ASSERT_EQ(m.frame_blocks(), 1u);
  ASSERT_EQ(nghttp2_session_client_new(&client, cbs, &seen), 0);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_submit_settings(server, NGHTTP2_FLAG_NONE, nullptr, 0);
  nghttp2_submit_settings(client, NGHTTP2_FLAG_NONE, nullptr, 0);
  // Everything one side has to send, to the other.
  auto pump = [](nghttp2_session* from, nghttp2_session* to) {
    for (;;) {
      const uint8_t* bytes = nullptr;
      const ssize_t n = nghttp2_session_mem_send(from, &bytes);
      ASSERT_GE(n, 0);
      if (n == 0) {
        return;
      }
      ASSERT_EQ(nghttp2_session_mem_recv(to, bytes, static_cast<size_t>(n)), n);
    }
  };
  // Long fields both ways, entered into both HPACK tables by the first exchange and sent as
  // table references by the second.
  const std::string vs(3000, 'v');
  const std::string ws(3000, 'w');
  auto exchange = [&](const char* path) {
    const nghttp2_nv req[] = {Nv(":method", "GET"), Nv(":scheme", "http"),
                              Nv(":authority", "a.test"), Nv(":path", path), Nv("x-long", vs)};
    const int32_t id =
        nghttp2_submit_request(client, nullptr, req, std::size(req), nullptr, nullptr);
    pump(client, server);
    ASSERT_FALSE(seen.requests.empty());
    ASSERT_EQ(seen.requests.back(), id);
    const nghttp2_nv resp[] = {Nv(":status", "200"), Nv("x-long", ws)};
    ASSERT_EQ(nghttp2_submit_response(server, id, resp, std::size(resp), nullptr), 0);
    pump(server, client);
    pump(client, server);  // acknowledgements
  };
  exchange("/one");
  ASSERT_EQ(seen.statuses, std::vector<std::string>({"200"}));
  ASSERT_EQ(nghttp2_session_want_write(server), 0);
  EXPECT_GE(m.ReleaseIdlePages(), H2SessionMemory::kFrameBufferBytes);
  exchange("/two");
  EXPECT_EQ(seen.statuses, std::vector<std::string>({"200", "200"}));
  EXPECT_EQ(seen.long_values, std::vector<std::string>({vs, ws, vs, ws}));
  nghttp2_session_del(client);
  nghttp2_session_del(server);
}

#if defined(__SANITIZE_ADDRESS__)
// A block waiting in a free list is poisoned: AddressSanitizer reports a write to it.
TEST(H2MemoryDeathTest, UseAfterFreeIsStillCaught) {
  nghttp2_mem* mem = H2Memory();
  auto* p = static_cast<volatile char*>(mem->malloc(100, mem->mem_user_data));
  mem->free(const_cast<char*>(p), mem->mem_user_data);
  EXPECT_DEATH(p[8] = 1, "use-after-poison");
}
#endif

}  // namespace
}  // namespace torii::http
