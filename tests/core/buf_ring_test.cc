// tests/core/buf_ring_test.cc: the provided-buffer ring's memory (core/buf_ring.cc). Release()
// gives back the pages of buffers nobody holds and keeps every byte of the held ones, whatever
// the buffer size (a page shared by a held and an unheld buffer stays).
#include "core/buf_ring.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace torii::core {
namespace {

class BufRingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(io_uring_queue_init(8, &ring_, 0), 0); }
  void TearDown() override {
    bufs_.Reset();
    io_uring_queue_exit(&ring_);
  }
  // What a fill would leave in buffer `bid`: every byte of it written.
  void Fill(uint16_t bid, uint32_t size) {
    std::memset(const_cast<char*>(bufs_.Data(bid, size).data()), 'a' + bid % 26, size);
  }
  bool Intact(uint16_t bid, uint32_t size) const {
    const std::span<const char> d = bufs_.Data(bid, size);
    return std::string(d.data(), d.size()) == std::string(size, static_cast<char>('a' + bid % 26));
  }

  io_uring ring_{};
  BufRing bufs_;
};

TEST_F(BufRingTest, ReleaseKeepsHeldBuffersWhateverTheirSize) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // 16 KiB (whole pages) and 6,000 bytes (buffers that share pages).
  for (const uint32_t size : {16u * 1024, 6000u}) {
    SCOPED_TRACE(size);
    ASSERT_TRUE(bufs_.Init(&ring_, 7, 16, size).has_value());
    EXPECT_EQ(bufs_.resident_bytes(), 0u);
    for (uint16_t bid = 0; bid < 16; ++bid) {
      Fill(bid, size);
    }
    EXPECT_GE(bufs_.resident_bytes(), size_t{16} * size);
    // Held: the first, two in the middle side by side, and the last (lent to a send counts too).
    bufs_.Hold(0);
    bufs_.Hold(7);
    bufs_.Hold(8);
    ASSERT_TRUE(bufs_.Lend(15));
    bufs_.Release();
    for (uint16_t bid : {0, 7, 8, 15}) {
      EXPECT_TRUE(Intact(bid, size)) << "held buffer " << bid << " lost bytes";
    }
    // What stays resident: the held buffers' pages and at most a shared page at each side of
    // each of the three held runs.
    const size_t held_pages = (size_t{4} * size + page - 1) / page + 3 * 2;
    EXPECT_LE(bufs_.resident_bytes(), held_pages * page);
    // Given back: read again as zeros (a fill would overwrite them).
    const std::span<const char> freed = bufs_.Data(3, size);
    EXPECT_EQ(std::string(freed.data() + page, 16), std::string(16, '\0'));
    bufs_.Drop(0);
    bufs_.Drop(7);
    bufs_.Drop(8);
    bufs_.Return(15);
    bufs_.Publish();
    bufs_.Release();
    EXPECT_EQ(bufs_.resident_bytes(), 0u);
    bufs_.Reset();
  }
  bufs_.Release();  // after Reset: nothing to give back, no fault
}

}  // namespace
}  // namespace torii::core
