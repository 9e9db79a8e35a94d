// tests/core/out_queue_test.cc: the per-connection send queue and its block pool
// (core/out_queue.cc). Byte-exact: whatever is appended comes back, in order, through
// FillIov/Consume in arbitrary partial amounts, across block boundaries. Block identity is
// observed through the iovec addresses (the data sits right after a block's header).
#include "core/out_queue.h"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace torii::core {
namespace {

constexpr size_t kBlock = BlockPool::kBlockSize;

// Bytes that differ at every position and across blocks (a mis-ordered copy shows up).
std::string Pattern(size_t n, uint32_t seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 131 + seed * 7 + i / 251) & 0xFF);
  }
  return s;
}

// Everything FillIov exposes now, concatenated.
std::string Exposed(const OutQueue& q, int max_iov = 1024) {
  std::vector<iovec> iov(static_cast<size_t>(max_iov));
  const int n = q.FillIov(iov.data(), max_iov);
  std::string out;
  for (int i = 0; i < n; ++i) {
    EXPECT_GT(iov[static_cast<size_t>(i)].iov_len, 0u) << "FillIov produced an empty iovec";
    out.append(static_cast<const char*>(iov[static_cast<size_t>(i)].iov_base),
               iov[static_cast<size_t>(i)].iov_len);
  }
  return out;
}

// An empty queue holds nothing: size 0, empty(), FillIov fills no iovec.
TEST(OutQueueTest, EmptyQueueHoldsNothing) {
  BlockPool pool;
  OutQueue q(&pool);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_TRUE(q.empty());
  iovec iov[4];
  EXPECT_EQ(q.FillIov(iov, 4), 0);
  q.Append("");  // appending nothing changes nothing
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.FillIov(iov, 4), 0);
  q.Consume(0);
  EXPECT_TRUE(q.empty());
}

// A write that fits a small block gets one (2 KiB, not 16): a head queued on each of
// thousands of connections pins megabytes, not a large block each. What follows it fills the
// small block first, then goes on in a large one, in order.
TEST(OutQueueTest, SmallWritesGetSmallBlocks) {
  BlockPool pool;
  OutQueue q(&pool);
  const std::string head = Pattern(300);
  const std::string body = Pattern(5000, 1);
  q.Append(head);
  iovec iov[4];
  ASSERT_EQ(q.FillIov(iov, 4), 1);
  q.Append(body);
  ASSERT_EQ(q.FillIov(iov, 4), 2);
  const size_t small = BlockPool::kSmallBlockSize - (BlockPool::kNodeSize);
  EXPECT_EQ(iov[0].iov_len, small);  // the small block, full
  EXPECT_EQ(iov[1].iov_len, head.size() + body.size() - small);
  EXPECT_EQ(Exposed(q), head + body);
  q.Consume(q.size());
  // Blocks go back to their own pools and are reused by the next writes of their size.
  q.Append(head);
  EXPECT_EQ(Exposed(q), head);
  q.Append(Pattern(3 * BlockPool::kBlockSize, 2));
  EXPECT_EQ(Exposed(q), head + Pattern(3 * BlockPool::kBlockSize, 2));
}

// With no send in flight (movable), a head alone in a small block moves with a body that would
// spill out of it into one large block: one iovec, the same bytes. Not when the two would not
// fit one large block, nor behind lent memory, nor while a send may hold the small block.
TEST(OutQueueTest, MovableHeadAndBodyLeaveInOnePiece) {
  BlockPool pool;
  const std::string head = Pattern(300);
  const std::string body = Pattern(4096, 1);
  iovec iov[4];
  {
    OutQueue q(&pool);
    q.Append(head, /*movable=*/true);
    q.Append(body, /*movable=*/true);
    ASSERT_EQ(q.FillIov(iov, 4), 1);
    EXPECT_EQ(q.size(), head.size() + body.size());
    EXPECT_EQ(Exposed(q), head + body);
    q.Consume(100);  // a partial send, then more (the large block has room)
    q.Append(body, /*movable=*/true);
    EXPECT_EQ(Exposed(q), (head + body).substr(100) + body);
    EXPECT_EQ(q.FillIov(iov, 4), 1);
  }
  {
    OutQueue q(&pool);
    q.Append(head, /*movable=*/false);
    q.Append(body, /*movable=*/false);
    EXPECT_EQ(q.FillIov(iov, 4), 2);
    EXPECT_EQ(Exposed(q), head + body);
  }
  {
    OutQueue q(&pool);
    const std::string big = Pattern(BlockPool::kBlockSize, 2);
    q.Append(head, /*movable=*/true);
    q.Append(big, /*movable=*/true);  // more than one large block holds with the head
    EXPECT_EQ(Exposed(q), head + big);
    EXPECT_EQ(q.FillIov(iov, 4), 2);  // the small block filled, then a large one
  }
}

