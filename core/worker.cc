// core/worker.cc: the loop. See worker.h for the lifetime rules this file enforces.
#include "core/worker.h"

#include <fcntl.h>
#include <malloc.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <utility>

#include "base/free_index.h"

namespace torii::core {

namespace {

// Batched waits. While at least kBatchBusy connections are busy (not idle between exchanges),
// more completions are due any moment: the wait asks the kernel for kBatchCompletions of them,
// for at most kBatchWaitUs, and then for the first one (IORING_FEAT_MIN_TIMEOUT). A turn then
// handles a batch instead of waking for each completion. Measured at 100-byte keep-alive
// (wrk -c50, one worker): 3.5 io_uring_enter calls per request before, +10% requests per CPU-
// second and a lower median latency; with fewer busy connections every completion is handled
// at once (one client alone would otherwise wait up to kBatchWaitUs per turn: +30 us median).
constexpr uint64_t kBatchBusy = 16;
constexpr unsigned kBatchCompletions = 8;
constexpr uint32_t kBatchWaitUs = 20;
constexpr uint32_t kFeatMinTimeout = 1U << 15;  // IORING_FEAT_MIN_TIMEOUT (liburing 2.3 lacks it)

constexpr uint16_t kBufGroup = 1;
constexpr uint32_t kMaxBatch = 256;
constexpr uint32_t kMaxTimerRounds = 4096;
constexpr uint64_t kAcceptRetryMs = 100;
constexpr uint32_t kNoSlot = ~uint32_t{0};

bool IsFdExhaustion(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Error

Error Error::FromErrno(int err, Side side) {
  Errc code = Errc::kIo;
  switch (err) {
    case 0:
      code = Errc::kOk;
      break;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
      code = Errc::kReset;
      break;
    case ECONNREFUSED:
      code = Errc::kRefused;
      break;
    case ETIMEDOUT:
    case ETIME:
      code = Errc::kTimeout;
      break;
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EADDRNOTAVAIL:
      code = Errc::kUnreachable;
      break;
    case ENOMEM:
    case ENOBUFS:
      code = Errc::kNoMemory;
      break;
    case EMFILE:
    case ENFILE:
      code = Errc::kNoFds;
      break;
    case ECANCELED:
      code = Errc::kCanceled;
      break;
    default:
      break;
  }
  return Error{code, side, err};
}

std::string_view Error::name() const {
  switch (code) {
    case Errc::kOk: return "ok";
    case Errc::kEof: return "eof";
    case Errc::kReset: return "reset";
    case Errc::kRefused: return "refused";
    case Errc::kTimeout: return "timeout";
    case Errc::kUnreachable: return "unreachable";
    case Errc::kNoMemory: return "no_memory";
    case Errc::kNoFds: return "no_fds";
    case Errc::kCanceled: return "canceled";
    case Errc::kTooManyConns: return "too_many_connections";
    case Errc::kProtocol: return "protocol";
    case Errc::kIo: return "io";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Conn

void Conn::Write(std::string_view bytes) {
  if (state_ == State::kClosing || state_ == State::kLingering || bytes.empty()) {
    return;
  }
  if (transport_) {
    transport_->Write(*this, bytes);
    worker_->MarkSend(*this);  // Flush() before the send
    return;
  }
  WriteRaw(bytes);
}

void Conn::WriteRaw(std::string_view bytes) {
  if (state_ == State::kClosing || state_ == State::kLingering || bytes.empty()) {
    return;
  }
  out_.Append(bytes, /*movable=*/!send_in_flight_);
  Queued();
}

void Conn::WriteFromRecvBuffer(std::string_view bytes) {
  if (state_ == State::kClosing || state_ == State::kLingering || bytes.empty()) {
    return;
  }
  if (transport_) {
    transport_->Write(*this, bytes);  // transformed: nothing of the receive buffer is lent
    worker_->MarkSend(*this);
    return;
  }
  const std::span<const char> cur = worker_->recv_data_;
  const bool inside = !cur.empty() && bytes.data() >= cur.data() &&
                      bytes.data() + bytes.size() <= cur.data() + cur.size();
  if (inside && bytes.size() >= kLendMin && out_.size() < kLowWater &&
      worker_->bufs_.Lend(worker_->recv_bid_)) {
    out_.AppendLent(bytes, worker_->recv_bid_);
  } else {
    out_.Append(bytes, /*movable=*/!send_in_flight_);
  }
  Queued();
}

void Conn::WritePinned(std::string_view bytes, const std::shared_ptr<const void>& owner) {
  if (transport_ || !owner || bytes.size() < kPinMin) {
    Write(bytes);
    return;
  }
  if (state_ == State::kClosing || state_ == State::kLingering) {
    return;
  }
  out_.AppendLent(bytes, worker_->Pin(owner));
  Queued();
}

uint32_t Worker::Pin(const std::shared_ptr<const void>& owner) {
  const uint32_t index = base::TakeIndex(free_pins_, pins_.size(), [&] { pins_.emplace_back(); });
  pins_[index] = owner;
  return kPinBase + index;
}

void Worker::Lenders::Return(uint32_t id) {
  if (id < kPinBase) {
    worker_->bufs_.Return(id);
    return;
  }
  const uint32_t index = id - kPinBase;
  worker_->pins_[index].reset();
  worker_->free_pins_.push_back(index);
}

void Conn::Queued() {
  if (out_.size() > kHighWater) {
    above_high_water_ = true;
  }
  worker_->MarkSend(*this);
}

bool Conn::WriteBlocked() {
  if (queued() <= kHighWater) {
    return false;
  }
  // The transport's pending bytes reach out_ before the next send, so out_ crosses the mark
  // too and the drain notification comes.
  above_high_water_ = true;
  return true;
}

void Conn::PauseRecv() {
  want_recv_ = false;
  if (recv_ == RecvState::kArmed && state_ != State::kClosing) {
    io_uring_sqe* sqe = worker_->GetSqe();
    io_uring_prep_cancel64(sqe, OpTag{slot_, gen_, Op::kRecv}.Encode(), 0);
    worker_->Submit(sqe, OpTag{slot_, gen_, Op::kRecvCancel}, this);
    recv_ = RecvState::kCancelling;
  }
}

void Conn::ResumeRecv() {
  if (worker_->ForwardFrom(*this) != kNoForward) {
    return;  // the forward stopped the receive: it resumes it when done (FinishForward)
  }
  want_recv_ = true;
  if (recv_ == RecvState::kOff && (state_ == State::kOpen || state_ == State::kLingering)) {
    worker_->ArmRecv(*this);
  }
}

void Conn::SetTimer(uint64_t deadline_ms) {
  if (state_ == State::kClosing) {
    return;
  }
  timer_.owner = slot_;
  timer_.kind = Worker::kConnTimer;
  worker_->timers_.Schedule(timer_, deadline_ms);
}

void Conn::ClearTimer() { worker_->timers_.Cancel(timer_); }

void Conn::SetIdle(Idle idle) {
  worker_->UnlinkIdle(*this);
  if (idle != Idle::kNo && state_ == State::kOpen) {
    idle_ = idle;
    worker_->LinkIdle(*this);
  }
}

void Conn::Close() {
  if (state_ == State::kClosing || state_ == State::kFree) {
    return;
  }
  worker_->UnlinkIdle(*this);
  state_ = State::kClosing;
  want_recv_ = false;
  worker_->timers_.Cancel(timer_);
  if (forward_ != kNoForward) {
    worker_->EndForward(forward_);
  }
  if (inflight_ > 0) {
    io_uring_sqe* sqe = worker_->GetSqe();
    io_uring_prep_cancel_fd(sqe, fd_, IORING_ASYNC_CANCEL_ALL);
    worker_->Submit(sqe, OpTag{slot_, gen_, Op::kCancel}, this);
  } else {
    worker_->MaybeFinishClose(*this);
  }
}

void Conn::CloseAfterFlush() {
  if (state_ == State::kClosing || state_ == State::kLingering || state_ == State::kFree) {
    return;
  }
  if (state_ == State::kConnecting) {
    Close();
    return;
  }
  if (transport_ && !close_after_flush_) {
    transport_->OnCloseAfterFlush(*this);
  }
  close_after_flush_ = true;
  worker_->UnlinkIdle(*this);
  if (send_idle()) {
    worker_->StartLinger(*this);
  }
}

void Conn::Abort() {
  if (fd_ >= 0 && state_ != State::kClosing) {
    linger lg{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  Close();
}

// ---------------------------------------------------------------------------------------------
// Worker: setup

Worker::Worker(const WorkerOptions& options)
    : options_(options), blocks_(256, &lenders_), timers_(MonotonicMs()), now_ms_(MonotonicMs()) {
  // Created here, not with the ring, so that RequestStop()/Post() from another thread before
  // Run() starts are never lost (the eventfd counter keeps the wakeup until it is read).
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

Worker::~Worker() {
  for (auto& c : conns_) {
    c->out_.Clear();  // returns lent receive buffers while the ring still exists
  }
  for (auto& c : conns_) {
    if (c && c->fd_ >= 0) {
      ::close(c->fd_);
    }
  }
  for (Listener& l : listeners_) {
    if (l.fd >= 0) {
      ::close(l.fd);
    }
  }
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
  }
  for (const Forward& f : forwards_) {
    if (f.live) {
      ::close(f.pipe_r);
      ::close(f.pipe_w);
    }
  }
  for (const auto& [r, w] : spare_pipes_) {
    ::close(r);
    ::close(w);
  }
  if (ring_ready_) {
    bufs_.Reset();  // unregister while the ring still exists
    io_uring_queue_exit(&ring_);
  }
}

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t MonotonicMs() { return MonotonicNs() / 1000000; }

namespace {

// Whether the running kernel's release is at least major.minor (uname: "6.12.3-...").
bool KernelAtLeast(int major, int minor) {
  utsname u{};
  int have_major = 0;
  int have_minor = 0;
  if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &have_major, &have_minor) != 2) {
    return false;
  }
  return have_major > major || (have_major == major && have_minor >= minor);
}

}  // namespace

void Worker::AddListener(int fd, uint32_t index) { listeners_.push_back(Listener{fd, index}); }

Result<void> Worker::SetupRing() {
  io_uring_params p{};
  const uint32_t cq = options_.cq_entries != 0 ? options_.cq_entries : options_.sq_entries * 4;
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
            IORING_SETUP_SUBMIT_ALL;
  p.cq_entries = cq;
  int rc = io_uring_queue_init_params(options_.sq_entries, &ring_, &p);
  if (rc == -EINVAL) {
    // Older kernels refuse DEFER_TASKRUN (6.1) or SINGLE_ISSUER (6.0): fall back cleanly.
    p = io_uring_params{};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = cq;
    rc = io_uring_queue_init_params(options_.sq_entries, &ring_, &p);
  }
  if (rc < 0) {
    spdlog::critical("worker {}: io_uring_queue_init failed: {}", options_.id, strerror(-rc));
    return Fail(Errc::kIo, Side::kInternal, -rc);
  }
  ring_ready_ = true;
  const bool deferred = (p.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
  min_wait_ = deferred && (p.features & kFeatMinTimeout) != 0;
  // BufRing::Release needs every buffer fill to happen inside this thread's io_uring_enter:
  // DEFER_TASKRUN runs the receives' task work only there, and since 6.8 the kernel never
  // issues a multishot receive from an io-wq thread (one punted there, which happens when
  // arming its poll fails, would fill a buffer at any moment on older kernels).
  release_ring_ = deferred && KernelAtLeast(6, 8);
  if (options_.id == 0) {  // the features this kernel gave
    spdlog::info("worker 0 ring: {}{}",
                 !deferred   ? "no SINGLE_ISSUER/DEFER_TASKRUN (kernel refused)"
                 : min_wait_ ? "SINGLE_ISSUER|DEFER_TASKRUN, batched waits"
                             : "SINGLE_ISSUER|DEFER_TASKRUN, no batched waits (kernel < 6.12)",
                 release_ring_ ? ", idle receive buffers given back" : "");
  }
  if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG)) {
    spdlog::critical("worker {}: kernel lacks IORING_FEAT_NODROP/EXT_ARG", options_.id);
    return Fail(Errc::kIo, Side::kInternal, ENOSYS);
  }
  // Probe the opcodes torii needs (Seastar's try_create_uring does the same).
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  if (probe == nullptr) {
    return Fail(Errc::kIo, Side::kInternal, ENOSYS);
  }
  struct {
    int op;
    const char* name;
  } const needed[] = {{IORING_OP_ACCEPT, "ACCEPT"},         {IORING_OP_RECV, "RECV"},
                      {IORING_OP_SENDMSG, "SENDMSG"},       {IORING_OP_CONNECT, "CONNECT"},
                      {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"}, {IORING_OP_SHUTDOWN, "SHUTDOWN"},
                      {IORING_OP_CLOSE, "CLOSE"},           {IORING_OP_READ, "READ"}};
  for (const auto& n : needed) {
    if (!io_uring_opcode_supported(probe, n.op)) {
      io_uring_free_probe(probe);
      spdlog::critical("worker {}: kernel lacks io_uring opcode {}", options_.id, n.name);
      return Fail(Errc::kIo, Side::kInternal, ENOSYS);
    }
  }
  io_uring_free_probe(probe);
  if (auto r = bufs_.Init(&ring_, kBufGroup, options_.recv_buffers, options_.recv_buffer_size);
      !r) {
    spdlog::critical("worker {}: provided buffer ring setup failed: {}", options_.id,
                     strerror(r.error().sys_errno));
    return r;
  }
  if (wake_fd_ < 0) {
    return Fail(Errc::kIo, Side::kInternal, EMFILE);
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Worker: submission

io_uring_sqe* Worker::GetSqe() {
  for (;;) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe != nullptr) {
      return sqe;
    }
    // SQ full: push what is queued to the kernel and try again. If the kernel says EBUSY the
    // CQ overflowed into a backlog: reap it into cqe_backlog_ (dispatched later, nothing lost).
    ++stats_.sq_full;
    const int rc = io_uring_submit(&ring_);
    if (rc == -EBUSY || rc == -EAGAIN) {
      ++stats_.cq_backlog;
      ReapInto(cqe_backlog_);
    }
  }
}

void Worker::Submit(io_uring_sqe* sqe, OpTag tag, Conn* conn) {
  io_uring_sqe_set_data64(sqe, tag.Encode());
  if (conn != nullptr) {
    ++conn->inflight_;
  }
}

int Worker::SubmitAndWait(__kernel_timespec* ts) {
  if (!min_wait_ || stats_.conns_live - idle_count_ < kBatchBusy) {
    io_uring_cqe* first = nullptr;
    return io_uring_submit_and_wait_timeout(&ring_, &first, 1, ts, nullptr);
  }
  // liburing 2.3 has no call that passes a minimum wait: publish the queued SQEs as its
  // submit does (the ring is not SQPOLL), then enter with the extended argument.
  io_uring_sq* sq = &ring_.sq;
  const unsigned tail = sq->sqe_tail;
  if (sq->sqe_head != tail) {
    sq->sqe_head = tail;
    io_uring_smp_store_release(sq->ktail, tail);
  }
  const unsigned to_submit = tail - *sq->khead;
  io_uring_getevents_arg arg{};
  arg.pad = kBatchWaitUs;  // min_wait_usec since 6.12
  arg.ts = reinterpret_cast<uint64_t>(ts);
  const unsigned wait_nr = io_uring_cq_ready(&ring_) > 0 ? 0 : kBatchCompletions;
  ++stats_.batched_waits;
  const int rc = io_uring_enter2(ring_.ring_fd, to_submit, wait_nr,
                                 IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                                 reinterpret_cast<sigset_t*>(&arg), sizeof(arg));
  return rc;  // -errno on failure, as liburing's calls
}

void Worker::ReapInto(std::vector<io_uring_cqe>& out) {
  io_uring_cqe* cqes[kMaxBatch];
  for (;;) {
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kMaxBatch);
    if (n == 0) {
      return;
    }
    for (unsigned i = 0; i < n; ++i) {
      out.push_back(*cqes[i]);
    }
    io_uring_cq_advance(&ring_, n);
  }
}

void Worker::ArmAccept(Listener& l) {
  if (l.armed || l.fd < 0 || draining_) {
    return;
  }
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_multishot_accept(sqe, l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  Submit(sqe, OpTag{l.index, 0, Op::kAccept}, nullptr);
  l.armed = true;
}

void Worker::ArmRecv(Conn& c) {
  io_uring_sqe* sqe = GetSqe();
  c.recv_armed_one_shot_ = c.recv_one_shot_;
  if (c.recv_one_shot_) {
    io_uring_prep_recv(sqe, c.fd_, nullptr, 0, 0);
    ++one_shot_recvs_;
  } else {
    io_uring_prep_recv_multishot(sqe, c.fd_, nullptr, 0, 0);
  }
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufGroup;
  Submit(sqe, OpTag{c.slot_, c.gen_, Op::kRecv}, &c);
  c.recv_ = Conn::RecvState::kArmed;
}

void Worker::ArmWake() {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_buf_, sizeof(wake_buf_), 0);
  Submit(sqe, OpTag{0, 0, Op::kWake}, nullptr);
}

void Conn::WantFlush() {
  if (!in_flush_list_ && state_ == State::kOpen) {
    in_flush_list_ = true;
    worker_->flush_list_.push_back(slot_);
  }
}

void Worker::MarkSend(Conn& c) {
  if (!c.in_send_list_) {
    c.in_send_list_ = true;
    send_list_.push_back(c.slot_);
  }
}

void Worker::LinkIdle(Conn& c) {
  const auto k = static_cast<size_t>(c.idle_);
  c.idle_prev_ = idle_tail_[k];
  c.idle_next_ = kNoSlot;
  if (idle_tail_[k] != kNoSlot) {
    conns_[idle_tail_[k]]->idle_next_ = c.slot_;
  } else {
    idle_head_[k] = c.slot_;
  }
  idle_tail_[k] = c.slot_;
  ++idle_count_;
}

void Worker::UnlinkIdle(Conn& c) {
  if (c.idle_ == Conn::Idle::kNo) {
    return;
  }
  const auto k = static_cast<size_t>(c.idle_);
  if (c.idle_prev_ != kNoSlot) {
    conns_[c.idle_prev_]->idle_next_ = c.idle_next_;
  } else {
    idle_head_[k] = c.idle_next_;
  }
  if (c.idle_next_ != kNoSlot) {
    conns_[c.idle_next_]->idle_prev_ = c.idle_prev_;
  } else {
    idle_tail_[k] = c.idle_prev_;
  }
  --idle_count_;
  c.idle_ = Conn::Idle::kNo;
  c.idle_prev_ = c.idle_next_ = kNoSlot;
}

Conn* Worker::AllocConn(int fd, bool overflow) {
  // Live connections (closing ones included) stay within max_conns, plus a small headroom
  // while evicted idle connections finish closing.
  if (stats_.conns_live >= options_.max_conns + (overflow ? EvictionHeadroom() : 0)) {
    return nullptr;
  }
  const uint32_t slot = base::TakeIndex(free_slots_, conns_.size(), [&] {
    conns_.push_back(
        std::unique_ptr<Conn>(new Conn(this, static_cast<uint32_t>(conns_.size()), &blocks_)));
  });
  Conn& c = *conns_[slot];
  c.fd_ = fd;
  c.state_ = Conn::State::kOpen;
  c.recv_ = Conn::RecvState::kOff;
  c.recv_one_shot_ = false;
  c.forward_ = Conn::kNoForward;
  c.want_recv_ = true;
  c.send_in_flight_ = false;
  c.in_send_list_ = false;
  c.close_after_flush_ = false;
  c.close_submitted_ = false;
  c.above_high_water_ = false;
  c.in_rearm_list_ = false;
  c.fast_open_ = Conn::FastOpen::kOff;
  c.inflight_ = 0;
  c.peer_.sa.sa_family = AF_UNSPEC;
  ++stats_.conns_live;
  return &c;
}

Conn* Worker::Resolve(ConnRef ref) const {
  if (!ref.valid() || ref.slot >= conns_.size()) {
    return nullptr;
  }
  Conn* c = conns_[ref.slot].get();
  if (c->state_ == Conn::State::kFree || c->gen_ != (ref.gen & OpTag::kGenMask)) {
    return nullptr;
  }
  return c;
}

Result<Conn*> Worker::Connect(const sockaddr* addr, socklen_t len,
                              std::unique_ptr<ConnHandler> handler, bool fast_open) {
  if (len > sizeof(sockaddr_in6)) {
    return Fail(Errc::kIo, Side::kInternal, EAFNOSUPPORT);  // TCP over IPv4/IPv6 only
  }
  const int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return std::unexpected(Error::FromErrno(errno, Side::kUpstream));
  }
  Conn* c = AllocConn(fd);
  if (c == nullptr) {
    // At max_conns: an outbound connection never evicts (the client it serves is live too).
    ::close(fd);
    return Fail(Errc::kTooManyConns, Side::kInternal);
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (fast_open) {
    // Best effort: a kernel without client fast open (net.ipv4.tcp_fastopen bit 1 clear)
    // makes an ordinary connect.
    setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one));
  }
  c->fast_open_ = fast_open ? Conn::FastOpen::kOn : Conn::FastOpen::kOff;
  std::memcpy(&c->peer_, addr, len);
  c->state_ = Conn::State::kConnecting;
  c->handler_ = std::move(handler);
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_connect(sqe, fd, &c->peer_.sa, len);
  Submit(sqe, OpTag{c->slot_, c->gen_, Op::kConnect}, c);
  ++stats_.connects;
  return c;
}

// ---------------------------------------------------------------------------------------------
// Worker: the loop

Result<void> Worker::Run() {
  if (auto r = SetupRing(); !r) {
    return r;
  }
  // splice(2) into a socket the peer closed raises SIGPIPE (it has no MSG_NOSIGNAL, which every
  // send here uses): blocked on this thread, it stays pending and harmless, the EPIPE reported.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
  now_ns_ = MonotonicNs();
  now_ms_ = now_ns_ / 1000000;
  for (Listener& l : listeners_) {
    ArmAccept(l);
  }
  ArmWake();
  if (stop_requested_.load(std::memory_order_acquire)) {
    BeginDrain();  // asked to stop before the loop started
  }
  accept_retry_.kind = kAcceptRetry;
  drain_deadline_.kind = kDrainDeadline;
  if (on_start_) {
    on_start_(*this);
  }
  batch_.reserve(kMaxBatch);

  for (;;) {
    // (1) one submit per turn, waiting for at least one completion or the next timer.
    bufs_.Publish();
    __kernel_timespec ts{};
    __kernel_timespec* tsp = nullptr;
    if (auto next = timers_.NextDeadline()) {
      const uint64_t now = MonotonicMs();
      const uint64_t wait = *next > now ? *next - now : 0;
      ts.tv_sec = static_cast<int64_t>(wait / 1000);
      ts.tv_nsec = static_cast<int64_t>((wait % 1000) * 1000000);
      tsp = &ts;
    }
    if (cqe_backlog_.empty() && !forward_again_.empty()) {
      // A forward goes on this turn: completions are taken without waiting for one.
      __kernel_timespec zero{};
      io_uring_cqe* first = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &first, 1, &zero, nullptr);
    } else if (cqe_backlog_.empty()) {
      const int rc = SubmitAndWait(tsp);
      if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
        spdlog::error("worker {}: io_uring_submit_and_wait failed: {}", options_.id,
                      strerror(-rc));
      }
    } else {
      io_uring_submit(&ring_);
    }
    now_ns_ = MonotonicNs();
    now_ms_ = now_ns_ / 1000000;

