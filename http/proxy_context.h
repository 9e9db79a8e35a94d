// http/proxy_context.h: what one worker's proxy sessions share.
//
// One ProxyContext per worker thread, created before the worker runs and destroyed after it
// stops (so it outlives every session). It holds the active ProxyConfig, a Picker per pool
// (per worker, so picks never contend), the idle upstream connections of each backend (as
// ConnRefs: a pooled connection that closed resolves to nullptr and is skipped), the access
// log writer and the worker's counters.
#pragma once

#include <cstdint>
#include <deque>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/picker.h"
#include "base/log_limit.h"
#include "cache/entry.h"
#include "cache/policy.h"
#include "cache/store.h"
#include "core/counter.h"
#include "core/worker.h"
#include "http/access_log.h"
#include "http/compression_plan.h"
#include "http/fleet_limits.h"
#include "http/h1_parser.h"
#include "http/phases.h"
#include "http/proxy_config.h"
#include "http/trace.h"

namespace torii::http {

// The state of one exchange (a request and its response), reset in one go at each request.
// It lives in the exchange's pooled ExchangeBuffers, not in the session: an idle connection
// keeps none of it.
struct ExchangeState {
  std::string_view note;       // why torii answered locally or cut the exchange (access log)
  uint64_t key_hash = 0;       // ip_hash key
  uint64_t queue_ticket = 0;   // max_conns queue: the ticket this request waits with (0: none)
  uint64_t delay_ms = 0;       // rate limit delay mode: hold the request this long
  uint64_t bytes_sent = 0;     // response body bytes sent to the client
  uint64_t bytes_up = 0;       // tunnel bytes from the client to the backend
  uint64_t body_start_ms = 0;  // when the request's body phase began
  uint64_t body_bytes = 0;     // request bytes received since then (body_min_rate)
  uint32_t pool = 0;
  uint32_t backend = 0;
  uint32_t attempts = 0;
  uint32_t retries_used = 0;  // retries on another backend (pool.retries caps them)
  uint32_t route = 0;
  int status = 0;
  Framing req_framing = Framing::kNone;
  uint8_t method_id = 0;
  uint8_t version_major = 1;
  uint8_t version_minor = 1;
  CodingRequest coding;           // what the client accepts (compression)
  bool flush_each_piece = false;  // event stream: flush the encoder per piece
  bool has_resp_extra = false;    // buffers().resp_extra holds this request's response headers
  bool have_backend = false;
  bool fresh_retry_used = false;  // the one retry of a reused connection's keep-alive race
  bool force_fresh = false;       // retry on a new connection, not a pooled one
  uint8_t interim_sent = 0;       // 103 responses forwarded (at most Exchange::kMaxInterim)
  bool configured_reply = false;  // a return route's reply: the connection stays open
  bool routed = false;            // `route` holds this request's route
  bool upgrade = false;           // the request's upgrade was forwarded (upgrade.h)
  bool tunnel = false;            // the backend said 101: the connection is a tunnel
  bool switched = false;          // ... and stays true after the tunnel ends (the log)
  bool connect_protocol = false;  // an HTTP/2 extended CONNECT (MessageHead::connect_protocol)
  bool grpc = false;              // a gRPC call (grpc.h): local failures answered as gRPC
  bool early = false;             // the request came in TLS early data (logged)
  bool early_forward = false;     // ... and goes to the backend before the handshake ends
  bool await_handshake = false;   // ... and may go only after it (HoldForHandshake)
  bool early_marked = false;      // torii added Early-Data: 1 to the upstream head
  // The trace context (Exchange::AssignIds): off, read from the client's traceparent or to be
  // started, with its random parts still to make (Exchange::SettleTrace), or settled.
  enum class Trace : uint8_t { kOff, kContinue, kStart, kSettled };
  Trace trace = Trace::kOff;
  uint64_t grpc_timeout_ms = 0;   // its grpc-timeout (0: none)
  std::unique_ptr<codec::Encoder> encoder;  // compressing the response being sent
  std::unique_ptr<codec::Decoder> decoder;  // decompress: the backend's coding, undone
};

// The growable memory of one exchange (a request and its response on one connection): the
// input buffer, the head storage and the strings kept for the log and a retry. Borrowed from
// the worker's pool when a message starts and returned when the connection goes idle, so an
// idle connection holds none of it and a busy worker allocates nothing per request.
struct ExchangeBuffers {
  ExchangeBuffers() { parser_.set_storage(&head); }
  ExchangeBuffers(const ExchangeBuffers&) = delete;
  ExchangeBuffers& operator=(const ExchangeBuffers&) = delete;
  // The HTTP/1.1 parser, initialised as AcquireBuffers asked at its first use (llhttp keeps
  // no state between messages): an HTTP/2 exchange, which never parses, never pays for it.
  H1Parser& parser() {
    if (parser_pending_) {
      parser_pending_ = false;
      parser_.Init(parser_kind_, parser_limits_);
    }
    return parser_;
  }
  void InitParserOnUse(H1Parser::Kind kind, const H1Parser::Limits& limits) {
    parser_kind_ = kind;
    parser_limits_ = limits;
    parser_pending_ = true;
  }
  HeadStorage head;
  std::string in;
  std::string method;
  std::string target;  // origin-form target sent upstream
  std::string host;    // Host sent upstream (authority of an absolute-form target wins)
  std::string upstream_head;  // the re-serialised request head, kept for a retry
  std::string resp_extra;     // headers added to this exchange's response (rate limit state)
  // Who the client is (Exchange::ResolveClient, at the request head): the socket peer,
  // or behind trusted_proxies the right-most untrusted X-Forwarded-For hop.
  ratelimit::IpAddr client;
  std::string client_text;    // the client's address when it is not the peer ("" otherwise)
  std::string forwarded_for;  // from a trusted peer: its X-Forwarded-For chain, then the peer
  // Request ID and trace context (AssignIds): the ID, the trace's 32-hex id for the log, and
  // the "Name: value\r\n" lines the backend gets in place of the client's. `trace` is torii's
  // span (state.trace says what of it is made yet); trace_id is its id in hex once settled.
  std::string request_id;
  TraceParent trace;
  std::string trace_id;
  std::string user;  // who Basic authentication admitted ("" when the route has none)
  std::string id_lines;
  // The Sec-WebSocket-Accept due in the backend's 101 when torii made the handshake's key
  // (an HTTP/2 client's WebSocket, RFC 8441); empty otherwise.
  std::string ws_accept;
  balancer::BackendMask exclude;  // backends already tried for this request (retries)
  // Phase timestamps (ProxyConfig::timing): the latency budget (phases.h). Kept here, not in
  // the session, so idle connections pay nothing.
  ExchangeTiming timing;
  ExchangeState state;    // Exchange::x(): the exchange's own state
  uint64_t start_ms = 0;  // when the exchange began (Exchange::Begin), for its latency
  // The response cache's state for this exchange (routes with a cache; session_cache.cc).
  struct CacheState {
    int32_t cache = -1;  // the route's cache (ProxyConfig::caches) when this request uses it
    std::string key;     // primary key: scheme, host, target, key headers
    uint64_t hash = 0;   // keyed hash of `key`
    cache::Request req;  // the request's cache-relevant facts (method is a literal)
    int64_t request_time = 0;  // when the request went to the backend (Unix s)
    std::shared_ptr<const cache::Entry> entry;  // a stored response still usable (revalidation,
                                                // stale-if-error)
    std::shared_ptr<cache::Entry> pending;      // the backend's response being stored
    std::string pending_body;
    cache::Body serving;  // body being written to the client
    size_t offset = 0;
    size_t end = 0;            // where the bytes being served end (a range's, or the body's)
    cache::Waiter filler;      // coalescing: this request's record (c = its ticket)
    const char* fwd = "miss";  // Cache-Status fwd= of a forwarded request
    std::string status;        // the Cache-Status sent (for the access log)
    std::string saved;         // the request's header fields, kept past its head
    std::vector<HeaderView> saved_views;
    std::vector<HeaderView> entry_views;  // scratch: a stored head as views
    bool filling = false;      // this request leads the fetch of `key` (EndFill due)
    bool waiting = false;      // parked behind another request's fetch
    bool reading = false;      // parked while the disk tier reads its record
    bool revalidating = false; // the request carries the entry's validators
    bool from_store = false;   // the client is answered from the store; upstream body ignored
    bool no_store = false;     // the response must not be stored (a GET with a body)
    void clear() {
      cache = -1;
      key.clear();
      hash = 0;
      entry.reset();
      pending.reset();
      pending_body.clear();
      serving.reset();
      offset = 0;
      end = 0;
      filler = cache::Waiter{};
      fwd = "miss";
      status.clear();
      saved.clear();
      saved_views.clear();
      filling = waiting = reading = revalidating = from_store = no_store = false;
    }
  } cache;
  void clear() {
    cache.clear();
    head.clear();
    in.clear();
    method.clear();
    target.clear();
    host.clear();
    upstream_head.clear();
    resp_extra.clear();
    client_text.clear();
    forwarded_for.clear();
    request_id.clear();
    trace_id.clear();
    id_lines.clear();
    timing = ExchangeTiming{};
    state = ExchangeState{};
  }

