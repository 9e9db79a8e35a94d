// http/proxy_context.cc: see proxy_context.h.
#include "http/proxy_context.h"

#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>

#include "http/cache_refresh.h"
#include "http/h2_upstream.h"
#include "http/proxy_session.h"

namespace torii::http {

ProxyContext::ProxyContext(core::Worker& worker, std::shared_ptr<const ProxyConfig> config,
                           std::unique_ptr<AccessLog> log)
    : worker_(worker), log_(std::move(log)), fleet_(worker) {
  fleet_.Configure(config);
  current_ = std::make_shared<Generation>(*this, std::move(config));
  generations_.push_back(current_);
}

ProxyContext::~ProxyContext() = default;

CacheRefresher& ProxyContext::refresher() {
  if (!refresher_) {
    refresher_ = std::make_unique<CacheRefresher>(*this);
  }
  return *refresher_;
}

void ProxyContext::Reload(std::shared_ptr<const ProxyConfig> config) {
  std::shared_ptr<Generation> old = std::move(current_);
  fleet_.Configure(config);
  fleet_.Connect();
  current_ = std::make_shared<Generation>(*this, std::move(config));
  current_->Adopt(*old, current_);
  generations_.push_back(current_);
  ++reloads_;
  old->Retire();
  for (auto& pool : free_encoders_) {
    pool.clear();  // warm encoders keep their old level: new ones get the new config's
  }
  // Forget generations nobody holds any more (their waiters are gone with them).
  std::erase_if(generations_, [](const std::weak_ptr<Generation>& g) { return g.expired(); });
}

Generation::Generation(ProxyContext& ctx, std::shared_ptr<const ProxyConfig> config)
    : ctx_(ctx), config_(std::move(config)) {
  pools_.resize(config_->pools.size());
  for (size_t i = 0; i < config_->pools.size(); ++i) {
    const PoolSpec& spec = config_->pools[i];
    std::vector<balancer::BackendSpec> backends;
    backends.reserve(spec.backends.size());
    for (const BackendTarget& b : spec.backends) {
      // The address identifies a backend on the ip_hash ring, so adding or removing another
      // one does not move this one's clients.
      backends.push_back(balancer::BackendSpec{b.weight, b.tier, balancer::HashBytes(b.name)});
    }
    const auto n = static_cast<uint32_t>(backends.size());
    pools_[i].picker = balancer::MakePicker(spec.algorithm, std::move(backends), spec.load);
    if (!pools_[i].picker || !spec.health || spec.health->size() != n) {
      // app/ sizes the shared state (load counters, health) for the backends: a wiring bug.
      spdlog::critical("pool {}: {} state not sized for its {} backends", spec.name,
                       balancer::AlgorithmName(spec.algorithm), n);
      std::abort();
    }
    pools_[i].health = balancer::HealthView(spec.health);
    pools_[i].idle.resize(n);
    pools_[i].shared.resize(n);
    pools_[i].h2_peer_streams.assign(n, 100);
    if (spec.slow_start_ms > 0) {
      for (const BackendTarget& b : spec.backends) {
        if (b.added_ms != 0) {
          pools_[i].ramp_until = std::max(pools_[i].ramp_until, b.added_ms + spec.slow_start_ms);
        }
      }
    }
  }
  rng_ ^= reinterpret_cast<uintptr_t>(this);
}

bool Generation::current() const { return ctx_.current_.get() == this; }

const balancer::BackendMask& Generation::healthy(uint32_t pool) {
  return pools_[pool].health.eligible(ctx_.worker_.now_ms());
}

void Generation::Adopt(Generation& old, const std::shared_ptr<Generation>& self) {
  for (size_t p = 0; p < config_->pools.size(); ++p) {
    const PoolSpec& spec = config_->pools[p];
    if (spec.send_proxy != 0) {
      continue;  // PROXY connections are never pooled
    }
    for (size_t q = 0; q < old.config_->pools.size(); ++q) {
      const PoolSpec& before = old.config_->pools[q];
      if (before.name != spec.name || before.carry_key() != spec.carry_key() ||
          before.tls != spec.tls || before.h2 != spec.h2) {
        continue;
      }
      for (size_t i = 0; i < spec.backends.size(); ++i) {
        for (size_t j = 0; j < before.backends.size(); ++j) {
          if (spec.backends[i].name != before.backends[j].name) {
            continue;
          }
          if (spec.h2) {
            // Multiplexed connections to an address that stays go on serving, their streams
            // in flight included; the old generation's list is left empty (Retire).
            std::vector<core::ConnRef>& from = old.pools_[q].shared[j];
            std::vector<core::ConnRef>& to = pools_[p].shared[i];
            for (const core::ConnRef ref : from) {
              core::Conn* c = ctx_.worker_.Resolve(ref);
              auto* up = c != nullptr && !c->closing() ? dynamic_cast<H2UpstreamConn*>(c->handler())
                                                       : nullptr;
              if (up != nullptr &&
                  up->Rehome(self, static_cast<uint32_t>(p), static_cast<uint32_t>(i))) {
                to.push_back(ref);
              }
            }
            from.clear();
            pools_[p].h2_peer_streams[i] = old.pools_[q].h2_peer_streams[j];
            continue;
          }
          // The most recently used ones (at the back), in their order: TakeIdle() keeps
          // taking the most recent, so the surplus still ages out at keepalive_timeout.
          std::vector<core::ConnRef>& from = old.pools_[q].idle[j];
          std::vector<core::ConnRef>& to = pools_[p].idle[i];
          const size_t room = spec.keepalive > to.size() ? spec.keepalive - to.size() : 0;
          const size_t first = from.size() > room ? from.size() - room : 0;
          for (size_t k = first; k < from.size(); ++k) {
            core::Conn* c = ctx_.worker_.Resolve(from[k]);
            auto* up =
                c != nullptr && !c->closing() ? dynamic_cast<UpstreamConn*>(c->handler()) : nullptr;
            if (up != nullptr && up->idle()) {
              up->Rehome(self, static_cast<uint32_t>(p), static_cast<uint32_t>(i));
              to.push_back(from[k]);
            }
          }
          from.resize(first);  // the rest: Retire() closes them
        }
      }
    }
  }
}

void Generation::Retire() {
  std::vector<core::ConnRef> idle;
  for (PoolState& p : pools_) {
    for (auto& list : p.idle) {
      idle.insert(idle.end(), list.begin(), list.end());
    }
  }
  for (const core::ConnRef ref : idle) {
    if (core::Conn* c = ctx_.worker_.Resolve(ref)) {
      c->Close();  // its handler drops it from the idle list as it closes
    }
  }
  // Multiplexed connections take no new stream and close once their streams are done.
  std::vector<core::ConnRef> shared;
  for (PoolState& p : pools_) {
    for (auto& list : p.shared) {
      shared.insert(shared.end(), list.begin(), list.end());
      list.clear();
    }
  }
  for (const core::ConnRef ref : shared) {
    if (core::Conn* c = ctx_.worker_.Resolve(ref); c != nullptr && !c->closing()) {
      c->handler()->OnDrain(*c);
    }
  }
}

void Generation::ReportBackendFailure(uint32_t pool, uint32_t backend, std::string_view why) {
  const PoolSpec& spec = config_->pools[pool];
  balancer::PoolHealth& health = *spec.health;
  if (health.ReportFailure(backend, ctx_.worker_.now_ms()) == balancer::HealthChange::kEjected) {
    const uint64_t until = health.ejected_until(backend);
    spdlog::warn("pool {} backend {} ejected for {} ms after {} failures within {} ms (last: {})",
                 spec.name, spec.backends[backend].name,
                 until > ctx_.worker_.now_ms() ? until - ctx_.worker_.now_ms() : 0,
                 health.policy().max_fails, health.policy().fail_window_ms, why);
  }
}

void Generation::ReportBackendSuccess(uint32_t pool, uint32_t backend) {
  config_->pools[pool].health->ReportSuccess(backend, ctx_.worker_.now_ms());
}

const balancer::BackendMask& Generation::available(uint32_t pool) {
  const balancer::BackendMask& healthy = this->healthy(pool);
  const PoolSpec& spec = config_->pools[pool];
  if (spec.max_conns == 0) {
    return Ramp(pool, healthy);
  }
  balancer::BackendMask& out = pools_[pool].available;
  out.Reset(healthy.size());
  for (uint32_t i = 0; i < healthy.size(); ++i) {
    if (healthy.test(i) && spec.slots->InUse(i) < spec.max_conns) {
      out.set(i);
    }
  }
  return Ramp(pool, out);
}

const balancer::BackendMask& Generation::Ramp(uint32_t pool, const balancer::BackendMask& base) {
  PoolState& ps = pools_[pool];
  const uint64_t now = ctx_.worker_.now_ms();
  if (now >= ps.ramp_until) {
    return base;
  }
  // HAProxy's slowstart and nginx's slow_start ramp a new server's weight; leaving it out of
  // a pick with the complementary probability scales its share the same way under every
  // algorithm without touching the pickers' state. A ramping backend is never left out when it
  // is the only one eligible.
  const PoolSpec& spec = config_->pools[pool];
  ps.ramped.Reset(base.size());
  bool others = false;
  for (uint32_t i = 0; i < base.size(); ++i) {
    if (!base.test(i)) {
      continue;
    }
    const BackendTarget& b = spec.backends[i];
    if (b.added_ms == 0 || now >= b.added_ms + spec.slow_start_ms) {
      others = true;
      ps.ramped.set(i);
      continue;
    }
    const uint64_t elapsed = now > b.added_ms ? now - b.added_ms : 0;
    const uint64_t per_mille = std::max<uint64_t>(50, elapsed * 1000 / spec.slow_start_ms);
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    if (rng_ % 1000 < per_mille) {
      ps.ramped.set(i);
    }
  }
  return others || ps.ramped.count() > 0 ? ps.ramped : base;
}

bool Generation::TryAcquireSlot(uint32_t pool, uint32_t backend) {
  const PoolSpec& spec = config_->pools[pool];
  return spec.max_conns == 0 || spec.slots->TryAcquire(backend, spec.max_conns);
}

void Generation::ReleaseSlot(uint32_t pool, uint32_t backend) {
  const PoolSpec& spec = config_->pools[pool];
  if (spec.max_conns == 0) {
    return;
  }
  spec.slots->Release(backend);
  if (!pools_[pool].waiters.empty()) {
    ctx_.ArmKick(0);  // the next loop turn, not from inside whoever released it
  }
}

namespace {
// How often waiters look for slots freed by other workers.
constexpr uint64_t kQueuePollMs = 5;
}  // namespace

void Generation::Enqueue(uint32_t pool, core::ConnRef client, uint64_t ticket, bool front) {
  auto& waiters = pools_[pool].waiters;
  if (front) {
    waiters.push_front(Waiter{client, ticket});
  } else {
    waiters.push_back(Waiter{client, ticket});
  }
  ctx_.ArmKick(kQueuePollMs);
}

void ProxyContext::ArmKick(uint64_t delay_ms) {
  if (!kick_created_) {
    kick_task_ = worker_.AddTask([this] { KickWaiters(); });
    kick_created_ = true;
  }
  const uint64_t at = worker_.now_ms() + delay_ms;
  if (kick_at_ == 0 || at < kick_at_) {
    kick_at_ = at;
    worker_.ArmTask(kick_task_, at);
  }
}

void ProxyContext::KickWaiters() {
  kick_at_ = 0;
  bool pending = false;
  for (const std::weak_ptr<Generation>& weak : generations_) {
    if (std::shared_ptr<Generation> g = weak.lock()) {
      pending = g->KickWaiters() || pending;
    }
  }
  if (pending) {
    ArmKick(kQueuePollMs);
  }
}

bool Generation::KickWaiters() {
  bool pending = false;
  for (uint32_t p = 0; p < pools_.size(); ++p) {
    auto& waiters = pools_[p].waiters;
    // Resume waiters in order while they find slots; one that loses the race goes back to
    // the front (ResumeQueuedRequest re-enqueues it) and the rest keep waiting.
    while (!waiters.empty()) {
      const Waiter w = waiters.front();
      waiters.pop_front();
      core::Conn* c = ctx_.worker_.Resolve(w.client);
      if (c == nullptr || c->closing()) {
        continue;  // the client left while queued
      }
      const size_t before = waiters.size();
      ResumeQueuedRequest(*c, w.ticket);
      if (waiters.size() > before) {
        break;  // re-queued: no slot for it yet
      }
    }
    pending = pending || !waiters.empty();
  }
  return pending;
}

namespace {
// Warm encoders kept per coding and worker (zstd keeps ~2 MiB after a reset).
constexpr size_t kMaxPooledEncoders = 4;
}  // namespace

std::unique_ptr<codec::Encoder> ProxyContext::AcquireEncoder(codec::Coding coding) {
  if (active_encoders_ >= kMaxActiveEncoders) {
    return nullptr;
  }
  std::unique_ptr<codec::Encoder> e;
  auto& pool = free_encoders_[static_cast<int>(coding)];
  if (!pool.empty()) {
    e = std::move(pool.back());
    pool.pop_back();
  } else {
    e = codec::MakeEncoder(coding, config().compression.level[static_cast<int>(coding)]);
  }
  if (e) {
    ++active_encoders_;
  }
  return e;
}

void ProxyContext::ReleaseEncoder(std::unique_ptr<codec::Encoder> encoder) {
  if (!encoder) {
    return;
  }
  --active_encoders_;
  auto& pool = free_encoders_[static_cast<int>(encoder->coding())];
  if (pool.size() < kMaxPooledEncoders && encoder->Reset()) {
    pool.push_back(std::move(encoder));
  }
}

int64_t ProxyContext::UnixNow() {
  const uint64_t now = worker_.now_ms();
  if (now != unix_at_ms_) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    unix_now_ = ts.tv_sec;
    unix_at_ms_ = now;
  }
  return unix_now_;
}