    // (2) dispatch every completion: the backlog first (it is older), then the ring.
    batch_.clear();
    batch_.swap(cqe_backlog_);
    ReapInto(batch_);
    for (const io_uring_cqe& cqe : batch_) {
      Dispatch(cqe);
    }

    // (3) timers, (4) before sleep: sends, re-arms, reclaim.
    RunTimers();
    BeforeSleep();

    if (draining_ && stats_.conns_live == 0 && files_inflight_ == 0) {
      break;
    }
  }
  // From here the ring is not driven: watches and tasks touched after Run() (their owners'
  // destructors, on another thread) submit nothing (a single-issuer ring would refuse it).
  loop_done_ = true;
  return {};
}

void Worker::Dispatch(const io_uring_cqe& cqe) {
  const OpTag tag = OpTag::Decode(cqe.user_data);
  if (tag.op == Op::kWake) {
    OnWake();
    return;
  }
  if (tag.op == Op::kAccept) {
    OnAcceptCqe(tag.slot, cqe);
    return;
  }
  if (tag.op == Op::kPoll) {
    OnPollCqe(tag, cqe.res);
    return;
  }
  if (tag.op == Op::kPollRemove) {
    return;
  }
  if (tag.op == Op::kFile) {
    OnFileCqe(tag.slot, cqe.res);
    return;
  }
  Conn* c = tag.slot < conns_.size() ? conns_[tag.slot].get() : nullptr;
  if (c == nullptr || c->state_ == Conn::State::kFree || c->gen_ != tag.gen) {
    // Rule 2 says this cannot happen (a slot is reused only after its last CQE); count it
    // the way HAProxy's COUNT_IF does, and never leak the buffer it may carry.
    ++stats_.stale_completions;
    if (cqe.flags & IORING_CQE_F_BUFFER) {
      bufs_.Recycle(static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
    }
    return;
  }
  if (!(cqe.flags & IORING_CQE_F_MORE)) {
    --c->inflight_;
  }
  switch (tag.op) {
    case Op::kRecv:
      OnRecvCqe(*c, cqe);
      break;
    case Op::kSend:
      OnSendCqe(*c, cqe.res);
      break;
    case Op::kConnect:
      OnConnectCqe(*c, cqe.res);
      break;
    case Op::kSynAck:
      OnSynAckCqe(*c, cqe.res);
      break;
    case Op::kClose:
      c->fd_ = -1;
      reclaim_list_.push_back(c->slot_);
      return;
    case Op::kCancel:
    case Op::kRecvCancel:
    case Op::kShutdown:
    case Op::kAccept:
    case Op::kWake:
    case Op::kPoll:
    case Op::kPollRemove:
    case Op::kFile:
      break;
  }
  MaybeFinishClose(*c);
}

void Worker::OnAcceptCqe(uint32_t index, const io_uring_cqe& cqe) {
  Listener* l = nullptr;
  for (Listener& candidate : listeners_) {
    if (candidate.index == index) {
      l = &candidate;
    }
  }
  if (l == nullptr) {
    if (cqe.res >= 0) {
      ::close(cqe.res);
    }
    return;
  }
  if (!(cqe.flags & IORING_CQE_F_MORE)) {
    l->armed = false;
  }
  if (cqe.res < 0) {
    if (cqe.res == -ECANCELED || draining_) {
      return;
    }
    ++stats_.accept_errors;
    if (IsFdExhaustion(-cqe.res)) {
      // Out of fds. Pause accepting and retry on a timer (nginx does the same); never spin.
      if (now_ms_ - last_accept_error_log_ms_ >= 1000) {
        last_accept_error_log_ms_ = now_ms_;
        spdlog::warn("worker {}: accept failed: {}; pausing accepts for {} ms", options_.id,
                     strerror(-cqe.res), kAcceptRetryMs);
      }
      timers_.Schedule(accept_retry_, now_ms_ + kAcceptRetryMs);
      return;
    }
    if (!l->armed) {
      ArmAccept(*l);
    }
    return;
  }
  const int fd = cqe.res;
  if (!l->armed && !accept_retry_.linked()) {
    ArmAccept(*l);
  }
  if (draining_) {
    ::close(fd);
    ++stats_.accept_rejected;
    return;
  }
  Conn* c = AllocConn(fd);
  // Evict only while the headroom lasts: victims still closing count as live, so a burst of
  // accepts within one turn displaces at most that many connections, never every idle one.
  if (c == nullptr && stats_.conns_live < options_.max_conns + EvictionHeadroom()) {
    // At the limit: the longest-silent fresh connection, else the longest-idle keep-alive
    // one, makes room for the newcomer (a keep-alive client reconnects if it wants to).
    for (Conn::Idle kind : {Conn::Idle::kFresh, Conn::Idle::kKeepAlive}) {
      const uint32_t victim = idle_head_[static_cast<size_t>(kind)];
      if (victim != kNoSlot) {
        conns_[victim]->Close();
        ++stats_.idle_evicted;
        c = AllocConn(fd, /*overflow=*/true);
        break;
      }
    }
  }
  if (c == nullptr) {
    // Over the connection limit: accept and close; the connections we have keep working.
    ::close(fd);
    ++stats_.accept_rejected;
    if (now_ms_ - last_accept_error_log_ms_ >= 1000) {
      last_accept_error_log_ms_ = now_ms_;
      spdlog::warn("worker {}: connection table full ({}), refusing connections", options_.id,
                   options_.max_conns);
    }
    return;
  }
  ++stats_.accepted;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  socklen_t peer_len = sizeof(c->peer_);
  if (getpeername(fd, &c->peer_.sa, &peer_len) != 0) {
    c->peer_.sa.sa_family = AF_UNSPEC;  // not the slot's previous peer
  }
  c->handler_ = accept_fn_ ? accept_fn_(*c, index) : nullptr;
  if (!c->handler_) {
    c->Close();
    return;
  }
  if (c->want_recv_ && c->state_ == Conn::State::kOpen && c->recv_ == Conn::RecvState::kOff) {
    ArmRecv(*c);
  }
}

void Worker::OnRecvCqe(Conn& c, const io_uring_cqe& cqe) {
  const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  if (!more) {
    c.recv_ = Conn::RecvState::kOff;
    if (c.recv_armed_one_shot_) {
      c.recv_armed_one_shot_ = false;
      --one_shot_recvs_;
    }
    if (const uint32_t id = ForwardFrom(c); id != Conn::kNoForward && cqe.res != 0) {
      if (cqe.res < 0 && cqe.res != -ENOBUFS && cqe.res != -ECANCELED) {
        // An error ends the receive: the forward cannot go on either (the handler hears it).
        EndForward(id);
      } else {
        // The receive stopped for the forward: the bytes it carries (if any) go first, then
        // splicing starts (this turn, before the sends).
        forwards_[id].splicing = true;
        forward_ready_.push_back(id);
      }
    }
  }
  if (cqe.res > 0) {
    const auto bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    if (c.state_ == Conn::State::kOpen && !c.close_after_flush_ && c.handler_) {
      bufs_.Hold(bid);
      recv_data_ = bufs_.Data(bid, static_cast<uint32_t>(cqe.res));
      recv_bid_ = bid;
      if (c.transport_) {
        c.transport_->OnReceived(c, recv_data_);
      } else if (ForwardFrom(c) == Conn::kNoForward) {
        c.handler_->OnRecv(c, recv_data_);
      } else if (const std::span<const char> rest = ForwardReceived(c, recv_data_);
                 !rest.empty() && c.state_ == Conn::State::kOpen && c.handler_) {
        c.handler_->OnRecv(c, rest);
      }
      recv_data_ = {};
      bufs_.Drop(bid);  // back to the kernel unless a send borrowed it
    } else {
      bufs_.Recycle(bid);  // closing, lingering or flushing before a close: discarded
    }
    if (!more && c.want_recv_ && c.state_ != Conn::State::kClosing && !c.in_rearm_list_) {
      c.in_rearm_list_ = true;
      rearm_list_.push_back(c.slot_);
    }
    return;
  }
  if (cqe.res == -ENOBUFS) {
    // The buffer ring ran dry. Backpressure, not an error: re-arm once buffers are back.
    ++stats_.enobufs;
    if (c.want_recv_ && c.state_ != Conn::State::kClosing && !c.in_rearm_list_) {
      c.in_rearm_list_ = true;
      rearm_list_.push_back(c.slot_);
    }
    return;
  }
  if (cqe.res == -ECANCELED) {
    if (c.want_recv_ && c.state_ != Conn::State::kClosing && !c.in_rearm_list_) {
      c.in_rearm_list_ = true;
      rearm_list_.push_back(c.slot_);
    }
    return;
  }
  if (c.state_ == Conn::State::kLingering) {
    c.Close();
    return;
  }
  if (c.state_ != Conn::State::kOpen || !c.handler_) {
    return;
  }
  c.want_recv_ = false;
  if (c.close_after_flush_) {
    // The handler is done with this connection. A FIN does not cancel the queued bytes
    // (StartLinger finishes the close once they are out); a reset makes them undeliverable.
    if (cqe.res != 0) {
      c.Close();
    }
    return;
  }
  if (cqe.res == 0) {
    c.handler_->OnEof(c);
  } else {
    c.handler_->OnError(c, Error::FromCqe(cqe.res, Side::kInternal));
  }
}

void Worker::OnSendCqe(Conn& c, int res) {
  c.send_in_flight_ = false;
  free_send_ops_.push_back(c.send_op_);
  c.send_op_ = ~uint32_t{0};
  if (res < 0) {
    if (c.state_ == Conn::State::kClosing) {
      return;
    }
    if (c.fast_open_ == Conn::FastOpen::kFirstSend && res == -EINPROGRESS) {
      // The SYN left without data: the bytes go once the handshake completes.
      MarkSend(c);
      ArmSynAck(c);
      return;
    }
    if (c.fast_open_ != Conn::FastOpen::kOff) {
      FailConnect(c, -res);  // refused or unreachable before the handler was told
      return;
    }
    if (c.state_ == Conn::State::kLingering || !c.handler_) {
      c.Close();
      return;
    }
    c.handler_->OnError(c, Error::FromCqe(res, Side::kInternal));
    return;
  }
  c.out_.Consume(static_cast<size_t>(res));
  if (c.state_ == Conn::State::kClosing) {
    return;
  }
  if (c.fast_open_ == Conn::FastOpen::kFirstSend) {
    ArmSynAck(c);
  }
  if (!c.out_.empty()) {
    MarkSend(c);
  } else if (c.forward_ != Conn::kNoForward) {
    PumpForward(ForwardInto(c));  // what dst had queued is out: the pipe's bytes may follow
  } else if (c.close_after_flush_ && c.state_ == Conn::State::kOpen) {
    StartLinger(c);
    return;
  }
  if (c.above_high_water_ && c.out_.size() < Conn::kLowWater) {
    c.above_high_water_ = false;
    if (c.handler_ && c.state_ == Conn::State::kOpen) {
      c.handler_->OnWritable(c);
    }
  }
}

void Worker::OnConnectCqe(Conn& c, int res) {
  if (c.state_ != Conn::State::kConnecting) {
    return;
  }
  if (res < 0) {
    FailConnect(c, -res);
    return;
  }
  c.state_ = Conn::State::kOpen;
  if (!c.out_.empty()) {
    MarkSend(c);
  }
  if (c.transport_) {
    c.transport_->OnConnected(c);  // its first flight (a ClientHello)
  }
  if (c.state_ != Conn::State::kOpen) {
    return;
  }
  if (c.fast_open_ == Conn::FastOpen::kOn &&
      (!c.out_.empty() || (c.transport_ && c.transport_->pending() > 0))) {
    // The connect may have completed without a packet (a cookie is cached): what is queued
    // goes in the SYN, and the handler hears of the connection once the peer answers.
    MarkSend(c);
    c.fast_open_ = Conn::FastOpen::kFirstSend;
    return;
  }
  Connected(c);
}

void Worker::Connected(Conn& c) {
  c.fast_open_ = Conn::FastOpen::kOff;
  if (c.want_recv_) {
    ArmRecv(c);
  }
  if (c.handler_) {
    c.handler_->OnConnected(c, {});
  }
}

void Worker::ArmSynAck(Conn& c) {
  c.fast_open_ = Conn::FastOpen::kSynAck;
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_poll_add(sqe, c.fd_, POLLOUT);
  Submit(sqe, OpTag{c.slot_, c.gen_, Op::kSynAck}, &c);
}

void Worker::OnSynAckCqe(Conn& c, int res) {
  if (c.fast_open_ != Conn::FastOpen::kSynAck || c.state_ != Conn::State::kOpen) {
    return;  // closing (the poll was cancelled), or a failed send already reported it
  }
  if (res < 0 || (res & (POLLERR | POLLHUP)) != 0) {
    int err = res < 0 ? -res : 0;
    socklen_t len = sizeof(err);
    if (res >= 0 && (getsockopt(c.fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0)) {
      err = ECONNREFUSED;
    }
    FailConnect(c, err);
    return;
  }
  Connected(c);
}

void Worker::FailConnect(Conn& c, int err) {
  c.state_ = Conn::State::kOpen;  // so the handler's Close() proceeds normally
  c.fast_open_ = Conn::FastOpen::kOff;
  c.want_recv_ = false;
  if (c.handler_) {
    c.handler_->OnConnected(c, std::unexpected(Error::FromErrno(err, Side::kUpstream)));
  }
  c.Close();
}

void Worker::StartLinger(Conn& c) {
  c.state_ = Conn::State::kLingering;
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_shutdown(sqe, c.fd_, SHUT_WR);
  Submit(sqe, OpTag{c.slot_, c.gen_, Op::kShutdown}, &c);
  c.timer_.owner = c.slot_;
  c.timer_.kind = kConnTimer;
  timers_.Schedule(c.timer_, now_ms_ + options_.linger_ms);
  c.want_recv_ = true;
  if (c.recv_ == Conn::RecvState::kOff) {
    ArmRecv(c);
  }
}

void Worker::MaybeFinishClose(Conn& c) {
  if (c.state_ != Conn::State::kClosing || c.inflight_ != 0 || c.close_submitted_) {
    return;
  }
  c.close_submitted_ = true;
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_close(sqe, c.fd_);
  Submit(sqe, OpTag{c.slot_, c.gen_, Op::kClose}, &c);
}

void Worker::OnWake() {
  ArmWake();
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(mailbox_mu_);
    work.swap(mailbox_);
  }
  for (auto& fn : work) {
    fn();
  }
  if (stop_requested_.load(std::memory_order_acquire) && !draining_) {
    BeginDrain();
  }
}

void Worker::RequestStop() {
  stop_requested_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  if (wake_fd_ >= 0) {
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }
}

void Worker::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mailbox_mu_);
    mailbox_.push_back(std::move(fn));
  }
  const uint64_t one = 1;
  if (wake_fd_ >= 0) {
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }
}

