// tests/http/h2_mem_test.cc: the allocator of torii's HPACK decoders (http/h2_mem.h).
#include "http/h2_mem.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

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
