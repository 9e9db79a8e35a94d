// core/buf_ring.h: the worker's provided-buffer ring for multishot receives.
//
// With a buffer ring the kernel picks a buffer only when data arrives, so an idle connection
// holds no receive buffer. liburing 2.3 has no io_uring_setup_buf_ring, so the
// page-aligned ring is mapped here, initialised and registered by hand.
//
// Ownership: a CQE with IORING_CQE_F_BUFFER lends buffer `bid` to the handler for the
// duration of one callback; the worker gives it back with Recycle() right after. Buffers are
// recycled in batches: Recycle() writes the ring entry, Publish() makes them visible with one
// release store per loop turn.
//
// Memory: a buffer's pages become resident the first time the kernel fills it, and the kernel
// takes the buffers in ring order, so after a busy spell every buffer has at least its first
// page resident (a small request touches one page of 16 KiB). Release() gives the pages of
// every buffer nobody holds back to the system; the worker calls it once traffic is quiet.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/out_queue.h"
#include "core/result.h"

namespace torii::core {

// A buffer is back in the ring only when nobody holds it: the worker holds it for the
// duration of the handler's OnRecv, and an OutQueue holds it while it sends from it (Lend).
class BufRing final : public BufferLender {
 public:
  BufRing() = default;
  ~BufRing() override;
  BufRing(const BufRing&) = delete;
  BufRing& operator=(const BufRing&) = delete;

  // `count` must be a power of two (1..32768). Registers the ring as buffer group `group_id`.
  Result<void> Init(io_uring* ring, uint16_t group_id, uint32_t count, uint32_t buffer_size);

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_size() const { return buffer_size_; }
  std::span<const char> Data(uint16_t bid, uint32_t len) const {
    return {base_ + static_cast<size_t>(bid) * buffer_size_, len};
  }
  // Hands buffer `bid` back to the kernel (visible after the next Publish()).
  void Recycle(uint16_t bid);
  // Reference counting for buffers that outlive their CQE.
  void Hold(uint16_t bid) { ++refs_[bid]; }
  void Drop(uint16_t bid) {
    if (--refs_[bid] == 0) {
      Recycle(bid);
    }
  }
  // Lends `bid` to an OutQueue (zero-copy send) unless half the ring is already lent out:
  // slow readers must never starve every connection's receives. Returns false to say "copy".
  bool Lend(uint16_t bid) {
    if (lent_ >= count_ / 2) {
      return false;
    }
    ++lent_;
    Hold(bid);
    return true;
  }
  void Return(uint32_t bid) override {
    --lent_;
    Drop(static_cast<uint16_t>(bid));
  }
  uint32_t lent() const { return lent_; }
  void Publish();
  // Buffers handed back to the kernel since Init (each fill the kernel made, once used).
  uint64_t recycled() const { return recycled_; }
  // Gives back the pages of every buffer with no holder (MADV_DONTNEED: the next fill maps
  // fresh zeroed pages). Safe only while
  // the kernel cannot be filling a buffer whose completion the worker has not seen: with
  // IORING_SETUP_DEFER_TASKRUN on a kernel that never issues a multishot receive from io-wq
  // (6.8: fills happen inside the worker's own io_uring_enter) and the completion queue
  // drained, as Worker::SetupRing and Worker::TrimRecvRing ensure.
  void Release();
  // The buffers' bytes now resident in memory (mincore; for tests and diagnostics).
  size_t resident_bytes() const;
  // Unregisters and unmaps (the destructor does this too); call before tearing the ring down.
  void Reset();

 private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  size_t ring_bytes_ = 0;
  char* base_ = nullptr;
  size_t base_bytes_ = 0;
  uint32_t count_ = 0;
  uint32_t buffer_size_ = 0;
  uint16_t group_id_ = 0;
  int pending_ = 0;
  uint32_t lent_ = 0;
  uint64_t recycled_ = 0;
  std::vector<uint16_t> refs_;
  bool registered_ = false;
};

}  // namespace torii::core