// Small appends accumulate in order in one block and come back as a single iovec.
TEST(OutQueueTest, SmallAppendsInOrder) {
  BlockPool pool;
  OutQueue q(&pool);
  q.Append("hello ");
  q.Append("world");
  EXPECT_EQ(q.size(), 11u);
  iovec iov[4];
  ASSERT_EQ(q.FillIov(iov, 4), 1);
  EXPECT_EQ(std::string(static_cast<char*>(iov[0].iov_base), iov[0].iov_len), "hello world");
  q.Consume(6);
  EXPECT_EQ(q.size(), 5u);
  EXPECT_EQ(Exposed(q), "world");
  q.Consume(5);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.FillIov(iov, 4), 0);
}

// One append larger than several blocks is split across blocks and reassembles byte-exactly;
// no block is full beyond its capacity (iovecs never exceed the block size).
TEST(OutQueueTest, AppendAcrossBlockBoundaries) {
  BlockPool pool;
  OutQueue q(&pool);
  const std::string data = Pattern(5 * kBlock + 123);
  q.Append(data);
  EXPECT_EQ(q.size(), data.size());
  std::vector<iovec> iov(64);
  const int n = q.FillIov(iov.data(), 64);
  EXPECT_GE(n, 6);
  for (int i = 0; i < n; ++i) {
    EXPECT_LT(iov[static_cast<size_t>(i)].iov_len, kBlock);
  }
  EXPECT_EQ(Exposed(q), data);
}

// Appends whose sizes straddle the block capacity (one byte short, exact, one over) keep order.
TEST(OutQueueTest, AppendsStraddlingCapacity) {
  BlockPool pool;
  OutQueue q(&pool);
  std::string expected;
  for (size_t size : {kBlock - 17, size_t{1}, size_t{16}, size_t{1}, kBlock, kBlock - 16,
                      kBlock - 15, size_t{3}}) {
    const std::string piece = Pattern(size, static_cast<uint32_t>(expected.size()));
    q.Append(piece);
    expected += piece;
    ASSERT_EQ(q.size(), expected.size());
    ASSERT_EQ(Exposed(q), expected);
  }
}

// FillIov respects `max` (oldest bytes first), and Consume of a partial iovec leaves the rest.
TEST(OutQueueTest, FillIovMaxAndPartialConsume) {
  BlockPool pool;
  OutQueue q(&pool);
  const std::string data = Pattern(4 * kBlock);
  q.Append(data);
  iovec iov[2];
  ASSERT_EQ(q.FillIov(iov, 2), 2);
  const size_t first_two = iov[0].iov_len + iov[1].iov_len;
  EXPECT_EQ(std::string(static_cast<char*>(iov[0].iov_base), iov[0].iov_len),
            data.substr(0, iov[0].iov_len));
  // The kernel took the first iovec and half of the second.
  const size_t took = iov[0].iov_len + iov[1].iov_len / 2;
  q.Consume(took);
  EXPECT_EQ(q.size(), data.size() - took);
  EXPECT_EQ(Exposed(q), data.substr(took));
  ASSERT_EQ(q.FillIov(iov, 1), 1);
  EXPECT_EQ(iov[0].iov_len, first_two - took) << "the rest of the half-sent block comes first";
}

