// app/server.cc: see server.h.
#include "app/server.h"

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>

#include "app/admin.h"
#include "app/reloader.h"
#include "app/ticket_share.h"
#include "core/worker.h"
#include "http/proxy_config.h"
#include "http/proxy_context.h"
#include "http/proxy_session.h"

namespace torii::app {

namespace {

// Binds one SO_REUSEPORT listening socket, with a TCP Fast Open queue of `fastopen` (0 = none).
// Returns the fd or -1 (errno set).
int BindListener(const conf::SocketAddress& addr, uint32_t backlog, uint32_t fastopen = 0) {
  const int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (addr.family() == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  const int qlen = static_cast<int>(fastopen);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr.storage), addr.len) != 0 ||
      (qlen > 0 && setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen)) != 0) ||
      ::listen(fd, static_cast<int>(backlog)) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// TCP Fast Open asked for where the kernel's switch (net.ipv4.tcp_fastopen: bit 1 client,
// bit 2 server) leaves it off: said once at start, since nothing fails, it just does not happen.
void WarnFastOpenDisabled(const conf::Config& config) {
  bool server = false;
  bool client = false;
  for (const conf::ListenerConfig& l : config.listeners) {
    server = server || l.tcp_fastopen > 0;
  }
  for (const conf::PoolConfig& p : config.pools) {
    client = client || p.tcp_fastopen;
  }
  if (!server && !client) {
    return;
  }
  int flags = 0;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_fastopen", "r")) {
    if (std::fscanf(f, "%d", &flags) != 1) {
      flags = 0;
    }
    std::fclose(f);
  }
  if (server && (flags & 2) == 0) {
    spdlog::warn(
        "tcp_fastopen on a listener, but net.ipv4.tcp_fastopen = {} leaves the server "
        "side off: clients get no cookie (sysctl -w net.ipv4.tcp_fastopen={})",
        flags, flags | 3);
  }
  if (client && (flags & 1) == 0) {
    spdlog::warn(
        "tcp_fastopen on a pool, but net.ipv4.tcp_fastopen = {} leaves the client side "
        "off: backend connections start with a plain SYN (sysctl -w "
        "net.ipv4.tcp_fastopen={})",
        flags, flags | 1);
  }
}

// The port the kernel picked for a socket bound to port 0.
uint16_t BoundPort(int fd) {
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  return ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in&>(bound).sin_port
                                          : reinterpret_cast<sockaddr_in6&>(bound).sin6_port);
}

int OpenAccessLog(const std::string& where) {
  if (where == "off") {
    return -1;
  }
  if (where == "-") {
    return STDOUT_FILENO;
  }
  return ::open(where.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

// Switches the process (every thread) to `user` and `group` (default: the user's group), with
// no supplementary groups. Returns "" on success, else what went wrong. Not root: succeeds
// only when already running as that user.
std::string DropPrivileges(const std::string& user, const std::string& group) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return "no such user: " + user;
  }
  gid_t gid = pw.pw_gid;
  if (!group.empty()) {
    std::vector<char> gbuf(16384);
    ::group gr{};
    ::group* gfound = nullptr;
    if (getgrnam_r(group.c_str(), &gr, gbuf.data(), gbuf.size(), &gfound) != 0 ||
        gfound == nullptr) {
      return "no such group: " + group;
    }
    gid = gr.gr_gid;
  }
  if (geteuid() != 0) {
    return geteuid() == pw.pw_uid ? std::string()
                                  : "cannot switch to user " + user + ": not started as root";
  }
  if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(pw.pw_uid) != 0) {
    return "cannot switch to user " + user + ": " + strerror(errno);
  }
  if (getuid() != pw.pw_uid || geteuid() != pw.pw_uid || setuid(0) == 0) {
    return "cannot switch to user " + user + ": root could be regained";
  }
  return {};
}

bool WriteReadyFile(const std::string& path, const std::vector<std::string>& lines) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    return false;
  }
  for (const std::string& l : lines) {
    std::fputs(l.c_str(), f);
    std::fputc('\n', f);
  }
  const bool ok = std::fclose(f) == 0;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

