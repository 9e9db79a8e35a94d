// tests/core/worker_test.cc: the io_uring worker loop (core/worker.cc) with a real ring on real
// loopback sockets, meant to run under ASan+UBSan (STYLE.md §J). Each test runs one Worker on
// its own std::thread, talks to it over sockets from the test thread, inspects it only through
// Worker::Post (its state belongs to its thread) and stops it with RequestStop(). Every wait is
// bounded; a worker that does not stop aborts the binary rather than hang ctest.
//
// What is pinned: accept + echo, outbound Connect, peer resets (with a request half-read and
// with a send in flight), 10k connections churned through the same slots, CloseAfterFlush,
// PauseRecv/ResumeRecv, per-connection timers, a tiny provided-buffer ring (BAD-INPUTS E5) and
// tiny SQ/CQ rings (E3/E4), graceful stop.
#include "core/worker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace torii::core {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Socket helpers (test thread side; blocking sockets with timeouts, or poll with a deadline).

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return 0;
  }
  return ntohs(a.sin_port);
}

// A bound, listening socket on 127.0.0.1:0. `nonblocking` for the worker (AddListener).
int MakeListener(uint16_t* port, bool nonblocking = true) {
  const int fd =
      ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) {
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = Loopback(0);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 4096) != 0) {
    ::close(fd);
    return -1;
  }
  *port = LocalPort(fd);
  return fd;
}

void SetTimeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// A blocking client connected to 127.0.0.1:port, with 5 s send/receive timeouts.
int ConnectTo(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  SetTimeouts(fd, 5s);
  sockaddr_in a = Loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until `n` bytes, EOF, an error or the deadline, whichever first.
std::string ReadUpTo(int fd, size_t n, std::chrono::milliseconds timeout, bool* eof = nullptr) {
  std::string out;
  const auto deadline = Clock::now() + timeout;
  if (eof != nullptr) {
    *eof = false;
  }
  char buf[65536];
  while (out.size() < n) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) {
      break;
    }
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc <= 0) {
      if (rc < 0 && errno == EINTR) {
        continue;
      }
      break;
    }
    const ssize_t got = ::recv(fd, buf, std::min(sizeof(buf), n - out.size()), MSG_DONTWAIT);
    if (got == 0) {
      if (eof != nullptr) {
        *eof = true;
      }
      break;
    }
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        continue;
      }
      break;
    }
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

// Waits for EOF (true) or data/error/timeout (false).
bool WaitEof(int fd, std::chrono::milliseconds timeout) {
  bool eof = false;
  const std::string extra = ReadUpTo(fd, 1, timeout, &eof);
  return eof && extra.empty();
}

void CloseWithRst(int fd) {
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(fd);
}

std::string Pattern(size_t n, uint32_t seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 7 + seed + i / 253) & 0xFF);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Probe: what handlers saw, shared with the test thread under a mutex.

struct Probe {
  std::mutex mu;
  std::condition_variable cv;
  int accepted = 0;
  int closed = 0;
  int eofs = 0;
  int errors = 0;
  int timers = 0;
  int drains = 0;
  int writables = 0;
  int connected_ok = 0;
  int connected_err = 0;
  std::vector<Errc> error_codes;
  std::vector<ConnRef> refs;
  std::string received;  // single-connection tests
  uint64_t recv_calls = 0;
  uint64_t bytes = 0;
  std::vector<uint64_t> timer_fired_ms;
  std::vector<uint64_t> timer_deadline_ms;
  std::vector<std::string> failures;  // checks made on the worker thread
  uint64_t forwarded = 0;             // OnForwarded's bytes (and spliced), its calls with `done`
  uint64_t spliced = 0;               // (and with `input_follows`)
  int forward_done = 0;
  int input_follows = 0;

  template <class F>
  void Update(F&& f) {
    {
      std::lock_guard<std::mutex> lock(mu);
      f();
    }
    cv.notify_all();
  }
  template <class P>
  bool WaitFor(P&& pred, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return pred(); });
  }
  template <class F>
  auto Read(F&& f) {
    std::lock_guard<std::mutex> lock(mu);
    return f();
  }
};

// ---------------------------------------------------------------------------------------------
// WorkerRunner: one Worker on its own thread.

class WorkerRunner {
 public:
  explicit WorkerRunner(const WorkerOptions& options) : worker_(options) {}
  ~WorkerRunner() {
    if (thread_.joinable()) {
      Stop();
    }
  }

  Worker& worker() { return worker_; }

  // Starts the loop and waits (bounded) until it runs. Returns false if it failed to start.
  bool Start() {
    auto started = started_.get_future();
    worker_.set_on_start([this](Worker&) { started_.set_value(); });
    thread_ = std::thread([this] {
      result_ = worker_.Run();
      done_.store(true);
      if (!result_) {
        try {
          started_.set_value();
        } catch (...) {
        }
      }
    });
    if (started.wait_for(10s) != std::future_status::ready) {
      std::fprintf(stderr, "worker did not start within 10 s\n");
      std::abort();
    }
    return !done_.load() || result_.has_value();
  }

  // Runs `fn` on the worker's thread and waits for it (bounded).
  template <class F>
  auto OnWorker(F&& fn) -> decltype(fn()) {
    using R = decltype(fn());
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(fn));
    auto fut = task->get_future();
    worker_.Post([task] { (*task)(); });
    if (fut.wait_for(10s) != std::future_status::ready) {
      std::fprintf(stderr, "worker did not run a posted task within 10 s\n");
      std::abort();
    }
    return fut.get();
  }

  WorkerStats Stats() {
    return OnWorker([this] { return worker_.stats(); });
  }

  // Polls conns_live until it reaches `n` (bounded). Returns the last value seen.
  uint64_t WaitConnsLive(uint64_t n, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    uint64_t live = Stats().conns_live;
    while (live != n && Clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
      live = Stats().conns_live;
    }
    return live;
  }

  // RequestStop, then wait (bounded) for Run() to return. Returns Run()'s result.
  Result<void> Stop(std::chrono::milliseconds timeout = 15s) {
    worker_.RequestStop();
    return Join(timeout);
  }

  bool done() const { return done_.load(); }

  Result<void> Join(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!done_.load() && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    if (!done_.load()) {
      std::fprintf(stderr, "worker did not stop within %lld ms\n",
                   static_cast<long long>(timeout.count()));
      std::abort();
    }
    thread_.join();
    return result_;
  }

  void StartThreadOnly() {
    thread_ = std::thread([this] {
      result_ = worker_.Run();
      done_.store(true);
    });
  }

 private:
  Worker worker_;
  std::thread thread_;
  std::promise<void> started_;
  std::atomic<bool> done_{false};
  Result<void> result_;
};

WorkerOptions SmallOptions() {
  WorkerOptions o;
  o.sq_entries = 256;
  o.recv_buffers = 64;
  o.recv_buffer_size = 16 * 1024;
  o.max_conns = 4096;
  o.drain_grace_ms = 2000;
  o.linger_ms = 1000;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Handlers

// Echoes what it receives; closes after flushing on EOF; closes on error, timer or drain.
class EchoHandler : public ConnHandler {
 public:
  explicit EchoHandler(Probe* probe) : probe_(probe) {}
  void OnRecv(Conn& conn, std::span<const char> data) override {
    probe_->Update([&] {
      probe_->bytes += data.size();
      ++probe_->recv_calls;
    });
    conn.Write(std::string_view(data.data(), data.size()));
  }
  void OnEof(Conn& conn) override {
    probe_->Update([&] { ++probe_->eofs; });
    conn.CloseAfterFlush();
  }
  void OnError(Conn& conn, Error error) override {
    probe_->Update([&] {
      ++probe_->errors;
      probe_->error_codes.push_back(error.code);
    });
    conn.Close();
  }
  void OnTimer(Conn& conn) override { conn.Close(); }
  void OnDrain(Conn& conn) override {
    probe_->Update([&] { ++probe_->drains; });
    conn.CloseAfterFlush();
  }
  void OnClosed(Conn& /*conn*/) override {
    probe_->Update([&] { ++probe_->closed; });
  }

 private:
  Probe* probe_;
};

// Records every byte; answers nothing. Closes on EOF, error, timer and drain.
class RecordHandler : public ConnHandler {
 public:
  explicit RecordHandler(Probe* probe) : probe_(probe) {}
  void OnRecv(Conn& /*conn*/, std::span<const char> data) override {
    probe_->Update([&] {
      probe_->received.append(data.data(), data.size());
      probe_->bytes += data.size();
      ++probe_->recv_calls;
    });
  }
  void OnEof(Conn& conn) override {
    probe_->Update([&] { ++probe_->eofs; });
    conn.Close();
  }
  void OnError(Conn& conn, Error error) override {
    probe_->Update([&] {
      ++probe_->errors;
      probe_->error_codes.push_back(error.code);
    });
    conn.Close();
  }
  void OnTimer(Conn& conn) override {
    probe_->Update([&] {
      ++probe_->timers;
      probe_->timer_fired_ms.push_back(MonotonicMs());
    });
    conn.Close();
  }
  void OnDrain(Conn& conn) override { conn.Close(); }
  void OnClosed(Conn& /*conn*/) override {
    probe_->Update([&] { ++probe_->closed; });
  }

 protected:
  Probe* probe_;
};

AcceptFn AcceptWith(Probe* probe, std::function<std::unique_ptr<ConnHandler>(Conn&)> make) {
  return [probe, make = std::move(make)](Conn& conn, uint32_t /*listener*/) {
    probe->Update([&] {
      ++probe->accepted;
      probe->refs.push_back(conn.ref());
    });
    return make(conn);
  };
}

// Starts a worker with one listener whose connections get handlers from `make`.
struct ListeningWorker {
  std::unique_ptr<WorkerRunner> runner;
  uint16_t port = 0;
};

ListeningWorker StartListening(const WorkerOptions& options, Probe* probe,
                               std::function<std::unique_ptr<ConnHandler>(Conn&)> make) {
  ListeningWorker lw;
  lw.runner = std::make_unique<WorkerRunner>(options);
  const int lfd = MakeListener(&lw.port);
  EXPECT_GE(lfd, 0) << strerror(errno);
  lw.runner->worker().AddListener(lfd, /*index=*/0);
  lw.runner->worker().set_accept_fn(AcceptWith(probe, std::move(make)));
  const bool ok = lw.runner->Start();
  EXPECT_TRUE(ok) << "worker failed to set up its ring";
  return lw;
}

// ---------------------------------------------------------------------------------------------
// Tests

// An accepted connection with an echo handler returns every byte, small and large, in order;
// FIN from the client ends in OnEof, a flushed close, OnClosed and a free slot.
TEST(WorkerTest, AcceptedConnectionEchoes) {
  Probe probe;
  auto lw = StartListening(SmallOptions(), &probe,
                           [&](Conn&) { return std::make_unique<EchoHandler>(&probe); });
  const int fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteAll(fd, "hello"));
  EXPECT_EQ(ReadUpTo(fd, 5, 5s), "hello");

  // 1 MiB, written from another thread while this one reads (the echo needs both directions).
  const std::string big = Pattern(1 << 20, 3);
  std::thread writer([&] { WriteAll(fd, big); });
  const std::string back = ReadUpTo(fd, big.size(), 10s);
  writer.join();
  EXPECT_EQ(back.size(), big.size());
  EXPECT_TRUE(back == big) << "echoed bytes differ";

  ::shutdown(fd, SHUT_WR);
  EXPECT_TRUE(WaitEof(fd, 5s)) << "no FIN after the client's FIN";
  ::close(fd);
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == 1; }));
  EXPECT_EQ(probe.Read([&] { return probe.eofs; }), 1);
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  const WorkerStats st = lw.runner->Stats();
  EXPECT_EQ(st.accepted, 1u);
  EXPECT_EQ(st.stale_completions, 0u);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// A ConnHandler for Worker::Connect: reports OnConnected, writes "ping", records replies.