void Worker::BeginDrain() {
  draining_ = true;
  // Stop accepting: closing the listening socket ends its multishot accept.
  for (Listener& l : listeners_) {
    if (l.fd >= 0) {
      ::shutdown(l.fd, SHUT_RDWR);
      ::close(l.fd);
      l.fd = -1;
    }
  }
  timers_.Cancel(accept_retry_);
  timers_.Schedule(drain_deadline_, now_ms_ + options_.drain_grace_ms);
  for (auto& c : conns_) {
    if (c->state_ == Conn::State::kOpen || c->state_ == Conn::State::kConnecting) {
      if (c->handler_) {
        c->handler_->OnDrain(*c);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Forwards (Conn::ForwardTo)

bool Conn::ForwardTo(Conn& to, uint64_t bytes) {
  if (bytes == 0 || &to == this || transport_ || to.transport_ || state_ != State::kOpen ||
      to.state_ != State::kOpen || close_after_flush_ || to.close_after_flush_ ||
      forward_ != kNoForward || to.forward_ != kNoForward) {
    return false;
  }
  return worker_->StartForward(*this, to, bytes);
}

bool Conn::ForwardWaitsForDestination() const {
  const uint32_t id = worker_->ForwardFrom(*this);
  if (id == kNoForward) {
    return false;
  }
  const Worker::Forward& f = worker_->forwards_[id];
  const Conn* dst = worker_->Resolve(f.dst);
  return f.in_pipe > 0 || (dst != nullptr && (!dst->out_.empty() || dst->send_in_flight_));
}

bool Worker::StartForward(Conn& src, Conn& dst, uint64_t bytes) {
  std::pair<int, int> pipe_fds;
  if (!spare_pipes_.empty()) {
    pipe_fds = spare_pipes_.back();
    spare_pipes_.pop_back();
  } else {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
      return false;  // descriptors exhausted: the caller moves the bytes itself
    }
    // Larger than the kernel's default where allowed (fs.pipe-max-size, the user's pipe pages):
    // a 100 KiB body then moves in one splice each way. Where refused, the pipe keeps its
    // default size and fills sooner (a full pipe is an EAGAIN like an empty socket's).
    fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(kPipeBytes));
    pipe_fds = {fds[0], fds[1]};
  }
  const uint32_t id =
      base::TakeIndex(free_forwards_, forwards_.size(), [&] { forwards_.emplace_back(); });
  Forward& f = forwards_[id];
  f = Forward{};
  f.src = src.ref();
  f.dst = dst.ref();
  f.pipe_r = pipe_fds.first;
  f.pipe_w = pipe_fds.second;
  f.left = bytes;
  f.live = true;
  // Watches with no events yet: armed (one poll) only when a splice would block.
  f.src_watch = Watch(src.fd_, 0, [this, id](uint32_t) {
    forwards_[id].waits_src = false;
    Rewatch(forwards_[id].src_watch, 0);
    PumpForward(id);
  });
  forwards_[id].dst_watch = Watch(dst.fd_, 0, [this, id](uint32_t) {
    forwards_[id].waits_dst = false;
    Rewatch(forwards_[id].dst_watch, 0);
    PumpForward(id);
  });
  src.forward_ = id;
  dst.forward_ = id;
  ++stats_.forwards;
  src.PauseRecv();
  if (src.recv_ == Conn::RecvState::kOff) {
    forwards_[id].splicing = true;
    forward_ready_.push_back(id);
  }
  return true;
}

std::span<const char> Worker::ForwardReceived(Conn& src, std::span<const char> data) {
  const uint32_t id = ForwardFrom(src);
  Forward& f = forwards_[id];
  Conn* dst = Resolve(f.dst);
  const size_t n = static_cast<size_t>(std::min<uint64_t>(f.left, data.size()));
  if (dst != nullptr) {
    dst->WriteFromRecvBuffer(std::string_view(data.data(), n));
  }
  f.left -= n;
  f.moved += n;
  if (f.left == 0) {
    FinishForward(id, /*input_follows=*/data.size() > n);
  } else {
    ReportForward(src, f, /*done=*/false, /*input_follows=*/false);
  }
  return data.subspan(n);
}

ForwardProgress Worker::TakeProgress(Forward& f, bool done, bool input_follows) {
  ForwardProgress p;
  p.bytes = std::exchange(f.moved, 0);
  p.spliced = std::exchange(f.spliced, 0);
  p.done = done;
  p.input_follows = input_follows;
  return p;
}

void Worker::ReportForward(Conn& src, Forward& f, bool done, bool input_follows) {
  const ForwardProgress p = TakeProgress(f, done, input_follows);
  if ((p.bytes > 0 || done) && src.handler_ && src.state_ == Conn::State::kOpen) {
    src.handler_->OnForwarded(src, p);
  }
}

void Worker::PumpForward(uint32_t id) {
  if (id >= forwards_.size() || !forwards_[id].live || !forwards_[id].splicing) {
    return;
  }
  Forward& f = forwards_[id];
  Conn* src = Resolve(f.src);
  Conn* dst = Resolve(f.dst);
  if (src == nullptr || dst == nullptr) {
    EndForward(id);  // Close() ends a forward first: not expected
    return;
  }
  int rounds = 0;
  for (bool progress = true; progress;) {
    if (++rounds > kPumpRounds) {
      forward_again_.push_back(id);  // the others' turn: this one goes on in the next
      ++stats_.forward_yields;
      break;
    }
    progress = false;
    // Out first: the pipe into dst, once what dst queued before it has gone (what it queued
    // since the first spliced byte waits behind the pipe's bytes).
    if (f.in_pipe > 0 && !f.waits_dst && !dst->send_in_flight_ &&
        (dst->out_.empty() || f.out_started)) {
      const ssize_t n = splice(f.pipe_r, nullptr, dst->fd_, nullptr, f.in_pipe,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        f.in_pipe -= static_cast<uint64_t>(n);
        f.moved += static_cast<uint64_t>(n);
        f.spliced += static_cast<uint64_t>(n);
        f.out_started = true;
        stats_.spliced_bytes += static_cast<uint64_t>(n);
        progress = true;
      } else if (n < 0 && errno == EAGAIN) {
        f.waits_dst = true;
        Rewatch(f.dst_watch, POLLOUT);
      } else {
        const int err = n < 0 ? errno : EPIPE;
        EndForward(id);
        if (dst->handler_ && dst->state_ == Conn::State::kOpen) {
          dst->handler_->OnError(*dst, Error::FromErrno(err, Side::kInternal));
        }
        return;
      }
    }
    // In: src into the pipe while it has room. EAGAIN with bytes in the pipe may mean a full
    // pipe rather than an empty socket: dst's progress brings the next try, not a poll of src.
    if (f.left > 0 && !f.waits_src && !f.src_ended && f.in_pipe < kPipeBytes) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(f.left, kPipeBytes - f.in_pipe));
      const ssize_t n =
          splice(src->fd_, nullptr, f.pipe_w, nullptr, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        f.left -= static_cast<uint64_t>(n);
        f.in_pipe += static_cast<uint64_t>(n);
        progress = true;
      } else if (n < 0 && errno == EAGAIN) {
        if (f.in_pipe == 0) {
          f.waits_src = true;
          Rewatch(f.src_watch, POLLIN);
        }
      } else {
        f.src_ended = true;  // the peer closed (0) or failed before all was forwarded: below
        f.src_err = n < 0 ? errno : 0;
      }
    }
  }
  if (f.left == 0 && f.in_pipe == 0) {
    FinishForward(id, /*input_follows=*/false);
    return;
  }
  if (f.src_ended && f.in_pipe == 0) {
    SourceEnded(id, *src, f.src_err);  // after every byte read before the end has gone on
    return;
  }
  ReportForward(*src, f, /*done=*/false, /*input_follows=*/false);
}

