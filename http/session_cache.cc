// http/session_cache.cc: the response cache's part of the Exchange (RFC 9111 shared cache).
//
// The decisions are cache/'s (policy.h: storable, fresh, age, validators; store.h: the shared
// store and the coalescing registry). This file only wires them into the exchange:
//
//   request head ─► key ─► Lookup ─ fresh ─────────────────────────► ServeEntry (hit)
//                                  ├ stale, validators ─► JoinFill ─► backend with
//                                  │                      If-None-Match / If-Modified-Since
//                                  ├ stale-while-revalidate: served stale at once; the
//                                  │   first request hands the revalidation to the worker's
//                                  │   CacheRefresher (cache_refresh.h), which updates the entry
//                                  └ nothing usable ─► JoinFill ─┬ kFill: fetch and store
//                                                                ├ kWait: park until EndFill
//                                                                └ kBypass: plain miss
//   response head ─► 304 for our validators: refresh, serve from the store
//                 ─► 5xx with a stale entry and stale-if-error: serve the stale entry
//                 ─► storable: keep the body while it streams to the client; store at the end
//                 ─► not storable: end the fill now, so waiters go to the backend at once
//
// A request that waited is resumed on its own worker (ProxyContext::WakeCacheWaiters) and looks
// the key up again: a hit is served, anything else goes to the backend without waiting again
// (an uncacheable URL must not serialise its requests).
//
// The request head's views die when the session compacts its input after the head, so a
// request that goes on past its head (to the backend, or to wait) keeps a copy of its header
// fields (SaveRequestHeaders): Vary values, validators and conditionals are read from it.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "base/text.h"
#include "cache/policy.h"
#include "cache/tags.h"
#include "http/cache_key.h"
#include "http/cache_refresh.h"
#include "http/exchange.h"
#include "ratelimit/hash.h"
#include "ratelimit/ip.h"

namespace torii::http {

namespace {

// Request header fields, as cache/ reads them (Vary, conditionals).
class RequestHeaders final : public cache::HeaderSource {
 public:
  explicit RequestHeaders(std::span<const HeaderView> headers) : headers_(headers) {}
  bool Get(std::string_view lower_name, std::string* out) const override {
    bool found = false;
    out->clear();
    for (const HeaderView& h : headers_) {
      if (EqualsIgnoreCase(h.name, lower_name)) {
        if (found) {
          out->append(", ");
        }
        out->append(h.value);
        found = true;
      }
    }
    return found;
  }