void ProxyContext::WakeCacheWaiters(const std::vector<cache::Waiter>& waiters) {
  if (waiters.empty() || !siblings_) {
    return;
  }
  // One message per worker, carrying that worker's waiters (Waiter: a = worker, b = the
  // connection's slot << 32 | generation, c = ticket). Same-worker waiters go through the
  // mailbox too: they resume on the next turn, never inside the fetch that woke them.
  const std::vector<ProxyContext*>& all = *siblings_;
  for (size_t w = 0; w < all.size(); ++w) {
    std::vector<cache::Waiter> mine;
    for (const cache::Waiter& waiter : waiters) {
      if (waiter.a == w) {
        mine.push_back(waiter);
      }
    }
    if (mine.empty()) {
      continue;
    }
    ProxyContext* target = all[w];
    target->worker().Post([target, mine = std::move(mine)] {
      for (const cache::Waiter& waiter : mine) {
        const core::ConnRef ref{static_cast<uint32_t>(waiter.b >> 32),
                                static_cast<uint32_t>(waiter.b)};
        if (core::Conn* conn = target->worker().Resolve(ref)) {
          ResumeCacheWaiter(*conn, waiter.c);
        }
      }
    });
  }
}

void ProxyContext::NoteTlsFailure(const core::Conn& conn, std::string_view why) {
  uint64_t suppressed = 0;
  if (!tls_log_.Allow(worker_.now_ms(), &suppressed)) {
    return;
  }
  const std::string peer = ratelimit::ToString(ratelimit::IpFromSockaddr(conn.peer()));
  if (suppressed > 0) {
    spdlog::info("TLS with {} failed: {} ({} more TLS failures since the last such line)", peer,
                 why, suppressed);
  } else {
    spdlog::info("TLS with {} failed: {}", peer, why);
  }
}