class ConnectHandler : public RecordHandler {
 public:
  explicit ConnectHandler(Probe* probe) : RecordHandler(probe) {}
  void OnConnected(Conn& conn, Result<void> result) override {
    probe_->Update([&] {
      if (result) {
        ++probe_->connected_ok;
      } else {
        ++probe_->connected_err;
        probe_->error_codes.push_back(result.error().code);
      }
    });
    if (result) {
      conn.Write("ping");
    }
  }
  void OnRecv(Conn& conn, std::span<const char> data) override {
    RecordHandler::OnRecv(conn, data);
    if (probe_->Read([&] { return probe_->received; }) == "pong") {
      conn.Close();
    }
  }
};

// Worker::Connect reaches a listening socket: bytes queued before the connect completes go
// first, OnConnected(ok) follows, both directions work, and Close frees the slot.
TEST(WorkerTest, ConnectReachesListenerAndReportsOnConnected) {
  Probe probe;
  WorkerRunner runner(SmallOptions());
  ASSERT_TRUE(runner.Start());
  uint16_t port = 0;
  const int lfd = MakeListener(&port, /*nonblocking=*/false);
  ASSERT_GE(lfd, 0);
  const sockaddr_in addr = Loopback(port);
  const bool connect_ok = runner.OnWorker([&] {
    Result<Conn*> c =
        runner.worker().Connect(reinterpret_cast<const sockaddr*>(&addr), sizeof(addr),
                                std::make_unique<ConnectHandler>(&probe));
    if (!c) {
      return false;
    }
    (*c)->Write("early|");  // queued while connecting
    return (*c)->state() == Conn::State::kConnecting;
  });
  ASSERT_TRUE(connect_ok);
  SetTimeouts(lfd, 5s);
  const int server = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(server, 0) << strerror(errno);
  SetTimeouts(server, 5s);
  EXPECT_EQ(ReadUpTo(server, 10, 5s), "early|ping");
  EXPECT_TRUE(probe.WaitFor([&] { return probe.connected_ok == 1; }));
  ASSERT_TRUE(WriteAll(server, "pong"));
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == 1; }));
  EXPECT_TRUE(WaitEof(server, 5s));
  EXPECT_EQ(probe.Read([&] { return probe.received; }), "pong");
  EXPECT_EQ(runner.WaitConnsLive(0), 0u);
  EXPECT_EQ(runner.Stats().connects, 1u);
  ::close(server);
  ::close(lfd);
  EXPECT_TRUE(runner.Stop().has_value());
}

// Worker::Connect to a port nobody listens on reports OnConnected(kRefused) and frees the slot.
TEST(WorkerTest, ConnectRefusedReportsError) {
  Probe probe;
  WorkerRunner runner(SmallOptions());
  ASSERT_TRUE(runner.Start());
  // A port that was just free: bound (so nobody else takes it) but not listening.
  const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  addr = Loopback(LocalPort(holder));
  const bool submitted = runner.OnWorker([&] {
    return runner.worker()
        .Connect(reinterpret_cast<const sockaddr*>(&addr), sizeof(addr),
                 std::make_unique<ConnectHandler>(&probe))
        .has_value();
  });
  ASSERT_TRUE(submitted);
  EXPECT_TRUE(probe.WaitFor([&] { return probe.connected_err == 1 && probe.closed == 1; }));
  EXPECT_EQ(probe.Read([&] { return probe.connected_ok; }), 0);
  ASSERT_EQ(probe.Read([&] { return probe.error_codes.size(); }), 1u);
  EXPECT_EQ(probe.Read([&] { return probe.error_codes[0]; }), Errc::kRefused);
  EXPECT_EQ(runner.WaitConnsLive(0), 0u);
  ::close(holder);
  EXPECT_TRUE(runner.Stop().has_value());
}

// TCP Fast Open needs both bits of net.ipv4.tcp_fastopen (client 1, server 2); turned on here
// when this process may (root in its network namespace).
bool FastOpenAvailable() {
  int flags = 0;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_fastopen", "r")) {
    if (std::fscanf(f, "%d", &flags) != 1) {
      flags = 0;
    }
    std::fclose(f);
  }
  if ((flags & 3) == 3) {
    return true;
  }
  FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_fastopen", "w");
  if (f == nullptr) {
    return false;
  }
  const bool ok = std::fprintf(f, "%d", flags | 3) > 0;
  return std::fclose(f) == 0 && ok;
}

// Connects with fast_open, queuing "early|" at once; returns whether the connect started.
bool FastOpenConnect(WorkerRunner& runner, const sockaddr_in& addr, Probe* probe) {
  return runner.OnWorker([&] {
    Result<Conn*> c =
        runner.worker().Connect(reinterpret_cast<const sockaddr*>(&addr), sizeof(addr),
                                std::make_unique<ConnectHandler>(probe), true);
    if (c) {
      (*c)->Write("early|");
    }
    return c.has_value();
  });
}

// Worker::Connect(fast_open): once the kernel holds the listener's cookie, the bytes queued
// before the connect completes ride in the SYN (the listener's kernel says so per
// connection), OnConnected follows the peer's answer, and the exchange goes on as usual. A
// SYN with data refused by a closed port is a failed connect (kRefused), not a reset.
TEST(WorkerTest, FastOpenConnectSendsQueuedBytesInTheSyn) {
  if (!FastOpenAvailable()) {
    GTEST_SKIP() << "TCP Fast Open is off (net.ipv4.tcp_fastopen) and cannot be turned on";
  }
  WorkerRunner runner(SmallOptions());
  ASSERT_TRUE(runner.Start());
  uint16_t port = 0;
  const int lfd = MakeListener(&port, /*nonblocking=*/false);
  ASSERT_GE(lfd, 0);
  const int qlen = 16;
  ASSERT_EQ(setsockopt(lfd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen)), 0);
  SetTimeouts(lfd, 5s);
  bool syn_data = false;
  for (int round = 0; round < 3 && !syn_data; ++round) {  // the first may fetch the cookie
    Probe probe;
    ASSERT_TRUE(FastOpenConnect(runner, Loopback(port), &probe));
    const int server = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(server, 0) << strerror(errno);
    SetTimeouts(server, 5s);
    EXPECT_EQ(ReadUpTo(server, 10, 5s), "early|ping");
    tcp_info info{};
    socklen_t len = sizeof(info);
    ASSERT_EQ(getsockopt(server, IPPROTO_TCP, TCP_INFO, &info, &len), 0);
    syn_data = (info.tcpi_options & TCPI_OPT_SYN_DATA) != 0;
    EXPECT_TRUE(probe.WaitFor([&] { return probe.connected_ok == 1; }));
    ASSERT_TRUE(WriteAll(server, "pong"));
    EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == 1; }));
    EXPECT_EQ(probe.Read([&] { return probe.received; }), "pong");
    ::close(server);
  }
  EXPECT_TRUE(syn_data) << "no connection carried its bytes in the SYN";

  // The cookie is per address: a closed port on 127.0.0.1 gets a SYN with data, and an RST.
  const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in hole = Loopback(0);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&hole), sizeof(hole)), 0);
  Probe refused;
  ASSERT_TRUE(FastOpenConnect(runner, Loopback(LocalPort(holder)), &refused));
  EXPECT_TRUE(refused.WaitFor([&] { return refused.connected_err == 1 && refused.closed == 1; }));
  EXPECT_EQ(refused.Read([&] { return refused.connected_ok + refused.errors; }), 0);
  ASSERT_EQ(refused.Read([&] { return refused.error_codes.size(); }), 1u);
  EXPECT_EQ(refused.Read([&] { return refused.error_codes[0]; }), Errc::kRefused);
  EXPECT_EQ(runner.WaitConnsLive(0), 0u);
  ::close(holder);
  ::close(lfd);
  EXPECT_TRUE(runner.Stop().has_value());
}