 private:
  std::span<const HeaderView> headers_;
};

std::span<const cache::HeaderView> ToCacheHeaders(std::span<const HeaderView> in,
                                                  std::vector<cache::HeaderView>* out) {
  out->clear();
  for (const HeaderView& h : in) {
    // Hop-by-hop fields (also those the Connection field names) and framing are never
    // stored (RFC 9111 §3.1); Age is (the policy reads it as age_value) and replaced when
    // served.
    if (!IsDroppedResponseHeader(h.name) && !NamedInConnection(in, h.name)) {
      out->push_back(cache::HeaderView{h.name, h.value});
    }
  }
  return *out;
}

constexpr codec::Coding kVariantCodings[] = {codec::Coding::kGzip, codec::Coding::kBrotli,
                                             codec::Coding::kZstd};

// Writes a record the disk tier placed (cache/disk.h) through the worker's ring.
void SubmitDiskWrite(core::Worker& worker, const std::shared_ptr<cache::DiskStore>& disk,
                     cache::DiskWrite planned) {
  auto w = std::make_shared<cache::DiskWrite>(std::move(planned));
  iovec iov[3];
  size_t n = 0;
  iov[n++] = {w->head.data(), w->head.size()};
  if (w->body && !w->body->empty()) {
    iov[n++] = {const_cast<char*>(w->body->data()), w->body->size()};
  }
  if (w->padding > 0) {
    iov[n++] = {const_cast<char*>(cache::DiskStore::ZeroPadding()), w->padding};
  }
  worker.WriteFile(disk->fd(), w->offset, std::span<const iovec>(iov, n), [disk, w](int res) {
    disk->Written(*w, res == static_cast<int64_t>(w->total()));
  });
}

// After a removal from the disk tier: the tombstones that keep a restart from finding what was
// removed.
void WriteTombstones(core::Worker& worker, const CacheSpec& spec) {
  while (std::optional<cache::DiskWrite> w = spec.disk->TakeTombstone()) {
    SubmitDiskWrite(worker, spec.disk, std::move(*w));
  }
}

// Removes `key` and the compressed variants made from it, from memory and disk. True if
// anything was stored.
bool RemoveWithVariants(core::Worker& worker, const CacheSpec& spec, std::string_view key,
                        std::string* scratch) {
  cache::Store& store = *spec.store;
  bool removed = store.Remove(key, ratelimit::HashKey(key));
  if (spec.disk && spec.disk->Remove(key)) {
    removed = true;
    WriteTombstones(worker, spec);
  }
  for (codec::Coding c : kVariantCodings) {
    VariantKey(key, codec::Name(c), scratch);
    removed = store.Remove(*scratch, ratelimit::HashKey(*scratch)) || removed;
  }
  return removed;
}

// The stored fields a hit sends: all but Age (the hit's own replaces it).
void StoredViews(const cache::Entry& entry, std::vector<HeaderView>* views) {
  views->clear();
  for (const cache::Header& h : entry.headers) {
    if (h.name != "age") {
      views->push_back(HeaderView{h.name, h.value});
    }
  }
}

// Renders `entry`'s fields for HTTP/1.1 hits once, before it is stored (HeadEdits::rendered).
void RenderForHits(cache::Entry* entry) {
  std::vector<HeaderView> views;
  views.reserve(entry->headers.size());
  StoredViews(*entry, &views);
  entry->rendered = RenderStoredFields(views);
}

}  // namespace

// This request as a waiter (cache::Waiter): its worker, its connection's slot and generation,
// and a new ticket (ProxyContext::WakeCacheWaiters and ResumeDiskRead find it by them).
cache::Waiter Exchange::NewWaiter() {
  return cache::Waiter{ctx_.worker().id(), (uint64_t{conn_.ref.slot} << 32) | conn_.ref.gen,
                       ctx_.NextQueueTicket()};
}

// A copy of the request's header fields that outlives the parser's view of them.
void Exchange::SaveRequestHeaders(std::span<const HeaderView> headers) {
  ExchangeBuffers::CacheState& cs = buffers().cache;
  cs.saved.clear();
  for (const HeaderView& h : headers) {
    cs.saved.append(h.name);
    cs.saved.append(h.value);
  }
  cs.saved_views.clear();
  size_t at = 0;
  for (const HeaderView& h : headers) {
    const std::string_view name(cs.saved.data() + at, h.name.size());
    at += h.name.size();
    const std::string_view value(cs.saved.data() + at, h.value.size());
    at += h.value.size();
    cs.saved_views.push_back(HeaderView{name, value});
  }
}

bool Exchange::CacheBeforeUpstream(const MessageHead& h) {
  const ProxyConfig& config = cfg();
  const RouteSpec& route = config.routes[x().route];
  const CacheSpec& spec = config.caches[static_cast<uint32_t>(route.cache)];
  ExchangeBuffers::CacheState& cs = buffers().cache;
  cs.cache = route.cache;
  BuildCacheKey(scheme(), buffers().host, buffers().target, spec.key_query, spec.key_headers,
                h.headers, &cs.key);
  cs.hash = ratelimit::HashKey(cs.key);
  const bool safe = x().method_id == HTTP_GET || x().method_id == HTTP_HEAD;
  if (!safe) {
    // Forwarded; a successful unsafe request invalidates the URL (CacheOnUpstreamHead).
    cs.fwd = "method";
    SaveRequestHeaders(h.headers);
    return false;
  }
  const RequestHeaders source(h.headers);
  cs.req = cache::ReadRequest(x().method_id == HTTP_HEAD ? "HEAD" : "GET", source);
  if (x().req_framing != Framing::kNone || cs.req.has_authorization) {
    // A GET with a body is never answered from the store (its body must be read and
    // forwarded, P5); a request with credentials is never answered with a shared response
    // (RFC 9111 §3.5, K6). Both go to the backend; the response may still be stored if the
    // policy allows, except a GET with a body: the response may depend on the body.
    cs.fwd = "request";
    cs.no_store = x().req_framing != Framing::kNone;
    SaveRequestHeaders(h.headers);
    return false;
  }
  std::shared_ptr<const cache::Entry> entry = spec.store->Lookup(cs.key, cs.hash, source);
  if (cfg().timing) {
    buffers().timing.cache = ctx_.worker().now_ns();
  }
  if (!entry && spec.disk) {
    if (std::optional<cache::DiskRecord> rec = spec.disk->Find(cs.key)) {
      // In place from the file's mapping when its pages are in memory (not promoted: the page
      // cache holds it as well as the memory tier would); else read through the ring, then
      // promoted.
      cache::MappedRecord mapped = spec.disk->MapRecord(cs.key, *rec, ctx_.UnixNow());
      if (mapped.read) {
        CacheReadDisk(spec, *rec, h);
        return true;
      }
      if (mapped.entry && cache::VaryMatches(*mapped.entry, source)) {
        return CacheDecide(std::move(mapped.entry), h.headers, &h, "torii; hit; detail=disk");
      }
    }
  }
  return CacheDecide(std::move(entry), h.headers, &h, "torii; hit");
}

bool Exchange::CacheDecide(std::shared_ptr<const cache::Entry> entry,
                           std::span<const HeaderView> request_headers, const MessageHead* h,
                           std::string_view hit) {
  const CacheSpec& spec = cfg().caches[static_cast<uint32_t>(cfg().routes[x().route].cache)];
  ExchangeBuffers::CacheState& cs = buffers().cache;
  const int64_t now = ctx_.UnixNow();
  bool refresh = false;  // a stale entry may be revalidated with its validators
  bool swr = false;      // ... and served stale meanwhile (stale-while-revalidate)
  if (entry) {
    const cache::Serve serve = cache::Evaluate(*entry, cs.req, now);
    switch (serve.verdict) {
      case cache::Verdict::kFresh:
        ctx_.stats().cache_hits++;
        CountRoute(RouteSpec::kCacheHits);
        ServeEntry(entry, request_headers, hit);
        return true;
      case cache::Verdict::kStaleWhileRevalidate:
      case cache::Verdict::kRevalidate:
        cs.entry = entry;
        refresh = cache::CanRevalidate(*entry);
        swr = serve.verdict == cache::Verdict::kStaleWhileRevalidate;
        break;
      case cache::Verdict::kMiss:
        cs.entry = entry;  // fetched in full, but it may still answer a failure (stale-if-error)
        break;
    }
  }
  if (cs.req.cc.only_if_cached && !cs.entry) {
    SendLocalReply(504, "only-if-cached: not stored");
    return true;
  }
  if (x().method_id == HTTP_HEAD) {
    // A HEAD is answered from a stored GET but never fills the store (K8).
    ctx_.stats().cache_misses++;
    CountRoute(RouteSpec::kCacheMisses);
    cs.fwd = cs.entry ? "stale" : "miss";
    if (h != nullptr) {
      SaveRequestHeaders(h->headers);
    }
    return false;
  }
  const cache::Waiter self = NewWaiter();
  switch (spec.store->JoinFill(cs.key, cs.hash, self, now)) {
    case cache::FillRole::kFill:
      cs.filling = true;
      cs.filler = self;
      if (swr && RefreshInBackground(h)) {
        return true;
      }
      break;
    case cache::FillRole::kWait:
      if (swr) {
        // Another request is refreshing it: this one gets the stale entry now.
        spec.store->LeaveFill(cs.key, cs.hash, self);
        ctx_.stats().cache_hits++;
        CountRoute(RouteSpec::kCacheHits);
        ServeEntry(cs.entry, request_headers, "torii; hit; detail=stale-while-revalidate");
        return true;
      }
      ctx_.stats().cache_collapsed++;
      cs.waiting = true;
      cs.filler = self;  // our own waiter record, for LeaveFill
      if (h != nullptr) {
        SaveRequestHeaders(h->headers);
        // Built now, while the head is still readable: a miss after the wait goes upstream.
        BuildUpstreamHead(*h);
      }
      held_ = true;  // hold the next pipelined request meanwhile
      SetTimerFor(TimerFor::kCacheWait, spec.lock_timeout_ms);
      return true;
    case cache::FillRole::kBypass:
      break;
  }
  ctx_.stats().cache_misses++;
  CountRoute(RouteSpec::kCacheMisses);
  if (h != nullptr) {
    SaveRequestHeaders(h->headers);
  }
  if (refresh) {
    // Ask the backend whether the stored response is still good (RFC 9111 §4.3.1): our own
    // validators replace the client's conditionals, which are answered from the refreshed
    // entry.
    cs.revalidating = true;  // CacheAddValidators() once the upstream head is built
    cs.fwd = "stale";
  } else {
    cs.fwd = "miss";
  }
  return false;
}

bool Exchange::RefreshInBackground(const MessageHead* h) {
  // A request in TLS early data goes to the backend only as itself (a 425 is retried after its
  // handshake), so it revalidates in the foreground.
  if (x().early || !ctx_.refresher().HasRoom()) {
    return false;
  }
  ExchangeBuffers::CacheState& cs = buffers().cache;
  if (h != nullptr) {
    SaveRequestHeaders(h->headers);
  }
  // The refresh asks what this request would have asked: with the entry's validators when it
  // has any, else for the whole response.
  cs.revalidating = cache::CanRevalidate(*cs.entry);
  cs.fwd = cs.revalidating ? "stale" : "miss";
  if (h != nullptr) {
    BuildUpstreamHead(*h);
  }
  if (cs.revalidating) {
    CacheAddValidators();
  }
  ctx_.refresher().Start(*this);  // takes over the fill this request leads
  ctx_.stats().cache_hits++;
  CountRoute(RouteSpec::kCacheHits);
  ServeEntry(cs.entry, cs.saved_views, "torii; hit; detail=stale-while-revalidate");
  return true;
}

void Exchange::CacheReadDisk(const CacheSpec& spec, const cache::DiskRecord& rec,
                             const MessageHead& h) {
  ExchangeBuffers::CacheState& cs = buffers().cache;
  SaveRequestHeaders(h.headers);
  // Built now, while the head is still readable: a miss after the read goes upstream.
  BuildUpstreamHead(h);
  cs.reading = true;
  cs.filler = NewWaiter();
  held_ = true;  // hold the next pipelined request meanwhile
  SetTimerFor(TimerFor::kCacheWait, spec.lock_timeout_ms);
  // The head into one buffer, the body straight into the string the entry will share.
  struct Read {
    std::string key;
    std::string head;
    std::shared_ptr<std::string> body = std::make_shared<std::string>();
  };
  auto read = std::make_shared<Read>();
  read->key = cs.key;
  read->head.resize(rec.head_len);
  read->body->resize_and_overwrite(rec.body_len, [](char*, size_t n) { return n; });
  const iovec iov[2] = {{read->head.data(), read->head.size()},
                        {read->body->data(), read->body->size()}};
  ProxyContext* ctx = &ctx_;
  ctx_.worker().ReadFile(
      spec.disk->fd(), rec.offset, std::span<const iovec>(iov, rec.body_len > 0 ? 2 : 1),
      [ctx, read, rec, disk = spec.disk, store = spec.store, hash = cs.hash, conn = conn_.ref,
       ticket = cs.filler.c](int res) {
        std::shared_ptr<const cache::Entry> found;
        if (res == static_cast<int64_t>(rec.head_len + rec.body_len)) {
          std::shared_ptr<cache::Entry> entry =
              disk->Decode(read->key, rec, read->head, std::move(read->body), ctx->UnixNow());
          if (entry) {
            RenderForHits(entry.get());
            // Promoted: the next request for it is a memory hit.
            std::shared_ptr<const cache::Entry> stored = store->Insert(read->key, hash, entry);
            found = stored ? std::move(stored) : std::move(entry);
          }
        }
        if (core::Conn* c = ctx->worker().Resolve(conn)) {
          ResumeDiskRead(*c, ticket, std::move(found));
        }
      });
}

void Exchange::ResumeFromDisk(uint64_t ticket, std::shared_ptr<const cache::Entry> entry) {
  if (!b_ || !buffers().cache.reading || buffers().cache.filler.c != ticket || down_.closing()) {
    return;  // answered (timeout) or gone since the read began
  }
  ExchangeBuffers::CacheState& cs = buffers().cache;
  cs.reading = false;
  held_ = false;
  SetTimerFor(TimerFor::kNone, 0);
  if (entry && !entry->vary.empty() &&
      !cache::VaryMatches(*entry, RequestHeaders(cs.saved_views))) {
    entry.reset();  // the variant on disk is another request's
  }
  if (!CacheDecide(std::move(entry), cs.saved_views, nullptr, "torii; hit; detail=disk")) {
    if (cs.revalidating) {
      CacheAddValidators();
    }
    PickBackendAndSend();
  }
  if (!down_.closing() && !held_) {
    down_.Continue();
  }
}

void Exchange::CacheWriteDisk(const CacheSpec& spec, const cache::Entry& entry) {
  if (!spec.disk) {
    return;
  }
  if (std::optional<cache::DiskWrite> w = spec.disk->PrepareWrite(buffers().cache.key, entry)) {
    SubmitDiskWrite(ctx_.worker(), spec.disk, std::move(*w));
  }
}

void Exchange::StartRefresh(uint32_t id, Exchange& from) {
  gen_ = from.gen_;  // the pool and route indices are the generation's
  Begin(id);
  background_ = true;
  x().route = from.x().route;
  x().routed = true;
  x().pool = from.x().pool;
  x().key_hash = from.x().key_hash;
  x().method_id = from.x().method_id;
  x().version_major = from.x().version_major;
  x().version_minor = from.x().version_minor;
  ExchangeBuffers& b = buffers();
  ExchangeBuffers& fb = from.buffers();
  b.method = fb.method;
  b.target = fb.target;
  b.host = fb.host;
  b.client = fb.client;
  b.upstream_head = fb.upstream_head;
  ExchangeBuffers::CacheState& cs = b.cache;
  ExchangeBuffers::CacheState& fcs = fb.cache;
  cs.cache = fcs.cache;
  cs.key = fcs.key;
  cs.hash = fcs.hash;
  cs.req = fcs.req;
  cs.entry = fcs.entry;
  cs.filler = fcs.filler;
  cs.fwd = fcs.fwd;
  cs.revalidating = fcs.revalidating;
  SaveRequestHeaders(fcs.saved_views);  // Vary: the stored response is this request's
  cs.filling = std::exchange(fcs.filling, false);
  req_ = Req::kDone;  // a GET without a body: all of it is in the head
  PickBackendAndSend();
}

ClientConn Exchange::RefreshClientConn() const {
  ClientConn c;
  c.listener = conn_.listener;
  c.requests = 1;
  c.peer = conn_.peer;
  c.proxied = std::make_unique<ClientConn::Proxied>();
  const sockaddr* client = ConnClient();
  std::memcpy(&c.proxied->source, client,
              client->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  if (conn_.proxied) {
    c.proxied->dest = conn_.proxied->dest;
  } else {
    socklen_t len = sizeof(c.proxied->dest);
    getsockname(client_conn()->fd(), reinterpret_cast<sockaddr*>(&c.proxied->dest), &len);
  }
  c.proxied->text = std::string(ConnClientText());
  return c;
}

void Exchange::CacheAddValidators() {
  std::string& head = buffers().upstream_head;
  head.resize(head.size() - 2);  // before the blank line
  cache::AddValidators(*buffers().cache.entry, &head);
  head.append("\r\n");
  StripConditionals(&head);
}

// Removes the client's If-None-Match / If-Modified-Since lines from a built upstream head that
// carries the entry's validators (appended last, so the last occurrence of each is ours).
void Exchange::StripConditionals(std::string* head) {
  for (std::string_view name : {std::string_view("if-none-match"),
                                std::string_view("if-modified-since")}) {
    size_t ours = std::string::npos;
    size_t at = head->find("\r\n") + 2;  // after the request line
    std::vector<std::pair<size_t, size_t>> lines;
    while (at < head->size()) {
      const size_t end = head->find("\r\n", at);
      if (end == std::string::npos || end == at) {
        break;
      }
      const std::string_view line(head->data() + at, end - at);
      const size_t colon = line.find(':');
      if (colon != std::string_view::npos && EqualsIgnoreCase(line.substr(0, colon), name)) {
        lines.emplace_back(at, end + 2 - at);
        ours = lines.size() - 1;
      }
      at = end + 2;
    }
    // Every occurrence but ours, back to front so offsets stay valid.
    for (size_t i = lines.size(); i-- > 0;) {
      if (i != ours) {
        head->erase(lines[i].first, lines[i].second);
      }
    }
  }
}

void Exchange::CachePurge(const MessageHead& h) {
  const ProxyConfig& config = cfg();
  const CacheSpec& spec = config.caches[static_cast<uint32_t>(config.routes[x().route].cache)];
  // The connection's client only (the socket peer, or a trusted PROXY header's source): a
  // PURGE is an administrative act, never trusted from a header.
  const ratelimit::IpAddr peer = ratelimit::IpFromSockaddr(ConnClient());
  if (spec.purge_allow.empty() || !spec.purge_allow.Contains(peer)) {
    SendLocalReply(403, "purge not allowed");
    return;
  }
  // Purge by tag: every entry of this cache stored with one of the request's Cache-Tag values
  // (in its Cache-Tag or Surrogate-Key field) goes, or with Soft-Purge: 1 turns stale.
  std::vector<std::string> tags;
  bool soft = false;
  for (const HeaderView& hv : h.headers) {
    if (EqualsIgnoreCase(hv.name, "cache-tag")) {
      cache::AppendTags(hv.value, &tags);
    } else if (EqualsIgnoreCase(hv.name, "soft-purge")) {
      soft = base::TrimOws(hv.value) == "1";
    }
  }
  if (!tags.empty()) {
    const int64_t now = ctx_.UnixNow();
    const size_t n = spec.store->PurgeMatching(
        [&](const std::shared_ptr<const cache::Entry>& e) -> std::shared_ptr<const cache::Entry> {
          if (!cache::CarriesTag(*e, tags)) {
            return e;
          }
          return soft ? cache::MarkedStale(*e, now) : nullptr;
        });
    size_t on_disk = 0;
    if (spec.disk) {
      on_disk = spec.disk->PurgeTags(tags, soft);
      WriteTombstones(ctx_.worker(), spec);
    }
    ctx_.stats().cache_purged += n;
    std::string text = soft ? "marked stale: " : "purged: ";
    AppendDecimal(&text, n);
    text.append(" entries");
    if (spec.disk) {
      text.append(" in memory, ");
      AppendDecimal(&text, on_disk);
      text.append(" on disk");
    }
    text.append("\n");
    SendLocalReply(n + on_disk > 0 ? 200 : 404, soft ? "soft purge by tag" : "purge by tag", {},
                   text);
    return;
  }
  std::string key;
  BuildCacheKey(scheme(), buffers().host, buffers().target, spec.key_query, spec.key_headers,
                h.headers, &key);
  const bool removed = RemoveWithVariants(ctx_.worker(), spec, key, &ctx_.scratch());
  if (removed) {
    ctx_.stats().cache_purged++;
  }
  SendLocalReply(removed ? 200 : 404, removed ? "purged" : "purge: not stored");
}

void Exchange::ResumeFromCacheWait(uint64_t ticket) {
  if (!b_ || !buffers().cache.waiting || buffers().cache.filler.c != ticket || down_.closing()) {
    return;  // answered (lock timeout) or gone since it began waiting
  }
  ExchangeBuffers::CacheState& cs = buffers().cache;
  cs.waiting = false;
  held_ = false;
  SetTimerFor(TimerFor::kNone, 0);
  const CacheSpec& spec = cfg().caches[static_cast<uint32_t>(cs.cache)];
  const RequestHeaders source(cs.saved_views);
  std::shared_ptr<const cache::Entry> entry = spec.store->Lookup(cs.key, cs.hash, source);
  if (entry &&
      cache::Evaluate(*entry, cs.req, ctx_.UnixNow()).verdict == cache::Verdict::kFresh) {
    ctx_.stats().cache_hits++;
    CountRoute(RouteSpec::kCacheHits);
    ServeEntry(entry, cs.saved_views, "torii; hit; collapsed");
  } else {
    CacheGoUpstream();
  }
  if (!down_.closing() && !held_) {
    down_.Continue();
  }
}

void Exchange::CacheWaitTimeout() {
  ExchangeBuffers::CacheState& cs = buffers().cache;
  const CacheSpec& spec = cfg().caches[static_cast<uint32_t>(cs.cache)];
  if (cs.waiting) {
    spec.store->LeaveFill(cs.key, cs.hash, cs.filler);
  }
  cs.waiting = false;
  cs.reading = false;
  held_ = false;
  SetTimerFor(TimerFor::kNone, 0);
  CacheGoUpstream();
  if (!down_.closing() && !held_) {
    down_.Continue();
  }
}

void Exchange::CacheGoUpstream() {
  ctx_.stats().cache_misses++;
  CountRoute(RouteSpec::kCacheMisses);
  buffers().cache.fwd = "miss";
  PickBackendAndSend();
}

void Exchange::CacheEndFill() {
  ExchangeBuffers::CacheState& cs = buffers().cache;
  if (!cs.filling) {
    return;
  }
  cs.filling = false;
  const CacheSpec& spec = cfg().caches[static_cast<uint32_t>(cs.cache)];
  ctx_.WakeCacheWaiters(spec.store->EndFill(cs.key, cs.hash, cs.filler));
}

bool Exchange::CacheOnUpstreamHead(const MessageHead& head) {
  ExchangeBuffers::CacheState& cs = buffers().cache;
  const CacheSpec& spec = cfg().caches[static_cast<uint32_t>(cs.cache)];
  const int64_t now = ctx_.UnixNow();
  const std::span<const cache::HeaderView> headers =
      ToCacheHeaders(head.headers, &ctx_.cache_headers());
  if (x().method_id != HTTP_GET && x().method_id != HTTP_HEAD) {
    if (cache::InvalidatesOnUnsafe(buffers().method, head.status)) {
      Invalidate(spec, head);
    }
    return false;
  }
  if (cs.revalidating && head.status == 304 && cs.entry) {
    auto refreshed = std::make_shared<cache::Entry>();
    const cache::Refresh r = cache::Refresh304(*cs.entry, headers, cs.request_time, now,
                                               spec.policy, refreshed.get());
    std::shared_ptr<const cache::Entry> serve = refreshed;
    RenderForHits(refreshed.get());
    if (r == cache::Refresh::kStore) {
      if (auto stored = spec.store->Insert(cs.key, cs.hash, refreshed)) {
        serve = std::move(stored);
      }
      CacheWriteDisk(spec, *serve);
    } else {
      // The 304 made the response uncacheable, or validated another representation: the
      // stored one goes.
      RemoveWithVariants(ctx_.worker(), spec, cs.key, &ctx_.scratch());
    }
    CacheEndFill();
    if (r == cache::Refresh::kMismatch) {
      // Our validators were answered for a representation we do not hold; the client sent
      // none of its own, so a 304 cannot go to it. Nothing left to serve it from.
      cs.entry.reset();
      cs.from_store = true;  // the backend's (empty) 304 body is not wanted either
      resp_ = Resp::kNone;
      SendLocalReply(502, "revalidation answered for another representation");
      return true;
    }
    ctx_.stats().cache_revalidated++;
    CountRoute(RouteSpec::kCacheRevalidated);
    cs.from_store = true;
    ServeEntry(serve, cs.saved_views, "torii; fwd=stale; fwd-status=304");
    return true;
  }
  if (head.status >= 500 && CacheServeStaleOnError(head.status)) {
    return true;
  }
  bool storing = false;
  if (x().method_id == HTTP_GET && !cs.no_store) {
    const cache::StoreDecision d = cache::Storable(cs.req, head.status, headers, spec.policy);
    const bool fits = head.framing != Framing::kContentLength ||
                      head.content_length <= spec.store->max_object();
    if (d.store && fits) {
      cs.pending = std::make_shared<cache::Entry>();
      cache::BuildEntryMeta(cs.req, head.status, headers, RequestHeaders(cs.saved_views),
                            cs.request_time, now, spec.policy, cs.pending.get());
      cs.pending_body.clear();
      if (head.framing == Framing::kContentLength) {
        cs.pending_body.reserve(head.content_length);
      }
      storing = true;
    }
  }
  if (!storing) {
    CacheEndFill();  // waiters go to the backend now rather than wait for nothing
  }
  // Cache-Status (RFC 9211) on the forwarded response.
  std::string& extra = buffers().resp_extra;
  if (!x().has_resp_extra) {
    extra.assign(cfg().routes[x().route].add_headers);
    x().has_resp_extra = true;
  }
  cs.status.assign("torii; fwd=");
  cs.status.append(cs.fwd);
  if (cs.revalidating) {
    cs.status.append("; fwd-status=");
    AppendDecimal(&cs.status, head.status);
  }
  if (storing) {
    cs.status.append("; stored");
  }
  base::AppendField(&extra, "Cache-Status", cs.status);
  return false;
}

void Exchange::Invalidate(const CacheSpec& spec, const MessageHead& head) {
  // RFC 9111 §4.4: the target URI, and Location / Content-Location when they name the same
  // host (another host's entries are never touched from here).
  ExchangeBuffers::CacheState& cs = buffers().cache;
  std::string& scratch = ctx_.scratch();
  bool removed = RemoveWithVariants(ctx_.worker(), spec, cs.key, &scratch);
  for (const HeaderView& hv : head.headers) {
    if (!EqualsIgnoreCase(hv.name, "location") && !EqualsIgnoreCase(hv.name, "content-location")) {
      continue;
    }
    std::string_view target = hv.value;
    std::string_view host = buffers().host;
    for (std::string_view prefix : {std::string_view("http://"), std::string_view("https://")}) {
      if (target.size() > prefix.size() &&
          EqualsIgnoreCase(target.substr(0, prefix.size()), prefix)) {
        const std::string_view rest = target.substr(prefix.size());
        const size_t slash = rest.find('/');
        if (!EqualsIgnoreCase(rest.substr(0, slash), host)) {
          target = {};
        } else {
          target = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
        }
      }
    }
    if (target.empty() || target.front() != '/') {
      continue;  // another host, or a relative reference we do not resolve
    }
    std::string key;
    BuildCacheKey(scheme(), host, target, spec.key_query, spec.key_headers, cs.saved_views,
                  &key);
    removed = RemoveWithVariants(ctx_.worker(), spec, key, &scratch) || removed;
  }
  if (removed) {
    ctx_.stats().cache_purged++;
  }
}

void Exchange::CacheOnUpstreamBody(std::string_view body) {
  ExchangeBuffers::CacheState& cs = buffers().cache;
  const CacheSpec& spec = cfg().caches[static_cast<uint32_t>(cs.cache)];
  if (cs.pending_body.size() + body.size() > spec.store->max_object()) {
    // Larger than max_object: passed through, not stored.
    cs.pending.reset();
    std::string().swap(cs.pending_body);
    CacheEndFill();
    return;
  }
  cs.pending_body.append(body);
}

void Exchange::CacheOnUpstreamDone() {
  ExchangeBuffers::CacheState& cs = buffers().cache;
  if (cs.pending) {
    const CacheSpec& spec = cfg().caches[static_cast<uint32_t>(cs.cache)];
    cs.pending->body = std::make_shared<const std::string>(std::move(cs.pending_body));
    cs.pending_body.clear();
    RenderForHits(cs.pending.get());
    if (auto stored = spec.store->Insert(cs.key, cs.hash, std::move(cs.pending))) {
      ctx_.stats().cache_stored++;
      CacheWriteDisk(spec, *stored);
    }
    cs.pending.reset();
  }
  CacheEndFill();
}

bool Exchange::CacheServeStaleOnError(int status) {
  ExchangeBuffers::CacheState& cs = buffers().cache;
  if (cs.cache < 0 || !cs.entry || cs.from_store ||
      !cache::StaleIfErrorAllowed(*cs.entry, cs.req, ctx_.UnixNow())) {
    return false;
  }
  ctx_.stats().cache_stale++;
  CountRoute(RouteSpec::kCacheStale);
  CacheEndFill();
  cs.from_store = true;
  x().note = "stale-if-error";
  std::string cache_status = "torii; fwd=stale; fwd-status=";
  AppendDecimal(&cache_status, static_cast<uint64_t>(status));
  cache_status.append("; detail=stale-if-error");
  ServeEntry(cs.entry, cs.saved_views, cache_status);
  return true;
}

void Exchange::CacheEndExchange() {
  if (!b_) {
    return;
  }
  ExchangeBuffers::CacheState& cs = buffers().cache;
  if (cs.cache < 0) {
    return;  // a request that never used a cache left its state as it found it
  }
  CacheEndFill();
  if (cs.waiting) {
    const CacheSpec& spec = cfg().caches[static_cast<uint32_t>(cs.cache)];
    spec.store->LeaveFill(cs.key, cs.hash, cs.filler);
  }
  cs.clear();
}

cache::Body Exchange::CompressedVariant(const std::shared_ptr<const cache::Entry>& entry,
                                        codec::Coding coding,
                                        std::span<const HeaderView> request_headers) {
  // Compressed once per coding and entry version, then served from the store: nginx and
  // HAProxy compress every hit again.
  ExchangeBuffers::CacheState& cs = buffers().cache;
  const CacheSpec& spec = cfg().caches[static_cast<uint32_t>(cs.cache)];
  std::string key;
  VariantKey(cs.key, codec::Name(coding), &key);
  const uint64_t hash = ratelimit::HashKey(key);
  if (auto v = spec.store->Lookup(key, hash, RequestHeaders(request_headers));
      v && v->source_id == entry->id && v->coding == static_cast<uint8_t>(coding)) {
    return v->body;
  }
  std::unique_ptr<codec::Encoder> encoder = ctx_.AcquireEncoder(coding);
  if (!encoder) {
    return nullptr;  // at the encoder cap: identity this time
  }
  std::string out;
  const uint64_t codec_start = cfg().timing ? core::MonotonicNs() : 0;
  const bool ok = encoder->Write(*entry->body, &out) && encoder->Finish(&out);
  if (codec_start != 0) {
    buffers().timing.codec_ns += core::MonotonicNs() - codec_start;
  }
  ctx_.stats().compressed++;
  ctx_.stats().compress_in += encoder->total_in();
  ctx_.stats().compress_out += encoder->total_out();
  ctx_.ReleaseEncoder(std::move(encoder));
  if (!ok) {
    return nullptr;
  }
  auto variant = std::make_shared<cache::Entry>(*entry);
  variant->body = std::make_shared<const std::string>(std::move(out));
  variant->coding = static_cast<uint8_t>(coding);
  variant->source_id = entry->id;
  variant->id = 0;
  variant->charge = 0;
  ctx_.stats().cache_variants++;
  cache::Body body = variant->body;
  spec.store->Insert(key, hash, std::move(variant));
  return body;
}

cache::RangeAnswer Exchange::RangeOf(const cache::Entry& entry,
                                     std::span<const HeaderView> request_headers) const {
  if (entry.status != 200 || x().method_id != HTTP_GET || !entry.body) {
    return {};  // Range is defined for GET only (RFC 9110 §14.2), and served on a 200
  }
  const HeaderView* range = nullptr;
  const HeaderView* if_range = nullptr;
  for (const HeaderView& hv : request_headers) {
    if (EqualsIgnoreCase(hv.name, "range")) {
      if (range != nullptr) {
        return {};  // two Range fields: ambiguous, ignored
      }
      range = &hv;
    } else if (EqualsIgnoreCase(hv.name, "if-range")) {
      if_range = &hv;
    }
  }
  if (range == nullptr || (if_range != nullptr && !cache::IfRangeHolds(if_range->value, entry))) {
    return {};
  }
  return cache::EvaluateRange(range->value, entry.body->size());
}

void Exchange::ServeEntry(const std::shared_ptr<const cache::Entry>& entry,
                          std::span<const HeaderView> request_headers,
                          std::string_view cache_status) {
  ExchangeBuffers::CacheState& cs = buffers().cache;
  const int64_t now = ctx_.UnixNow();
  const bool not_modified = cache::ClientNotModified(*entry, RequestHeaders(request_headers));
  // The stored head, less Age (ours replaces it). cache/ keeps names lowercased; HTTP/1.1
  // writes them in the usual capitalisation ("Content-Type"), as a miss sends them
  // (HeadEdits::title_case); HTTP/2 takes them as they are.
  std::vector<HeaderView>& views = cs.entry_views;
  StoredViews(*entry, &views);
  MessageHead head;
  head.status = not_modified ? 304 : entry->status;
  head.headers = views;
  head.version_minor = 1;
  cache::Body body = entry->body;
  head.framing = not_modified || entry->status == 204 ? Framing::kNone : Framing::kContentLength;
  head.content_length = body ? body->size() : 0;
  head.has_content_length = head.framing == Framing::kContentLength;
  // A Range on a GET of a stored 200 (RFC 9110 §14, cache/range.h): one range gets 206 and
  // its bytes, one that selects nothing gets 416; anything else gets the whole 200.
  const cache::RangeAnswer range =
      not_modified ? cache::RangeAnswer{} : RangeOf(*entry, request_headers);
  std::string& extra = buffers().resp_extra;
  if (!x().has_resp_extra) {
    extra.assign(cfg().routes[x().route].add_headers);
    x().has_resp_extra = true;
  }
  if (range.kind == cache::RangeKind::kSatisfiable) {
    head.status = 206;
    head.content_length = range.last - range.first + 1;
    extra.append("Content-Range: bytes ");
    AppendDecimal(&extra, range.first);
    extra.push_back('-');
    AppendDecimal(&extra, range.last);
    extra.push_back('/');
    AppendDecimal(&extra, body->size());
    extra.append("\r\n");
  } else if (range.kind == cache::RangeKind::kUnsatisfiable) {
    head.status = 416;
    head.headers = {};
    head.content_length = 0;
    extra.append("Content-Range: bytes */");
    AppendDecimal(&extra, body ? body->size() : 0);
    extra.append("\r\n");
    body.reset();
  }
  HeadEdits edits;
  edits.remove = cfg().routes[x().route].response_remove;
  edits.title_case = true;
  if (!head.headers.empty()) {
    edits.rendered = entry->rendered;  // the stored fields (a 416 sends none), rendered once
  }
  if (!not_modified && range.kind == cache::RangeKind::kIgnore) {
    const CompressionPlan plan =
        PlanCompression(cfg().compression, cfg().routes[x().route].compress, x().coding, head);
    edits.vary_accept_encoding = plan.vary;
    if (plan.encode != codec::Coding::kIdentity) {
      if (auto variant = CompressedVariant(entry, plan.encode, request_headers)) {
        body = std::move(variant);
        edits.content_encoding = codec::Name(plan.encode);
        edits.weaken_etag = true;
      }
    } else if (plan.decode) {
      // Stored as the backend coded it; this client does not accept that (decompress = true).
      auto decoder = codec::MakeDecoder(*plan.decode, cfg().compression.max_decoded);
      std::string out;
      if (decoder && decoder->Write(*body, &out) && decoder->Finish(&out)) {
        body = std::make_shared<const std::string>(std::move(out));
        edits.drop_content_encoding = true;
        edits.vary_accept_encoding = true;
        edits.weaken_etag = true;
      }
    }
    head.content_length = body ? body->size() : 0;
  }
  // Age (RFC 9111 §5.1) and Cache-Status (RFC 9211), after the route's own headers.
  extra.append("Age: ");
  AppendDecimal(&extra, static_cast<uint64_t>(cache::CurrentAge(*entry, now)));
  extra.append("\r\n");
  base::AppendField(&extra, "Cache-Status", cache_status);
  AppendRequestId(&extra);
  cs.status.assign(cache_status);
  if (conn_.draining) {
    close_after_ = true;
  }
  const bool head_req = x().method_id == HTTP_HEAD;
  x().status = head.status;
  resp_ = Resp::kStreaming;
  // A stored body's length is always known.
  down_.WriteHead(
      head, head.framing == Framing::kContentLength ? ResponseBody::kLength : ResponseBody::kNone,
      head_req, &close_after_, extra, edits);
  if (cfg().timing) {
    buffers().timing.response = ctx_.worker().now_ns();
  }
  if (!head_req && head.framing == Framing::kContentLength && body && !body->empty()) {
    cs.serving = std::move(body);
    const bool ranged = range.kind == cache::RangeKind::kSatisfiable;
    cs.offset = ranged ? range.first : 0;
    cs.end = ranged ? range.last + 1 : cs.serving->size();
    if (!ContinueServing()) {
      return;  // the rest follows as the client drains (OnWritable)
    }
  }
  down_.WriteEnd({});  // a stored response has its length: never the connection's end
  resp_ = Resp::kDone;
  MaybeFinishServed();
}

bool Exchange::ContinueServing() {
  ExchangeBuffers::CacheState& cs = buffers().cache;
  constexpr size_t kSlice = 64 * 1024;
  const std::string_view body = *cs.serving;
  const size_t end = cs.end;
  // Until the client's queue is above its high-water mark: WriteBlocked() is also what asks
  // for OnWritable() when it drains (stopping at the mark itself would wait for nothing).
  while (cs.offset < end && !down_.closing() && !down_.WriteBlocked()) {
    const size_t n = std::min(kSlice, end - cs.offset);
    down_.WriteStoredBody(body.substr(cs.offset, n), cs.serving.keep());
    cs.offset += n;
    x().bytes_sent += n;
    CountRoute(RouteSpec::kCacheBytes, n);
  }
  if (cs.offset < end) {
    // A slow reader must drain within send_timeout (D3), as for a proxied body.
    SetTimerFor(TimerFor::kSend, cfg().limits.send_timeout_ms);
    return false;
  }
  cs.serving.reset();
  return true;
}

void Exchange::MaybeFinishServed() {
  if (resp_ == Resp::kDone && req_ == Req::kDone && !up_.valid() && !down_.closing()) {
    FinishExchange();
  }
}

}  // namespace torii::http
