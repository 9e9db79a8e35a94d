// core/out_queue.h: bytes waiting to be sent on one connection.
//
// A FIFO of blocks taken from a per-worker BlockPool, so appending copies into warm memory
// instead of allocating, and a connection with nothing queued holds no block. Blocks come in
// two sizes: a write that fits a small block (a request or response head, a short body: most
// of them) gets a 2 KiB one, a larger one 16 KiB blocks. Sized to the write, a burst of
// thousands of connections each queueing a head pins megabytes, not a 16 KiB block each
// (8,000 upstream connects in flight held 105 MB of 16 KiB blocks before).
// The bytes stay where they are until the send that carries them completes (memory the
// kernel uses belongs to the operation): FillIov() exposes them to sendmsg and
// Consume() drops them only once the kernel reports how much it took.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace torii::core {

// Memory lent to an OutQueue instead of copied into it (a provided receive buffer, a stored
// response's body); the queue gives it back once the bytes were sent or dropped.
class BufferLender {
 public:
  virtual ~BufferLender() = default;
  virtual void Return(uint32_t id) = 0;
};

class BlockPool {
 public:
  static constexpr size_t kBlockSize = 16 * 1024;
  static constexpr size_t kSmallBlockSize = 2 * 1024;
  static constexpr size_t kNodeSize = 32;  // a segment that points at lent memory
  // Keeps up to `max_cached` large blocks, as many small ones as fit in the same memory, and
  // 16 nodes per large block; more are freed as they come back. `lender` is told when a queue
  // drawing on this pool is done with memory lent to it (nullptr: nobody lends).
  explicit BlockPool(size_t max_cached = 256, BufferLender* lender = nullptr)
      : lender_(lender),
        large_(kBlockSize, max_cached),
        small_(kSmallBlockSize, max_cached * (kBlockSize / kSmallBlockSize)),
        nodes_(kNodeSize, max_cached * 16) {}
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  char* Get() { return large_.Get(); }
  void Put(char* block) { large_.Put(block); }
  char* GetSmall() { return small_.Get(); }
  void PutSmall(char* block) { small_.Put(block); }
  char* GetNode() { return nodes_.Get(); }
  void PutNode(char* node) { nodes_.Put(node); }
  BufferLender* lender() const { return lender_; }

  // Frees the pieces no Get needed since the last Trim (a burst's, once it is over); returns
  // the bytes freed. Called about once a second.
  size_t Trim() { return large_.Trim() + small_.Trim() + nodes_.Trim(); }
  size_t cached_bytes() const { return large_.bytes() + small_.bytes() + nodes_.bytes(); }

 private:
  // Pieces of one size: reused last-in first-out, at most `max` kept.
  class FreeList {
   public:
    FreeList(size_t size, size_t max) : size_(size), max_(max) {}
    ~FreeList();
    FreeList(const FreeList&) = delete;
    FreeList& operator=(const FreeList&) = delete;
    char* Get();
    void Put(char* piece);
    size_t Trim();
    size_t bytes() const { return free_.size() * size_; }

   private:
    std::vector<char*> free_;  // the coldest first
    size_t size_;
    size_t max_;
    size_t low_ = 0;  // the fewest pieces free_ held since the last Trim
  };
  BufferLender* lender_;
  FreeList large_;
  FreeList small_;
  FreeList nodes_;
};

class OutQueue {
 public:
  // Blocks come from `pool`, and lent memory goes back to its lender (one pointer per queue:
  // every connection has one).
  explicit OutQueue(BlockPool* pool) : pool_(pool) {}
  ~OutQueue() { Clear(); }
  OutQueue(const OutQueue&) = delete;
  OutQueue& operator=(const OutQueue&) = delete;

  // `movable`: no send is in flight (nothing queued is the kernel's), so the queued bytes may
  // move: a short head in a small block that `bytes` would spill out of moves with them into
  // one large block, and the kernel gets one piece instead of two (a plain send).
  void Append(std::string_view bytes, bool movable = false);
  // Queues `bytes` without copying them: they belong to buffer `id` of the pool's lender,
  // which must keep them unchanged until the queue calls lender->Return(id) (once per call).
  void AppendLent(std::string_view bytes, uint32_t id);
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Points up to `max` iovecs at the queued bytes, oldest first. Returns how many were filled.
  int FillIov(iovec* iov, int max) const;
  // Drops the first `n` bytes (n <= size()).
  void Consume(size_t n);
  void Clear();

 private:
  // Segments form an intrusive singly linked list, so an empty queue is a few words and no
  // allocation. An owned segment is a pool block with its bytes right after the header; a
  // lent one is a small node pointing at the lender's memory.
  struct Block {
    Block* next;
    const char* base;  // bytes [base + begin, base + end)
    uint32_t begin;
    uint32_t end;
    int32_t lent_id;    // -1: owned block; else the lender's id (below 2^31)
    uint32_t capacity;  // owned: bytes after the header (a small or a large block)
    char* data() { return reinterpret_cast<char*>(this + 1); }
  };
  static_assert(sizeof(Block) <= BlockPool::kNodeSize);
  static constexpr uint32_t kCapacity = BlockPool::kBlockSize - sizeof(Block);
  static constexpr uint32_t kSmallCapacity = BlockPool::kSmallBlockSize - sizeof(Block);
  void Retire(Block* b);
  // An empty owned block from the pool, small or large, not yet linked.
  Block* NewOwned(bool small);
  // The only block, a small one, becomes a large one holding the same bytes.
  void Enlarge();
  BlockPool* pool_;
  Block* head_ = nullptr;
  Block* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace torii::core
