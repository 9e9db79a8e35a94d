// core/out_queue.h: bytes waiting to be sent on one connection.
//
// A FIFO of fixed-size blocks taken from a per-worker BlockPool, so appending copies into
// warm memory instead of allocating, and a connection with nothing queued holds no block.
// The bytes stay where they are until the send that carries them completes (STYLE.md C.3:
// memory the kernel uses belongs to the operation): FillIov() exposes them to sendmsg and
// Consume() drops them only once the kernel reports how much it took.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace torii::core {

class BlockPool {
 public:
  static constexpr size_t kBlockSize = 16 * 1024;
  explicit BlockPool(size_t max_cached = 256) : max_cached_(max_cached) {}
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  char* Get();
  void Put(char* block);

 private:
  std::vector<char*> free_;
  size_t max_cached_;
};

class OutQueue {
 public:
  explicit OutQueue(BlockPool* pool) : pool_(pool) {}
  ~OutQueue() { Clear(); }
  OutQueue(const OutQueue&) = delete;
  OutQueue& operator=(const OutQueue&) = delete;

  void Append(std::string_view bytes);
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Points up to `max` iovecs at the queued bytes, oldest first. Returns how many were filled.
  int FillIov(iovec* iov, int max) const;
  // Drops the first `n` bytes (n <= size()).
  void Consume(size_t n);
  void Clear();

 private:
  // Blocks form an intrusive singly linked list; the header lives at the start of the block,
  // so an empty queue is three words and no allocation.
  struct Block {
    Block* next;
    uint32_t begin;
    uint32_t end;
    char* data() { return reinterpret_cast<char*>(this + 1); }
    const char* data() const { return reinterpret_cast<const char*>(this + 1); }
  };
  static constexpr uint32_t kCapacity = BlockPool::kBlockSize - sizeof(Block);
  BlockPool* pool_;
  Block* head_ = nullptr;
  Block* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace torii::core