 private:
  H1Parser parser_;
  H1Parser::Limits parser_limits_;
  H1Parser::Kind parser_kind_ = H1Parser::Kind::kRequest;
  bool parser_pending_ = false;
};

// Per-worker counters (core::Counter: written by this worker only, read by the admin
// endpoint from its own thread and summed over workers).
struct ProxyStats {
  // Request durations (first byte to response end), for the latency histogram.
  static constexpr uint64_t kLatencyBoundsUs[] = {1000,   5000,   10000,   25000,   50000,
                                                  100000, 250000, 500000, 1000000, 2500000,
                                                  5000000, 10000000};
  static constexpr size_t kLatencyBuckets = std::size(kLatencyBoundsUs) + 1;  // + "+Inf"

  core::Counter requests;
  core::Counter responses_by_class[6];  // index status / 100 (0 = aborted)
  core::Counter bytes_sent;             // response body bytes to clients
  core::Counter upstream_connects;
  core::Counter upstream_reused;
  core::Counter upstream_connect_failures;
  core::Counter retries;
  core::Counter aborted;  // client connections cut mid-response (backend died mid-body, ...)
  core::Counter conns_refused;  // closed at accept by max_conns / max_conns_per_ip
  core::Counter denied;         // 403 by an access list or a ban
  core::Counter rate_limited;   // 429
  core::Counter bans;           // keys banned
  core::Counter queued;         // requests that waited for a max_conns slot
  core::Counter compressed;     // responses encoded
  core::Counter compress_in;    // bytes before / after encoding
  core::Counter compress_out;
  core::Counter spliced_bytes;  // response body bytes moved socket to socket (splice_min)
  // Response cache (RFC 9211 Cache-Status outcomes).
  core::Counter cache_hits;         // answered from the store (fresh, or stale within limits)
  core::Counter cache_misses;       // forwarded: nothing usable stored
  core::Counter cache_revalidated;  // a stale entry refreshed by a 304
  core::Counter cache_stale;        // served stale (stale-if-error)
  core::Counter cache_collapsed;    // waited for another request's fetch of the same URL
  core::Counter cache_stored;       // responses stored
  core::Counter cache_variants;     // compressed variants made (once per coding and version)
  core::Counter cache_purged;       // PURGE and unsafe-method invalidations that removed entries
  core::Counter cache_refreshes;    // stale-while-revalidate refreshes sent in the background
  // Upgraded connections (WebSocket): opened and ended (active = the difference), and the
  // bytes they carried each way.
  core::Counter tunnels_opened;
  core::Counter tunnels_closed;
  core::Counter tunnel_bytes_up;                   // client to backend
  core::Counter tunnel_bytes_down;                 // backend to client
  // HTTP/2 to clients: connections, request streams, streams reset (by either side, with an
  // error code), and connections ended for resetting streams too fast (rapid reset).
  core::Counter h2_connections;
  core::Counter h2_streams;
  core::Counter h2_resets;
  core::Counter h2_calm;
  // HTTP/2 to backends: connections opened, streams opened, streams the backend refused
  // unprocessed (REFUSED_STREAM or above its GOAWAY's last stream id).
  core::Counter h2_up_connections;
  core::Counter h2_up_streams;
  core::Counter h2_up_refused;
  core::Counter latency_buckets[kLatencyBuckets];  // non-cumulative
  core::Counter latency_sum_us;
  // The latency budget: a histogram per phase (phases.h), buckets kPhaseBoundsUs.
  static constexpr uint64_t kPhaseBoundsUs[] = {50,    100,   250,    500,    1000,   2500,
                                                5000,  10000, 25000,  50000,  100000, 250000,
                                                1000000};
  static constexpr size_t kPhaseBuckets = std::size(kPhaseBoundsUs) + 1;
  core::Counter phase_buckets[kPhaseCount][kPhaseBuckets];  // non-cumulative
  core::Counter phase_sum_us[kPhaseCount];