// A peer that resets (SO_LINGER 0) with a request half-read: OnError (reset) or OnEof, then
// Close and OnClosed; the slot is freed and nothing touches freed memory (ASan).
TEST(WorkerTest, PeerResetWithRequestHalfRead) {
  Probe probe;
  auto lw = StartListening(SmallOptions(), &probe,
                           [&](Conn&) { return std::make_unique<RecordHandler>(&probe); });
  for (int round = 0; round < 20; ++round) {
    const int fd = ConnectTo(lw.port);
    ASSERT_GE(fd, 0);
    const std::string half = "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123";
    ASSERT_TRUE(WriteAll(fd, half));
    const size_t want = half.size() * static_cast<size_t>(round + 1);
    ASSERT_TRUE(probe.WaitFor([&] { return probe.bytes == want; }))
        << "server did not read the half request";
    CloseWithRst(fd);
    ASSERT_TRUE(probe.WaitFor([&] { return probe.closed == round + 1; }))
        << "no OnClosed after the reset";
  }
  EXPECT_EQ(probe.Read([&] { return probe.errors + probe.eofs; }), 20);
  for (Errc code : probe.Read([&] { return probe.error_codes; })) {
    EXPECT_EQ(code, Errc::kReset);
  }
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// Writes `reply_size` bytes when it first receives data; records the outcome.
class BlastHandler : public RecordHandler {
 public:
  BlastHandler(Probe* probe, size_t reply_size, bool close_after_flush)
      : RecordHandler(probe), reply_size_(reply_size), close_after_flush_(close_after_flush) {}
  void OnRecv(Conn& conn, std::span<const char> data) override {
    RecordHandler::OnRecv(conn, data);
    if (!sent_) {
      sent_ = true;
      const std::string payload = Pattern(reply_size_, 11);
      // In pieces, as a session would produce them.
      for (size_t off = 0; off < payload.size(); off += 100'000) {
        conn.Write(std::string_view(payload).substr(off, 100'000));
      }
      if (close_after_flush_) {
        conn.CloseAfterFlush();
      }
    }
  }
  void OnEof(Conn& conn) override {
    probe_->Update([&] { ++probe_->eofs; });
    conn.Close();
  }
  void OnWritable(Conn& /*conn*/) override {
    probe_->Update([&] { ++probe_->writables; });
  }

 private:
  size_t reply_size_;
  bool close_after_flush_;
  bool sent_ = false;
};

// A peer that resets while a large send is in flight (its receive window full): the send
// completes with an error or is cancelled, the OutQueue bytes stay alive until then, the slot
// is freed, no ASan report.
TEST(WorkerTest, PeerResetWhileLargeSendInFlight) {
  Probe probe;
  auto lw = StartListening(SmallOptions(), &probe, [&](Conn&) {
    return std::make_unique<BlastHandler>(&probe, 16 << 20, /*close_after_flush=*/false);
  });
  for (int round = 0; round < 3; ++round) {
    const int fd = ConnectTo(lw.port);
    ASSERT_GE(fd, 0);
    const int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    ASSERT_TRUE(WriteAll(fd, "go"));
    // Read a little so the send is definitely under way, then stop reading.
    EXPECT_EQ(ReadUpTo(fd, 1000, 5s).size(), 1000u);
    std::this_thread::sleep_for(100ms);
    CloseWithRst(fd);
    ASSERT_TRUE(probe.WaitFor([&] { return probe.closed == round + 1; }, 10s))
        << "no OnClosed after a reset during a send";
  }
  EXPECT_GE(probe.Read([&] { return probe.errors; }), 1);
  for (Errc code : probe.Read([&] { return probe.error_codes; })) {
    EXPECT_EQ(code, Errc::kReset);
  }
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// A burst of large writes fills the out-queue block pool; once no write has needed it for a
// while, the pool gives its blocks back and the worker trims the heap (a burst must not leave
// the process that much larger).
TEST(WorkerTest, BurstBlocksAreGivenBackOnceIdle) {
  Probe probe;
  auto lw = StartListening(SmallOptions(), &probe, [&](Conn&) {
    return std::make_unique<BlastHandler>(&probe, 1 << 20, /*close_after_flush=*/true);
  });
  std::vector<int> fds;
  for (int i = 0; i < 16; ++i) {
    const int fd = ConnectTo(lw.port);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(WriteAll(fd, "go"));
    fds.push_back(fd);
  }
  for (int fd : fds) {
    bool eof = false;
    EXPECT_EQ(ReadUpTo(fd, (1 << 20) + 1, 10s, &eof).size(), size_t{1} << 20);
    EXPECT_TRUE(eof);
    ::close(fd);
  }
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  Worker& w = lw.runner->worker();
  EXPECT_GE(lw.runner->OnWorker([&] { return w.pooled_block_bytes(); }), size_t{1} << 20);
  const auto deadline = Clock::now() + 10s;
  while (lw.runner->OnWorker([&] { return w.pooled_block_bytes(); }) > 0 &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(lw.runner->OnWorker([&] { return w.pooled_block_bytes(); }), 0u);
  EXPECT_GE(lw.runner->Stats().heap_trims, 1u);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// After a burst the receive ring's pages go back once traffic is quiet (fewer fills in a
// second than a sixteenth of the ring), and bytes received afterwards (into fresh pages)
// arrive intact: a connection that stayed open through the release echoes exactly.
TEST(WorkerTest, ReceiveRingPagesGoBackOnceQuiet) {
  Probe probe;
  auto lw = StartListening(SmallOptions(), &probe,
                           [&](Conn&) { return std::make_unique<EchoHandler>(&probe); });
  Worker& w = lw.runner->worker();
  if (!w.releases_recv_ring()) {
    EXPECT_TRUE(lw.runner->Stop().has_value());
    GTEST_SKIP() << "this kernel may fill receive buffers outside io_uring_enter (< 6.8)";
  }
  const size_t ring = size_t{64} * 16 * 1024;
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) {
    const int fd = ConnectTo(lw.port);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  for (int i = 0; i < 4; ++i) {
    const std::string big = Pattern(1 << 20, i + 1);
    std::thread writer([&] { WriteAll(fds[i], big); });
    const std::string back = ReadUpTo(fds[i], big.size(), 10s);
    writer.join();
    ASSERT_TRUE(back == big) << "echoed bytes differ on connection " << i;
  }
  EXPECT_GE(lw.runner->OnWorker([&] { return w.recv_ring_resident_bytes(); }), ring / 2);
  // One small message every 400 ms (below the quiet bound of 4 fills a second), each echoed
  // byte for byte, until the ring has been released and a message has crossed it since.
  uint64_t released_before = 0;
  bool crossed = false;
  const auto deadline = Clock::now() + 10s;
  for (int n = 0; Clock::now() < deadline && !crossed; ++n) {
    const uint64_t releases = lw.runner->Stats().recv_ring_releases;
    const std::string msg = "message " + std::to_string(n) + " " + Pattern(100, n);
    ASSERT_TRUE(WriteAll(fds[0], msg));
    ASSERT_EQ(ReadUpTo(fds[0], msg.size(), 5s), msg);
    crossed = released_before > 0;
    released_before = releases;
    std::this_thread::sleep_for(400ms);
  }
  EXPECT_TRUE(crossed) << "the receive ring was never released";
  // Quiet now: what stays resident is at most the pages the last few messages touched.
  const auto quiet = Clock::now() + 5s;
  while (lw.runner->OnWorker([&] { return w.recv_ring_resident_bytes(); }) > 64 * 1024 &&
         Clock::now() < quiet) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_LE(lw.runner->OnWorker([&] { return w.recv_ring_resident_bytes(); }), size_t{64} * 1024);
  EXPECT_EQ(lw.runner->Stats().stale_completions, 0u);
  for (int fd : fds) {
    ::close(fd);
  }
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// CloseAfterFlush delivers every queued byte (1 MiB) before the FIN: the client reads exactly
// 1 MiB, byte-exact, then EOF; the lingering close then frees the slot.
TEST(WorkerTest, CloseAfterFlushDeliversAllBytesBeforeFin) {
  Probe probe;
  constexpr size_t kSize = 1 << 20;
  auto lw = StartListening(SmallOptions(), &probe, [&](Conn&) {
    return std::make_unique<BlastHandler>(&probe, kSize, /*close_after_flush=*/true);
  });
  for (int round = 0; round < 3; ++round) {
    const int fd = ConnectTo(lw.port);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(WriteAll(fd, "go"));
    bool eof = false;
    const std::string got = ReadUpTo(fd, kSize + 1, 10s, &eof);
    EXPECT_EQ(got.size(), kSize);
    EXPECT_TRUE(eof) << "no FIN after the flushed bytes";
    EXPECT_TRUE(got == Pattern(kSize, 11)) << "flushed bytes differ";
    // Bytes sent by the client after the FIN are discarded by the lingering close (no RST).
    WriteAll(fd, "late bytes");
    ::close(fd);
    ASSERT_TRUE(probe.WaitFor([&] { return probe.closed == round + 1; }));
  }
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// OnWritable fires once a queue that went above the high-water mark drains below the low one.
TEST(WorkerTest, OnWritableAfterHighWaterDrains) {
  Probe probe;
  constexpr size_t kSize = 1 << 20;  // > Conn::kHighWater
  auto lw = StartListening(SmallOptions(), &probe, [&](Conn&) {
    return std::make_unique<BlastHandler>(&probe, kSize, /*close_after_flush=*/false);
  });
  const int fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteAll(fd, "go"));
  EXPECT_EQ(ReadUpTo(fd, kSize, 10s).size(), kSize);
  EXPECT_TRUE(probe.WaitFor([&] { return probe.writables == 1; })) << "no OnWritable";
  ::close(fd);
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == 1; }));
  EXPECT_EQ(probe.Read([&] { return probe.writables; }), 1);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// The lingering close after CloseAfterFlush ends at linger_ms even if the peer never closes.
TEST(WorkerTest, LingeringCloseEndsAtLingerTimeout) {
  Probe probe;
  WorkerOptions options = SmallOptions();
  options.linger_ms = 200;
  auto lw = StartListening(options, &probe, [&](Conn&) {
    return std::make_unique<BlastHandler>(&probe, 10, /*close_after_flush=*/true);
  });
  const int fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  const auto t0 = Clock::now();  // the linger period starts after this
  ASSERT_TRUE(WriteAll(fd, "go"));
  bool eof = false;
  EXPECT_EQ(ReadUpTo(fd, 11, 5s, &eof).size(), 10u);
  EXPECT_TRUE(eof);
  // The client keeps its socket open and silent.
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == 1; }, 3s)) << "linger never ended";
  EXPECT_GE(Clock::now() - t0, 190ms) << "closed before the linger period";
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  ::close(fd);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// Closes with an RST when it receives "abort".
class AbortHandler : public RecordHandler {
 public:
  explicit AbortHandler(Probe* probe) : RecordHandler(probe) {}
  void OnRecv(Conn& conn, std::span<const char> data) override {
    RecordHandler::OnRecv(conn, data);
    conn.Write("bye");  // discarded: Abort drops unsent output
    conn.Abort();
  }
};

// Conn::Abort closes with an RST: the peer's next read fails with ECONNRESET, not EOF.
TEST(WorkerTest, AbortSendsReset) {
  Probe probe;
  auto lw = StartListening(SmallOptions(), &probe,
                           [&](Conn&) { return std::make_unique<AbortHandler>(&probe); });
  const int fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteAll(fd, "abort"));
  ASSERT_TRUE(probe.WaitFor([&] { return probe.closed == 1; }));
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  char c;
  errno = 0;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, ECONNRESET);
  ::close(fd);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// Over max_conns, a new connection is accepted and closed at once; the others keep working.
TEST(WorkerTest, ConnectionTableFullRefusesNewConnections) {
  Probe probe;
  WorkerOptions options = SmallOptions();
  options.max_conns = 2;
  auto lw =
      StartListening(options, &probe, [&](Conn&) { return std::make_unique<EchoHandler>(&probe); });
  const int a = ConnectTo(lw.port);
  const int b = ConnectTo(lw.port);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_TRUE(probe.WaitFor([&] { return probe.accepted == 2; }));
  const int c = ConnectTo(lw.port);
  ASSERT_GE(c, 0);
  EXPECT_TRUE(WaitEof(c, 5s)) << "the third connection was not closed";
  ASSERT_TRUE(WriteAll(a, "still"));
  EXPECT_EQ(ReadUpTo(a, 5, 5s), "still");
  EXPECT_EQ(lw.runner->Stats().accept_rejected, 1u);
  ::close(c);
  ::close(b);
  // A slot freed by a close is usable again.
  ASSERT_TRUE(probe.WaitFor([&] { return probe.closed == 1; }));
  const int d = ConnectTo(lw.port);
  ASSERT_GE(d, 0);
  ASSERT_TRUE(WriteAll(d, "again"));
  EXPECT_EQ(ReadUpTo(d, 5, 5s), "again");
  ::close(d);
  ::close(a);
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == 3; }));
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// Close() while an outbound connect is still pending (the peer's accept queue is full, so the
// SYN goes unanswered): the connect is cancelled, OnConnected never reports success, and the
// slot is freed.
// An echo handler that marks its connection idle after echoing "idle" and busy otherwise.
class IdleMarkingHandler : public EchoHandler {
 public:
  using EchoHandler::EchoHandler;
  void OnRecv(Conn& conn, std::span<const char> data) override {
    EchoHandler::OnRecv(conn, data);
    conn.SetIdle(std::string_view(data.data(), data.size()) == "idle" ? Conn::Idle::kKeepAlive
                                                                      : Conn::Idle::kNo);
  }
};