// RLIMIT_NOFILE for `workers` x max_connections sockets (each a client or an upstream) plus
// the listeners, logs and rings: raised as far as the hard limit allows, or set to
// max_open_files. False (logged) when max_open_files is above the hard limit.
static bool SetOpenFileLimit(const conf::ServerConfig& server, uint32_t workers) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return true;
  }
  const uint64_t needed = uint64_t{workers} * server.max_connections + 256;
  uint64_t want = server.max_open_files != 0 ? server.max_open_files : needed;
  if (want > lim.rlim_max) {
    if (server.max_open_files != 0) {
      spdlog::critical(
          "max_open_files {} is above the hard RLIMIT_NOFILE {} (raise it: "
          "ulimit -Hn, LimitNOFILE= in the unit)",
          want, static_cast<uint64_t>(lim.rlim_max));
      return false;
    }
    want = lim.rlim_max;
    spdlog::warn(
        "RLIMIT_NOFILE: the hard limit {} is below the {} that {} worker(s) x "
        "max_connections {} need; connections past it get 503 or wait (raise it: "
        "ulimit -Hn, LimitNOFILE= in the unit)",
        want, needed, workers, server.max_connections);
  }
  if (want != lim.rlim_cur && (server.max_open_files != 0 || want > lim.rlim_cur)) {
    lim.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      spdlog::warn("RLIMIT_NOFILE: cannot set the soft limit to {}: {}", want, strerror(errno));
    }
  }
  return true;
}

namespace {

// The sockets torii serves on, bound before anything else (they may need root).
struct Sockets {
  std::vector<std::vector<int>> listeners;  // by worker, then listener index
  int admin = -1;
  std::vector<std::string> ready_lines;  // "NAME ADDRESS" per listener (the ready file)
};

// Every listener once per worker (worker 0's socket binds first: port 0 picks a port, the
// others reuse it), and the admin listener once. False (logged) when one cannot listen.
bool Bind(const conf::Config& config, uint32_t workers, Sockets* out) {
  WarnFastOpenDisabled(config);
  out->listeners.resize(workers);
  for (const conf::ListenerConfig& l : config.listeners) {
    conf::SocketAddress addr = l.address;
    for (uint32_t w = 0; w < workers; ++w) {
      const int fd = BindListener(addr, l.backlog, l.tcp_fastopen);
      if (fd < 0) {
        spdlog::critical("listener {}: cannot listen on {}: {}", l.name, addr.ToString(),
                         strerror(errno));
        return false;
      }
      if (w == 0 && addr.port() == 0) {
        addr.set_port(BoundPort(fd));
      }
      out->listeners[w].push_back(fd);
    }
    out->ready_lines.push_back(l.name + " " + addr.ToString());
    spdlog::info("listener {} on {} ({} workers)", l.name, addr.ToString(), workers);
  }
  if (config.admin.enabled) {
    conf::SocketAddress addr = config.admin.address;
    out->admin = BindListener(addr, 128);
    if (out->admin < 0) {
      spdlog::critical("[admin]: cannot listen on {}: {}", addr.ToString(), strerror(errno));
      return false;
    }
    if (addr.port() == 0) {
      addr.set_port(BoundPort(out->admin));
    }
    out->ready_lines.push_back("admin " + addr.ToString());
    spdlog::info("admin on {} (/metrics, /status.json)", addr.ToString());
  }
  return true;
}

// Everything that needs root is done (listeners bound, logs open, keys read, rings set up):
// the ready file is written, then root is given up before any request is served.
bool GiveUpRoot(const conf::ServerConfig& server, const std::vector<std::string>& ready_lines) {
  if (!server.ready_file.empty() && !WriteReadyFile(server.ready_file, ready_lines)) {
    spdlog::error("cannot write ready_file {}: {}", server.ready_file, strerror(errno));
  }
  if (!server.user.empty()) {
    if (std::string why = DropPrivileges(server.user, server.group); !why.empty()) {
      spdlog::critical("{}", why);
      return false;
    }
    spdlog::info("running as user {} (uid {}, gid {})", server.user, getuid(), getgid());
  }
  return true;
}

// The running process: its workers (one ring and one ProxyContext each), the admin endpoint,
// the generations (Reloader) and the main thread's signal loop.
class Server {
 public:
  Server(const conf::Config& config, uint32_t workers, const ReopenFn& reopen_error_log)
      : config_(config),
        workers_(workers),
        reopen_error_log_(reopen_error_log),
        reloader_(config, workers) {}

  // Binds, builds the first generation and the workers, serves until stopped; the exit code.
  int Run(const sigset_t& signals) {
    Sockets sockets;
    if (!Bind(config_, workers_, &sockets)) {
      return 1;
    }
    log_fd_ = OpenAccessLog(config_.server.access_log);
    if (log_fd_ < 0 && config_.server.access_log != "off") {
      spdlog::critical("access_log {}: {}", config_.server.access_log, strerror(errno));
      return 1;
    }
    if (std::string why = reloader_.Start(); !why.empty()) {
      spdlog::critical("{}", why);
      return 1;
    }
    MakeWorkers(sockets);
    if (!GiveUpRoot(config_.server, sockets.ready_lines)) {
      return 1;
    }
    StartThreads();
    spdlog::info("torii serving with {} worker(s)", workers_);
    SignalLoop(signals);
    return Finish();
  }