// A send loop that takes random partial amounts (like a socket) reassembles the stream exactly,
// with appends interleaved between sends.
TEST(OutQueueTest, RandomPartialSendsReassembleExactly) {
  std::mt19937 rng(/*seed=*/42);
  BlockPool pool(/*max_cached=*/4);
  OutQueue q(&pool);
  const std::string stream = Pattern(3 * 1024 * 1024 + 77, 5);
  size_t appended = 0;
  std::string received;
  iovec iov[16];
  while (received.size() < stream.size()) {
    if (appended < stream.size() && rng() % 3 != 0) {
      const size_t n = std::min<size_t>(stream.size() - appended, rng() % (3 * kBlock));
      q.Append(std::string_view(stream).substr(appended, n));
      appended += n;
    }
    ASSERT_EQ(q.size(), appended - received.size());
    const int n = q.FillIov(iov, 16);
    if (n == 0) {
      ASSERT_TRUE(q.empty());
      continue;
    }
    size_t avail = 0;
    for (int i = 0; i < n; ++i) {
      avail += iov[i].iov_len;
    }
    size_t take = rng() % 4 == 0 ? avail : rng() % (avail + 1);
    // Copy what the "kernel" took, iovec by iovec.
    size_t left = take;
    for (int i = 0; i < n && left > 0; ++i) {
      const size_t part = std::min(left, iov[i].iov_len);
      received.append(static_cast<const char*>(iov[i].iov_base), part);
      left -= part;
    }
    q.Consume(take);
  }
  EXPECT_EQ(received.size(), stream.size());
  EXPECT_TRUE(received == stream) << "reassembled stream differs";
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.FillIov(iov, 16), 0);
}

// Draining the queue gives its blocks back: the next append (same or another queue) reuses
// a pooled block instead of allocating.
TEST(OutQueueTest, DrainedQueueReturnsBlocksToPool) {
  BlockPool pool;
  OutQueue a(&pool);
  a.Append(Pattern(100));
  iovec iov[1];
  ASSERT_EQ(a.FillIov(iov, 1), 1);
  const char* block_data = static_cast<const char*>(iov[0].iov_base);
  a.Consume(100);
  ASSERT_TRUE(a.empty());
  EXPECT_EQ(a.FillIov(iov, 1), 0);

  OutQueue b(&pool);
  b.Append("x");
  ASSERT_EQ(b.FillIov(iov, 1), 1);
  EXPECT_EQ(iov[0].iov_base, block_data) << "the freed block was not reused";

  // And `a` starts a fresh block of its own when used again.
  a.Append("y");
  ASSERT_EQ(a.FillIov(iov, 1), 1);
  EXPECT_NE(iov[0].iov_base, block_data);
  EXPECT_EQ(std::string(static_cast<char*>(iov[0].iov_base), 1), "y");
}

// Clear() drops queued bytes and returns every block; the queue is usable afterwards.
TEST(OutQueueTest, ClearReturnsBlocks) {
  BlockPool pool;
  std::set<const void*> used;
  {
    OutQueue q(&pool);
    q.Append(Pattern(3 * kBlock));
    iovec iov[8];
    const int n = q.FillIov(iov, 8);
    for (int i = 0; i < n; ++i) {
      used.insert(iov[i].iov_base);
    }
    q.Clear();
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.FillIov(iov, 8), 0);
    q.Append("again");
    EXPECT_EQ(Exposed(q), "again");
  }  // destructor returns the block too
  OutQueue q2(&pool);
  q2.Append(Pattern(3 * kBlock));
  iovec iov[8];
  const int n = q2.FillIov(iov, 8);
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(used.count(iov[i].iov_base)) << "block " << i << " was freshly allocated";
  }
}

// BlockPool hands back the most recently returned block, and caches at most `max_cached`
// (the rest are freed; ASan would flag a double free or a leak).
TEST(BlockPoolTest, ReusesReturnedBlocksUpToCap) {
  BlockPool pool(/*max_cached=*/2);
  char* a = pool.Get();
  char* b = pool.Get();
  char* c = pool.Get();
  ASSERT_NE(a, b);
  ASSERT_NE(b, c);
  a[0] = 'a';
  a[kBlock - 1] = 'z';  // the whole block is writable
  pool.Put(a);
  pool.Put(b);
  pool.Put(c);  // over the cap: freed
  char* x = pool.Get();
  char* y = pool.Get();
  EXPECT_EQ(x, b);
  EXPECT_EQ(y, a);
  pool.Put(x);
  pool.Put(y);
}