// At max_conns, the longest-idle connection is closed to admit a newcomer; busy ones stay.
TEST(WorkerTest, TableFullEvictsTheLongestIdleConnectionFirst) {
  Probe probe;
  WorkerOptions options = SmallOptions();
  options.max_conns = 3;
  auto lw = StartListening(options, &probe,
                           [&](Conn&) { return std::make_unique<IdleMarkingHandler>(&probe); });
  const int busy = ConnectTo(lw.port);
  const int idle_old = ConnectTo(lw.port);
  const int idle_new = ConnectTo(lw.port);
  ASSERT_TRUE(probe.WaitFor([&] { return probe.accepted == 3; }));
  ASSERT_TRUE(WriteAll(busy, "busy"));
  EXPECT_EQ(ReadUpTo(busy, 4, 5s), "busy");
  ASSERT_TRUE(WriteAll(idle_old, "idle"));
  EXPECT_EQ(ReadUpTo(idle_old, 4, 5s), "idle");
  ASSERT_TRUE(WriteAll(idle_new, "idle"));
  EXPECT_EQ(ReadUpTo(idle_new, 4, 5s), "idle");
  const int newcomer = ConnectTo(lw.port);
  ASSERT_GE(newcomer, 0);
  ASSERT_TRUE(WriteAll(newcomer, "hello"));
  EXPECT_EQ(ReadUpTo(newcomer, 5, 5s), "hello") << "the newcomer was refused";
  EXPECT_TRUE(WaitEof(idle_old, 5s)) << "the longest-idle connection was not evicted";
  ASSERT_TRUE(WriteAll(busy, "still"));
  EXPECT_EQ(ReadUpTo(busy, 5, 5s), "still");
  ASSERT_TRUE(WriteAll(idle_new, "still"));
  EXPECT_EQ(ReadUpTo(idle_new, 5, 5s), "still");
  const WorkerStats stats = lw.runner->Stats();
  EXPECT_EQ(stats.idle_evicted, 1u);
  EXPECT_EQ(stats.accept_rejected, 0u);
  // With no idle connection left (the others are busy again), a newcomer is refused.
  const int refused = ConnectTo(lw.port);
  ASSERT_GE(refused, 0);
  EXPECT_TRUE(WaitEof(refused, 5s));
  EXPECT_LE(lw.runner->Stats().conns_live, 3u);
  for (int fd : {busy, idle_old, idle_new, newcomer, refused}) {
    ::close(fd);
  }
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// A connection that never sent a byte (kFresh) goes before a served keep-alive one.
TEST(WorkerTest, TableFullEvictsSilentConnectionsBeforeKeepAliveOnes) {
  Probe probe;
  WorkerOptions options = SmallOptions();
  options.max_conns = 2;
  auto lw = StartListening(options, &probe, [&](Conn& conn) {
    conn.SetIdle(Conn::Idle::kFresh);
    return std::make_unique<IdleMarkingHandler>(&probe);
  });
  const int served = ConnectTo(lw.port);
  ASSERT_TRUE(probe.WaitFor([&] { return probe.accepted == 1; }));
  ASSERT_TRUE(WriteAll(served, "idle"));
  EXPECT_EQ(ReadUpTo(served, 4, 5s), "idle");
  const int silent = ConnectTo(lw.port);  // younger than `served`'s idleness, but silent
  ASSERT_TRUE(probe.WaitFor([&] { return probe.accepted == 2; }));
  const int newcomer = ConnectTo(lw.port);
  ASSERT_TRUE(WriteAll(newcomer, "hello"));
  EXPECT_EQ(ReadUpTo(newcomer, 5, 5s), "hello");
  EXPECT_TRUE(WaitEof(silent, 5s)) << "the silent connection was not the one evicted";
  ASSERT_TRUE(WriteAll(served, "still"));
  EXPECT_EQ(ReadUpTo(served, 5, 5s), "still");
  for (int fd : {served, silent, newcomer}) {
    ::close(fd);
  }
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// At max_conns, Worker::Connect fails with kTooManyConns (and keeps no socket); the
// connections already open keep working and a freed slot makes a connect possible again.
TEST(WorkerTest, ConnectAtTheConnectionLimitFails) {
  WorkerOptions options = SmallOptions();
  options.max_conns = 2;
  WorkerRunner runner(options);
  ASSERT_TRUE(runner.Start());
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(lfd, 16), 0);
  addr = Loopback(LocalPort(lfd));
  Probe probe;
  auto connect = [&] {
    return runner.OnWorker([&]() -> std::pair<ConnRef, Errc> {
      Result<Conn*> c =
          runner.worker().Connect(reinterpret_cast<const sockaddr*>(&addr), sizeof(addr),
                                  std::make_unique<ConnectHandler>(&probe));
      return c ? std::pair{(*c)->ref(), Errc{}} : std::pair{ConnRef{}, c.error().code};
    });
  };
  const auto [a, a_err] = connect();
  const auto [b, b_err] = connect();
  ASSERT_TRUE(a.valid());
  ASSERT_TRUE(b.valid());
  const auto [c, c_err] = connect();
  EXPECT_FALSE(c.valid());
  EXPECT_EQ(c_err, Errc::kTooManyConns);
  EXPECT_TRUE(probe.WaitFor([&] { return probe.connected_ok == 2; }));
  EXPECT_EQ(runner.WaitConnsLive(2), 2u);
  ASSERT_TRUE(runner.OnWorker([&] {
    Conn* conn = runner.worker().Resolve(a);
    if (conn != nullptr) {
      conn->Close();
    }
    return conn != nullptr;
  }));
  EXPECT_EQ(runner.WaitConnsLive(1), 1u);
  const auto [d, d_err] = connect();
  EXPECT_TRUE(d.valid()) << "a freed slot did not admit a new connect";
  EXPECT_TRUE(probe.WaitFor([&] { return probe.connected_ok == 3; }));
  ::close(lfd);
  EXPECT_TRUE(runner.Stop().has_value());
}

TEST(WorkerTest, CloseDuringPendingConnect) {
  Probe probe;
  WorkerRunner runner(SmallOptions());
  ASSERT_TRUE(runner.Start());
  // A listener that never accepts, with its tiny queue filled.
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(lfd, 0), 0);
  addr = Loopback(LocalPort(lfd));
  std::vector<int> fillers;
  bool pending = false;
  for (int i = 0; i < 16 && !pending; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    fillers.push_back(fd);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
        errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      pending = ::poll(&p, 1, 200) == 0;
    }
  }
  if (!pending) {
    for (int fd : fillers) {
      ::close(fd);
    }
    ::close(lfd);
    GTEST_SKIP() << "could not make a connect hang on this kernel";
  }
  const ConnRef ref = runner.OnWorker([&] {
    Result<Conn*> c =
        runner.worker().Connect(reinterpret_cast<const sockaddr*>(&addr), sizeof(addr),
                                std::make_unique<ConnectHandler>(&probe));
    return c ? (*c)->ref() : ConnRef{};
  });
  ASSERT_TRUE(ref.valid());
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(probe.Read([&] { return probe.connected_ok + probe.connected_err; }), 0)
      << "the connect did not stay pending";
  ASSERT_TRUE(runner.OnWorker([&] {
    Conn* c = runner.worker().Resolve(ref);
    if (c == nullptr) {
      return false;
    }
    c->Close();
    return true;
  }));
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == 1; })) << "no OnClosed";
  EXPECT_EQ(probe.Read([&] { return probe.connected_ok; }), 0);
  EXPECT_EQ(runner.WaitConnsLive(0), 0u);
  EXPECT_EQ(runner.OnWorker([&] { return runner.worker().Resolve(ref) == nullptr; }), true);
  for (int fd : fillers) {
    ::close(fd);
  }
  ::close(lfd);
  EXPECT_TRUE(runner.Stop().has_value());
}