 private:
  void MakeWorkers(const Sockets& sockets) {
    const auto log_format = config_.server.access_log_format == conf::LogFormat::kJson
                                ? http::AccessLogFormat::kJson
                                : http::AccessLogFormat::kText;
    const auto admin_index = static_cast<uint32_t>(config_.listeners.size());
    for (uint32_t w = 0; w < workers_; ++w) {
      core::WorkerOptions o;
      o.id = w;
      o.sq_entries = config_.server.sq_entries;
      o.cq_entries = config_.server.cq_entries;
      o.recv_buffers = config_.server.recv_buffers;
      o.recv_buffer_size = config_.server.recv_buffer_size;
      o.max_conns = config_.server.max_connections;
      o.drain_grace_ms = static_cast<uint64_t>(config_.server.shutdown_grace.count());
      auto worker = std::make_unique<core::Worker>(o);
      auto ctx = std::make_unique<http::ProxyContext>(
          *worker, reloader_.proxy_config(),
          std::make_unique<http::AccessLog>(log_fd_, log_format));
      for (uint32_t li = 0; li < sockets.listeners[w].size(); ++li) {
        worker->AddListener(sockets.listeners[w][li], li);
      }
      if (w == 0 && sockets.admin >= 0) {
        worker->AddListener(sockets.admin, admin_index);
      }
      http::ProxyContext* ctx_ptr = ctx.get();
      worker->set_accept_fn([ctx_ptr, this, admin_index](core::Conn& conn, uint32_t listener) {
        if (listener == admin_index) {
          return admin_->Accept(conn);
        }
        return http::NewClientSession(*ctx_ptr, conn, listener);
      });
      worker->set_on_turn_end([ctx_ptr] { ctx_ptr->log().Flush(); });
      if (w == 0) {
        ticket_share_ = std::make_unique<TicketKeyShare>(*ctx_ptr, reloader_.ticket_keys());
        // The first generation's checker and discovery, taken now: the main thread may
        // install another before worker 0 starts (Install then hands it the next).
        worker->set_on_start([ctx_ptr, checker = reloader_.checker(),
                              discovery = reloader_.discovery(), ocsp = reloader_.ocsp(),
                              keys = reloader_.ticket_keys(),
                              share = ticket_share_.get()](core::Worker& self) {
          StartWorkerZero(self, *ctx_ptr, checker, discovery, ocsp, keys, share);
        });
      } else {
        // Each worker's own Redis connection (fleet-wide rate limits), made before it serves.
        worker->set_on_start([ctx_ptr](core::Worker&) { ctx_ptr->fleet().Connect(); });
      }
      workers_list_.push_back(std::move(worker));
      contexts_.push_back(std::move(ctx));
    }
    // Request coalescing wakes waiters on other workers through their contexts.
    auto all = std::make_shared<std::vector<http::ProxyContext*>>();
    for (const auto& c : contexts_) {
      all->push_back(c.get());
    }
    for (const auto& c : contexts_) {
      c->set_siblings(all);
    }
    if (sockets.admin >= 0) {
      admin_ =
          std::make_unique<Admin>(config_, reloader_.proxy_config(),
                                  std::vector<const http::ProxyContext*>(all->begin(), all->end()));
      admin_->SetDiscovery(reloader_.discovery());
    }
    reloader_.Attach(*all, admin_.get());
  }

  // Once per process, on worker 0's ring: the first generation's active health checks, DNS
  // discovery and OCSP fetches, and the rotation of the TLS session-ticket keys (checked every
  // minute; each key set rotates on its interval).
  static void StartWorkerZero(core::Worker& self, http::ProxyContext& ctx, HealthChecker* checker,
                              Discovery* discovery, OcspFetcher* ocsp,
                              const std::shared_ptr<Reloader::TicketKeyList>& keys,
                              TicketKeyShare* share) {
    ctx.fleet().Connect();
    share->Start();
    if (!checker->empty()) {
      checker->Start(ctx);
    }
    if (!ocsp->empty()) {
      ocsp->Start(self);
    }
    if (!discovery->empty()) {
      discovery->Start(self);
    }
    auto task = std::make_shared<core::Worker::TaskId>();
    *task = self.AddTask([&self, keys, task] {
      for (const auto& k : *keys) {
        k->Rotate(core::MonotonicMs());  // the first call starts a key set's clock
      }
      self.ArmTask(*task, self.now_ms() + 60000);
    });
    for (const auto& k : *keys) {
      k->Rotate(core::MonotonicMs());
    }
    self.ArmTask(*task, self.now_ms() + 60000);
  }

