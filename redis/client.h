// redis/client.h: an asynchronous Redis client on a worker's io_uring loop (hiredis 0.14).
//
// hiredis builds the commands and parses the replies; it never blocks: its socket is polled by
// the worker's ring (core::Worker::Watch), its writes are flushed once per loop turn by a worker
// task, and the deadlines hiredis 0.14 lacks (connect, per command) are one more worker task.
// One connection per client (a worker's commands are pipelined on it, answered in order); it is
// reconnected with a doubling backoff after a failed connect, a lost connection, or a timeout.
//
// Owns: the connection, reconnects, per-command timeouts, the reduction of hiredis replies to
// Reply, EVALSHA with its NOSCRIPT fallback. Leaves out: pub/sub and MONITOR (refused: their
// unsolicited replies break the one-reply-per-command pairing), RESP3, AUTH/SELECT on connect,
// host names (hiredis would resolve them with a blocking getaddrinfo), queueing while
// disconnected (a caller that needs fleet-wide state degrades to its local answer instead).
//
// The process must ignore SIGPIPE (torii's main does): hiredis writes with write(2).
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/log_limit.h"
#include "core/worker.h"

struct redisAsyncContext;
struct redisReply;

namespace torii::redis {

struct ClientOptions {
  // Numeric "IPv4:port" or "[IPv6]:port" only.
  std::string address = "127.0.0.1:6379";
  uint64_t timeout_ms = 50;         // per command, and for the connect
  uint64_t reconnect_min_ms = 100;  // backoff after a failed connect / lost connection, doubling
  uint64_t reconnect_max_ms = 5000;
};

// A reply reduced to what torii reads.
struct Reply {
  enum class Kind : uint8_t {
    kNil,      // a missing key, a nil bulk string or array, Lua false
    kInteger,  // `integer`
    kString,   // `str`: a bulk string or a status reply ("OK", "PONG")
    kArray,    // `elements`, in order; each may itself be any kind
    kError,    // `str`: the error text ("WRONGTYPE ...", "NOSCRIPT ...")
  };
  Kind kind = Kind::kNil;
  int64_t integer = 0;
  std::string str;              // kString, kError (the error text)
  std::vector<Reply> elements;  // kArray
};

// A reply (a Redis error reply included, as a Reply of kind kError), or why none came:
// "not connected", "timeout", "connection lost", "unsupported command".
using Result = std::expected<Reply, std::string>;
using ReplyCallback = std::function<void(Result)>;

// A Lua script run with EVALSHA; its SHA1 (OpenSSL, lowercase hex) is computed once here.
struct Script {
  explicit Script(std::string body);
  std::string body;
  std::string sha;
};

struct ClientStats {
  uint64_t commands = 0;     // commands written to a connection (an EVAL fallback counts too)
  uint64_t errors = 0;       // commands that ended without a reply (every unexpected Result)
  uint64_t timeouts = 0;     // of those, commands with no reply within timeout_ms
  uint64_t connects = 0;     // connections established
  uint64_t disconnects = 0;  // established connections that ended (lost, or dropped on timeout)
};

// Every member function runs on the worker's thread only.
class Client {
 public:
  // On `worker`'s thread. Starts connecting at once (non-blocking: the connect completes on
  // the loop). Fails only for a bad address. The client must be destroyed on the same thread
  // while the worker's ring exists (before or after Run() returns).
  static std::expected<std::unique_ptr<Client>, std::string> Create(core::Worker& worker,
                                                                    const ClientOptions& options);
  // Drops the connection. Callbacks of commands in flight are not called (not even with an
  // error) once destruction has begun. Must not run inside one of this client's callbacks.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `argv` (argv[0] is the command name; binary-safe). Never blocks and never queues:
  //  - when not connected (connecting, backing off, or the connection is going away), or for
  //    an empty argv or a pub/sub or MONITOR command, `done` runs with an error BEFORE Command
  //    returns: a caller that holds a lock or iterates a container must expect the re-entry;
  //  - otherwise `done` runs once, later, on the worker's thread, from the loop: with the reply
  //    (an error reply is a Reply of kind kError), with "timeout" when no reply came within
  //    timeout_ms (the connection is then dropped and reconnected, so a late reply can never
  //    reach a later command), or with "connection lost".
  // `done` may issue other commands; it must not destroy the client.
  void Command(std::vector<std::string> argv, ReplyCallback done);