// 10k connections churned through the same few slots (open, send a byte, close with FIN or
// RST, in batches): every one is accepted and reclaimed, conns_live returns to 0, and stale
// completions (if any) are harmless.
TEST(WorkerTest, TenThousandConnectionsChurnThroughSlots) {
  Probe probe;
  WorkerOptions options = SmallOptions();
  options.max_conns = 1024;
  auto lw =
      StartListening(options, &probe, [&](Conn&) { return std::make_unique<EchoHandler>(&probe); });
  constexpr int kTotal = 10'000;
  constexpr int kBatch = 50;
  const auto deadline = Clock::now() + 20s;
  int opened = 0;
  std::vector<int> fds;
  while (opened < kTotal && Clock::now() < deadline) {
    fds.clear();
    for (int i = 0; i < kBatch && opened < kTotal; ++i, ++opened) {
      const int fd = ConnectTo(lw.port);
      ASSERT_GE(fd, 0) << "connect " << opened << ": " << strerror(errno);
      fds.push_back(fd);
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      ASSERT_EQ(::send(fds[i], "x", 1, MSG_NOSIGNAL), 1);
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if ((opened + static_cast<int>(i)) % 3 == 0) {
        CloseWithRst(fds[i]);
      } else {
        ::close(fds[i]);
      }
    }
    // Keep the number of live server-side connections bounded (the table is 1024).
    if (opened % 500 == 0) {
      probe.WaitFor([&] { return probe.closed >= opened - 400; }, 5s);
    }
  }
  ASSERT_EQ(opened, kTotal) << "churn did not finish within 20 s";
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == kTotal; }, 20s))
      << "closed " << probe.Read([&] { return probe.closed; }) << " of " << kTotal;
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  const WorkerStats st = lw.runner->Stats();
  EXPECT_EQ(st.accepted, static_cast<uint64_t>(kTotal));
  EXPECT_EQ(st.accept_rejected, 0u);
  RecordProperty("stale_completions", std::to_string(st.stale_completions));
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// PauseRecv stops OnRecv once the pause has settled (bytes stay in the socket), and
// ResumeRecv delivers them.
TEST(WorkerTest, PauseAndResumeRecv) {
  Probe probe;
  auto lw = StartListening(SmallOptions(), &probe,
                           [&](Conn&) { return std::make_unique<RecordHandler>(&probe); });
  const int fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteAll(fd, "first"));
  ASSERT_TRUE(probe.WaitFor([&] { return probe.received == "first"; }));
  const ConnRef ref = probe.Read([&] { return probe.refs.at(0); });
  ASSERT_TRUE(lw.runner->OnWorker([&] {
    Conn* c = lw.runner->worker().Resolve(ref);
    if (c == nullptr) {
      return false;
    }
    c->PauseRecv();
    return true;
  }));
  // Let the cancel complete: its completion is dispatched within a turn or two of the submit.
  std::this_thread::sleep_for(100ms);
  lw.runner->OnWorker([] { return 0; });
  lw.runner->OnWorker([] { return 0; });
  const uint64_t calls_after_pause = probe.Read([&] { return probe.recv_calls; });
  ASSERT_TRUE(WriteAll(fd, "second"));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(probe.Read([&] { return probe.recv_calls; }), calls_after_pause)
      << "OnRecv while paused";
  EXPECT_EQ(probe.Read([&] { return probe.received; }), "first");

  // Pause twice and resume twice: idempotent.
  ASSERT_TRUE(lw.runner->OnWorker([&] {
    Conn* c = lw.runner->worker().Resolve(ref);
    if (c == nullptr) {
      return false;
    }
    c->PauseRecv();
    c->ResumeRecv();
    c->ResumeRecv();
    return true;
  }));
  EXPECT_TRUE(probe.WaitFor([&] { return probe.received == "firstsecond"; }))
      << "got '" << probe.Read([&] { return probe.received; }) << "'";
  ASSERT_TRUE(WriteAll(fd, "third"));
  EXPECT_TRUE(probe.WaitFor([&] { return probe.received == "firstsecondthird"; }));
  // Pause and resume within one turn, before the cancel completes: nothing is lost.
  ASSERT_TRUE(lw.runner->OnWorker([&] {
    Conn* c = lw.runner->worker().Resolve(ref);
    if (c == nullptr) {
      return false;
    }
    c->PauseRecv();
    c->ResumeRecv();
    return true;
  }));
  ASSERT_TRUE(WriteAll(fd, "fourth"));
  EXPECT_TRUE(probe.WaitFor([&] { return probe.received == "firstsecondthirdfourth"; }));
  ::close(fd);
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == 1; }));
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// Arms timers from the accept callback: `fire_in` ms (if >= 0), optionally cleared or moved.
class TimerHandler : public RecordHandler {
 public:
  TimerHandler(Probe* probe, Conn& conn, int64_t first_in, int64_t then_in, bool clear)
      : RecordHandler(probe) {
    const uint64_t now = conn.worker().now_ms();
    conn.SetTimer(now + static_cast<uint64_t>(first_in));
    uint64_t deadline = now + static_cast<uint64_t>(first_in);
    if (then_in >= 0) {
      conn.SetTimer(now + static_cast<uint64_t>(then_in));
      deadline = now + static_cast<uint64_t>(then_in);
    }
    if (clear) {
      conn.ClearTimer();
    }
    probe->Update([&] { probe->timer_deadline_ms.push_back(deadline); });
  }
};

// SetTimer fires OnTimer once, not before its deadline; a re-armed timer fires at its new
// deadline only; a cleared timer never fires.
TEST(WorkerTest, SetTimerFiresOnTimer) {
  Probe probe;
  int mode = 0;
  std::mutex mode_mu;
  auto lw = StartListening(SmallOptions(), &probe, [&](Conn& conn) {
    std::lock_guard<std::mutex> lock(mode_mu);
    switch (mode) {
      case 0:
        return std::make_unique<TimerHandler>(&probe, conn, 100, -1, false);
      case 1:
        return std::make_unique<TimerHandler>(&probe, conn, 5000, 80, false);
      default:
        return std::make_unique<TimerHandler>(&probe, conn, 50, -1, true);
    }
  });
  // Plain timer.
  int fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(probe.WaitFor([&] { return probe.timers == 1; }, 3s)) << "OnTimer never came";
  EXPECT_GE(probe.Read([&] { return probe.timer_fired_ms.at(0); }), probe.Read([&] {
    return probe.timer_deadline_ms.at(0);
  })) << "OnTimer before the deadline";
  EXPECT_TRUE(WaitEof(fd, 3s));  // the handler closes on its timer
  ::close(fd);

  // Re-armed from 5 s to 80 ms: fires at ~80 ms, once.
  {
    std::lock_guard<std::mutex> lock(mode_mu);
    mode = 1;
  }
  fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(probe.WaitFor([&] { return probe.timers == 2; }, 3s));
  EXPECT_GE(probe.Read([&] { return probe.timer_fired_ms.at(1); }),
            probe.Read([&] { return probe.timer_deadline_ms.at(1); }));
  EXPECT_LT(probe.Read([&] { return probe.timer_fired_ms.at(1); }),
            probe.Read([&] { return probe.timer_deadline_ms.at(1); }) + 2000)
      << "fired at the old deadline";
  ::close(fd);

  // Cleared: no OnTimer.
  {
    std::lock_guard<std::mutex> lock(mode_mu);
    mode = 2;
  }
  fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(probe.WaitFor([&] { return probe.accepted == 3; }));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(probe.Read([&] { return probe.timers; }), 2) << "a cleared timer fired";
  ::close(fd);
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == 3; }));
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// With 16 or more busy connections a turn waits for a batch of completions (on kernels with
// IORING_FEAT_MIN_TIMEOUT), with fewer it never does: 40 echo connections served one request at a
// time (so a batch never fills and every wait ends at its minimum) still answer every request, and
// a timer set meanwhile still fires.
TEST(WorkerTest, BatchedWaitsLoseNoCompletionAndKeepTimers) {
  Probe probe;
  std::atomic<int> made{0};
  auto lw = StartListening(SmallOptions(), &probe, [&](Conn& conn) -> std::unique_ptr<ConnHandler> {
    if (made.fetch_add(1) == 40) {
      return std::make_unique<TimerHandler>(&probe, conn, 100, -1, false);
    }
    return std::make_unique<EchoHandler>(&probe);
  });
  // A lone client: every completion is handled at once (no wait for company).
  std::vector<int> fds{ConnectTo(lw.port)};
  ASSERT_GE(fds[0], 0);
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(WriteAll(fds[0], "alone"));
    ASSERT_EQ(ReadUpTo(fds[0], 5, 5s), "alone");
  }
  EXPECT_EQ(lw.runner->Stats().batched_waits, 0u);
  for (int i = 1; i < 40; ++i) {
    fds.push_back(ConnectTo(lw.port));
    ASSERT_GE(fds.back(), 0);
  }
  ASSERT_TRUE(probe.WaitFor([&] { return probe.accepted == 40; }));
  for (int round = 0; round < 20; ++round) {
    for (const int fd : fds) {
      const std::string msg = "round " + std::to_string(round);
      ASSERT_TRUE(WriteAll(fd, msg));
      ASSERT_EQ(ReadUpTo(fd, msg.size(), 5s), msg);
    }
  }
  const int tfd = ConnectTo(lw.port);
  ASSERT_GE(tfd, 0);
  ASSERT_TRUE(probe.WaitFor([&] { return probe.timers == 1; }, 5s)) << "OnTimer never came";
  EXPECT_TRUE(WaitEof(tfd, 3s));
  ::close(tfd);
  if (lw.runner->OnWorker([&] { return lw.runner->worker().batches_waits(); })) {
    EXPECT_GT(lw.runner->Stats().batched_waits, 0u) << "40 busy connections, no batched wait";
  }
  for (const int fd : fds) {
    ::close(fd);
  }
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// Verifies an incoming stream byte by byte against Pattern(seed 0) and, on EOF, answers with
// the number of bytes it saw, then closes after flushing.
class CountHandler : public ConnHandler {
 public:
  explicit CountHandler(Probe* probe) : probe_(probe) {}
  void OnRecv(Conn& /*conn*/, std::span<const char> data) override {
    for (char ch : data) {
      const size_t i = seen_++;
      if (ch != static_cast<char>((i * 7 + i / 253) & 0xFF) && ok_) {
        ok_ = false;
        probe_->Update([&] { probe_->failures.push_back("byte " + std::to_string(i)); });
      }
    }
    probe_->Update([&] { probe_->bytes += data.size(); });
  }
  void OnEof(Conn& conn) override {
    conn.Write(std::to_string(seen_) + (ok_ ? " ok" : " bad"));
    conn.CloseAfterFlush();
  }
  void OnError(Conn& conn, Error error) override {
    probe_->Update([&] {
      ++probe_->errors;
      probe_->error_codes.push_back(error.code);
    });
    conn.Close();
  }
  void OnTimer(Conn& conn) override { conn.Close(); }
  void OnDrain(Conn& conn) override { conn.Close(); }
  void OnClosed(Conn& /*conn*/) override {
    probe_->Update([&] { ++probe_->closed; });
  }