void ProxyContext::NoteRefusedConnection(std::string_view listener, std::string_view why) {
  stats_.conns_refused++;
  if (uint64_t suppressed = 0; refused_log_.Allow(worker_.now_ms(), &suppressed)) {
    spdlog::warn("listener {}: {} connection(s) closed at accept ({}; {} in all on worker {})",
                 listener, suppressed + 1, why, stats_.conns_refused.get(), worker_.id());
  }
}

bool Generation::IsFailureStatus(uint32_t pool, int status) const {
  for (const auto& [first, last] : config_->pools[pool].fail_status) {
    if (status >= first && status <= last) {
      return true;
    }
  }
  return false;
}

namespace {
// Buffers kept warm per worker (the most exchanges in flight lately, up to this bound), how
// often the ones not needed are given back, and the largest input buffer worth keeping.
constexpr size_t kMaxPooledBuffers = 4096;
constexpr uint64_t kBufferTrimMs = 1000;
constexpr size_t kTrimHeapAfter = 256;  // buffers freed at once that make a heap trim worth it
constexpr size_t kMaxPooledInput = 64 * 1024;
}  // namespace

std::unique_ptr<ExchangeBuffers> ProxyContext::AcquireBuffers(H1Parser::Kind kind,
                                                              const H1Parser::Limits& limits) {
  std::unique_ptr<ExchangeBuffers> b;
  if (free_buffers_.empty()) {
    b = std::make_unique<ExchangeBuffers>();
  } else {
    b = std::move(free_buffers_.back());
    free_buffers_.pop_back();
    free_low_ = std::min(free_low_, free_buffers_.size());
  }
  b->InitParserOnUse(kind, limits);
  return b;
}

