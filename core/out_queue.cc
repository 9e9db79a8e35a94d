// core/out_queue.cc: see out_queue.h.
#include "core/out_queue.h"

#include <algorithm>
#include <cstring>

namespace torii::core {

BlockPool::FreeList::~FreeList() {
  for (char* p : free_) {
    delete[] p;
  }
}

char* BlockPool::FreeList::Get() {
  if (free_.empty()) {
    low_ = 0;
    return new char[size_];
  }
  char* p = free_.back();
  free_.pop_back();
  low_ = std::min(low_, free_.size());
  return p;
}

size_t BlockPool::FreeList::Trim() {
  const size_t surplus = std::min(low_, free_.size());
  for (size_t i = 0; i < surplus; ++i) {
    delete[] free_[i];
  }
  free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(surplus));
  if (free_.capacity() > 2 * free_.size() + 64) {
    free_.shrink_to_fit();  // the list itself: a burst's length
  }
  low_ = free_.size();
  return surplus * size_;
}

void BlockPool::FreeList::Put(char* piece) {
  if (free_.size() < max_) {
    free_.push_back(piece);
  } else {
    delete[] piece;
  }
}

void OutQueue::Append(std::string_view bytes, bool movable) {
  if (movable && head_ != nullptr && head_ == tail_ && head_->lent_id < 0 &&
      head_->capacity == kSmallCapacity && bytes.size() > kSmallCapacity - head_->end &&
      bytes.size() <= kCapacity - (head_->end - head_->begin)) {
    Enlarge();
  }
  while (!bytes.empty()) {
    if (tail_ == nullptr || tail_->lent_id >= 0 || tail_->end == tail_->capacity) {
      Block* b = NewOwned(bytes.size() <= kSmallCapacity);
      if (tail_ == nullptr) {
        head_ = b;
      } else {
        tail_->next = b;
      }
      tail_ = b;
    }
    const size_t n = std::min<size_t>(bytes.size(), tail_->capacity - tail_->end);
    std::memcpy(tail_->data() + tail_->end, bytes.data(), n);
    tail_->end += static_cast<uint32_t>(n);
    size_ += n;
    bytes.remove_prefix(n);
  }
}

OutQueue::Block* OutQueue::NewOwned(bool small) {
  Block* b = reinterpret_cast<Block*>(small ? pool_->GetSmall() : pool_->Get());
  b->next = nullptr;
  b->base = b->data();
  b->begin = 0;
  b->end = 0;
  b->lent_id = -1;
  b->capacity = small ? kSmallCapacity : kCapacity;
  return b;
}

void OutQueue::Enlarge() {
  Block* small = head_;
  Block* b = NewOwned(/*small=*/false);
  b->end = small->end - small->begin;
  std::memcpy(b->data(), small->data() + small->begin, b->end);
  head_ = tail_ = b;
  Retire(small);
}

void OutQueue::AppendLent(std::string_view bytes, uint32_t id) {
  Block* b = reinterpret_cast<Block*>(pool_->GetNode());
  b->next = nullptr;
  b->base = bytes.data();
  b->begin = 0;
  b->end = static_cast<uint32_t>(bytes.size());
  b->lent_id = static_cast<int32_t>(id);
  b->capacity = 0;
  if (tail_ == nullptr) {
    head_ = b;
  } else {
    tail_->next = b;
  }
  tail_ = b;
  size_ += bytes.size();
}

int OutQueue::FillIov(iovec* iov, int max) const {
  int n = 0;
  for (Block* b = head_; b != nullptr && n < max; b = b->next) {
    if (b->end > b->begin) {
      iov[n].iov_base = const_cast<char*>(b->base + b->begin);
      iov[n].iov_len = b->end - b->begin;
      ++n;
    }
  }
  return n;
}

void OutQueue::Retire(Block* b) {
  if (b->lent_id >= 0) {
    const auto id = static_cast<uint32_t>(b->lent_id);
    pool_->PutNode(reinterpret_cast<char*>(b));
    if (BufferLender* lender = pool_->lender()) {
      lender->Return(id);
    }
  } else if (b->capacity == kSmallCapacity) {
    pool_->PutSmall(reinterpret_cast<char*>(b));
  } else {
    pool_->Put(reinterpret_cast<char*>(b));
  }
}

void OutQueue::Consume(size_t n) {
  size_ -= n;
  while (n > 0 && head_ != nullptr) {
    const size_t take = std::min<size_t>(n, head_->end - head_->begin);
    head_->begin += static_cast<uint32_t>(take);
    n -= take;
    if (head_->begin == head_->end) {
      Block* done = head_;
      head_ = done->next;
      if (head_ == nullptr) {
        tail_ = nullptr;
      }
      Retire(done);
    }
  }
}

void OutQueue::Clear() {
  while (head_ != nullptr) {
    Block* b = head_;
    head_ = b->next;
    Retire(b);
  }
  tail_ = nullptr;
  size_ = 0;
}

}  // namespace torii::core
