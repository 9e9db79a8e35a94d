// core/buf_ring.cc: see buf_ring.h.
#include "core/buf_ring.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace torii::core {

Result<void> BufRing::Init(io_uring* ring, uint16_t group_id, uint32_t count,
                           uint32_t buffer_size) {
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0) {
    return Fail(Errc::kIo, Side::kInternal, EINVAL);
  }
  ring_ = ring;
  group_id_ = group_id;
  count_ = count;
  buffer_size_ = buffer_size;
  refs_.assign(count, 0);
  ring_bytes_ = sizeof(io_uring_buf) * count;
  void* mem = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                   0);
  if (mem == MAP_FAILED) {
    return Fail(Errc::kNoMemory, Side::kInternal, errno);
  }
  br_ = static_cast<io_uring_buf_ring*>(mem);
  // The buffers themselves: one mapping, so untouched buffers cost no RSS.
  base_bytes_ = static_cast<size_t>(count) * buffer_size;
  mem = mmap(nullptr, base_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    return Fail(Errc::kNoMemory, Side::kInternal, errno);
  }
  base_ = static_cast<char*>(mem);

  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  const int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc < 0) {
    return Fail(Errc::kIo, Side::kInternal, -rc);
  }
  registered_ = true;
  const int mask = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(br_, base_ + static_cast<size_t>(i) * buffer_size, buffer_size,
                          static_cast<uint16_t>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(count));
  return {};
}

BufRing::~BufRing() { Reset(); }

void BufRing::Reset() {
  if (registered_ && ring_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_id_);
  }
  registered_ = false;
  if (br_ != nullptr) {
    munmap(br_, ring_bytes_);
    br_ = nullptr;
  }
  if (base_ != nullptr) {
    munmap(base_, base_bytes_);
    base_ = nullptr;
  }
}

void BufRing::Recycle(uint16_t bid) {
  io_uring_buf_ring_add(br_, base_ + static_cast<size_t>(bid) * buffer_size_, buffer_size_, bid,
                        io_uring_buf_ring_mask(count_), pending_);
  ++pending_;
  ++recycled_;
}

void BufRing::Release() {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  if (base_ == nullptr) {
    return;
  }
  uint32_t run = 0;  // the first buffer of the current run of unheld ones
  for (uint32_t i = 0; i <= count_; ++i) {
    if (i < count_ && refs_[i] == 0) {
      continue;
    }
    // The whole pages inside the run (a page shared with a held buffer stays).
    const uintptr_t from =
        (reinterpret_cast<uintptr_t>(base_) + size_t{run} * buffer_size_ + page - 1) & ~(page - 1);
    // A run that ends the ring ends at the mapping's end (mmap maps whole pages).
    const uintptr_t to =
        i == count_ ? (reinterpret_cast<uintptr_t>(base_) + base_bytes_ + page - 1) & ~(page - 1)
                    : (reinterpret_cast<uintptr_t>(base_) + size_t{i} * buffer_size_) & ~(page - 1);
    if (i > run && to > from) {
      madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
    }
    run = i + 1;
  }
}

size_t BufRing::resident_bytes() const {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in((base_bytes_ + page - 1) / page);
  if (base_ == nullptr || mincore(base_, base_bytes_, in.data()) != 0) {
    return 0;
  }
  size_t pages = 0;
  for (unsigned char v : in) {
    pages += v & 1;
  }
  return pages * page;
}

void BufRing::Publish() {
  if (pending_ > 0) {
    io_uring_buf_ring_advance(br_, pending_);
    pending_ = 0;
  }
}

}  // namespace torii::core