void ProxyContext::ReleaseBuffers(std::unique_ptr<ExchangeBuffers> buffers) {
  if (!buffers || free_buffers_.size() >= kMaxPooledBuffers) {
    return;
  }
  buffers->clear();
  if (buffers->in.capacity() > kMaxPooledInput) {
    std::string().swap(buffers->in);  // a flood's buffer is not kept warm
  }
  free_buffers_.push_back(std::move(buffers));
  if (!trim_armed_) {
    if (!trim_created_) {
      trim_task_ = worker_.AddTask([this] { TrimBuffers(); });
      trim_created_ = true;
    }
    trim_armed_ = true;
    free_low_ = free_buffers_.size();
    worker_.ArmTask(trim_task_, worker_.now_ms() + kBufferTrimMs);
  }
}

void ProxyContext::TrimBuffers() {
  // The pool never fell below free_low_ during the last interval: that many buffers were not
  // needed, and go (a burst's buffers are given back within two intervals of its end).
  const size_t surplus = std::min(free_low_, free_buffers_.size());
  free_buffers_.erase(free_buffers_.begin(), free_buffers_.begin() + surplus);  // coldest first
  free_low_ = free_buffers_.size();
  if (surplus >= kTrimHeapAfter) {
    // A burst ended: what it freed lies between live blocks, where malloc keeps it; give the
    // free pages back to the system, or the burst would leave the process that much larger.
    worker_.TrimHeap();
  }
  trim_armed_ = !free_buffers_.empty();
  if (trim_armed_) {
    worker_.ArmTask(trim_task_, worker_.now_ms() + kBufferTrimMs);
  }
}