void Worker::SourceEnded(uint32_t id, Conn& src, int err) {
  // Its handler hears what moved, then the end as it would from a receive.
  ReportForward(src, forwards_[id], /*done=*/false, /*input_follows=*/false);
  EndForward(id);
  src.want_recv_ = false;
  if (!src.handler_ || src.state_ != Conn::State::kOpen) {
    return;
  }
  if (err == 0) {
    src.handler_->OnEof(src);
  } else {
    src.handler_->OnError(src, Error::FromErrno(err, Side::kInternal));
  }
}

void Worker::FinishForward(uint32_t id, bool input_follows) {
  Forward& f = forwards_[id];
  const ForwardProgress p = TakeProgress(f, /*done=*/true, input_follows);
  Conn* src = Resolve(f.src);
  EndForward(id);
  if (src != nullptr && src->state_ == Conn::State::kOpen) {
    src->ResumeRecv();
    if (src->handler_) {
      src->handler_->OnForwarded(*src, p);
    }
  }
}

void Worker::EndForward(uint32_t id) {
  Forward& f = forwards_[id];
  if (!f.live) {
    return;
  }
  f.live = false;
  Unwatch(f.src_watch);
  Unwatch(f.dst_watch);
  for (const ConnRef& ref : {f.src, f.dst}) {
    if (ref.slot < conns_.size() && conns_[ref.slot]->forward_ == id) {
      conns_[ref.slot]->forward_ = Conn::kNoForward;
    }
  }
  if (f.in_pipe == 0 && spare_pipes_.size() < kSparePipes) {
    spare_pipes_.emplace_back(f.pipe_r, f.pipe_w);
  } else {
    ::close(f.pipe_r);  // bytes left in it belong to nobody now
    ::close(f.pipe_w);
  }
  f.pipe_r = f.pipe_w = -1;
  free_forwards_.push_back(id);
  for (const ConnRef& ref : {f.src, f.dst}) {
    if (Conn* c = Resolve(ref)) {
      AfterForward(*c);
    }
  }
}