  void ObservePhases(const PhaseTimes& p) {
    for (size_t i = 0; i < kPhaseCount; ++i) {
      if (!p.has(static_cast<Phase>(i))) {
        continue;
      }
      const uint64_t us = p.ns[i] / 1000;
      size_t b = 0;
      while (b < std::size(kPhaseBoundsUs) && us > kPhaseBoundsUs[b]) {
        ++b;
      }
      phase_buckets[i][b]++;
      phase_sum_us[i] += us;
    }
  }

  void ObserveLatency(uint64_t us) {
    size_t i = 0;
    while (i < std::size(kLatencyBoundsUs) && us > kLatencyBoundsUs[i]) {
      ++i;
    }
    latency_buckets[i]++;
    latency_sum_us += us;
  }
};

class CacheRefresher;
class ProxyContext;

// One config version on one worker: the ProxyConfig and this worker's state for its pools
// (pickers, health views, idle upstream connections, max_conns waiters). A session holds the
// generation its exchange started under (a shared_ptr), so a reload never changes the config
// under a request in flight: requests in flight finish on the old generation, new requests
// start on the new one, and an old generation's idle upstream connections are closed rather
// than reused (its pools drain as their exchanges end).
class Generation {
 public:
  Generation(ProxyContext& ctx, std::shared_ptr<const ProxyConfig> config);
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  const ProxyConfig& config() const { return *config_; }
  // Still the worker's active generation (connections of a retired one are not pooled).
  bool current() const;

