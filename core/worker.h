// core/worker.h: one io_uring event loop per thread, and the connections it owns.
//
// A Worker owns its ring, its provided-buffer ring, its listening sockets, a slab of
// connection slots (client and upstream alike), its timers and its out-queue blocks. A
// connection never moves between workers. Protocol code (http/) sees a Conn through a narrow
// surface (Write, PauseRecv/ResumeRecv, SetTimer, Close, CloseAfterFlush) and receives events
// through the ConnHandler interface; it never touches the ring.
//
// Lifetime rules (a completion can arrive after its connection was closed: the classic
// io_uring use-after-free):
//  1. user_data carries (slot, generation, op), never a pointer. A completion whose generation
//     no longer matches is dropped (and its provided buffer recycled).
//  2. Every submitted operation counts +1 on its connection; a CQE without IORING_CQE_F_MORE
//     counts -1. Close() is a state, not a delete: it cancels everything on the fd, waits for
//     the count to reach zero, closes the fd through the ring, and only when that final CQE is
//     in does BeforeSleep() destroy the handler and bump the slot's generation. So a handler
//     may close its own connection (or another) from inside a callback and keep using `this`
//     until the callback returns.
//  3. Bytes being sent stay in the connection's OutQueue until the send completes.
//  4. Timers are intrusive entries in the connection, unlinked on Close().
//  5. Other code keeps ConnRef{slot, gen}, never Conn*, across loop turns; Resolve() gives
//     nullptr for a connection that is gone.
#pragma once

#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "base/slab.h"
#include "core/buf_ring.h"
#include "core/counter.h"
#include "core/op_tag.h"
#include "core/out_queue.h"
#include "core/result.h"
#include "core/timer_wheel.h"
#include "core/transport.h"