void Worker::AfterForward(Conn& c) {
  if (c.state_ != Conn::State::kOpen) {
    return;  // closing (the Close() that ended the forward, maybe) or lingering already
  }
  if (!c.out_.empty()) {
    MarkSend(c);  // held back while the forward lasted: it follows the forwarded bytes
  } else if (c.close_after_flush_ && c.send_idle()) {
    StartLinger(c);
  }
}

Worker::WatchId Worker::Watch(int fd, uint32_t events, WatchFn fn) {
  const WatchId id =
      base::TakeIndex(free_watches_, watches_.size(), [&] { watches_.emplace_back(); });
  FdWatch& w = watches_[id];
  w.fd = fd;
  w.events = events;
  w.armed = false;
  w.fn = std::move(fn);
  ArmWatch(id);
  return id;
}

void Worker::Rewatch(WatchId id, uint32_t events) {
  if (id >= watches_.size() || watches_[id].fd < 0 || watches_[id].events == events) {
    return;
  }
  DisarmWatch(id);  // a poll's mask cannot change in flight: remove it, arm another
  watches_[id].events = events;
  ArmWatch(id);
}

void Worker::Unwatch(WatchId id) {
  if (id >= watches_.size() || watches_[id].fd < 0) {
    return;
  }
  DisarmWatch(id);
  FdWatch& w = watches_[id];
  w.gen = (w.gen + 1) & OpTag::kGenMask;  // also when unarmed: OnPollCqe may be calling fn
  w.fd = -1;
  w.events = 0;
  w.fn = nullptr;
  free_watches_.push_back(id);
}

