// app/ticket_share.h: TLS session-ticket keys shared by a fleet through Redis (a listener's
// `session_ticket_keys = "redis"`), so that a ticket one torii issued resumes on every other.
//
// Wall-clock time is cut into slots of the listener's ticket_rotation. Slot N's key lives in
// Redis at torii:tls-ticket:LISTENER:N: whichever instance asks first makes it (SET NX inside
// one Lua script, so every instance reads the same bytes) and it expires three slots later.
// Each instance encrypts with the current slot's key and decrypts with the previous and the
// next slot's too: a ticket resumes anywhere in the fleet for at least one rotation, and
// instances whose clocks are a little apart agree across a boundary. Until Redis first
// answers, and whenever it is down, a listener keeps the keys it has (at first a random key of
// its own: resumption then works on this instance only); failures are logged at most once a
// second and retried within two seconds (a quarter of a second while not connected).
//
// Runs on worker 0: at start, a little after each slot's boundary and every 30 s. Reads the
// listeners' key sets from the Reloader's list on each run (a reload replaces it on worker 0)
// and [redis] from worker 0's active config.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "app/reloader.h"
#include "base/log_limit.h"
#include "core/worker.h"
#include "http/proxy_context.h"
#include "redis/client.h"
#include "tls/ticket_keys.h"

namespace torii::app {

class TicketKeyShare {
 public:
  TicketKeyShare(http::ProxyContext& ctx, std::shared_ptr<Reloader::TicketKeyList> keys);
  TicketKeyShare(const TicketKeyShare&) = delete;
  TicketKeyShare& operator=(const TicketKeyShare&) = delete;
  // After worker 0's loop has returned, while its ring exists.
  ~TicketKeyShare();

  // On worker 0's thread: asks Redis now, then on its schedule. Nothing to do (no listener
  // shares its keys) costs nothing: no connection is made.
  void Start();

  // The slot `unix_ms` falls in, and the milliseconds from `unix_ms` to the next one.
  static uint64_t SlotOf(uint64_t unix_ms, uint64_t slot_s) { return unix_ms / 1000 / slot_s; }
  static uint64_t UntilNextSlotMs(uint64_t unix_ms, uint64_t slot_s) {
    return (SlotOf(unix_ms, slot_s) + 1) * slot_s * 1000 - unix_ms;
  }
  // The Redis key of `name`'s key for `slot`.
  static std::string RedisKey(const std::string& name, uint64_t slot);
  // The script's answer (the previous, current and next slot's keys, 80 bytes each) as the set
  // to install: the current key first. False when the reply is anything else.
  static bool KeysFromReply(const redis::Reply& reply, tls::TicketKey out[3]);

 private:
  void Run();
  void Ask(const std::shared_ptr<tls::TicketKeys>& keys, uint64_t unix_ms);
  void Failed(const std::string& name, const std::string& why);
  // Runs again within `delay_ms` (an earlier run already armed stays).
  void ArmWithin(uint64_t delay_ms);
  redis::Client* client();

  http::ProxyContext& ctx_;
  std::shared_ptr<Reloader::TicketKeyList> keys_;
  std::unique_ptr<redis::Client> client_;
  std::string client_for_;  // the [redis] address client_ talks to
  redis::Script script_;
  core::Worker::TaskId task_ = 0;
  bool task_created_ = false;
  uint64_t armed_at_ms_ = 0;  // worker now_ms() of the next run (0: none armed)
  base::LogLimit log_;
  std::vector<std::string> installed_;  // names whose fleet keys were installed (logged once)
};

}  // namespace torii::app