namespace torii::core {

class Conn;
class Worker;

// CLOCK_MONOTONIC in milliseconds: the time base of every timer.
uint64_t MonotonicMs();
// The same clock in nanoseconds.
uint64_t MonotonicNs();

// A reference to a connection that survives loop turns. Resolve it through the worker every
// time; a stale reference resolves to nullptr.
struct ConnRef {
  static constexpr uint32_t kNone = ~uint32_t{0};
  uint32_t slot = kNone;
  uint32_t gen = 0;
  bool valid() const { return slot != kNone; }
  void reset() { slot = kNone; }
};

// What Conn::ForwardTo reports to the source's handler (ConnHandler::OnForwarded).
struct ForwardProgress {
  uint64_t bytes = 0;    // more of the forwarded input reached the destination (or its queue)
  uint64_t spliced = 0;  // ... of which went by splice (the rest had been received already)
  bool done = false;     // the last byte did; receiving has resumed
  // With `done`: the source had sent more than was forwarded, already received (its handler
  // gets it next, through OnRecv): whatever the bytes are, they arrived too early.
  bool input_follows = false;
};

// What a connection's owner (http/) implements. Every callback runs on the worker's thread,
// from the loop; `conn` is valid for the duration of the call.
class ConnHandler {
 public:
  virtual ~ConnHandler() = default;
  // Bytes arrived. `data` lives in a provided buffer that returns to the kernel as soon as
  // the call returns: copy whatever must outlive it. May be called while receive is paused
  // (completions already posted before the pause took effect).
  virtual void OnRecv(Conn& conn, std::span<const char> data) = 0;
  // The peer closed its sending side (FIN). No more OnRecv follows.
  virtual void OnEof(Conn& conn) = 0;
  // Receiving or sending failed (reset, broken pipe, ...). The connection is unusable; the
  // handler should Close() it.
  virtual void OnError(Conn& conn, Error error) = 0;
  // The deadline set with Conn::SetTimer() passed.
  virtual void OnTimer(Conn& conn) = 0;
  // Conn::ForwardTo's progress (ForwardProgress).
  virtual void OnForwarded(Conn& /*conn*/, const ForwardProgress& /*progress*/) {}
  // An outbound connect finished (Worker::Connect).
  virtual void OnConnected(Conn& /*conn*/, Result<void> /*result*/) {}
  // The output queue went from above Conn::kHighWater to below Conn::kLowWater.
  virtual void OnWritable(Conn& /*conn*/) {}
  // The worker is stopping gracefully: finish what is in progress and close.
  virtual void OnDrain(Conn& /*conn*/) {}
  // Asked for by Conn::WantFlush(): once, late in the loop turn, before the sends go out.
  virtual void OnFlush(Conn& /*conn*/) {}
  // The transport finished setting up after it had already delivered bytes (a TLS handshake
  // completing after its early data).
  virtual void OnTransportReady(Conn& /*conn*/) {}
  // Last call before the handler is destroyed and the slot reused.
  virtual void OnClosed(Conn& /*conn*/) {}
};

// Creates the handler of an accepted connection. `listener` is the index given to
// Worker::AddListener. Returning nullptr closes the connection.
using AcceptFn = std::function<std::unique_ptr<ConnHandler>(Conn& conn, uint32_t listener)>;

struct WorkerOptions {
  uint32_t id = 0;
  uint32_t sq_entries = 4096;
  uint32_t cq_entries = 0;  // 0 = 4 * sq_entries
  uint32_t recv_buffers = 1024;
  uint32_t recv_buffer_size = 16 * 1024;
  uint32_t max_conns = 16384;
  uint64_t drain_grace_ms = 10000;
  uint64_t linger_ms = 2000;  // lingering close: how long to drain a closing client's input
};

struct WorkerStats {
  uint64_t accepted = 0;
  uint64_t accept_rejected = 0;    // table full or draining
  uint64_t accept_errors = 0;      // EMFILE & co: accepting paused
  uint64_t stale_completions = 0;  // generation mismatch: rule 1 says it can't hurt; counted
  uint64_t enobufs = 0;            // recv re-armed after the buffer ring ran dry
  uint64_t cq_backlog = 0;         // CQEs reaped early because submit said EBUSY
  uint64_t sq_full = 0;            // io_uring_get_sqe had to submit to make room
  uint64_t idle_evicted = 0;       // idle connections closed to admit a new client at max_conns
  uint64_t connects = 0;
  uint64_t conns_live = 0;
  uint64_t heap_trims = 0;  // malloc_trim calls after bursts (TrimHeap)
  uint64_t batched_waits = 0;  // waits for a batch of completions (Worker::SubmitAndWait)
  uint64_t recv_ring_releases = 0;  // quiet seconds after which the receive ring's pages went back
  uint64_t forwards = 0;            // Conn::ForwardTo calls that started
  uint64_t spliced_bytes = 0;       // bytes forwards moved by splice (not through user space)
  uint64_t forward_yields = 0;      // pumps that used their rounds, going on in the next turn
};

class Conn : public base::SlabAllocated<Conn> {
 public:
  static constexpr size_t kHighWater = 256 * 1024;
  static constexpr size_t kLowWater = 64 * 1024;
  static constexpr int kMaxIov = 16;

  enum class State : uint8_t { kFree, kConnecting, kOpen, kLingering, kClosing };

  ConnRef ref() const { return ConnRef{slot_, gen_}; }
  Worker& worker() const { return *worker_; }
  int fd() const { return fd_; }
  State state() const { return state_; }
  // True once Close(), Abort() or CloseAfterFlush() was called: no new work may start, and
  // the handler receives no more OnRecv (input after a decided close is never parsed).
  bool closing() const {
    return state_ == State::kClosing || state_ == State::kLingering || close_after_flush_;
  }
  // The peer's address (IPv4 or IPv6): the client, or the backend connected to.
  const sockaddr* peer() const { return &peer_.sa; }
  ConnHandler* handler() const { return handler_.get(); }
  void set_handler(std::unique_ptr<ConnHandler> handler) { handler_ = std::move(handler); }
  // A layer between the socket and the handler (TLS); see core/transport.h. Set it before
  // the first byte moves (at accept, or right after Worker::Connect).
  Transport* transport() const { return transport_.get(); }
  void set_transport(std::unique_ptr<Transport> transport) { transport_ = std::move(transport); }