void Worker::ArmWatch(WatchId id) {
  FdWatch& w = watches_[id];
  if (w.fd < 0 || w.armed || w.events == 0 || loop_done_) {
    return;
  }
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_poll_add(sqe, w.fd, w.events);
  Submit(sqe, OpTag{id, w.gen, Op::kPoll}, nullptr);
  w.armed = true;
}

void Worker::DisarmWatch(WatchId id) {
  FdWatch& w = watches_[id];
  if (!w.armed) {
    return;
  }
  if (loop_done_) {
    w.armed = false;  // the ring is torn down with the worker: nothing to cancel
    w.gen = (w.gen + 1) & OpTag::kGenMask;
    return;
  }
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_poll_remove(sqe, OpTag{id, w.gen, Op::kPoll}.Encode());
  Submit(sqe, OpTag{id, 0, Op::kPollRemove}, nullptr);
  w.armed = false;
  w.gen = (w.gen + 1) & OpTag::kGenMask;  // the removed poll's completion is now stale
}

void Worker::OnPollCqe(const OpTag& tag, int res) {
  if (tag.slot >= watches_.size()) {
    return;
  }
  FdWatch& w = watches_[tag.slot];
  if (w.fd < 0 || w.gen != tag.gen || !w.armed) {
    return;  // removed, or replaced by a poll for other events
  }
  w.armed = false;
  // fn may unwatch (or watch again, growing watches_): call a moved-out copy, then put it back
  // only if the same watch is still there.
  WatchFn fn = std::move(w.fn);
  fn(res < 0 ? static_cast<uint32_t>(POLLERR) : static_cast<uint32_t>(res));
  FdWatch& after = watches_[tag.slot];
  if (after.fd >= 0 && after.gen == tag.gen && !after.fn) {
    after.fn = std::move(fn);
    ArmWatch(tag.slot);
  }
}