 private:
  Probe* probe_;
  size_t seen_ = 0;
  bool ok_ = true;
};

// Client side of a many-connection exchange: sends `payload` on every connection (non-blocking,
// poll-driven), half-closes, and collects each connection's reply until EOF. Bounded.
struct Exchange {
  std::vector<std::string> replies;
  std::vector<bool> eof;
  bool timed_out = false;
};

Exchange SendAllAndCollect(uint16_t port, int conns, const std::string& payload,
                           std::chrono::milliseconds timeout) {
  Exchange ex;
  ex.replies.resize(static_cast<size_t>(conns));
  ex.eof.assign(static_cast<size_t>(conns), false);
  std::vector<int> fds;
  std::vector<size_t> sent(static_cast<size_t>(conns), 0);
  for (int i = 0; i < conns; ++i) {
    const int fd = ConnectTo(port);
    EXPECT_GE(fd, 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fds.push_back(fd);
  }
  const auto deadline = Clock::now() + timeout;
  int open = conns;
  char buf[65536];
  while (open > 0) {
    if (Clock::now() > deadline) {
      ex.timed_out = true;
      break;
    }
    std::vector<pollfd> pfds;
    for (int i = 0; i < conns; ++i) {
      const size_t k = static_cast<size_t>(i);
      if (ex.eof[k]) {
        continue;
      }
      short events = POLLIN;
      if (sent[k] < payload.size()) {
        events |= POLLOUT;
      }
      pfds.push_back(pollfd{fds[k], events, 0});
    }
    if (::poll(pfds.data(), pfds.size(), 100) < 0 && errno != EINTR) {
      break;
    }
    for (const pollfd& p : pfds) {
      size_t k = 0;
      while (fds[k] != p.fd) {
        ++k;
      }
      if ((p.revents & POLLOUT) && sent[k] < payload.size()) {
        const ssize_t n = ::send(p.fd, payload.data() + sent[k],
                                 std::min<size_t>(payload.size() - sent[k], 16384), MSG_NOSIGNAL);
        if (n > 0) {
          sent[k] += static_cast<size_t>(n);
          if (sent[k] == payload.size()) {
            ::shutdown(p.fd, SHUT_WR);
          }
        }
      }
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = ::recv(p.fd, buf, sizeof(buf), 0);
        if (n > 0) {
          ex.replies[k].append(buf, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          ex.eof[k] = true;
          --open;
        }
      }
    }
  }
  for (int fd : fds) {
    ::close(fd);
  }
  return ex;
}

// A provided-buffer ring of 8 x 1 KiB buffers with 100 connections each sending 64 KiB: the
// ring runs dry (ENOBUFS ends multishot receives), receives are re-armed, and every byte of
// every connection arrives in order (BAD-INPUTS E5).
TEST(WorkerTest, TinyBufferRingDeliversEveryByte) {
  Probe probe;
  WorkerOptions options = SmallOptions();
  options.recv_buffers = 8;
  options.recv_buffer_size = 1024;
  auto lw = StartListening(options, &probe,
                           [&](Conn&) { return std::make_unique<CountHandler>(&probe); });
  constexpr int kConns = 100;
  constexpr size_t kPerConn = 64 * 1024;
  const Exchange ex = SendAllAndCollect(lw.port, kConns, Pattern(kPerConn), 30s);
  EXPECT_FALSE(ex.timed_out) << "exchange did not finish in 30 s";
  int good = 0;
  for (int i = 0; i < kConns; ++i) {
    if (ex.replies[static_cast<size_t>(i)] == std::to_string(kPerConn) + " ok") {
      ++good;
    } else if (good + 5 > i) {
      ADD_FAILURE() << "conn " << i << " replied '" << ex.replies[static_cast<size_t>(i)] << "'";
    }
  }
  EXPECT_EQ(good, kConns);
  EXPECT_EQ(probe.Read([&] { return probe.bytes; }), kConns * kPerConn);
  EXPECT_TRUE(probe.Read([&] { return probe.failures.empty(); }));
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == kConns; }, 10s));
  const WorkerStats st = lw.runner->Stats();
  EXPECT_GT(st.enobufs, 0u) << "the buffer ring never ran dry: the test did not reach E5";
  RecordProperty("enobufs", std::to_string(st.enobufs));
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// Answers every 13-byte request "REQ nnnnnnnn\n" with "RSP nnnnnnnn\n", whatever the split.
class ReqRspHandler : public EchoHandler {
 public:
  explicit ReqRspHandler(Probe* probe) : EchoHandler(probe), probe_(probe) {}
  void OnRecv(Conn& conn, std::span<const char> data) override {
    buf_.append(data.data(), data.size());
    size_t off = 0;
    std::string out;
    while (buf_.size() - off >= 13) {
      std::string msg = buf_.substr(off, 13);
      if (msg.compare(0, 4, "REQ ") != 0) {
        probe_->Update([&] { probe_->failures.push_back("bad request " + msg); });
        conn.Close();
        return;
      }
      msg.replace(0, 3, "RSP");
      out += msg;
      off += 13;
    }
    buf_.erase(0, off);
    probe_->Update([&] { probe_->bytes += out.size(); });
    conn.Write(out);
  }

 private:
  Probe* probe_;
  std::string buf_;
};

// Tiny rings (SQ 4, CQ 8) under load from 128 connections with pipelined requests: the SQ
// fills (E4) and the CQ overflows (E3), yet no operation or completion is lost: responses
// equal requests, each matching its request.
TEST(WorkerTest, TinyRingsLoseNoCompletion) {
  Probe probe;
  WorkerOptions options = SmallOptions();
  options.sq_entries = 4;
  options.cq_entries = 8;
  auto lw = StartListening(options, &probe,
                           [&](Conn&) { return std::make_unique<ReqRspHandler>(&probe); });
  constexpr int kConns = 128;
  constexpr int kRequests = 300;
  std::string payload;
  for (int r = 0; r < kRequests; ++r) {
    char line[16];
    std::snprintf(line, sizeof(line), "REQ %08d\n", r);
    payload += line;
  }
  std::string expected = payload;
  for (size_t off = 0; off < expected.size(); off += 13) {
    expected.replace(off, 3, "RSP");
  }
  const Exchange ex = SendAllAndCollect(lw.port, kConns, payload, 30s);
  EXPECT_FALSE(ex.timed_out) << "exchange did not finish in 30 s";
  size_t responses = 0;
  for (int i = 0; i < kConns; ++i) {
    const std::string& got = ex.replies[static_cast<size_t>(i)];
    responses += got.size() / 13;
    EXPECT_EQ(got, expected) << "conn " << i;
  }
  EXPECT_EQ(responses, static_cast<size_t>(kConns * kRequests));
  EXPECT_TRUE(probe.Read([&] { return probe.failures.empty(); }));
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == kConns; }, 10s));
  const WorkerStats st = lw.runner->Stats();
  EXPECT_GT(st.sq_full, 0u) << "the SQ never filled: the test did not reach E4";
  RecordProperty("sq_full", std::to_string(st.sq_full));
  RecordProperty("cq_backlog", std::to_string(st.cq_backlog));
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

// RequestStop with a connection open: the handler gets OnDrain, the listener stops accepting,
// the client sees the close, and Run() returns.
TEST(WorkerTest, RequestStopDrainsOpenConnections) {
  Probe probe;
  auto lw = StartListening(SmallOptions(), &probe,
                           [&](Conn&) { return std::make_unique<EchoHandler>(&probe); });
  const int fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteAll(fd, "abc"));
  EXPECT_EQ(ReadUpTo(fd, 3, 5s), "abc");
  lw.runner->worker().RequestStop();
  EXPECT_TRUE(WaitEof(fd, 5s)) << "no FIN after RequestStop";
  ::close(fd);
  EXPECT_TRUE(lw.runner->Join(10s).has_value());
  EXPECT_EQ(probe.Read([&] { return probe.drains; }), 1);
  EXPECT_EQ(probe.Read([&] { return probe.closed; }), 1);
  // The listener is gone.
  EXPECT_LT(ConnectTo(lw.port), 0);
}

// Ignores OnDrain: the worker must close it itself when the drain grace period ends.
class StubbornHandler : public RecordHandler {
 public:
  explicit StubbornHandler(Probe* probe) : RecordHandler(probe) {}
  void OnDrain(Conn& /*conn*/) override {
    probe_->Update([&] { ++probe_->drains; });
  }
};

// A handler that ignores OnDrain is closed when drain_grace_ms runs out, and Run() returns.
TEST(WorkerTest, DrainGraceClosesStragglers) {
  Probe probe;
  WorkerOptions options = SmallOptions();
  options.drain_grace_ms = 300;
  auto lw = StartListening(options, &probe,
                           [&](Conn&) { return std::make_unique<StubbornHandler>(&probe); });
  const int fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(probe.WaitFor([&] { return probe.accepted == 1; }));
  const auto t0 = Clock::now();
  lw.runner->worker().RequestStop();
  EXPECT_TRUE(lw.runner->Join(10s).has_value());
  EXPECT_GE(Clock::now() - t0, 250ms) << "closed before the grace period";
  EXPECT_EQ(probe.Read([&] { return probe.drains; }), 1);
  EXPECT_EQ(probe.Read([&] { return probe.closed; }), 1);
  EXPECT_TRUE(WaitEof(fd, 2s));
  ::close(fd);
}