  // Queues bytes; they are sent in the loop's BeforeSleep step (one send in flight at most).
  // Ignored once the connection is closing.
  void Write(std::string_view bytes);
  // Like Write() for bytes that lie inside the receive buffer being delivered right now (by
  // this or another connection's OnRecv): the buffer is lent to the send instead of copied,
  // while the ring can spare it, this queue is short and they are not few (kLendMin);
  // otherwise the bytes are copied.
  void WriteFromRecvBuffer(std::string_view bytes);
  // Below this, bytes are copied even from a receive buffer: the copy costs less than lending,
  // and a short response's head and body then leave in one piece (a plain send).
  static constexpr size_t kLendMin = 1024;
  // Like Write() for bytes that `owner` keeps alive (a stored response's body): the queue holds
  // a reference to `owner` until they are sent, instead of a copy. Through a transport (TLS)
  // they are copied as they are transformed, and below kPinMin copying costs less.
  static constexpr size_t kPinMin = 16 * 1024;
  void WritePinned(std::string_view bytes, const std::shared_ptr<const void>& owner);
  // Queues bytes for the wire as they are, past the transport (the transport's own output).
  void WriteRaw(std::string_view bytes);
  size_t queued() const { return out_.size() + (transport_ ? transport_->pending() : 0); }
  // True while more than kHighWater bytes wait to be sent (the transport's held-back output
  // included); the handler's OnWritable then follows once the queue drains below kLowWater.
  bool WriteBlocked();
  bool send_idle() const {
    return out_.empty() && !send_in_flight_ && (!transport_ || transport_->pending() == 0) &&
           forward_ == kNoForward;
  }

  // Splice forwarding (HAProxy's splice; nginx has none): the next `bytes` bytes of this
  // connection's input go to `to`'s socket, after what `to` has queued, through a pipe
  // (splice(2)): never copied into user space, never seen by this handler, whose OnForwarded
  // reports how many reached `to`, and `done` once all of them did; receiving then resumes.
  // The worker's thread blocks SIGPIPE (splice has no MSG_NOSIGNAL).
  // Bytes the ring had already received when this is called go the ordinary way, through
  // `to`'s queue. If this connection ends first (EOF, error) its handler hears it as usual,
  // after the bytes it sent before its FIN went on; a failure to write `to` goes to `to`'s
  // handler; closing either ends the forward, and receiving then stays stopped here for the
  // handler to decide (close). While the forward lasts `to` sends nothing else. False, and nothing
  // started, where it cannot be done: a transport on either side, either not open, a forward
  // already under way on either, or no pipe to be had.
  bool ForwardTo(Conn& to, uint64_t bytes);
  // This connection's forward waits for its destination: bytes in the pipe or in the
  // destination's own queue that it has not taken yet (a wait that is the destination's, not
  // this peer's).
  bool ForwardWaitsForDestination() const;

  // The handler's OnFlush() runs once late in this loop turn, before the sends: a handler that
  // batches its output (HTTP/2 frames of many streams) writes it there, once per turn.
  void WantFlush();

  // Backpressure: stop / restart receiving (multishot, or one receive at a time).
  void PauseRecv();
  void ResumeRecv();
  // From the next time receiving is armed: one buffer per receive (re-armed after each) rather
  // than a multishot receive, which keeps taking whatever arrives. A handler that may hand its
  // input to a forward (ForwardTo) right after a message head sets it: a multishot receive
  // would have taken most of what follows into the ring by the time the head is read.
  void SetRecvOneShot(bool one_shot) { recv_one_shot_ = one_shot; }

  // One deadline per connection; the handler knows what it means.
  void SetTimer(uint64_t deadline_ms);
  void ClearTimer();

