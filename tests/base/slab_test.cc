// tests/base/slab_test.cc: fixed-size blocks outside malloc (base/slab.h).
#include "base/slab.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace torii::base {
namespace {

// Blocks are 16-byte aligned, distinct, writable end to end, carved chunk by chunk, and a
// freed block is the next one handed out.
TEST(SlabTest, CarvesChunksAndReusesFreedBlocks) {
  Slab slab(100);
  EXPECT_EQ(slab.block(), 112u);
  std::set<void*> seen;
  std::vector<void*> blocks;
  const size_t per_chunk = Slab::kChunkBytes / slab.block();
  for (size_t i = 0; i < per_chunk + 3; ++i) {
    void* p = slab.Allocate();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    EXPECT_TRUE(seen.insert(p).second) << "handed out twice";
    std::memset(p, static_cast<int>(i), slab.block());
    blocks.push_back(p);
  }
  EXPECT_EQ(slab.chunks(), 2u);
  for (size_t i = 0; i < blocks.size(); ++i) {
    ASSERT_EQ(*static_cast<unsigned char*>(blocks[i]), static_cast<unsigned char>(i));
  }
  slab.Free(blocks[5]);
  slab.Free(blocks[9]);
  EXPECT_EQ(slab.Allocate(), blocks[9]);
  EXPECT_EQ(slab.Allocate(), blocks[5]);
  EXPECT_EQ(slab.chunks(), 2u);
  slab.Free(nullptr);
  for (void* p : blocks) {
    slab.Free(p);
  }
  // Everything freed is reused before any new chunk.
  for (size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_TRUE(seen.count(slab.Allocate()) == 1);
  }
  EXPECT_EQ(slab.chunks(), 2u);
  EXPECT_EQ(Slab(Slab::kChunkBytes + 1).Allocate(), nullptr);  // larger than a chunk
}

// A block is rounded up to the alignment asked for (at least a pointer's: a free block holds
// the link), and every block handed out keeps it.
TEST(SlabTest, RoundsToTheAlignmentAskedFor) {
  EXPECT_EQ(Slab(152, 8).block(), 152u);
  EXPECT_EQ(Slab(150, 8).block(), 152u);
  EXPECT_EQ(Slab(152).block(), 160u);
  EXPECT_EQ(Slab(3, 1).block(), sizeof(void*));
  EXPECT_EQ(Slab(40, 32).block(), 64u);
  Slab slab(24, 8);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(slab.Allocate()) % 8, 0u);
  }
}

struct Tracked : SlabAllocated<Tracked> {
  explicit Tracked(int v) : value(v) {}
  int value;
  char pad[200];
};

struct Bigger : Tracked {
  Bigger() : Tracked(7) {}
  char more[100];
};

// A class deriving from SlabAllocated takes its objects from its thread's slab (but under
// AddressSanitizer, whose allocator finds use after free); a larger derived class, and a
// block freed by another thread, work as well.
TEST(SlabTest, SlabAllocatedObjectsComeFromTheThreadsSlab) {
  auto a = std::make_unique<Tracked>(1);
  auto b = std::make_unique<Tracked>(2);
  EXPECT_EQ(a->value + b->value, 3);
#ifndef TORII_SLAB_ASAN
  EXPECT_GE(Tracked::ThreadSlab().chunks(), 1u);
  void* freed = b.get();
  b.reset();
  auto c = std::make_unique<Tracked>(3);
  EXPECT_EQ(static_cast<void*>(c.get()), freed);  // the block just freed
#endif
  auto d = std::make_unique<Bigger>();  // the global operator new
  EXPECT_EQ(d->value, 7);
  d.reset();
  std::thread([p = a.release()] { delete p; }).join();  // freed on another thread
}

}  // namespace
}  // namespace torii::base
