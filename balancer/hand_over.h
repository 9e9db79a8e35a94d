// balancer/hand_over.h: the link from a pool's shared counters (load.h, slots.h) to those of
// the backend list that replaced it.
//
// An address change builds a new list, and new counters for it; requests still in flight under
// the old list end on the old counters. Successor makes those ends (and any new start under
// the old list, a retry) land on the new counters for every address that stays, so each
// address has one count whatever list a request began under. Set once, on the thread that
// builds the new list, before the new counters are in use; read lock-free on every count
// change (one acquire load, null until an address change).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace torii::balancer {

// An index with no counterpart in the next list (the address went).
inline constexpr uint32_t kGone = ~uint32_t{0};

template <class Counters>
class Successor {
 public:
  Successor() = default;
  Successor(const Successor&) = delete;
  Successor& operator=(const Successor&) = delete;
  ~Successor() { delete link_.load(std::memory_order_relaxed); }

  // The next counters and `*i`'s index there (written into *i), or nullptr when there is no
  // successor or backend *i went: the caller counts on its own then.
  Counters* Find(uint32_t* i) const {
    const Link* link = link_.load(std::memory_order_acquire);
    if (link == nullptr || *i >= link->map.size() || link->map[*i] == kGone) {
      return nullptr;
    }
    *i = link->map[*i];
    return link->next.get();
  }

  bool set() const { return link_.load(std::memory_order_acquire) != nullptr; }

  // Once: later calls are ignored.
  void Set(std::shared_ptr<Counters> next, std::vector<uint32_t> map) {
    auto* link = new Link{std::move(next), std::move(map)};
    Link* expected = nullptr;
    if (!link_.compare_exchange_strong(expected, link, std::memory_order_acq_rel)) {
      delete link;
    }
  }

 private:
  struct Link {
    std::shared_ptr<Counters> next;
    std::vector<uint32_t> map;  // old index → new index, or kGone
  };
  std::atomic<Link*> link_{nullptr};
};

}  // namespace torii::balancer
