// app/ticket_share.cc: see ticket_share.h.
#include "app/ticket_share.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <utility>

namespace torii::app {

namespace {

// KEYS: the previous, current and next slot's key. ARGV: a fresh key for each (used only where
// none exists yet), then their lifetime in seconds. Returns the three keys Redis holds.
constexpr const char* kScript = R"(local out = {}
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i], 'NX', 'EX', ARGV[#KEYS + 1])
  out[i] = redis.call('GET', KEYS[i])
end
return out
)";

// A slot's key may be made as the next one and is used until it is the previous one.
constexpr uint64_t kSlotsKept = 3;
constexpr uint64_t kEveryMs = 30000;       // at the latest, whatever the slot length
constexpr uint64_t kRetryMs = 2000;        // after a failure
constexpr uint64_t kConnectWaitMs = 250;   // while the connection to Redis is not up
constexpr uint64_t kPastBoundaryMs = 100;  // a run lands just after a slot begins

uint64_t UnixMs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace

TicketKeyShare::TicketKeyShare(http::ProxyContext& ctx,
                               std::shared_ptr<Reloader::TicketKeyList> keys)
    : ctx_(ctx), keys_(std::move(keys)), script_(kScript) {}

TicketKeyShare::~TicketKeyShare() {
  client_.reset();  // first: its callbacks refer to this
  if (task_created_) {
    ctx_.worker().RemoveTask(task_);
  }
}

std::string TicketKeyShare::RedisKey(const std::string& name, uint64_t slot) {
  return "torii:tls-ticket:" + name + ":" + std::to_string(slot);
}

bool TicketKeyShare::KeysFromReply(const redis::Reply& reply, tls::TicketKey out[3]) {
  if (reply.kind != redis::Reply::Kind::kArray || reply.elements.size() != 3) {
    return false;
  }
  for (const redis::Reply& e : reply.elements) {
    if (e.kind != redis::Reply::Kind::kString || e.str.size() != tls::TicketKey::kSize) {
      return false;
    }
  }
  // Installed as current, next, previous: the first encrypts.
  const size_t order[3] = {1, 2, 0};
  for (size_t i = 0; i < 3; ++i) {
    const std::string& bytes = reply.elements[order[i]].str;
    out[i] = tls::TicketKey::FromBytes(std::span<const uint8_t, tls::TicketKey::kSize>(
        reinterpret_cast<const uint8_t*>(bytes.data()), tls::TicketKey::kSize));
  }
  return true;
}

void TicketKeyShare::Start() {
  if (!task_created_) {
    task_ = ctx_.worker().AddTask([this] {
      armed_at_ms_ = 0;
      Run();
    });
    task_created_ = true;
  }
  Run();
}

void TicketKeyShare::Run() {
  const uint64_t now = UnixMs();
  uint64_t next_ms = kEveryMs;
  bool any = false;
  for (const std::shared_ptr<tls::TicketKeys>& keys : *keys_) {
    if (keys->shared_name().empty() || keys->slot_s() == 0) {
      continue;
    }
    any = true;
    Ask(keys, now);
    next_ms = std::min(next_ms, UntilNextSlotMs(now, keys->slot_s()) + kPastBoundaryMs);
  }
  if (any) {
    ArmWithin(next_ms);
  } else {
    ArmWithin(kEveryMs);  // a reload may add a listener that shares its keys
  }
}

void TicketKeyShare::Ask(const std::shared_ptr<tls::TicketKeys>& keys, uint64_t unix_ms) {
  const std::string name = keys->shared_name();
  redis::Client* c = client();
  if (c == nullptr) {
    Failed(name, "no [redis] configured");
    return;
  }
  if (!c->connected()) {
    // Connecting (at start), or backing off (the client logs why): asked again shortly.
    ArmWithin(kConnectWaitMs);
    return;
  }
  const uint64_t slot = SlotOf(unix_ms, keys->slot_s());
  std::vector<std::string> redis_keys = {RedisKey(name, slot - 1), RedisKey(name, slot),
                                         RedisKey(name, slot + 1)};
  std::vector<std::string> args(3, std::string(tls::TicketKey::kSize, '\0'));
  for (std::string& a : args) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(a.data()), static_cast<int>(a.size())) != 1) {
      Failed(name, "no random bytes for a ticket key");
      return;
    }
  }
  args.push_back(std::to_string(kSlotsKept * keys->slot_s() + 60));
  std::weak_ptr<tls::TicketKeys> weak = keys;
  c->Eval(script_, std::move(redis_keys), std::move(args),
          [this, weak, name, slot](redis::Result r) {
            std::shared_ptr<tls::TicketKeys> keys = weak.lock();
            if (!keys) {
              return;  // the listener went with a reload
            }
            if (!r) {
              Failed(name, r.error());
              return;
            }
            tls::TicketKey set[3];
            if (!KeysFromReply(*r, set)) {
              Failed(name, r->kind == redis::Reply::Kind::kError ? r->str : "unexpected reply");
              return;
            }
            keys->Replace(set);
            OPENSSL_cleanse(set, sizeof(set));
            if (std::find(installed_.begin(), installed_.end(), name) == installed_.end()) {
              installed_.push_back(name);
              spdlog::info("listener {}: session ticket keys shared through redis (slot {})", name,
                           slot);
            }
          });
}

void TicketKeyShare::Failed(const std::string& name, const std::string& why) {
  uint64_t suppressed = 0;
  if (log_.Allow(ctx_.worker().now_ms(), &suppressed)) {
    spdlog::warn(
        "listener {}: session ticket keys from redis: {}; keeping the keys held ({} more "
        "failures not logged)",
        name, why, suppressed);
  }
  ArmWithin(kRetryMs);
}

void TicketKeyShare::ArmWithin(uint64_t delay_ms) {
  const uint64_t at = ctx_.worker().now_ms() + delay_ms;
  if (armed_at_ms_ != 0 && armed_at_ms_ <= at) {
    return;
  }
  armed_at_ms_ = at;
  ctx_.worker().ArmTask(task_, at);
}

redis::Client* TicketKeyShare::client() {
  const http::ProxyConfig& config = ctx_.config();
  if (!config.redis) {
    client_.reset();
    client_for_.clear();
    return nullptr;
  }
  if (client_ != nullptr && client_for_ == config.redis_options.address) {
    return client_.get();
  }
  auto made = redis::Client::Create(ctx_.worker(), config.redis_options);
  if (!made) {
    client_.reset();
    return nullptr;
  }
  client_ = std::move(*made);
  client_for_ = config.redis_options.address;
  return client_.get();
}

}  // namespace torii::app