  balancer::Picker& picker(uint32_t pool) { return *pools_[pool].picker; }
  // The backends of `pool` that may take traffic now (health checks, passive ejections).
  const balancer::BackendMask& healthy(uint32_t pool);
  // Live-traffic evidence about a backend (passive health): a failure (logged when it ejects
  // the backend) or a response that went well.
  void ReportBackendFailure(uint32_t pool, uint32_t backend, std::string_view why);
  void ReportBackendSuccess(uint32_t pool, uint32_t backend);
  // Whether a response status counts as a backend failure for `pool` (fail_status).
  bool IsFailureStatus(uint32_t pool, int status) const;

  // max_conns. The backends that are healthy and have a free slot (the healthy mask itself
  // when the pool has no limit); valid until the next call.
  const balancer::BackendMask& available(uint32_t pool);
  // Takes one of `backend`'s slots (always succeeds without a limit). The holder must give it
  // back with ReleaseSlot() exactly once.
  bool TryAcquireSlot(uint32_t pool, uint32_t backend);
  void ReleaseSlot(uint32_t pool, uint32_t backend);
  // A request waiting for a slot: the client connection and the ticket it was queued with.
  // Waiters are resumed in FIFO order (ResumeQueuedRequest) when a slot frees on this worker,
  // and polled every few ms for slots freed by other workers. `front` puts back a waiter that
  // was resumed but lost the race for the slot.
  void Enqueue(uint32_t pool, core::ConnRef client, uint64_t ticket, bool front);
  // Resumes the waiters that may go; true when some still wait.
  bool KickWaiters();

