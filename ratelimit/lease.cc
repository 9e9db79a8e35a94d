// ratelimit/lease.cc: see lease.h.
#include "ratelimit/lease.h"

#include <algorithm>
#include <mutex>

namespace torii::ratelimit {

LeaseTable::LeaseTable(const LeaseSpec& spec)
    : spec_(spec), shards_(std::make_unique<Shard[]>(kShards)) {
  spec_.batch = std::max<uint32_t>(spec_.batch, 1);
  spec_.max_keys = std::max<size_t>(spec_.max_keys, 1);
  shard_keys_ = std::max<size_t>(1, (spec_.max_keys + kShards - 1) / kShards);
}

namespace {

// `now - since` when `now` is later, else 0: another worker may have stamped a time read after
// this caller's `now` (the clock is read before the shard's lock is taken).
uint64_t Since(uint64_t now_ns, uint64_t since_ns) {
  return now_ns > since_ns ? now_ns - since_ns : 0;
}

}  // namespace

LeaseAsk LeaseTable::AskFor(Shard& shard, uint64_t key, Lease& lease, uint64_t now_ns) {
  lease.pending = true;
  lease.pending_seq = ++shard.next_seq == 0 ? ++shard.next_seq : shard.next_seq;
  lease.pending_since = now_ns;
  lease.asked_debt = lease.debt;
  LeaseAsk ask;
  ask.key = key;
  ask.store_key = lease.store_key;
  ask.want = lease.debt + spec_.batch;
  ask.seq = lease.pending_seq;
  return ask;
}

void LeaseTable::SetStoreKey(uint64_t key, std::string_view name) {
  Shard& shard = ShardOf(key);
  std::lock_guard<base::SpinLock> lock(shard.mu);
  if (auto it = shard.keys.find(key); it != shard.keys.end()) {
    it->second.store_key.assign(name);
  }
}

size_t LeaseTable::size() const {
  size_t n = 0;
  for (uint32_t i = 0; i < kShards; ++i) {
    std::lock_guard<base::SpinLock> lock(shards_[i].mu);
    n += shards_[i].keys.size();
  }
  return n;
}

LeaseTable::Outcome LeaseTable::Check(uint64_t key, uint64_t now_ns) {
  Outcome o;
  if (store_down(now_ns)) {
    o.verdict = Verdict::kStoreDown;
    return o;
  }
  Shard& shard = ShardOf(key);
  std::lock_guard<base::SpinLock> lock(shard.mu);
  Lease& lease = FindOrAdd(shard, key, &o.new_key);
  lease.last_ns = std::max(lease.last_ns, now_ns);
  if (lease.pending && Since(now_ns, lease.pending_since) > spec_.down_ns) {
    lease.pending = false;  // never answered: its debt is forgiven, a new request goes out
    lease.debt = 0;
    lease.asked_debt = 0;
  }
  if (lease.banned && now_ns < lease.denied_until) {
    o.verdict = Verdict::kBanned;
    o.retry_after_ns = lease.denied_until - now_ns;
    return o;
  }
  lease.banned = false;
  if (lease.tokens > 0) {
    --lease.tokens;
    o.remaining = lease.tokens + lease.remaining;
    o.reset_ns = lease.reset_at > now_ns ? lease.reset_at - now_ns : 0;
    if (lease.tokens == 0 && !lease.pending && now_ns >= lease.denied_until) {
      o.ask = true;
      o.request = AskFor(shard, key, lease, now_ns);
    }
    return o;
  }
  if (now_ns < lease.denied_until) {
    o.verdict = Verdict::kDeny;
    o.retry_after_ns = lease.denied_until - now_ns;
    return o;
  }
  if (lease.starved || (lease.pending && lease.debt >= spec_.batch)) {
    // At the fleet's limit (or more requests within one round trip than a lease holds): no
    // credit. Refused until a token arrives; asked for one if no request is in flight.
    o.verdict = Verdict::kDeny;
    o.retry_after_ns = 1000000000;
    if (!lease.pending) {
      o.ask = true;
      o.request = AskFor(shard, key, lease, now_ns);
    }
    return o;
  }
  ++lease.debt;
  if (!lease.pending) {
    o.ask = true;
    o.request = AskFor(shard, key, lease, now_ns);
  }
  return o;
}

void LeaseTable::OnGrant(uint64_t key, uint32_t seq, const Grant& grant, uint64_t now_ns) {
  Shard& shard = ShardOf(key);
  std::lock_guard<base::SpinLock> lock(shard.mu);
  auto it = shard.keys.find(key);
  if (it == shard.keys.end()) {
    return;  // evicted meanwhile: its tokens lapse with the TAT in the store
  }
  Lease& lease = it->second;
  const bool answers_pending = lease.pending && seq != 0 && seq == lease.pending_seq;
  if (!answers_pending && grant.banned_ns == 0) {
    return;  // a give-back's answer, or one that came too late: it settles nothing
  }
  if (answers_pending) {
    lease.pending = false;
  }
  lease.remaining = grant.remaining;
  lease.reset_at = now_ns + grant.reset_ns;
  if (grant.banned_ns > 0) {
    lease.banned = true;
    lease.denied_until = now_ns + grant.banned_ns;
    lease.tokens = 0;
    lease.debt = 0;
    lease.asked_debt = 0;
    return;
  }
  // The debt the request covered is settled (what the store could not grant was admitted over
  // the limit: the bounded error of lease.h); debt made meanwhile comes out of the new tokens.
  const uint32_t settled = std::min(grant.granted, lease.asked_debt);
  lease.debt -= std::min(lease.debt, lease.asked_debt);
  lease.asked_debt = 0;
  if (lease.banned) {
    return;  // banned here meanwhile: what was granted lapses in the store
  }
  lease.tokens += grant.granted - settled;
  const uint32_t more = std::min(lease.tokens, lease.debt);
  lease.tokens -= more;
  lease.debt -= more;
  lease.granted_ns = now_ns;
  // A full grant covers the debt made meanwhile too (at most batch - asked_debt of it). Credit
  // needs more: a batch to spare in the store after this grant, else the next workers to ask
  // would find the budget spent on credit.
  lease.starved = grant.granted < settled + spec_.batch || grant.remaining < spec_.batch;
  if (lease.starved) {
    // The fleet is at its limit: refuse here until the store says a request conforms again.
    lease.denied_until = std::max(lease.denied_until, now_ns + grant.retry_after_ns);
    lease.debt = 0;
  }
}

void LeaseTable::OnStoreError(uint64_t key, uint32_t seq, uint64_t now_ns, uint64_t down_ns) {
  down_until_.store(now_ns + (down_ns != 0 ? down_ns : spec_.down_ns), std::memory_order_relaxed);
  Shard& shard = ShardOf(key);
  std::lock_guard<base::SpinLock> lock(shard.mu);
  auto it = shard.keys.find(key);
  if (it != shard.keys.end() && seq != 0 && seq == it->second.pending_seq) {
    it->second.pending = false;
    it->second.debt = 0;
    it->second.asked_debt = 0;
  }
}

LeaseAsk LeaseTable::Ban(uint64_t key, std::string_view store_key, uint64_t ban_ns,
                         uint64_t now_ns) {
  Shard& shard = ShardOf(key);
  std::lock_guard<base::SpinLock> lock(shard.mu);
  bool added = false;
  Lease& lease = FindOrAdd(shard, key, &added);
  if (lease.store_key.empty()) {
    lease.store_key.assign(store_key);
  }
  lease.last_ns = std::max(lease.last_ns, now_ns);
  lease.banned = true;
  lease.denied_until = now_ns + ban_ns;
  LeaseAsk ask;
  ask.key = key;
  ask.store_key = lease.store_key;
  ask.give_back = lease.tokens;
  ask.ban_ms = (ban_ns + 999999) / 1000000;
  // Whatever is in flight settles nothing now (its answer's tokens lapse in the store).
  lease.tokens = 0;
  lease.debt = 0;
  lease.asked_debt = 0;
  lease.pending = false;
  lease.pending_seq = 0;
  return ask;
}

void LeaseTable::Sweep(uint64_t now_ns, std::vector<LeaseAsk>* out) {
  // Forgotten after a second unused (ten sync intervals at least), and only once the store's
  // budget for it is whole again (as of its last answer): a key at the fleet's limit that
  // came back to this process as new would pass on credit.
  const uint64_t keep_ns = std::max<uint64_t>(10 * spec_.hold_ns, 1000000000);
  for (uint32_t i = 0; i < kShards; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard<base::SpinLock> lock(shard.mu);
    if (shard.last_sweep != 0 && Since(now_ns, shard.last_sweep) < spec_.hold_ns / 2) {
      continue;  // another worker just did
    }
    shard.last_sweep = now_ns;
    out->insert(out->end(), shard.evicted.begin(), shard.evicted.end());
    shard.evicted.clear();
    for (auto it = shard.keys.begin(); it != shard.keys.end();) {
      Lease& lease = it->second;
      if (lease.pending) {
        ++it;
        continue;
      }
      if (lease.tokens > 0 && Since(now_ns, lease.granted_ns) >= spec_.hold_ns) {
        out->push_back(LeaseAsk{it->first, lease.store_key, 0, lease.tokens, 0});
        lease.tokens = 0;
      }
      const bool idle = lease.tokens == 0 && lease.debt == 0 && now_ns >= lease.denied_until &&
                        now_ns >= lease.reset_at && Since(now_ns, lease.last_ns) >= keep_ns;
      it = idle ? shard.keys.erase(it) : std::next(it);
    }
  }
}

LeaseTable::Lease& LeaseTable::FindOrAdd(Shard& shard, uint64_t key, bool* added) {
  auto it = shard.keys.find(key);
  if (it != shard.keys.end()) {
    return it->second;
  }
  if (shard.keys.size() >= shard_keys_) {
    MakeRoom(shard, key);
  }
  *added = true;
  return shard.keys.emplace(key, Lease{}).first->second;
}

void LeaseTable::MakeRoom(Shard& shard, uint64_t key) {
  // Up to 8 keys from up to 64 buckets, starting at one the new key picks.
  const size_t buckets = shard.keys.bucket_count();
  const size_t start = static_cast<size_t>(key >> 7) % buckets;
  uint64_t victim = 0;
  const Lease* oldest = nullptr;
  uint32_t seen = 0;
  for (size_t b = 0; b < std::min<size_t>(buckets, 64) && seen < 8; ++b) {
    const size_t bucket = (start + b) % buckets;
    for (auto it = shard.keys.begin(bucket); it != shard.keys.end(bucket); ++it) {
      if (it->second.pending) {
        continue;
      }
      ++seen;
      if (oldest == nullptr || it->second.last_ns < oldest->last_ns) {
        oldest = &it->second;
        victim = it->first;
      }
    }
  }
  if (oldest == nullptr) {
    return;  // every key sampled waits for the store: the shard grows past its share briefly
  }
  if (oldest->tokens > 0) {
    shard.evicted.push_back(LeaseAsk{victim, oldest->store_key, 0, oldest->tokens, 0});
  }
  shard.keys.erase(victim);
}

const std::string& LeaseScript() {
  static const std::string script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local back = tonumber(ARGV[4])
local ban_ms = tonumber(ARGV[5])
if ban_ms > 0 then
  redis.call('SET', KEYS[2], '1', 'PX', ban_ms)
end
local banned = redis.call('PTTL', KEYS[2])
if banned > 0 then
  return {0, banned * 1000, 0, 0, banned}
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if back > 0 then
  tat = tat - back * T
  if tat < now then tat = now end
end
local room = math.floor((tau + T - (tat - now)) / T)
if room < 0 then room = 0 end
local granted = want
if granted > room then granted = room end
tat = tat + granted * T
local retry = 0
if granted < want then
  retry = tat - tau - now
  if retry < 0 then retry = 0 end
end
local reset = tat - now
if reset > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor(reset / 1000) + 1000)
else
  redis.call('DEL', KEYS[1])
end
return {granted, retry, room - granted, reset, 0}
)lua";
  return script;
}

uint32_t LeaseBatch(uint64_t interval_ns, uint32_t burst, uint64_t sync_ns) {
  const uint64_t per_sync = interval_ns == 0 ? sync_ns : sync_ns / interval_ns;
  const uint64_t cap = std::max<uint64_t>(1, (uint64_t{burst} + 1) / 2);
  return static_cast<uint32_t>(std::clamp<uint64_t>(per_sync, 1, cap));
}

}  // namespace torii::ratelimit
