// balancer/picker.h: choosing a backend of a pool. No I/O, no locks, no HTTP.
//
// A Picker is built from a pool's backend list and is owned by one worker thread (each worker
// has its own instance, so picks never contend). Health reaches Pick() only through the
// `healthy` mask the caller passes (Pingora's ready()); `exclude` holds the backends already
// tried for this request (HAProxy's "server to avoid"), so a retry never lands on the same one.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace torii::balancer {

// A set of backend indexes (0..size-1). Small and copyable; one bit per backend.
class BackendMask {
 public:
  BackendMask() = default;
  explicit BackendMask(uint32_t size, bool all_set = false);

  uint32_t size() const { return size_; }
  bool test(uint32_t i) const;
  void set(uint32_t i, bool value = true);
  uint32_t count() const;
  // Clears the mask and gives it `size` backends, reusing its memory (no allocation when the
  // size does not grow).
  void Reset(uint32_t size);

 private:
  uint32_t size_ = 0;
  std::vector<uint64_t> words_;
};

struct BackendSpec {
  uint32_t weight = 1;  // 1..256
  bool backup = false;  // serves only when no primary is eligible
};

class Picker {
 public:
  virtual ~Picker() = default;
  // Returns a backend index that is set in `healthy` and not set in `exclude`, or nullopt when
  // none is. Never loops: O(backends) at worst. `key_hash` is used by hashing algorithms only.
  // Backups are eligible only when no primary is (healthy and not excluded).
  virtual std::optional<uint32_t> Pick(uint64_t key_hash, const BackendMask& healthy,
                                       const BackendMask& exclude) = 0;
  // Bookkeeping hooks for algorithms that count load (least-connections).
  virtual void OnRequestStart(uint32_t /*backend*/) {}
  virtual void OnRequestEnd(uint32_t /*backend*/) {}
  virtual uint32_t size() const = 0;
};

// Smooth weighted round-robin (nginx's algorithm): a weight-3 backend gets 3 of every 5 picks
// against a weight-2 one, interleaved (a b a b a), not in bursts.
std::unique_ptr<Picker> MakeRoundRobin(std::vector<BackendSpec> backends);

// Name → factory: "round_robin" (the others arrive with issue #4). nullptr for an unknown or
// not yet implemented name.
std::unique_ptr<Picker> MakePicker(std::string_view algorithm, std::vector<BackendSpec> backends);

}  // namespace torii::balancer