  // An idle pooled connection to (pool, backend), or nullptr. The most recently used first,
  // so surplus connections age out at the keep-alive timeout.
  core::Conn* TakeIdle(uint32_t pool, uint32_t backend);
  // Files `conn` as idle for (pool, backend). Returns false when the per-backend cap is
  // reached, the worker is draining or this generation was retired (the caller closes it).
  bool PutIdle(uint32_t pool, uint32_t backend, core::Conn& conn);
  // Forgets `ref` (the connection closed while idle).
  void DropIdle(uint32_t pool, uint32_t backend, core::ConnRef ref);
  // HTTP/2 pools: this worker's multiplexed connections to (pool, backend), each open to new
  // streams (h2_upstream.h adds and removes itself).
  std::vector<core::ConnRef>& shared(uint32_t pool, uint32_t backend) {
    return pools_[pool].shared[backend];
  }
  // ... and the SETTINGS_MAX_CONCURRENT_STREAMS the backend said last: what a new connection
  // to it may carry before its own SETTINGS arrive (100 until one did, as nghttp2 assumes).
  uint32_t& h2_peer_streams(uint32_t pool, uint32_t backend) {
    return pools_[pool].h2_peer_streams[backend];
  }
  // Replacing `old` (a reload, or DNS changing a pool): takes over old's idle HTTP/1.1
  // connections to each backend that stays, in a pool whose settings and TLS context are
  // unchanged (up to keepalive per backend), so a change to one pool costs the others nothing.
  // `self` is this generation's shared_ptr (the connections hold one).
  void Adopt(Generation& old, const std::shared_ptr<Generation>& self);
  // Replaced by a reload: closes the idle upstream connections of every pool (those Adopt()
  // did not take), and lets the multiplexed ones finish their streams and close.
  void Retire();

 private:
  struct Waiter {
    core::ConnRef client;
    uint64_t ticket = 0;
  };
  struct PoolState {
    std::unique_ptr<balancer::Picker> picker;
    balancer::HealthView health;
    balancer::BackendMask available;  // scratch for available()
    balancer::BackendMask ramped;     // scratch for available() during a slow start
    uint64_t ramp_until = 0;          // no backend is in its slow start from then on
    std::deque<Waiter> waiters;
    std::vector<std::vector<core::ConnRef>> idle;    // per backend
    std::vector<std::vector<core::ConnRef>> shared;  // per backend: HTTP/2 connections
    std::vector<uint32_t> h2_peer_streams;           // per backend (h2_peer_streams())
  };
  // Slow start: `base` without the backends that sit this pick out.
  const balancer::BackendMask& Ramp(uint32_t pool, const balancer::BackendMask& base);

  ProxyContext& ctx_;
  std::shared_ptr<const ProxyConfig> config_;
  std::vector<PoolState> pools_;
  uint64_t rng_ = 0x9E3779B97F4A7C15ull;  // xorshift state for slow start's draws
};

class ProxyContext {
 public:
  ProxyContext(core::Worker& worker, std::shared_ptr<const ProxyConfig> config,
               std::unique_ptr<AccessLog> log);
  ~ProxyContext();

  core::Worker& worker() { return worker_; }
  // The active config (new sessions and requests); a session reads its own generation's.
  const ProxyConfig& config() const { return current_->config(); }
  const std::shared_ptr<Generation>& generation() const { return current_; }
  // Hot reload, on the worker's thread: `config` becomes the active generation; the old one
  // serves the requests in flight and is retired (its idle upstream connections close).
  void Reload(std::shared_ptr<const ProxyConfig> config);
  uint64_t reloads() const { return reloads_; }
  AccessLog& log() { return *log_; }
  ProxyStats& stats() { return stats_; }
  const ProxyStats& stats() const { return stats_; }
  const core::Worker& worker() const { return worker_; }
  // Scratch for building a head or a chunk header that is written out at once (never held
  // across calls).
  std::string& scratch() { return scratch_; }
  // Random IDs for requests and traces (this worker's).
  IdSource& ids() { return ids_; }
  // This worker's leases of the fleet-wide rate limits, and its Redis connection.
  FleetLimits& fleet() { return fleet_; }
  const FleetLimits& fleet() const { return fleet_; }

  // Buffers for a new exchange, with their parser initialised as `kind` with `limits` at its
  // first use. Released buffers are kept for the next exchanges: as many as were in flight
  // lately (each second, those the pool did not need go), so a busy worker allocates none
  // and a burst's are given back.
  std::unique_ptr<ExchangeBuffers> AcquireBuffers(H1Parser::Kind kind,
                                                  const H1Parser::Limits& limits);
  void ReleaseBuffers(std::unique_ptr<ExchangeBuffers> buffers);
  // A TLS connection's plaintext of one loop turn waits in one of these until it is sealed
  // (TlsTransport): at most a record's worth each, kept warm per worker (a few) so a busy
  // connection neither grows nor frees a buffer per turn, and an idle one holds none.
  std::string TakeSealBuffer();
  void GiveSealBuffer(std::string buffer);