Worker::TaskId Worker::AddTask(std::function<void()> fn) {
  if (!free_tasks_.empty()) {
    const TaskId id = free_tasks_.back();
    free_tasks_.pop_back();
    tasks_[id]->fn = std::move(fn);
    return id;
  }
  auto task = std::make_unique<Task>();
  task->fn = std::move(fn);
  task->entry.kind = kTask;
  task->entry.owner = static_cast<uint32_t>(tasks_.size());
  tasks_.push_back(std::move(task));
  return static_cast<TaskId>(tasks_.size() - 1);
}

void Worker::RemoveTask(TaskId id) {
  if (id >= tasks_.size() || !tasks_[id]->fn) {
    return;
  }
  timers_.Cancel(tasks_[id]->entry);
  if (id == running_task_) {
    running_removed_ = true;  // freed once its fn returns
    return;
  }
  tasks_[id]->fn = nullptr;
  free_tasks_.push_back(id);
}

void Worker::ArmTask(TaskId id, uint64_t deadline_ms) {
  if (id < tasks_.size()) {
    timers_.Schedule(tasks_[id]->entry, deadline_ms);
  }
}

void Worker::CancelTask(TaskId id) {
  if (id < tasks_.size()) {
    timers_.Cancel(tasks_[id]->entry);
  }
}

void Worker::RunTimers() {
  for (uint32_t i = 0; i < kMaxTimerRounds; ++i) {
    TimerWheel::Entry* e = timers_.PopExpired(now_ms_);
    if (e == nullptr) {
      return;
    }
    switch (e->kind) {
      case kConnTimer: {
        Conn* c = e->owner < conns_.size() ? conns_[e->owner].get() : nullptr;
        if (c == nullptr || c->state_ == Conn::State::kFree ||
            c->state_ == Conn::State::kClosing) {
          break;
        }
        if (c->state_ == Conn::State::kLingering || !c->handler_) {
          c->Close();
        } else {
          c->handler_->OnTimer(*c);
        }
        break;
      }
      case kAcceptRetry:
        for (Listener& l : listeners_) {
          ArmAccept(l);
        }
        break;
      case kTask:
        if (e->owner < tasks_.size() && tasks_[e->owner]->fn) {
          running_task_ = e->owner;
          running_removed_ = false;
          tasks_[e->owner]->fn();
          running_task_ = kNoTask;
          if (running_removed_) {
            tasks_[e->owner]->fn = nullptr;
            free_tasks_.push_back(e->owner);
          }
        }
        break;
      case kDrainDeadline:
        for (auto& c : conns_) {
          if (c->state_ != Conn::State::kFree) {
            c->Close();
          }
        }
        break;
      default:
        break;
    }
  }
}

void Worker::TrimAfterBurst() {
  // A burst of connections grows the heap (their sessions, exchange buffers, out-queue
  // blocks); once most of them are gone, glibc keeps the freed memory in its arenas. Give it
  // back (malloc_trim returns the free pages of every arena) when the live count fell to a
  // quarter of its peak, at most once a second: a handful of calls per burst, none in a
  // steady state.
  peak_live_ = std::max(peak_live_, stats_.conns_live);
  if (peak_live_ - stats_.conns_live < kTrimDrop || stats_.conns_live > peak_live_ / 4) {
    return;
  }
  if (TrimHeap()) {
    peak_live_ = stats_.conns_live;
  }
}

void Worker::TrimBlockPool() {
  // After a burst the pool holds what its busiest moment returned (up to its bounds): blocks
  // scattered through the heap that keep the pages around them, even once the connections
  // that used them are idle. Those no write needed for a whole second go, then the heap.
  if (blocks_.Trim() >= kPoolTrimHeapBytes) {
    heap_trim_owed_ = true;
  }
  if (heap_trim_owed_ && TrimHeap()) {
    heap_trim_owed_ = false;
  }
}