namespace {
// TLS's largest record carries 16 KiB of plaintext (RFC 8446 §5.1); a seal buffer holds one
// and the next write's head start.
constexpr size_t kSealBufferBytes = 16 * 1024 + 512;
constexpr size_t kMaxSealBuffers = 64;
}  // namespace

std::string ProxyContext::TakeSealBuffer() {
  if (seal_buffers_.empty()) {
    std::string b;
    b.reserve(kSealBufferBytes);
    return b;
  }
  std::string b = std::move(seal_buffers_.back());
  seal_buffers_.pop_back();
  return b;
}

void ProxyContext::GiveSealBuffer(std::string buffer) {
  if (seal_buffers_.size() < kMaxSealBuffers && buffer.capacity() >= kSealBufferBytes &&
      buffer.capacity() <= 2 * kSealBufferBytes) {
    buffer.clear();
    seal_buffers_.push_back(std::move(buffer));
  }
}

core::Conn* Generation::TakeIdle(uint32_t pool, uint32_t backend) {
  auto& list = pools_[pool].idle[backend];
  while (!list.empty()) {
    const core::ConnRef ref = list.back();
    list.pop_back();
    core::Conn* c = ctx_.worker_.Resolve(ref);
    if (c != nullptr && !c->closing()) {
      return c;
    }
  }
  return nullptr;
}

bool Generation::PutIdle(uint32_t pool, uint32_t backend, core::Conn& conn) {
  auto& list = pools_[pool].idle[backend];
  if (ctx_.worker_.draining() || !current() || list.size() >= config_->pools[pool].keepalive) {
    return false;
  }
  list.push_back(conn.ref());
  return true;
}

void Generation::DropIdle(uint32_t pool, uint32_t backend, core::ConnRef ref) {
  auto& list = pools_[pool].idle[backend];
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].slot == ref.slot && list[i].gen == ref.gen) {
      list[i] = list.back();
      list.pop_back();
      return;
    }
  }
}

}  // namespace torii::http