  // Cancels everything, discards unsent output, closes. Idempotent.
  void Close();
  // Sends what is queued, then shuts down the write side and keeps reading (discarding) for
  // up to WorkerOptions::linger_ms or until the peer closes, then closes: the client gets the
  // final response instead of an RST caused by unread input (nginx's lingering close).
  void CloseAfterFlush();
  // Close with an RST (SO_LINGER 0).
  void Abort();
  // The handler's hint that the connection may be closed to make room (nginx's reusable
  // connections). When the worker is at max_conns, a new client is admitted by closing the
  // longest-waiting kFresh connection (accepted, not a byte received yet), else the
  // longest-idle kKeepAlive one (between exchanges: a keep-alive client, a pooled upstream),
  // instead of being refused. A silent flood thus displaces itself before it displaces
  // clients that have been served.
  enum class Idle : uint8_t { kNo, kFresh, kKeepAlive };
  void SetIdle(Idle idle);

 private:
  friend class Worker;
  enum class RecvState : uint8_t { kOff, kArmed, kCancelling };
  // Bytes were added to out_: note a crossing of kHighWater and ask for a send.
  void Queued();
  static constexpr uint32_t kNoForward = ~uint32_t{0};

  Conn(Worker* worker, uint32_t slot, BlockPool* pool) : worker_(worker), out_(pool), slot_(slot) {}

