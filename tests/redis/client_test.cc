// tests/redis/client_test.cc: the Redis client (redis/client.h) on a worker's ring against a
// real redis-server started by the test on a free loopback port: replies of every kind, EVALSHA
// with its NOSCRIPT fallback, failing fast while disconnected, per-command timeouts that drop
// and reconnect, a server killed and restarted, and destruction with commands in flight.
// Skipped when /usr/bin/redis-server is absent.
#include "redis/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace torii::redis {
namespace {

using namespace std::chrono_literals;

constexpr const char* kRedisServer = "/usr/bin/redis-server";

// A loopback TCP port nobody listens on right now.
uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool Accepting(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

bool AcceptingV6(uint16_t port) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  a.sin6_port = htons(port);
  const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  if (fd >= 0) {
    ::close(fd);
  }
  return ok;
}

// A redis-server child on 127.0.0.1:port, stopped by its PID.
class RedisServer {
 public:
  explicit RedisServer(uint16_t port) : port_(port) {}
  ~RedisServer() { Stop(SIGTERM); }

  // Spawns the server and waits (bounded) until it accepts connections.
  bool Start() {
    const std::string port = std::to_string(port_);
    // clang-format off
    std::vector<std::string> args = {
        kRedisServer,
        "--port", port,
        "--bind", "127.0.0.1", "-::1",  // also ::1 where the host has it ("-": optional)
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--enable-debug-command", "yes",  // DEBUG SLEEP (off by default since Redis 7)
        "--dir", "/tmp",
    };
    // clang-format on
    std::vector<char*> argv;
    for (std::string& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, kRedisServer, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    for (int i = 0; i < 500; ++i) {
      if (Accepting(port_)) {
        return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  // Sends `sig` and reaps the child.
  void Stop(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

// A worker running on its own thread; OnWorker() runs code on it and waits for the result.
class WorkerThread {
 public:
  WorkerThread() : worker_(Options()) {
    std::promise<void> started;
    worker_.set_on_start([&](core::Worker&) { started.set_value(); });
    thread_ = std::thread([this] { EXPECT_TRUE(worker_.Run().has_value()); });
    started.get_future().wait();
  }
  ~WorkerThread() {
    worker_.RequestStop();
    thread_.join();
  }

  template <class Fn>
  auto OnWorker(Fn fn) -> decltype(fn()) {
    using R = decltype(fn());
    auto done = std::make_shared<std::promise<R>>();
    auto result = done->get_future();
    worker_.Post([fn = std::move(fn), done]() mutable {
      if constexpr (std::is_void_v<R>) {
        fn();
        done->set_value();
      } else {
        done->set_value(fn());
      }
    });
    if (result.wait_for(20s) != std::future_status::ready) {
      std::abort();  // the loop is stuck: nothing below could be trusted
    }
    return result.get();
  }

  core::Worker& worker() { return worker_; }

 private:
  static core::WorkerOptions Options() {
    core::WorkerOptions wo;
    wo.sq_entries = 64;
    wo.recv_buffers = 16;
    return wo;
  }

  core::Worker worker_;
  std::thread thread_;
};

class RedisClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    if (::access(kRedisServer, X_OK) != 0) {
      GTEST_SKIP() << kRedisServer << " is not installed";
    }
    port_ = FreePort();
    server_ = std::make_unique<RedisServer>(port_);
    ASSERT_TRUE(server_->Start()) << "redis-server did not start on port " << port_;
  }

  void TearDown() override {
    if (client_) {
      worker_.OnWorker([this] { client_.reset(); });
    }
  }

  // Creates the client on the worker's thread and waits (bounded) until it is connected.
  void Connect(ClientOptions options = {}) {
    options.address = server_->address();
    worker_.OnWorker([&] {
      auto made = Client::Create(worker_.worker(), options);
      ASSERT_TRUE(made.has_value()) << made.error();
      client_ = std::move(*made);
    });
    ASSERT_TRUE(WaitConnected(true, 5s));
  }

  bool WaitConnected(bool want, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (worker_.OnWorker([this] { return client_->connected(); }) == want) {
        return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  // Sends one command and waits for its result.
  Result Call(std::vector<std::string> argv) {
    auto done = std::make_shared<std::promise<Result>>();
    auto result = done->get_future();
    worker_.OnWorker([&] {
      client_->Command(std::move(argv), [done](Result r) { done->set_value(std::move(r)); });
    });
    if (result.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "no callback";
      return std::unexpected(std::string("test: no callback"));
    }
    return result.get();
  }

  Result EvalOnce(const Script& script, std::vector<std::string> keys,
                  std::vector<std::string> args) {
    auto done = std::make_shared<std::promise<Result>>();
    auto result = done->get_future();
    worker_.OnWorker([&] {
      client_->Eval(script, std::move(keys), std::move(args),
                    [done](Result r) { done->set_value(std::move(r)); });
    });
    if (result.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "no callback";
      return std::unexpected(std::string("test: no callback"));
    }
    return result.get();
  }

  ClientStats Stats() {
    return worker_.OnWorker([this] { return client_->stats(); });
  }

  uint16_t port_ = 0;
  std::unique_ptr<RedisServer> server_;
  WorkerThread worker_;
  std::unique_ptr<Client> client_;
};

// SET then GET returns the value; a status reply is a kString; a missing key is kNil.
TEST_F(RedisClientTest, SetGetRoundTrip) {
  Connect();
  Result set = Call({"SET", "greeting", std::string("hello\0world", 11)});
  ASSERT_TRUE(set.has_value()) << set.error();
  EXPECT_EQ(set->kind, Reply::Kind::kString);
  EXPECT_EQ(set->str, "OK");
  Result get = Call({"GET", "greeting"});
  ASSERT_TRUE(get.has_value()) << get.error();
  EXPECT_EQ(get->kind, Reply::Kind::kString);
  EXPECT_EQ(get->str, std::string("hello\0world", 11));  // binary-safe
  Result missing = Call({"GET", "no-such-key"});
  ASSERT_TRUE(missing.has_value()) << missing.error();
  EXPECT_EQ(missing->kind, Reply::Kind::kNil);
}

// INCR answers with an integer reply.
TEST_F(RedisClientTest, IncrIsAnIntegerReply) {
  Connect();
  for (int64_t want = 1; want <= 3; ++want) {
    Result r = Call({"INCR", "counter"});
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->kind, Reply::Kind::kInteger);
    EXPECT_EQ(r->integer, want);
  }
}

// A Redis error reply is a Reply of kind kError (not an unexpected), and the connection serves
// the next command.
TEST_F(RedisClientTest, WrongTypeIsAnErrorReply) {
  Connect();
  ASSERT_TRUE(Call({"SET", "text", "x"}).has_value());
  Result r = Call({"LPUSH", "text", "y"});
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->kind, Reply::Kind::kError);
  EXPECT_TRUE(r->str.starts_with("WRONGTYPE")) << r->str;
  Result ping = Call({"PING"});
  ASSERT_TRUE(ping.has_value()) << ping.error();
  EXPECT_EQ(ping->str, "PONG");
  EXPECT_EQ(Stats().errors, 0u);
}

// A nested array reply keeps its order and element kinds (Lua false becomes nil).
TEST_F(RedisClientTest, ArrayReplyFromEval) {
  Connect();
  Result r = Call({"EVAL", "return {1, 'two', {3, false}}", "0"});
  ASSERT_TRUE(r.has_value()) << r.error();
  ASSERT_EQ(r->kind, Reply::Kind::kArray);
  ASSERT_EQ(r->elements.size(), 3u);
  EXPECT_EQ(r->elements[0].kind, Reply::Kind::kInteger);
  EXPECT_EQ(r->elements[0].integer, 1);
  EXPECT_EQ(r->elements[1].kind, Reply::Kind::kString);
  EXPECT_EQ(r->elements[1].str, "two");
  ASSERT_EQ(r->elements[2].kind, Reply::Kind::kArray);
  ASSERT_EQ(r->elements[2].elements.size(), 2u);
  EXPECT_EQ(r->elements[2].elements[0].integer, 3);
  EXPECT_EQ(r->elements[2].elements[1].kind, Reply::Kind::kNil);
}

// Script's SHA1 is Redis's; the first Eval loads the script through the NOSCRIPT fallback
// (EVALSHA + EVAL), the second is a single EVALSHA.
TEST_F(RedisClientTest, EvalFallsBackToEvalOnceThenUsesEvalsha) {
  Connect();
  const std::string body = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  std::unique_ptr<Script> script = std::make_unique<Script>(body);
  Result loaded_sha = Call({"SCRIPT", "LOAD", body});
  ASSERT_TRUE(loaded_sha.has_value()) << loaded_sha.error();
  EXPECT_EQ(script->sha, loaded_sha->str);
  ASSERT_TRUE(Call({"SCRIPT", "FLUSH"}).has_value());

  const uint64_t before = Stats().commands;
  Result first = EvalOnce(*script, {"hits"}, {"5"});
  ASSERT_TRUE(first.has_value()) << first.error();
  EXPECT_EQ(first->kind, Reply::Kind::kInteger);
  EXPECT_EQ(first->integer, 5);
  EXPECT_EQ(Stats().commands - before, 2u);  // EVALSHA → NOSCRIPT, then EVAL
  Result exists = Call({"SCRIPT", "EXISTS", script->sha});
  ASSERT_TRUE(exists.has_value()) << exists.error();
  ASSERT_EQ(exists->elements.size(), 1u);
  EXPECT_EQ(exists->elements[0].integer, 1);

  script.reset();  // the client keeps its own copy of the body
  Script again(body);
  const uint64_t middle = Stats().commands;
  Result second = EvalOnce(again, {"hits"}, {"2"});
  ASSERT_TRUE(second.has_value()) << second.error();
  EXPECT_EQ(second->integer, 7);
  EXPECT_EQ(Stats().commands - middle, 1u);  // EVALSHA alone
}

// A script error is an error reply, not a retry loop.
TEST_F(RedisClientTest, EvalScriptErrorIsAnErrorReply) {
  Connect();
  Script script("return redis.error_reply('nope')");
  Result r = EvalOnce(script, {}, {});
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->kind, Reply::Kind::kError);
  EXPECT_TRUE(r->str.ends_with("nope")) << r->str;
}

// Commands issued in one loop turn are pipelined (one write, the ring of pending commands
// growing past its initial size) and answered in order, each callback once.
TEST_F(RedisClientTest, PipelinedCommandsAreAnsweredInOrder) {
  Connect();
  static constexpr size_t kCount = 300;
  auto seen = std::make_shared<std::vector<int64_t>>();
  auto all = std::make_shared<std::promise<void>>();
  worker_.OnWorker([&] {
    for (size_t i = 0; i < kCount; ++i) {
      client_->Command({"INCR", "seq"}, [seen, all](Result r) {
        seen->push_back(r.has_value() ? r->integer : -1);
        if (seen->size() == kCount) {
          all->set_value();
        }
      });
    }
  });
  ASSERT_EQ(all->get_future().wait_for(10s), std::future_status::ready);
  for (size_t i = 0; i < kCount; ++i) {
    ASSERT_EQ((*seen)[i], static_cast<int64_t>(i + 1));
  }
}

// A value larger than the socket's send buffer is written in parts (hiredis polls for POLLOUT)
// and arrives whole.
TEST_F(RedisClientTest, LargeValueIsWrittenInParts) {
  ClientOptions o;
  o.timeout_ms = 5000;
  Connect(o);
  std::string big(8 << 20, 'x');
  big[12345] = 'y';
  Result set = Call({"SET", "big", big});
  ASSERT_TRUE(set.has_value()) << set.error();
  EXPECT_EQ(set->str, "OK");
  Result get = Call({"GET", "big"});
  ASSERT_TRUE(get.has_value()) << get.error();
  EXPECT_TRUE(get->str == big);
}

// With no server, Command fails before it returns (never queued), and so does Eval.
TEST_F(RedisClientTest, NotConnectedFailsBeforeCommandReturns) {
  server_->Stop(SIGTERM);
  ClientOptions o;
  o.address = server_->address();
  const auto [command_ran, eval_ran, error] = worker_.OnWorker([&] {
    auto made = Client::Create(worker_.worker(), o);
    EXPECT_TRUE(made.has_value());
    client_ = std::move(*made);
    bool command_ran = false;
    bool eval_ran = false;
    std::string error;
    client_->Command({"PING"}, [&](Result r) {
      command_ran = true;
      error = r.has_value() ? "a reply" : r.error();
    });
    client_->Eval(Script("return 1"), {}, {}, [&](Result r) { eval_ran = !r.has_value(); });
    return std::tuple(command_ran, eval_ran, error);
  });
  EXPECT_TRUE(command_ran);
  EXPECT_TRUE(eval_ran);
  EXPECT_EQ(error, "not connected");
  EXPECT_FALSE(WaitConnected(true, 300ms));
  EXPECT_EQ(Stats().connects, 0u);
}

// Pub/sub and MONITOR would break the one-reply-per-command pairing: refused at once.
TEST_F(RedisClientTest, SubscribeIsRefused) {
  Connect();
  Result r = Call({"subscribe", "news"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "unsupported command");
  EXPECT_FALSE(Call({}).has_value());
  EXPECT_TRUE(Call({"PING"}).has_value());
}

// Only numeric addresses: a host name or a missing port is refused by Create.
TEST_F(RedisClientTest, BadAddressIsRefused) {
  for (const char* address :
       {"localhost:6379", "127.0.0.1", "::1:6379", "127.0.0.1:0", "127.0.0.1:70000", "[::1]6379"}) {
    ClientOptions o;
    o.address = address;
    const bool made =
        worker_.OnWorker([&] { return Client::Create(worker_.worker(), o).has_value(); });
    EXPECT_FALSE(made) << address;
  }
  ClientOptions v6;
  v6.address = "[::1]:1";
  EXPECT_TRUE(worker_.OnWorker([&] { return Client::Create(worker_.worker(), v6).has_value(); }));
}

// "[IPv6]:port" connects over IPv6 (hiredis 0.14 takes the literal without brackets).
TEST_F(RedisClientTest, Ipv6Literal) {
  if (!AcceptingV6(port_)) {
    GTEST_SKIP() << "no IPv6 loopback";
  }
  ClientOptions o;
  o.address = "[::1]:" + std::to_string(port_);
  worker_.OnWorker([&] {
    auto made = Client::Create(worker_.worker(), o);
    ASSERT_TRUE(made.has_value()) << made.error();
    client_ = std::move(*made);
  });
  ASSERT_TRUE(WaitConnected(true, 5s));
  Result ping = Call({"PING"});
  ASSERT_TRUE(ping.has_value()) << ping.error();
  EXPECT_EQ(ping->str, "PONG");
}

// A connect that hangs (the listener's accept queue is full, so the kernel drops its SYNs) is
// abandoned after timeout_ms and retried with backoff; once the queue drains, a retry connects.
TEST_F(RedisClientTest, HangingConnectTimesOutAndIsRetried) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  socklen_t len = sizeof(a);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(50ms);
  ClientOptions o;
  o.address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  o.timeout_ms = 50;
  o.reconnect_min_ms = 20;
  o.reconnect_max_ms = 40;
  worker_.OnWorker([&] {
    auto made = Client::Create(worker_.worker(), o);
    ASSERT_TRUE(made.has_value()) << made.error();
    client_ = std::move(*made);
  });
  EXPECT_FALSE(WaitConnected(true, 400ms));  // several attempts, each abandoned

  // Drain the queue (and keep draining) until a retry gets through.
  bool connected = false;
  std::vector<int> accepted;
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (!connected && std::chrono::steady_clock::now() < end) {
    for (int fd; (fd = ::accept(listener, nullptr, nullptr)) >= 0;) {
      accepted.push_back(fd);
    }
    connected = worker_.OnWorker([this] { return client_->connected(); });
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(connected);
  EXPECT_EQ(Stats().connects, 1u);
  worker_.OnWorker([this] { client_.reset(); });
  for (int fd : fillers) {
    ::close(fd);
  }
  for (int fd : accepted) {
    ::close(fd);
  }
  ::close(listener);
}

// A command with no reply within timeout_ms fails with "timeout" (timings are left to
// benchmarks: no threshold here); the connection is dropped (the late reply reaches nobody) and
// re-established by itself, and the next command gets its own reply.
TEST_F(RedisClientTest, TimeoutDropsTheConnectionAndReconnects) {
  ClientOptions o;
  o.timeout_ms = 50;
  o.reconnect_min_ms = 20;
  Connect(o);
  Result slow = Call({"DEBUG", "SLEEP", "0.3"});
  ASSERT_FALSE(slow.has_value());
  EXPECT_EQ(slow.error(), "timeout");  // not the reply, which could not come before 300 ms
  ClientStats s = Stats();
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_EQ(s.disconnects, 1u);

  std::this_thread::sleep_for(350ms);  // let the server wake up from DEBUG SLEEP
  ASSERT_TRUE(WaitConnected(true, 5s));
  Result echo = Call({"ECHO", "after"});
  ASSERT_TRUE(echo.has_value()) << echo.error();
  EXPECT_EQ(echo->str, "after");
  EXPECT_EQ(Stats().connects, 2u);
}

// Several pipelined commands behind a slow one all time out together, each exactly once.
TEST_F(RedisClientTest, TimeoutFailsEveryCommandBehindItOnce) {
  ClientOptions o;
  o.timeout_ms = 50;
  Connect(o);
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto timeouts = std::make_shared<std::atomic<int>>(0);
  worker_.OnWorker([&] {
    for (const char* cmd : {"DEBUG", "PING", "PING"}) {
      std::vector<std::string> argv = {cmd};
      if (argv[0] == "DEBUG") {
        argv = {"DEBUG", "SLEEP", "0.2"};
      }
      client_->Command(std::move(argv), [calls, timeouts](Result r) {
        ++*calls;
        if (!r.has_value() && r.error() == "timeout") {
          ++*timeouts;
        }
      });
    }
  });
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(calls->load(), 3);
  EXPECT_EQ(timeouts->load(), 3);
  EXPECT_EQ(Stats().timeouts, 3u);
}

// The server dies: the command in flight fails at once with "connection lost" (well before its
// timeout), later commands fail before Command returns; the server comes back on the same port:
// the client reconnects by itself and works again.
TEST_F(RedisClientTest, ServerKilledThenRestartedReconnects) {
  ClientOptions o;
  o.timeout_ms = 5000;
  o.reconnect_min_ms = 20;
  o.reconnect_max_ms = 200;
  Connect(o);
  ASSERT_TRUE(Call({"SET", "k", "v"}).has_value());

  auto done = std::make_shared<std::promise<Result>>();
  worker_.OnWorker([&] {
    client_->Command({"BLPOP", "never", "0"}, [done](Result r) { done->set_value(std::move(r)); });
  });
  std::this_thread::sleep_for(50ms);
  const auto killed = std::chrono::steady_clock::now();
  server_->Stop(SIGKILL);
  auto lost = done->get_future();
  ASSERT_EQ(lost.wait_for(2s), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - killed, 2s);
  Result r = lost.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "connection lost");

  ASSERT_TRUE(WaitConnected(false, 2s));
  const bool immediate = worker_.OnWorker([&] {
    bool ran = false;
    client_->Command({"PING"}, [&](Result x) { ran = !x.has_value(); });
    return ran;
  });
  EXPECT_TRUE(immediate);

  std::this_thread::sleep_for(300ms);  // a few failed reconnects
  ASSERT_TRUE(server_->Start());
  ASSERT_TRUE(WaitConnected(true, 5s));
  Result ping = Call({"PING"});
  ASSERT_TRUE(ping.has_value()) << ping.error();
  EXPECT_EQ(ping->str, "PONG");
  const ClientStats s = Stats();
  EXPECT_GE(s.connects, 2u);
  EXPECT_EQ(s.disconnects, 1u);
}

// Destroying the client with commands in flight (queued, and written and awaiting replies)
// calls none of their callbacks, and nothing touches the freed client afterwards (ASan).
TEST_F(RedisClientTest, DestructorWithCommandsInFlightCallsNothing) {
  ClientOptions o;
  o.timeout_ms = 5000;  // no timeout may fire before the client goes
  Connect(o);
  auto calls = std::make_shared<std::atomic<int>>(0);
  // Written to the socket (a loop turn passes) and waiting on the server.
  worker_.OnWorker([&] {
    client_->Command({"DEBUG", "SLEEP", "0.1"}, [calls](Result) { ++*calls; });
    client_->Command({"PING"}, [calls](Result) { ++*calls; });
  });
  worker_.OnWorker([&] {
    // Still in hiredis's output buffer when the client goes.
    client_->Command({"PING"}, [calls](Result) { ++*calls; });
    client_->Eval(Script("return 1"), {}, {}, [calls](Result) { ++*calls; });
    EXPECT_EQ(client_->in_flight(), 4u);
    client_.reset();
  });
  std::this_thread::sleep_for(300ms);  // past the replies and any timer the client had armed
  EXPECT_EQ(calls->load(), 0);
}

}  // namespace
}  // namespace torii::redis