// RequestStop issued before the loop has set up its ring (a SIGTERM right after start-up)
// still stops the worker: the request must not be lost.
// Tasks (timers owned by no connection): fire once per ArmTask, never early, can be re-armed
// from their own callback and cancelled; a stopping worker does not wait for them.
TEST(WorkerTest, TasksFireOncePerArmAndCanBeCancelled) {
  WorkerRunner runner(SmallOptions());
  ASSERT_TRUE(runner.Start());
  struct Shared {
    std::atomic<int> fired_a{0};
    std::atomic<int> fired_b{0};
    std::atomic<uint64_t> early{0};
    uint64_t due = 0;
    Worker::TaskId a = 0;
    Worker::TaskId b = 0;
  };
  auto shared = std::make_shared<Shared>();
  Worker& w = runner.worker();
  runner.OnWorker([&w, shared] {
    shared->a = w.AddTask([&w, shared] {
      if (MonotonicMs() < shared->due) {
        shared->early++;
      }
      // Re-arms itself twice from inside its own callback.
      if (shared->fired_a.fetch_add(1) + 1 < 3) {
        shared->due = w.now_ms() + 30;
        w.ArmTask(shared->a, shared->due);
      }
    });
    shared->b = w.AddTask([shared] { shared->fired_b++; });
    shared->due = w.now_ms() + 30;
    w.ArmTask(shared->a, shared->due);
    w.ArmTask(shared->b, w.now_ms() + 50);
    w.CancelTask(shared->b);
    return 0;
  });
  const auto deadline = Clock::now() + 5s;
  while (shared->fired_a.load() < 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(shared->fired_a.load(), 3);
  EXPECT_EQ(shared->fired_b.load(), 0) << "a cancelled task fired";
  EXPECT_EQ(shared->early.load(), 0u);
  // An armed task far in the future does not keep a stopping worker alive.
  runner.OnWorker([&w, shared] {
    w.ArmTask(shared->b, w.now_ms() + 3600 * 1000);
    return 0;
  });
  runner.worker().RequestStop();
  EXPECT_TRUE(runner.Join(5s).has_value());
  EXPECT_EQ(shared->fired_b.load(), 0);
}

TEST(WorkerTest, RequestStopBeforeRunIsNotLost) {
  WorkerRunner runner(SmallOptions());
  runner.worker().RequestStop();
  runner.StartThreadOnly();
  const auto deadline = Clock::now() + 3s;
  while (!runner.done() && Clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(runner.done()) << "a RequestStop() made before Run() was lost";
  if (!runner.done()) {
    runner.worker().Post([] {});  // wake it so the test can finish
  }
  EXPECT_TRUE(runner.Join(10s).has_value());
}

// Watch(): a descriptor that is no connection (a DNS client's socket) polled by the ring: each
// readiness calls the function once, Rewatch(0) pauses it, Unwatch() from inside the function
// stops it (and the caller may close the descriptor at once).
TEST(WorkerTest, WatchReportsReadinessUntilUnwatched) {
  WorkerRunner runner(SmallOptions());
  ASSERT_TRUE(runner.Start());
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK), 0);
  std::atomic<int> calls{0};
  std::atomic<bool> unwatch_next{false};
  Worker& w = runner.worker();
  const Worker::WatchId id = runner.OnWorker([&] {
    auto id_holder = std::make_shared<Worker::WatchId>(0);
    *id_holder = w.Watch(fds[0], POLLIN, [&, id_holder](uint32_t revents) {
      EXPECT_TRUE(revents & POLLIN);
      char c;
      while (::read(fds[0], &c, 1) == 1) {
      }
      ++calls;
      if (unwatch_next.load()) {
        w.Unwatch(*id_holder);
      }
    });
    return *id_holder;
  });
  auto wait_calls = [&](int n) {
    const auto deadline = Clock::now() + 5s;
    while (calls.load() < n && Clock::now() < deadline) {
      std::this_thread::sleep_for(2ms);
    }
    return calls.load();
  };
  ASSERT_EQ(::write(fds[1], "a", 1), 1);
  EXPECT_EQ(wait_calls(1), 1);
  ASSERT_EQ(::write(fds[1], "b", 1), 1);
  EXPECT_EQ(wait_calls(2), 2);  // re-armed after the first
  runner.OnWorker([&] { w.Rewatch(id, 0); });
  ASSERT_EQ(::write(fds[1], "c", 1), 1);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(calls.load(), 2);  // paused
  unwatch_next = true;
  runner.OnWorker([&] { w.Rewatch(id, POLLIN); });
  EXPECT_EQ(wait_calls(3), 3);  // the byte waiting since the pause
  ::close(fds[0]);              // unwatched inside the call: closing is safe
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(calls.load(), 3);
  ::close(fds[1]);
  EXPECT_TRUE(runner.Stop().has_value());
}

}  // namespace
}  // namespace torii::core

namespace torii::core {
namespace {

// File I/O through the ring (the disk tier's reads and writes): a vectored write and the read
// of it back, an error as -errno, and a stop that waits for the operation in flight.
TEST(WorkerTest, FileReadsAndWritesGoThroughTheRing) {
  char path[] = "/tmp/torii-worker-file-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  WorkerRunner runner(SmallOptions());
  ASSERT_TRUE(runner.Start());
  std::promise<int> wrote;
  std::string a = "hello, ";
  std::string b = "disk";
  runner.OnWorker([&] {
    const iovec iov[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
    runner.worker().WriteFile(fd, 4096, iov, [&](int res) { wrote.set_value(res); });
    return 0;
  });
  auto w = wrote.get_future();
  ASSERT_EQ(w.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(w.get(), 11);
  std::promise<int> read;
  std::string x(5, '\0');
  std::string y(6, '\0');
  runner.OnWorker([&] {
    const iovec iov[2] = {{x.data(), x.size()}, {y.data(), y.size()}};
    runner.worker().ReadFile(fd, 4096, iov, [&](int res) { read.set_value(res); });
    return 0;
  });
  auto r = read.get_future();
  ASSERT_EQ(r.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(r.get(), 11);
  EXPECT_EQ(x + y, "hello, disk");
  // A descriptor that cannot write: the error comes back as -errno.
  std::promise<int> failed;
  runner.OnWorker([&] {
    const iovec iov[1] = {{a.data(), a.size()}};
    runner.worker().WriteFile(-1, 0, iov, [&](int res) { failed.set_value(res); });
    return 0;
  });
  auto f = failed.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), -EBADF);
  // Submitted right before the stop: its callback still runs before Run() returns.
  bool ran = false;
  runner.worker().Post([&] {
    const iovec iov[1] = {{x.data(), x.size()}};
    runner.worker().ReadFile(fd, 4096, iov, [&](int) { ran = true; });
    runner.worker().RequestStop();
  });
  ASSERT_TRUE(runner.Join(10s));
  EXPECT_TRUE(ran);
  ::close(fd);
}

}  // namespace
}  // namespace torii::core

namespace torii::core {
namespace {

// Conn::WritePinned: bytes a shared owner keeps alive are sent from where they are; the queue
// holds the owner until they are sent (or dropped with the connection), then lets it go.
class PinnedHandler : public RecordHandler {
 public:
  PinnedHandler(Probe* probe, std::shared_ptr<const std::string> body)
      : RecordHandler(probe), body_(std::move(body)) {}
  void OnRecv(Conn& conn, std::span<const char> data) override {
    RecordHandler::OnRecv(conn, data);
    if (!sent_) {
      sent_ = true;
      conn.Write("head:");
      for (size_t off = 0; off < body_->size(); off += 64 * 1024) {
        conn.WritePinned(std::string_view(*body_).substr(off, 64 * 1024), body_);
      }
      body_.reset();  // from here only the queue keeps it
      conn.Write(":tail");
      conn.CloseAfterFlush();
    }
  }

 private:
  std::shared_ptr<const std::string> body_;
  bool sent_ = false;
};

TEST(WorkerTest, PinnedBytesAreSentAndTheirOwnerReleased) {
  Probe probe;
  auto body = std::make_shared<const std::string>(Pattern(1 << 20, 5));
  std::weak_ptr<const std::string> watch = body;
  auto lw = StartListening(SmallOptions(), &probe,
                           [&](Conn&) { return std::make_unique<PinnedHandler>(&probe, body); });
  const int fd = ConnectTo(lw.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteAll(fd, "go"));
  bool eof = false;
  const std::string got = ReadUpTo(fd, (1 << 20) + 11, 10s, &eof);
  EXPECT_TRUE(eof);
  EXPECT_TRUE(got == "head:" + *body + ":tail") << "pinned bytes differ";
  ::close(fd);
  ASSERT_TRUE(probe.WaitFor([&] { return probe.closed == 1; }));
  body.reset();
  EXPECT_TRUE(watch.expired()) << "the queue still holds the owner after sending";
  // A peer that resets while pinned bytes are queued: they are dropped, the owner released.
  body = std::make_shared<const std::string>(Pattern(4 << 20, 6));
  watch = body;
  const int fd2 = ConnectTo(lw.port);
  ASSERT_GE(fd2, 0);
  ASSERT_TRUE(WriteAll(fd2, "go"));
  ASSERT_TRUE(probe.WaitFor([&] { return probe.bytes >= 4; }));
  body.reset();
  linger lg{1, 0};
  setsockopt(fd2, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd2);  // RST with megabytes still queued
  ASSERT_TRUE(probe.WaitFor([&] { return probe.closed == 2; }));
  EXPECT_EQ(lw.runner->WaitConnsLive(0), 0u);
  EXPECT_TRUE(watch.expired()) << "a dropped queue still holds the owner";
  EXPECT_TRUE(lw.runner->Stop().has_value());
}

}  // namespace
}  // namespace torii::core

namespace torii::core {
namespace {

// ---------------------------------------------------------------------------------------------
// Forwards (Conn::ForwardTo)

// The source of a forward, as an HTTP/1.1 upstream uses one: its first receive starts with a
// 4-byte "head"; the destination (`dst`) gets "H:" and the first `total` payload bytes, those
// that came with the head written by the handler and the rest forwarded; whatever follows is
// the handler's own input again (recorded).
class ForwardSourceHandler : public RecordHandler {
 public:
  ForwardSourceHandler(Probe* probe, ConnRef dst, uint64_t total)
      : RecordHandler(probe), dst_(dst), total_(total) {}
  void OnRecv(Conn& conn, std::span<const char> data) override {
    if (started_) {
      RecordHandler::OnRecv(conn, data);
      return;
    }
    const size_t take = std::min<size_t>(data.size(), 4 - head_.size());
    head_.append(data.data(), take);
    if (head_.size() < 4) {
      return;
    }
    started_ = true;
    const std::string_view rest(data.data() + take, data.size() - take);
    Conn* dst = conn.worker().Resolve(dst_);
    if (dst == nullptr) {
      probe_->Update([&] { probe_->failures.push_back("destination gone"); });
      return;
    }
    const size_t now = static_cast<size_t>(std::min<uint64_t>(rest.size(), total_));
    dst->Write("H:");
    dst->Write(rest.substr(0, now));
    if (total_ > now && !conn.ForwardTo(*dst, total_ - now)) {
      probe_->Update([&] { probe_->failures.push_back("ForwardTo refused"); });
    }
    if (rest.size() > now) {
      RecordHandler::OnRecv(conn, std::span<const char>(rest.data() + now, rest.size() - now));
    }
  }
  void OnForwarded(Conn& /*conn*/, const ForwardProgress& p) override {
    probe_->Update([&] {
      probe_->forwarded += p.bytes;
      probe_->spliced += p.spliced;
      probe_->forward_done += p.done ? 1 : 0;
      probe_->input_follows += p.input_follows ? 1 : 0;
    });
  }