  // Every open connection has one of these, idle keep-alive ones included: the members are
  // ordered by size (no padding) and the flags are bits, so the object stays at 152 bytes.
  Worker* worker_;
  OutQueue out_;
  TimerWheel::Entry timer_;
  std::unique_ptr<ConnHandler> handler_;
  std::unique_ptr<Transport> transport_;
  union PeerAddr {
    sockaddr sa;
    sockaddr_in v4;
    sockaddr_in6 v6;
  } peer_{};
  uint32_t slot_;
  uint32_t gen_ = 0;
  int fd_ = -1;
  uint32_t send_op_ = ~uint32_t{0};  // the SendOp lent for the send in flight
  uint32_t idle_prev_ = ~uint32_t{0};
  uint32_t idle_next_ = ~uint32_t{0};
  uint32_t forward_ = kNoForward;  // the Worker::Forward this connection is either end of
  uint16_t inflight_ = 0;
  State state_ = State::kFree;
  RecvState recv_ = RecvState::kOff;
  // Connect(fast_open): the connect may complete before the SYN leaves. Until the peer
  // answers, the handler is not told: kFirstSend while the send that carries the SYN is in
  // flight, kSynAck while waiting for POLLOUT (a deferred socket polls writable before its
  // first send, so the poll is armed after it).
  enum class FastOpen : uint8_t { kOff, kOn, kFirstSend, kSynAck };
  FastOpen fast_open_ = FastOpen::kOff;
  Idle idle_ = Idle::kNo;  // which of the worker's idle lists holds it (SetIdle)
  bool want_recv_ : 1 = false;
  bool send_in_flight_ : 1 = false;
  bool in_send_list_ : 1 = false;
  bool in_flush_list_ : 1 = false;
  bool close_after_flush_ : 1 = false;
  bool close_submitted_ : 1 = false;
  bool above_high_water_ : 1 = false;
  bool in_rearm_list_ : 1 = false;
  bool recv_one_shot_ : 1 = false;
  bool recv_armed_one_shot_ : 1 = false;  // the receive in flight is a single one
};
static_assert(sizeof(Conn) <= 152,
              "an idle connection's Conn grew: see the note above its members");

class Worker {
 public:
  explicit Worker(const WorkerOptions& options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Before Run(): hands a bound, listening, non-blocking socket to this worker (it owns and
  // closes it). `index` is passed back to the AcceptFn.
  void AddListener(int fd, uint32_t index);
  void set_accept_fn(AcceptFn fn) { accept_fn_ = std::move(fn); }
  // Called on the worker's thread once the ring exists, before the first turn.
  void set_on_start(std::function<void(Worker&)> fn) { on_start_ = std::move(fn); }
  // Called at the end of every loop turn, after the sends were queued (log flushing).
  void set_on_turn_end(std::function<void()> fn) { on_turn_end_ = std::move(fn); }

  // Sets up the ring on the calling thread and runs the loop until a requested stop has
  // drained every connection (or the grace period ran out). Returns an error if the ring
  // could not be set up.
  Result<void> Run();

  // Thread-safe: asks the loop to stop gracefully (stop accepting, drain, exit).
  void RequestStop();
  // Thread-safe: runs `fn` on the worker's thread during its next turn.
  void Post(std::function<void()> fn);

  // Opens a non-blocking TCP connection to `addr` with `handler`. OnConnected follows.
  // `fast_open` (TCP Fast Open, RFC 7413, TCP_FASTOPEN_CONNECT): once the kernel holds a
  // cookie from this peer, the bytes written before the connect completes (right after
  // Connect; a transport's first flight) ride in the SYN, saving a round trip; without a
  // cookie it is an ordinary connect that asks for one. Either way OnConnected follows the
  // peer's answer (a refusal is a failed connect) and receiving starts then. A handler that
  // writes nothing before the connect completes gets OnConnected at once instead, with the
  // SYN still unsent (it leaves with the first write; a refusal then shows as OnError).
  Result<Conn*> Connect(const sockaddr* addr, socklen_t len, std::unique_ptr<ConnHandler> handler,
                        bool fast_open = false);

  Conn* Resolve(ConnRef ref) const;

  // After a burst (of connections, or of exchanges on connections that stay open) glibc keeps
  // the memory it freed in its arenas: malloc_trim gives their free pages back, at most once a
  // second per worker (false when it ran less than a second ago). Worker's thread only.
  bool TrimHeap();

  // Timers that belong to no connection (health-check rounds): a task is a callback registered
  // once and armed for a deadline as often as needed; it fires once per ArmTask(), on the
  // worker's thread, from the loop. Worker's thread only. A task lives until RemoveTask() (its
  // fn may remove it), after which its id may be given to another task: forget it.
  using TaskId = uint32_t;
  TaskId AddTask(std::function<void()> fn);
  void ArmTask(TaskId id, uint64_t deadline_ms);
  void CancelTask(TaskId id);
  void RemoveTask(TaskId id);

  // Readiness of a descriptor that is not a connection (a DNS client's sockets): the ring polls
  // `fd` for `events` (POLLIN / POLLOUT) and calls `fn` with the revents (POLLERR / POLLHUP
  // included; POLLERR alone when the poll itself failed), on the worker's thread, once per
  // readiness: the poll is re-armed after `fn` returns while the watch lives and wants events.
  // The caller owns `fd`: it may close it right after Unwatch() (the poll in flight is removed
  // and its completion dropped). Worker's thread only.
  using WatchId = uint32_t;
  using WatchFn = std::function<void(uint32_t revents)>;
  WatchId Watch(int fd, uint32_t events, WatchFn fn);
  // Changes what the watch waits for (0 = nothing until changed again).
  void Rewatch(WatchId id, uint32_t events);
  void Unwatch(WatchId id);

  // File I/O through the ring (the cache's disk tier): a vectored read or write of `iov` at
  // `offset` of `fd`; `fn` gets the result (bytes moved, or -errno) on the worker's thread, from
  // the loop. The iovec array is copied; the buffers it points to must stay valid until `fn`
  // runs (keep them in its captures). A stopping worker waits for the operations in flight.
  // Worker's thread only.
  using FileFn = std::function<void(int res)>;
  void ReadFile(int fd, uint64_t offset, std::span<const iovec> iov, FileFn fn);
  void WriteFile(int fd, uint64_t offset, std::span<const iovec> iov, FileFn fn);

  uint64_t now_ms() const { return now_ms_; }
  // The loop turn's time in ns (read once per turn with now_ms(): timestamps that cost no
  // clock read, precise to the turn; the latency budget uses them).
  uint64_t now_ns() const { return now_ns_; }
  uint32_t id() const { return options_.id; }
  bool draining() const { return draining_; }
  const WorkerStats& stats() const { return stats_; }
  // What the out-queue block pool keeps for the next writes (tests).
  size_t pooled_block_bytes() const { return blocks_.cached_bytes(); }
  size_t recv_ring_resident_bytes() const { return bufs_.resident_bytes(); }
  // Whether this kernel lets the receive ring's pages go back when quiet (TrimRecvRing).
  bool releases_recv_ring() const { return release_ring_; }
  // A copy of some of stats() that any thread may read (metrics): published once per loop turn.
  struct Published {
    Counter conns_live;
    Counter accepted;
    Counter accept_rejected;
    Counter idle_evicted;
  };
  const Published& published() const { return published_; }
  // Whether busy turns wait for a batch of completions (see SubmitAndWait; set up by Run()).
  bool batches_waits() const { return min_wait_; }

 private:
  friend class Conn;
  enum TimerKind : uint8_t { kConnTimer = 1, kAcceptRetry, kDrainDeadline, kTask };
  struct Task {
    TimerWheel::Entry entry;
    std::function<void()> fn;
  };
  struct Listener {
    int fd = -1;
    uint32_t index = 0;
    bool armed = false;
  };
  // The msghdr and iovecs of one sendmsg, lent to a connection while its send is in flight
  // (the kernel reads them until the CQE), so an idle connection carries none of it.
  struct SendOp {
    msghdr msg{};
    iovec iov[Conn::kMaxIov]{};
  };

  Result<void> SetupRing();
  io_uring_sqe* GetSqe();
  void Submit(io_uring_sqe* sqe, OpTag tag, Conn* conn);
  void ReapInto(std::vector<io_uring_cqe>& out);
  void Dispatch(const io_uring_cqe& cqe);
  void OnAcceptCqe(uint32_t listener, const io_uring_cqe& cqe);
  void OnRecvCqe(Conn& c, const io_uring_cqe& cqe);
  void OnSendCqe(Conn& c, int res);
  void OnConnectCqe(Conn& c, int res);
  void OnSynAckCqe(Conn& c, int res);
  // A connect succeeded (and, fast open, the peer answered): receiving starts, the handler
  // hears it.
  void Connected(Conn& c);
  // The send that carried a fast-open SYN completed: wait for the peer's answer.
  void ArmSynAck(Conn& c);
  // A connect failed (`err`, an errno): the handler hears it, the connection closes.
  void FailConnect(Conn& c, int err);
  void OnWake();
  void OnPollCqe(const OpTag& tag, int res);
  void SubmitFile(bool write, int fd, uint64_t offset, std::span<const iovec> iov, FileFn fn);
  void OnFileCqe(uint32_t index, int res);
  void ArmWatch(WatchId id);
  void DisarmWatch(WatchId id);
  void RunTimers();
  void BeforeSleep();
  void TrimAfterBurst();
  // The out-queue block pool's surplus goes each second (a task armed while it holds any).
  void TrimBlockPool();
  void TrimRecvRing();
  // A trim that runs a second after BeforeSleep arms it, while there is something to trim.
  struct SecondCheck {
    TaskId task = kNoTask;
    bool armed = false;
  };
  void ArmInASecond(SecondCheck& check, void (Worker::*run)());
  // Conn::ForwardTo. A forward takes bytes from `src` into its pipe and from there into `dst`
  // by splice(2) on the non-blocking sockets, once src's receive has stopped (until
  // then what it receives goes to dst's queue: ForwardReceived); it waits for readiness with
  // two watches (one-shot polls), armed only when a splice would block.
  static constexpr uint32_t kPipeBytes = 256 * 1024;  // what a forward's pipe holds at most
  static constexpr size_t kSparePipes = 64;          // idle pipes a worker keeps
  // Rounds (a splice each way) one pump may run before the forward waits for the next turn:
  // between fast peers a forward would otherwise keep the loop as long as both keep up.
  static constexpr int kPumpRounds = 16;
  struct Forward {
    ConnRef src;
    ConnRef dst;
    int pipe_r = -1;
    int pipe_w = -1;
    uint64_t left = 0;     // bytes still to take from src
    uint64_t in_pipe = 0;  // taken from src, not yet in dst
    uint64_t moved = 0;    // reached dst since src's handler last heard
    uint64_t spliced = 0;  // ... of which by splice
    WatchId src_watch = 0;
    WatchId dst_watch = 0;
    bool live = false;
    bool splicing = false;     // src's receive has stopped: bytes move by splice
    bool out_started = false;  // a byte went into dst's socket: dst's own queue waits
    bool waits_src = false;
    bool waits_dst = false;
    // src ended (FIN, or src_err) before all was forwarded: its handler hears it once what the
    // pipe holds has gone on (every byte received is forwarded: BAD-INPUTS B4).
    bool src_ended = false;
    int src_err = 0;
  };
  // The forward `c` is the source of, or the destination of; Conn::kNoForward if none.
  uint32_t ForwardFrom(const Conn& c) const {
    return c.forward_ != Conn::kNoForward && forwards_[c.forward_].src.slot == c.slot_
               ? c.forward_
               : Conn::kNoForward;
  }
  uint32_t ForwardInto(const Conn& c) const {
    return c.forward_ != Conn::kNoForward && forwards_[c.forward_].dst.slot == c.slot_
               ? c.forward_
               : Conn::kNoForward;
  }
  // What moved since src's handler last heard (taken from `f`), with `done` and
  // `input_follows` (ForwardProgress).
  static ForwardProgress TakeProgress(Forward& f, bool done, bool input_follows);
  // Reports what moved to src's handler (unless nothing did and it is not done).
  void ReportForward(Conn& src, Forward& f, bool done, bool input_follows);
  bool StartForward(Conn& src, Conn& dst, uint64_t bytes);
  // Bytes src received while its receive was being stopped: the forward's share goes to dst's
  // queue; returns what is left over for src's handler.
  std::span<const char> ForwardReceived(Conn& src, std::span<const char> data);
  void PumpForward(uint32_t id);
  // The source ended before all was forwarded (`err`: 0 for its FIN, else an errno).
  void SourceEnded(uint32_t id, Conn& src, int err);
  // The forward is over (done, failed or abandoned); its pipe is kept when empty.
  void EndForward(uint32_t id);
  // All forwarded: src's receive resumes, src's handler hears it (`input_follows`: see
  // ForwardProgress).
  void FinishForward(uint32_t id, bool input_follows);
  // A connection's forward ended: what its queue held back goes on, a deferred lingering
  // close starts.
  void AfterForward(Conn& c);
  void ArmAccept(Listener& l);
  void ArmRecv(Conn& c);
  void ArmWake();
  void StartLinger(Conn& c);
  void MaybeFinishClose(Conn& c);
  void BeginDrain();
  void MarkSend(Conn& c);
  // `overflow`: may exceed max_conns by a small headroom (an idle connection is closing to
  // give its slot back).
  Conn* AllocConn(int fd, bool overflow = false);
  // How far live connections may exceed max_conns while evicted ones finish closing.
  uint64_t EvictionHeadroom() const { return std::max<uint64_t>(16, options_.max_conns / 64); }
  void LinkIdle(Conn& c);
  void UnlinkIdle(Conn& c);
  // One io_uring_enter: submits what is queued and waits for a completion or `ts` (null: no
  // timer). See kBatchBusy.
  int SubmitAndWait(__kernel_timespec* ts);

  WorkerOptions options_;
  io_uring ring_{};
  bool ring_ready_ = false;
  bool loop_done_ = false;  // Run() returned
  bool min_wait_ = false;   // the kernel takes a minimum wait (IORING_FEAT_MIN_TIMEOUT, 6.12)
  BufRing bufs_;
  BlockPool blocks_;
  TimerWheel timers_;
  uint64_t now_ms_ = 0;
  uint64_t now_ns_ = 0;
  // The provided buffer being delivered to a handler's OnRecv (for WriteFromRecvBuffer).
  std::span<const char> recv_data_;
  uint16_t recv_bid_ = 0;

  // The lender of every connection's out queue: ids below kPinBase are the buffer ring's, the
  // others owners pinned by Conn::WritePinned (declared before conns_: their queues return
  // what they hold when they are destroyed).
  static constexpr uint32_t kPinBase = uint32_t{1} << 16;
  class Lenders final : public BufferLender {
   public:
    explicit Lenders(Worker* worker) : worker_(worker) {}
    void Return(uint32_t id) override;

   private:
    Worker* worker_;
  };
  uint32_t Pin(const std::shared_ptr<const void>& owner);
  std::vector<std::shared_ptr<const void>> pins_;
  std::vector<uint32_t> free_pins_;
  Lenders lenders_{this};
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> send_list_;
  std::vector<uint32_t> flush_list_;  // Conn::WantFlush
  std::vector<uint32_t> rearm_list_;
  std::vector<uint32_t> reclaim_list_;
  std::vector<io_uring_cqe> cqe_backlog_;  // reaped early (CQ overflow), dispatched next
  std::vector<io_uring_cqe> batch_;
  std::vector<std::unique_ptr<SendOp>> send_ops_;
  std::vector<uint32_t> free_send_ops_;

  std::vector<Listener> listeners_;
  AcceptFn accept_fn_;
  std::function<void(Worker&)> on_start_;
  std::function<void()> on_turn_end_;
  std::vector<std::unique_ptr<Task>> tasks_;
  std::vector<TaskId> free_tasks_;
  static constexpr TaskId kNoTask = ~TaskId{0};
  TaskId running_task_ = kNoTask;  // whose fn RunTimers is calling
  bool running_removed_ = false;   // ... and it removed itself
  struct FdWatch {
    int fd = -1;  // -1: free
    uint32_t events = 0;
    uint32_t gen = 0;    // bumped when a poll is removed: its completion is then stale
    bool armed = false;  // a poll of generation `gen` is in flight
    WatchFn fn;
  };
  std::vector<FdWatch> watches_;
  std::vector<Forward> forwards_;
  std::vector<uint32_t> free_forwards_;
  std::vector<uint32_t> forward_ready_;  // forwards whose splicing starts this turn
  std::vector<uint32_t> forward_again_;  // forwards that used their rounds: next turn, no wait
  std::vector<std::pair<int, int>> spare_pipes_;
  std::vector<WatchId> free_watches_;
  struct FileOp {
    std::vector<iovec> iov;
    FileFn fn;
  };
  std::vector<std::unique_ptr<FileOp>> file_ops_;
  std::vector<uint32_t> free_file_ops_;
  uint64_t files_inflight_ = 0;
  Published published_;
  // Idle connections per Conn::Idle kind (kFresh, kKeepAlive), least recently idle first
  // (intrusive, by slot).
  uint32_t idle_head_[3] = {~uint32_t{0}, ~uint32_t{0}, ~uint32_t{0}};
  uint32_t idle_tail_[3] = {~uint32_t{0}, ~uint32_t{0}, ~uint32_t{0}};
  uint64_t idle_count_ = 0;  // connections on those lists
  TimerWheel::Entry accept_retry_;
  TimerWheel::Entry drain_deadline_;
  uint64_t last_accept_error_log_ms_ = 0;

  int wake_fd_ = -1;
  uint64_t wake_buf_ = 0;
  std::atomic<bool> stop_requested_{false};
  bool draining_ = false;
  // TrimAfterBurst: the live-connection peak since the last trim, and when that was.
  static constexpr uint64_t kTrimDrop = 1024;
  uint64_t peak_live_ = 0;
  uint64_t last_trim_ms_ = 0;
  // TrimBlockPool: its check, and a heap trim owed (the pool freed much while TrimHeap's
  // once-a-second bound held it back).
  static constexpr size_t kPoolTrimHeapBytes = 1 << 20;
  SecondCheck pool_trim_;
  bool heap_trim_owed_ = false;
  // TrimRecvRing: its check, the ring's recycled() count when it was armed and when the
  // ring's pages last went back; whether the kernel fills buffers only inside this thread's
  // io_uring_enter, which BufRing::Release needs (SetupRing).
  SecondCheck ring_trim_;
  bool release_ring_ = false;
  // Single receives in flight (Conn::SetRecvOneShot): the kernel may issue one from an io-wq
  // thread (after a spurious wakeup, or when arming its poll fails), filling a buffer at any
  // moment: TrimRecvRing waits until there are none.
  uint32_t one_shot_recvs_ = 0;
  uint64_t ring_armed_at_ = 0;
  uint64_t ring_released_at_ = 0;
  std::mutex mailbox_mu_;
  std::vector<std::function<void()>> mailbox_;

  WorkerStats stats_;
};

}  // namespace torii::core