void Worker::TrimRecvRing() {
  // Quiet: the kernel filled fewer buffers in the last second than a sixteenth of the ring.
  // Busy, the pages would only be touched again at once; quiet, the next fills cost a page
  // fault each. Every completion must have been seen (none waiting in the queue or in the
  // kernel's overflow list): a buffer filled for one not yet seen has no holder yet.
  if (bufs_.recycled() - ring_armed_at_ >= std::max(1u, options_.recv_buffers / 16) ||
      one_shot_recvs_ != 0 || io_uring_cq_ready(&ring_) != 0 || io_uring_cq_has_overflow(&ring_) ||
      !cqe_backlog_.empty()) {
    return;  // BeforeSleep arms it again
  }
  bufs_.Release();
  ring_released_at_ = bufs_.recycled();
  ++stats_.recv_ring_releases;
}

void Worker::ArmInASecond(SecondCheck& check, void (Worker::*run)()) {
  if (check.task == kNoTask) {
    check.task = AddTask([this, &check, run] {
      check.armed = false;
      (this->*run)();
    });
  }
  ArmTask(check.task, now_ms_ + 1000);
  check.armed = true;
}

bool Worker::TrimHeap() {
  if (now_ms_ - last_trim_ms_ < 1000) {
    return false;
  }
  malloc_trim(0);
  last_trim_ms_ = now_ms_;
  ++stats_.heap_trims;
  return true;
}

void Worker::BeforeSleep() {
  published_.conns_live.Set(stats_.conns_live);
  published_.accepted.Set(stats_.accepted);
  published_.accept_rejected.Set(stats_.accept_rejected);
  published_.idle_evicted.Set(stats_.idle_evicted);
  // Slots whose close completed: destroy the handler, bump the generation, free the slot.
  // First, so that whatever a handler does in OnClosed (write to its peer, close it) is
  // submitted in this same turn.
  for (size_t i = 0; i < reclaim_list_.size(); ++i) {
    Conn& c = *conns_[reclaim_list_[i]];
    if (c.handler_) {
      c.handler_->OnClosed(c);
      c.handler_.reset();
    }
    c.transport_.reset();
    c.out_.Clear();
    timers_.Cancel(c.timer_);
    c.state_ = Conn::State::kFree;
    c.gen_ = (c.gen_ + 1) & OpTag::kGenMask;
    free_slots_.push_back(c.slot_);
    --stats_.conns_live;
  }
  reclaim_list_.clear();
  TrimAfterBurst();
  if (!pool_trim_.armed && (heap_trim_owed_ || blocks_.cached_bytes() > 0) && !draining_) {
    ArmInASecond(pool_trim_, &Worker::TrimBlockPool);
  }
  // Buffers filled since the ring's pages last went back: look again in a second (TrimRecvRing).
  if (!ring_trim_.armed && release_ring_ && bufs_.recycled() != ring_released_at_ && !draining_) {
    ring_armed_at_ = bufs_.recycled();
    ArmInASecond(ring_trim_, &Worker::TrimRecvRing);
  }

  // Receives to re-arm (ENOBUFS, cancelled for a pause that has since been lifted, ...).
  for (size_t i = 0; i < rearm_list_.size(); ++i) {
    Conn& c = *conns_[rearm_list_[i]];
    c.in_rearm_list_ = false;
    if (c.want_recv_ && c.recv_ == Conn::RecvState::kOff &&
        (c.state_ == Conn::State::kOpen || c.state_ == Conn::State::kLingering)) {
      ArmRecv(c);
    }
  }
  rearm_list_.clear();

  // Forwards whose source stopped receiving: the first splices (which may finish them and call
  // their handlers, so before the flushes and the sends).
  forward_ready_.insert(forward_ready_.end(), forward_again_.begin(), forward_again_.end());
  forward_again_.clear();
  for (size_t i = 0; i < forward_ready_.size(); ++i) {
    PumpForward(forward_ready_[i]);
  }
  forward_ready_.clear();

  // Handlers that batch their output write it now (what they write joins the sends below).
  // A handler may ask again from OnFlush: it runs again, in this same pass.
  for (size_t i = 0; i < flush_list_.size(); ++i) {
    Conn& c = *conns_[flush_list_[i]];
    c.in_flush_list_ = false;
    if (c.state_ == Conn::State::kOpen && c.handler_) {
      c.handler_->OnFlush(c);
    }
  }
  flush_list_.clear();

  // At most one send in flight per connection, carrying everything queued (up to kMaxIov).
  for (size_t i = 0; i < send_list_.size(); ++i) {
    Conn& c = *conns_[send_list_[i]];
    if (c.transport_ && c.state_ == Conn::State::kOpen) {
      c.transport_->Flush(c);  // still in the send list: its WriteRaw() does not re-add it
    }
    c.in_send_list_ = false;
    if (c.send_in_flight_ || c.out_.empty() ||
        (c.state_ != Conn::State::kOpen && c.state_ != Conn::State::kLingering)) {
      continue;
    }
    if (const uint32_t id = ForwardInto(c); id != Conn::kNoForward && forwards_[id].out_started) {
      continue;  // written after the forwarded bytes began: it follows them (AfterForward)
    }
    c.send_op_ = base::TakeIndex(free_send_ops_, send_ops_.size(),
                                 [&] { send_ops_.push_back(std::make_unique<SendOp>()); });
    SendOp& op = *send_ops_[c.send_op_];
    const int n = c.out_.FillIov(op.iov, Conn::kMaxIov);
    io_uring_sqe* sqe = GetSqe();
    if (n == 1) {
      // One piece (a short response's head and body share a block): a plain send, which spares
      // the kernel copying in and checking a msghdr and an iovec array.
      io_uring_prep_send(sqe, c.fd_, op.iov[0].iov_base, op.iov[0].iov_len, MSG_NOSIGNAL);
    } else {
      op.msg = msghdr{};
      op.msg.msg_iov = op.iov;
      op.msg.msg_iovlen = static_cast<size_t>(n);
      io_uring_prep_sendmsg(sqe, c.fd_, &op.msg, MSG_NOSIGNAL);
    }
    Submit(sqe, OpTag{c.slot_, c.gen_, Op::kSend}, &c);
    c.send_in_flight_ = true;
  }
  send_list_.clear();
  if (on_turn_end_) {
    on_turn_end_();
  }
}

// ---------------------------------------------------------------------------------------------
// Worker: file I/O

void Worker::ReadFile(int fd, uint64_t offset, std::span<const iovec> iov, FileFn fn) {
  SubmitFile(false, fd, offset, iov, std::move(fn));
}

void Worker::WriteFile(int fd, uint64_t offset, std::span<const iovec> iov, FileFn fn) {
  SubmitFile(true, fd, offset, iov, std::move(fn));
}

void Worker::SubmitFile(bool write, int fd, uint64_t offset, std::span<const iovec> iov,
                        FileFn fn) {
  const uint32_t index = base::TakeIndex(free_file_ops_, file_ops_.size(),
                                         [&] { file_ops_.push_back(std::make_unique<FileOp>()); });
  FileOp& op = *file_ops_[index];
  op.iov.assign(iov.begin(), iov.end());
  op.fn = std::move(fn);
  io_uring_sqe* sqe = GetSqe();
  if (write) {
    io_uring_prep_writev(sqe, fd, op.iov.data(), static_cast<unsigned>(op.iov.size()), offset);
  } else {
    io_uring_prep_readv(sqe, fd, op.iov.data(), static_cast<unsigned>(op.iov.size()), offset);
  }
  ++files_inflight_;
  Submit(sqe, OpTag{index, 0, Op::kFile}, nullptr);
}

void Worker::OnFileCqe(uint32_t index, int res) {
  if (index >= file_ops_.size() || !file_ops_[index]->fn) {
    ++stats_.stale_completions;
    return;
  }
  FileOp& op = *file_ops_[index];
  FileFn fn = std::move(op.fn);
  op.fn = nullptr;
  op.iov.clear();
  free_file_ops_.push_back(index);
  --files_inflight_;
  fn(res);
}

}  // namespace torii::core