 private:
  ConnRef dst_;
  uint64_t total_;
  std::string head_;
  bool started_ = false;
};

// A worker whose first accepted connection is a forward's destination (recording) and whose
// second is its source (ForwardSourceHandler, receiving one buffer at a time as an upstream
// that may splice does). Both test-side sockets are returned connected.
struct ForwardSetup {
  ListeningWorker lw;
  int dst = -1;  // the test's end of the destination
  int src = -1;  // ... and of the source
  ConnRef src_ref;
};

ForwardSetup StartForwarding(Probe* probe, uint64_t total, bool one_shot = true) {
  ForwardSetup f;
  f.lw = StartListening(SmallOptions(), probe, [probe, total, one_shot](Conn& conn) {
    const auto refs = probe->Read([&] { return probe->refs; });
    if (refs.size() == 1) {
      return std::unique_ptr<ConnHandler>(std::make_unique<RecordHandler>(probe));
    }
    conn.SetRecvOneShot(one_shot);
    return std::unique_ptr<ConnHandler>(
        std::make_unique<ForwardSourceHandler>(probe, refs[0], total));
  });
  f.dst = ConnectTo(f.lw.port);
  EXPECT_TRUE(probe->WaitFor([&] { return probe->accepted == 1; }));
  f.src = ConnectTo(f.lw.port);
  EXPECT_TRUE(probe->WaitFor([&] { return probe->accepted == 2; }));
  f.src_ref = probe->Read([&] { return probe->refs[1]; });
  return f;
}

// Exactly the bytes asked for reach the destination, in order, after what it had queued, and
// by splice; what the source sends after them is its handler's input again; a destination
// that stops reading holds the forward up (ForwardWaitsForDestination) until it reads again.
TEST(WorkerTest, ForwardMovesExactlyTheBytesAskedThroughAPipe) {
  Probe probe;
  constexpr size_t kTotal = 16 * 1024 * 1024 + 17;
  ForwardSetup f = StartForwarding(&probe, kTotal);
  const int small = 64 * 1024;  // so that the destination's sockets fill before the pipe
  setsockopt(f.dst, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  const std::string payload = Pattern(kTotal, 7);
  ASSERT_TRUE(WriteAll(f.src, "HEAD"));
  std::thread writer([&] {
    WriteAll(f.src, payload);
    WriteAll(f.src, "tail!");
  });
  // Nobody reads the destination yet: the forward fills the sockets and its pipe, then waits.
  bool held = false;
  for (int i = 0; i < 200 && !held; ++i) {
    std::this_thread::sleep_for(10ms);
    held = f.lw.runner->OnWorker([&] {
      Conn* c = f.lw.runner->worker().Resolve(f.src_ref);
      return c != nullptr && c->ForwardWaitsForDestination();
    });
  }
  EXPECT_TRUE(held) << "the forward never waited for its destination";
  const std::string got = ReadUpTo(f.dst, 2 + kTotal, 20s);
  writer.join();
  ASSERT_EQ(got.size(), 2 + kTotal);
  EXPECT_EQ(got.substr(0, 2), "H:");
  EXPECT_TRUE(got.compare(2, kTotal, payload) == 0) << "forwarded bytes differ";
  ASSERT_TRUE(probe.WaitFor([&] { return probe.received == "tail!"; }))
      << "after the forward: " << probe.Read([&] { return probe.received; });
  EXPECT_EQ(probe.Read([&] { return probe.forward_done; }), 1);
  EXPECT_TRUE(probe.Read([&] { return probe.failures.empty(); }));
  const WorkerStats st = f.lw.runner->Stats();
  EXPECT_EQ(st.forwards, 1u);
  RecordProperty("forward_yields", std::to_string(st.forward_yields));
  // At most the first receive's buffer went through the handler; the rest by splice.
  EXPECT_GE(st.spliced_bytes, kTotal - 16 * 1024);
  EXPECT_EQ(probe.Read([&] { return probe.spliced; }), st.spliced_bytes);
  // Reported: every forwarded byte (the first receive's share went by the handler itself).
  const uint64_t forwarded = probe.Read([&] { return probe.forwarded; });
  EXPECT_LE(forwarded, kTotal);
  EXPECT_GE(forwarded, kTotal - 16 * 1024);
  EXPECT_EQ(probe.Read([&] { return probe.input_follows; }), 0);
  // Nothing else is held: the destination still answers, the source receives again.
  ASSERT_TRUE(WriteAll(f.src, "more"));
  EXPECT_TRUE(probe.WaitFor([&] { return probe.received == "tail!more"; }));
  ::close(f.src);
  ::close(f.dst);
}

// A multishot receive has already taken what follows the head when the forward starts: those
// buffers go to the destination's queue, exactly up to the forwarded length, and the bytes
// after it reach the handler, which hears that they followed (input_follows).
TEST(WorkerTest, ForwardTakesWhatTheRingAlreadyReceived) {
  Probe probe;
  constexpr size_t kTotal = 40 * 1024 + 3;
  ForwardSetup f = StartForwarding(&probe, kTotal, /*one_shot=*/false);
  const std::string payload = Pattern(kTotal, 9);
  ASSERT_TRUE(WriteAll(f.src, "HEAD" + payload + "tail!"));  // one write: one batch of buffers
  const std::string got = ReadUpTo(f.dst, 2 + kTotal, 5s);
  ASSERT_EQ(got.size(), 2 + kTotal);
  EXPECT_TRUE(got.compare(2, kTotal, payload) == 0);
  ASSERT_TRUE(probe.WaitFor([&] { return probe.received == "tail!"; }));
  EXPECT_EQ(probe.Read([&] { return probe.forward_done; }), 1);
  EXPECT_EQ(probe.Read([&] { return probe.input_follows; }), 1);
  EXPECT_EQ(probe.Read([&] { return probe.spliced; }), 0u);
  EXPECT_TRUE(WaitEof(f.dst, 100ms) == false);  // the destination stays open
  ::close(f.src);
  ::close(f.dst);
}

// The source ends (FIN) before all was forwarded: its handler hears OnEof, and the destination
// has every byte that was sent before it.
TEST(WorkerTest, ForwardSourceEofReachesItsHandler) {
  Probe probe;
  ForwardSetup f = StartForwarding(&probe, 1024 * 1024);
  const std::string part = Pattern(200 * 1024, 3);
  ASSERT_TRUE(WriteAll(f.src, "HEAD"));
  ASSERT_TRUE(WriteAll(f.src, part));
  ::shutdown(f.src, SHUT_WR);
  const std::string got = ReadUpTo(f.dst, 2 + part.size(), 5s);
  EXPECT_EQ(got.size(), 2 + part.size());
  EXPECT_TRUE(got.compare(2, part.size(), part) == 0);
  EXPECT_TRUE(probe.WaitFor([&] { return probe.eofs == 1; }));
  EXPECT_EQ(probe.Read([&] { return probe.forward_done; }), 0);
  // The source closed (its handler's choice); the destination stays open and idle.
  EXPECT_TRUE(probe.WaitFor([&] { return probe.closed == 1; }));
  EXPECT_EQ(f.lw.runner->Stats().conns_live, 1u);
  ::close(f.src);
  ::close(f.dst);
}

// The destination resets mid-forward: its handler hears the error (and closes it); the forward
// ends there, the source's receive stays stopped for its handler to close it (an exchange's
// upstream is released with its client), and closes cleanly.
TEST(WorkerTest, ForwardDestinationResetReachesItsHandler) {
  Probe probe;
  ForwardSetup f = StartForwarding(&probe, 64 * 1024 * 1024);
  ASSERT_TRUE(WriteAll(f.src, "HEAD"));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    const std::string chunk = Pattern(256 * 1024, 5);
    const auto deadline = Clock::now() + 5s;
    while (!stop.load() && Clock::now() < deadline && WriteAll(f.src, chunk)) {
    }
  });
  EXPECT_EQ(ReadUpTo(f.dst, 300 * 1024, 5s).size(), 300u * 1024);
  CloseWithRst(f.dst);
  EXPECT_TRUE(probe.WaitFor([&] { return probe.errors == 1; }));
  stop.store(true);
  ::shutdown(f.src, SHUT_RDWR);
  writer.join();
  EXPECT_TRUE(f.lw.runner->OnWorker([&] {
    Conn* c = f.lw.runner->worker().Resolve(f.src_ref);
    if (c == nullptr || c->ForwardWaitsForDestination()) {
      return false;
    }
    c->Close();
    return true;
  }));
  ::close(f.src);
  EXPECT_EQ(f.lw.runner->WaitConnsLive(0), 0u);
  EXPECT_EQ(probe.Read([&] { return probe.forward_done; }), 0);
}

}  // namespace
}  // namespace torii::core