// Trim frees the blocks no Get needed since the last Trim: none right after a burst that
// emptied the pool, all of what came back once a whole interval passed without a Get, and
// only the surplus while some are still used.
TEST(BlockPoolTest, TrimFreesWhatAnIntervalDidNotNeed) {
  BlockPool pool(/*max_cached=*/8);
  std::vector<char*> burst;
  for (int i = 0; i < 6; ++i) {
    burst.push_back(pool.Get());
  }
  for (char* b : burst) {
    pool.Put(b);
  }
  EXPECT_EQ(pool.cached_bytes(), 6 * kBlock);
  EXPECT_EQ(pool.Trim(), 0u);  // the pool was empty during this interval
  EXPECT_EQ(pool.Trim(), 6 * kBlock);
  EXPECT_EQ(pool.cached_bytes(), 0u);
  // Steady use of two blocks out of six: four go, two stay.
  burst.clear();
  for (int i = 0; i < 6; ++i) {
    burst.push_back(pool.Get());
  }
  for (char* b : burst) {
    pool.Put(b);
  }
  pool.Trim();
  char* x = pool.Get();
  char* y = pool.Get();
  pool.Put(x);
  pool.Put(y);
  EXPECT_EQ(pool.Trim(), 4 * kBlock);
  EXPECT_EQ(pool.cached_bytes(), 2 * kBlock);
  // Small blocks and nodes are trimmed the same way.
  char* s = pool.GetSmall();
  pool.PutSmall(s);
  EXPECT_EQ(pool.Trim(), 2 * kBlock);  // the two large ones went unused this interval
  EXPECT_EQ(pool.Trim(), BlockPool::kSmallBlockSize);
  EXPECT_EQ(pool.cached_bytes(), 0u);
}

// A queue that reaches zero bytes through Consume holds no block: a thousand fill/drain
// cycles on one queue cycle through the same pooled block.
TEST(OutQueueTest, CyclesReuseOneBlock) {
  BlockPool pool;
  OutQueue q(&pool);
  std::set<const void*> seen;
  iovec iov[2];
  for (int i = 0; i < 1000; ++i) {
    q.Append(Pattern(1000, static_cast<uint32_t>(i)));
    ASSERT_EQ(q.FillIov(iov, 2), 1);
    seen.insert(iov[0].iov_base);
    q.Consume(1000);
    ASSERT_TRUE(q.empty());
  }
  EXPECT_EQ(seen.size(), 1u);
}

// Records the lent buffers handed back, in order.
class RecordingLender : public BufferLender {
 public:
  void Return(uint32_t id) override { returned.push_back(id); }
  std::vector<uint32_t> returned;
};

// Lent bytes are sent in place (the iovec points at the lender's memory), in order with copied
// ones, and each lent buffer is returned exactly once, only when all its bytes were consumed.
TEST(OutQueueTest, LentSegmentsAreSentInPlaceAndReturnedOnce) {
  RecordingLender lender;
  BlockPool pool(256, &lender);
  OutQueue q(&pool);
  const std::string lent1(3000, 'a');
  const std::string lent2(5000, 'b');
  q.Append("HEAD");
  q.AppendLent(lent1, 7);
  q.Append("\r\n");
  q.AppendLent(lent2, 9);
  ASSERT_EQ(q.size(), 4u + 3000 + 2 + 5000);
  iovec iov[8];
  ASSERT_EQ(q.FillIov(iov, 8), 4);
  EXPECT_EQ(iov[1].iov_base, lent1.data());
  EXPECT_EQ(iov[3].iov_base, lent2.data());
  q.Consume(4 + 2999);  // one byte of the first lent segment left
  EXPECT_TRUE(lender.returned.empty());
  q.Consume(1);
  EXPECT_EQ(lender.returned, (std::vector<uint32_t>{7}));
  q.Consume(2 + 100);
  EXPECT_EQ(lender.returned.size(), 1u);
  q.Clear();  // dropped unsent: still returned, once
  EXPECT_EQ(lender.returned, (std::vector<uint32_t>{7, 9}));
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace torii::core