  void StartThreads() {
    for (uint32_t w = 0; w < workers_; ++w) {
      threads_.emplace_back([this, w] {
        auto r = workers_list_[w]->Run();
        if (!r) {
          failed_ = true;
        }
        exited_.fetch_add(1);
      });
    }
  }

  void StopWorkers() {
    stopping_ = true;
    for (auto& w : workers_list_) {
      w->RequestStop();
    }
  }

  // Until every worker has returned: stop signals, SIGHUP (reload), SIGUSR1 (logs), DNS changes
  // and a worker that failed to start.
  void SignalLoop(const sigset_t& signals) {
    while (exited_.load() < workers_) {
      timespec timeout{0, 200 * 1000 * 1000};
      siginfo_t info{};
      const int sig = sigtimedwait(&signals, &info, &timeout);
      if (!stopping_) {
        reloader_.PollDiscovery();
      }
      if (failed_.load() && !stopping_) {
        spdlog::critical("a worker failed to start; stopping");
        exit_code_ = 1;
        StopWorkers();
      }
      if (sig == SIGINT || sig == SIGTERM) {
        if (stopping_) {
          spdlog::warn("second stop signal: exiting now");
          std::_Exit(exit_code_);
        }
        spdlog::info("{} received: stopping gracefully (grace {} ms)",
                     sig == SIGINT ? "SIGINT" : "SIGTERM", config_.server.shutdown_grace.count());
        StopWorkers();
      } else if (sig == SIGHUP && !stopping_) {
        reloader_.ReloadFile();
      } else if (sig == SIGUSR1) {
        ReopenLogs();
      }
    }
  }

  // logrotate moved the files aside: new ones at the configured paths.
  void ReopenLogs() {
    bool ok = true;
    if (log_fd_ > STDERR_FILENO) {
      // The workers keep writing to the same descriptor number, now the new file (dup2 is
      // atomic: no line is lost or split between the two files).
      const int fresh = OpenAccessLog(config_.server.access_log);
      if (fresh < 0 || ::dup2(fresh, log_fd_) < 0) {
        ok = false;
        spdlog::error("SIGUSR1: cannot reopen access_log {}: {} (still writing the old file)",
                      config_.server.access_log, strerror(errno));
      }
      if (fresh >= 0) {
        ::close(fresh);
      }
    }
    if (reopen_error_log_ && !reopen_error_log_()) {
      ok = false;
    }
    if (ok) {
      spdlog::info("SIGUSR1 received: log files reopened");
    }
  }

  int Finish() {
    for (auto& t : threads_) {
      t.join();
    }
    // The resolvers first (they unwatch their sockets on worker 0's ring, which must still
    // exist), then the workers: their connections' handlers hand their buffers back to the
    // contexts.
    reloader_.StopDiscovery();
    for (const auto& c : contexts_) {
      c->fleet().Close();
    }
    ticket_share_.reset();
    workers_list_.clear();
    contexts_.clear();
    if (failed_.load()) {
      exit_code_ = 1;
    }
    if (!config_.server.ready_file.empty()) {
      ::unlink(config_.server.ready_file.c_str());
    }
    spdlog::info("torii stopped");
    return exit_code_;
  }

  const conf::Config& config_;
  const uint32_t workers_;
  const ReopenFn& reopen_error_log_;
  int log_fd_ = -1;
  Reloader reloader_;
  std::unique_ptr<Admin> admin_;  // made once the contexts exist; outlives the workers
  std::vector<std::unique_ptr<core::Worker>> workers_list_;
  std::vector<std::unique_ptr<http::ProxyContext>> contexts_;
  // Worker 0's: listeners' session-ticket keys shared through Redis.
  std::unique_ptr<TicketKeyShare> ticket_share_;
  std::vector<std::thread> threads_;
  std::atomic<uint32_t> exited_{0};
  std::atomic<bool> failed_{false};
  bool stopping_ = false;
  int exit_code_ = 0;
};

}  // namespace

int RunServer(const conf::Config& config, const ReopenFn& reopen_error_log) {
  // Signals are taken synchronously by this thread; workers inherit the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  uint32_t workers = config.server.workers;
  if (workers == 0) {
    workers = std::max(1u, std::thread::hardware_concurrency());
  }
  if (!SetOpenFileLimit(config.server, workers)) {
    return 1;
  }
  Server server(config, workers, reopen_error_log);
  return server.Run(signals);
}

}  // namespace torii::app