  // EVALSHA sha numkeys keys... args...; on a NOSCRIPT error reply, EVAL with the body once
  // (which also loads the script for the next EVALSHA). `done` as for Command(), called once,
  // with the final reply. The client keeps its own copy of every distinct script's body (by
  // SHA1), so `script` need not outlive the call; scripts are meant to be a small fixed set.
  void Eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
            ReplyCallback done);

  // True while commands are accepted (connected, not going away).
  bool connected() const { return state_ == State::kConnected; }
  // Commands sent whose callback has not run yet.
  size_t in_flight() const { return pending_count_; }
  const ClientStats& stats() const { return stats_; }

 private:
  // kIdle: no connection (waiting for the reconnect task). kConnecting: hiredis's connect is in
  // progress. kConnected: commands are sent. kClosing: the context is being freed (hiredis is
  // failing its pending callbacks); kIdle follows in its cleanup hook.
  enum class State : uint8_t { kIdle, kConnecting, kConnected, kClosing };
  // A command sent and not yet answered. Pending commands form a FIFO ring in sending order,
  // which is hiredis's reply order and, with one timeout for all, deadline order too.
  struct Pending {
    uint64_t seq = 0;  // hiredis's privdata for this command (a number, not a pointer)
    uint64_t deadline_ms = 0;
    ReplyCallback done;
  };
  struct Hooks;      // hiredis's C callbacks (client.cc)
  struct EvalRetry;  // Eval()'s completion: the NOSCRIPT fallback (client.cc)

  Client(core::Worker& worker, const ClientOptions& options, std::string host, int port);
  // Sends argv on the connection, or fails `done` at once. `argv` is read before `done` is
  // moved (Eval() passes a view into its own callback's state).
  void Send(std::span<const std::string> argv, ReplyCallback&& done);
  void StartConnect();
  void ScheduleReconnect();
  // Frees the hiredis context: its pending callbacks are failed (or dropped when destroying).
  void Drop();
  void OnReply(uint64_t seq, const redisReply* reply);
  void OnDeadline();
  void OnFlush();
  void SetWanted(uint32_t events);
  void OnReadiness(uint32_t revents);
  void ContextGone();
  // True when an error may be logged now (at most once a second); `*suppressed` gets how many
  // were not logged since the last one.
  bool MayLog(uint64_t* suppressed);
  const std::string* RememberScript(const Script& script);

  Pending& PendingAt(size_t i) { return pending_[(pending_head_ + i) & (pending_.size() - 1)]; }
  void PushPending(uint64_t seq, uint64_t deadline_ms, ReplyCallback&& done);
  void PopPending() {
    pending_head_ = (pending_head_ + 1) & (pending_.size() - 1);
    --pending_count_;
  }

  core::Worker& worker_;
  ClientOptions options_;
  std::string host_;
  int port_ = 0;
  redisAsyncContext* ac_ = nullptr;
  State state_ = State::kIdle;
  bool destroying_ = false;
  bool flushing_ = false;     // inside OnFlush's redisAsyncHandleWrite
  bool flush_armed_ = false;  // flush_task_ is armed
  bool watching_ = false;     // watch_ is valid
  core::Worker::WatchId watch_ = 0;
  uint32_t wanted_ = 0;  // POLLIN / POLLOUT that hiredis asked for
  core::Worker::TaskId deadline_task_ = 0;
  core::Worker::TaskId reconnect_task_ = 0;
  core::Worker::TaskId flush_task_ = 0;
  uint64_t deadline_armed_ms_ = 0;  // when deadline_task_ fires; 0: not armed
  uint64_t connect_deadline_ms_ = 0;
  uint64_t backoff_ms_ = 0;
  uint64_t next_seq_ = 1;
  std::vector<Pending> pending_;  // a ring; its size is a power of two
  size_t pending_head_ = 0;
  size_t pending_count_ = 0;
  std::vector<const char*> argv_ptrs_;  // scratch for redisAsyncCommandArgv, reused
  std::vector<size_t> argv_lens_;
  std::unordered_map<std::string, std::string> scripts_;  // SHA1 → body
  base::LogLimit log_limit_;
  ClientStats stats_;
};

}  // namespace torii::redis
