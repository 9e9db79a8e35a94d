// tls/early_data.h: the replay defence for TLS 1.3 early data (0-RTT): each session ticket
// carries early data once (RFC 8446 §8.1, single-use tickets, kept per listener and process).
//
// Early data is sent before the handshake proves anything, so whoever captured a client's
// first flight can send it again. Two checks bound that:
//  - freshness (§8.3): OpenSSL refuses early data when the ticket age the client reports
//    disagrees with the server's own by more than its 10 s allowance, so a captured flight
//    replays at best within about 10 s of the moment it was first sent;
//  - this guard: it remembers every ticket whose early data was accepted for longer than that
//    (between kWindowS and 2 * kWindowS: two generations, the older dropped every kWindowS),
//    so within the window a ticket's early data is accepted once. A repeat gets the handshake
//    without early data (1-RTT, the client sends again): never an error.
// A ticket is known by a digest of its resumption secret, which OpenSSL derives per ticket.
//
// Memory: at most kMaxEntries tickets per generation (about 40 bytes each); a listener that
// sees more early-data handshakes than that within kWindowS refuses early data until the
// next swap (again 1-RTT, not an error). Shared by every worker (a mutex: one lock per
// handshake that offers early data, next to tens of microseconds of public-key work), kept
// across reloads. Several processes sharing a ticket key file each keep their own record:
// a flight replayed to another of them within the window is accepted there once more.
//
// Leaves out: what may be done with early data (http/: safe methods only, Early-Data: 1 to
// the backend, 425 retried after the handshake).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_set>

struct ssl_st;

namespace torii::tls {

class EarlyDataGuard {
 public:
  static constexpr uint64_t kWindowS = 15;  // > OpenSSL's 10 s ticket-age allowance
  static constexpr size_t kMaxEntries = 1 << 20;
  using Id = std::array<uint8_t, 16>;

  // True the first time `id` is offered within the window (it is spent), false for a repeat
  // or when the record is full. `now_s`: any clock in seconds that does not go back.
  bool FirstUse(const Id& id, uint64_t now_s);
  // The id of the ticket `ssl` resumed (false when it resumed none).
  static bool TicketId(ssl_st* ssl, Id* id);

  // Early data refused because its ticket had already carried some.
  uint64_t replays() const { return replays_.load(std::memory_order_relaxed); }
  size_t entries();

 private:
  struct IdHash {
    size_t operator()(const Id& id) const;
  };
  std::mutex mu_;
  std::unordered_set<Id, IdHash> current_;
  std::unordered_set<Id, IdHash> previous_;
  uint64_t current_since_s_ = 0;
  std::atomic<uint64_t> replays_{0};
};

}  // namespace torii::tls