  uint64_t NextQueueTicket() { return ++queue_tickets_; }

  // Encoders kept warm per coding (a compressor's state is hundreds of KiB to set up). At most
  // kMaxActiveEncoders are in use per worker (each holds up to ~2 MiB): past that, responses go
  // out uncompressed (nullptr) rather than let concurrency grow memory without bound.
  static constexpr uint32_t kMaxActiveEncoders = 256;
  std::unique_ptr<codec::Encoder> AcquireEncoder(codec::Coding coding);
  void ReleaseEncoder(std::unique_ptr<codec::Encoder> encoder);
  // Where a codec writes what it produced (never held across calls).
  std::string& codec_out() { return codec_out_; }

  // Request coalescing across workers: every worker's context (set once before the workers
  // run), so the end of a fetch can wake the requests other workers park behind it.
  void set_siblings(std::shared_ptr<const std::vector<ProxyContext*>> all) {
    siblings_ = std::move(all);
  }
  // Wakes the waiters of a fetch that ended (their worker runs ResumeCacheWaiter).
  void WakeCacheWaiters(const std::vector<cache::Waiter>& waiters);
  // stale-while-revalidate: this worker's background refreshes (made with the first).
  CacheRefresher& refresher();
  // Wall clock in Unix seconds (cache freshness and Age), read once per loop turn at most.
  int64_t UnixNow();
  // Scratch for header views handed to the cache (never held across calls).
  std::vector<cache::HeaderView>& cache_headers() { return cache_headers_; }

  // A connection closed at accept by a connection limit: counted, and logged at most once a
  // second per worker (a flood must not flood the log).
  void NoteRefusedConnection(std::string_view listener, std::string_view why);
  // A TLS handshake (or session) failed: logged with the peer and the reason, at most once a
  // second per worker with a count of the others (a flood of garbage must not flood the log).
  // Counted by tls/ (HandshakeStats).
  void NoteTlsFailure(const core::Conn& conn, std::string_view why);

 private:
  friend class Generation;
  core::Worker& worker_;
  std::shared_ptr<Generation> current_;
  // Every generation that may still have max_conns waiters (the kick task polls them all).
  std::vector<std::weak_ptr<Generation>> generations_;
  uint64_t reloads_ = 0;
  std::unique_ptr<AccessLog> log_;
  ProxyStats stats_;
  FleetLimits fleet_;
  std::string scratch_;
  IdSource ids_;
  std::vector<std::unique_ptr<ExchangeBuffers>> free_buffers_;
  // Every kBufferTrimMs while the pool holds any, the buffers it never needed go.
  void TrimBuffers();
  size_t free_low_ = 0;  // the fewest the pool held since the last trim
  bool trim_created_ = false;
  bool trim_armed_ = false;
  core::Worker::TaskId trim_task_ = 0;
  std::vector<std::string> seal_buffers_;
  // The queue's wake-up: a worker task, created with the first waiter.
  void KickWaiters();
  void ArmKick(uint64_t delay_ms);
  bool kick_created_ = false;
  core::Worker::TaskId kick_task_ = 0;
  uint64_t kick_at_ = 0;  // when the armed kick fires (0 = not armed)
  uint64_t queue_tickets_ = 0;
  std::vector<std::unique_ptr<codec::Encoder>> free_encoders_[4];  // by codec::Coding
  uint32_t active_encoders_ = 0;
  std::string codec_out_;
  std::shared_ptr<const std::vector<ProxyContext*>> siblings_;
  std::vector<cache::HeaderView> cache_headers_;
  uint64_t unix_at_ms_ = ~uint64_t{0};  // worker now_ms() when unix_now_ was read
  int64_t unix_now_ = 0;
  base::LogLimit tls_log_;
  base::LogLimit refused_log_;
  // Last: its exchanges use the rest while it ends them.
  std::unique_ptr<CacheRefresher> refresher_;
};

}  // namespace torii::http
