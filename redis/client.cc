// redis/client.cc: hiredis 0.14 driven by the worker's ring.
//
// How hiredis is attached (its adapters/*.h contract): ac->ev's five hooks map to one
// core::Worker watch on the socket (POLLIN / POLLOUT as hiredis asks) and its cleanup hook to
// Unwatch. One exception, for the hot path: once connected, hiredis's "add write" after a new
// command does not poll for POLLOUT (a poll_remove and a poll_add per command) but arms a flush
// task for the current loop turn, so the commands issued during a turn go out in one write(2)
// (Redis ae.c's beforeSleep). Only a partial write polls for POLLOUT.
//
// Exactly-once callbacks. Every command handed to hiredis gets exactly one hiredis callback:
// its reply, or NULL when the context is freed (__redisAsyncFree fails every pending callback
// before its cleanup hook runs). Each command also has an entry in a FIFO ring, in sending
// order, keyed by a sequence number that is the command's privdata; a hiredis callback whose
// number is not the ring's head belongs to a command already completed and is ignored. A
// timeout never completes a command by itself: it frees the context, and the NULL callbacks
// that follow tell "timeout" (deadline passed) from "connection lost". While destroying, the
// NULL callbacks drop the user's callbacks uncalled.
//
// hiredis 0.14 facts this relies on (async.c): a failed connect calls onConnect(REDIS_ERR) and
// then frees the context itself (no onDisconnect: it never was connected); a lost connection
// frees it from inside redisAsyncHandleRead/Write (onDisconnect(REDIS_ERR) last); commands are
// refused (REDIS_ERR) once the context is disconnecting or freeing; redisAsyncFree() called
// outside hiredis's callbacks frees at once. No reconnect happens inside any of these: it is
// always a worker task, so a context pointer seen before a hiredis call is either still ours
// or gone (ac_ == nullptr) after it.
#include "redis/client.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <string_view>
#include <utility>

#include "base/text.h"

namespace torii::redis {

namespace {

// Error texts (each fits std::string's small buffer: failing a command allocates nothing).
constexpr std::string_view kNotConnected = "not connected";
constexpr std::string_view kTimeout = "timeout";
constexpr std::string_view kLost = "connection lost";
constexpr std::string_view kUnsupported = "unsupported command";

constexpr size_t kInitialRing = 16;

std::unexpected<std::string> Fail(std::string_view why) {
  return std::unexpected(std::string(why));
}

// Splits a numeric "IPv4:port" or "[IPv6]:port" into the host hiredis gets and the port.
std::expected<std::pair<std::string, int>, std::string> ParseAddress(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  bool v6 = false;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::unexpected("redis address \"" + std::string(text) +
                             "\": expected \"[IPv6]:port\"");
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    v6 = true;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return std::unexpected("redis address \"" + std::string(text) + "\": missing \":port\"");
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return std::unexpected("redis address \"" + std::string(text) +
                             "\": an IPv6 address needs brackets, as in \"[::1]:6379\"");
    }
  }
  std::string host_z(host);
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host_z.c_str(), buf) != 1) {
    return std::unexpected("redis address \"" + std::string(text) +
                           "\": not a numeric IP address (host names are not supported)");
  }
  int port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 || port > 65535) {
    return std::unexpected("redis address \"" + std::string(text) + "\": bad port");
  }
  return std::pair<std::string, int>(std::move(host_z), port);
}

// Commands whose replies are not one per command (pub/sub pushes, MONITOR's stream): hiredis
// 0.14 would route them by its own subscription state, which this client does not follow.
bool Unsupported(std::string_view name) {
  constexpr std::string_view kRefused[] = {"subscribe",   "psubscribe",   "ssubscribe",
                                           "unsubscribe", "punsubscribe", "sunsubscribe",
                                           "monitor"};
  return std::any_of(std::begin(kRefused), std::end(kRefused),
                     [name](std::string_view r) { return base::EqualsIgnoreCase(name, r); });
}

Reply ToReply(const redisReply& r) {
  Reply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      out.kind = Reply::Kind::kString;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.kind = Reply::Kind::kError;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.kind = Reply::Kind::kInteger;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.kind = Reply::Kind::kArray;
      out.elements.reserve(r.elements);
      for (size_t i = 0; i < r.elements; ++i) {
        out.elements.push_back(ToReply(*r.element[i]));
      }
      break;
    default:  // REDIS_REPLY_NIL
      break;
  }
  return out;
}

// " (N similar messages suppressed)", or nothing.
std::string SuppressedNote(uint64_t n) {
  return n == 0 ? std::string() : " (" + std::to_string(n) + " similar messages suppressed)";
}

}  // namespace

Script::Script(std::string body_in) : body(std::move(body_in)) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  sha.resize(2 * SHA_DIGEST_LENGTH);
  for (size_t i = 0; i < SHA_DIGEST_LENGTH; ++i) {
    sha[2 * i] = kHex[digest[i] >> 4];
    sha[2 * i + 1] = kHex[digest[i] & 0xF];
  }
}

// hiredis's C callbacks. ev.data and ac->data both carry the Client.
struct Client::Hooks {
  static Client* Of(void* data) { return static_cast<Client*>(data); }

  static void AddRead(void* data) {
    Client* c = Of(data);
    c->SetWanted(c->wanted_ | POLLIN);
  }
  static void DelRead(void* data) {
    Client* c = Of(data);
    c->SetWanted(c->wanted_ & ~static_cast<uint32_t>(POLLIN));
  }
  static void AddWrite(void* data) {
    Client* c = Of(data);
    if (c->state_ == State::kConnected && !c->flushing_) {
      // A new command: written by OnFlush late in this turn, together with the turn's others.
      // Nothing to do while a partial write already polls for POLLOUT.
      if ((c->wanted_ & POLLOUT) == 0 && !c->flush_armed_) {
        c->flush_armed_ = true;
        c->worker_.ArmTask(c->flush_task_, c->worker_.now_ms());
      }
      return;
    }
    // The connect's completion, or the rest of a partial write.
    c->SetWanted(c->wanted_ | POLLOUT);
  }
  static void DelWrite(void* data) {
    Client* c = Of(data);
    c->SetWanted(c->wanted_ & ~static_cast<uint32_t>(POLLOUT));
  }
  static void Cleanup(void* data) { Of(data)->ContextGone(); }

  static void OnConnect(const redisAsyncContext* ac, int status) {
    Client* c = Of(ac->data);
    if (status == REDIS_OK) {
      c->state_ = State::kConnected;
      c->backoff_ms_ = c->options_.reconnect_min_ms;
      ++c->stats_.connects;
      return;
    }
    // hiredis frees the context when this returns; its cleanup hook schedules the reconnect.
    c->state_ = State::kClosing;
    if (uint64_t n = 0; c->MayLog(&n)) {
      spdlog::warn("redis {}: connect failed: {}{}", c->options_.address, ac->c.errstr,
                   SuppressedNote(n));
    }
  }

  static void OnDisconnect(const redisAsyncContext* ac, int status) {
    Client* c = Of(ac->data);
    if (c->destroying_) {
      return;
    }
    ++c->stats_.disconnects;
    // REDIS_OK: we dropped it (a timeout, already logged).
    if (uint64_t n = 0; status != REDIS_OK && c->MayLog(&n)) {
      spdlog::warn("redis {}: connection lost: {}{}", c->options_.address, ac->c.errstr,
                   SuppressedNote(n));
    }
  }

  static void OnReply(redisAsyncContext* ac, void* reply, void* privdata) {
    Of(ac->data)->OnReply(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(privdata)),
                          static_cast<const redisReply*>(reply));
  }
};

// Eval()'s completion: EVALSHA's NOSCRIPT error becomes one EVAL with the body. Copyable, as
// std::function wants; it owns the argv so the retry can resend it.
struct Client::EvalRetry {
  Client* client;
  const std::string* body;        // in client->scripts_, which outlives every callback
  std::vector<std::string> argv;  // EVALSHA sha numkeys keys... args...
  ReplyCallback done;
  bool retried = false;

  void operator()(Result result) {
    if (!retried && result && result->kind == Reply::Kind::kError &&
        result->str.starts_with("NOSCRIPT")) {
      retried = true;
      argv[0] = "EVAL";
      argv[1] = *body;
      // The vector's buffer moves with *this into the new std::function: the view stays valid.
      const std::span<const std::string> view(argv);
      Client* c = client;
      c->Send(view, ReplyCallback(std::move(*this)));
      return;  // *this is moved-from
    }
    done(std::move(result));
  }
};

std::expected<std::unique_ptr<Client>, std::string> Client::Create(core::Worker& worker,
                                                                   const ClientOptions& options) {
  auto parsed = ParseAddress(options.address);
  if (!parsed) {
    return std::unexpected(parsed.error());
  }
  std::unique_ptr<Client> client(
      new Client(worker, options, std::move(parsed->first), parsed->second));
  client->StartConnect();
  return client;
}

Client::Client(core::Worker& worker, const ClientOptions& options, std::string host, int port)
    : worker_(worker), options_(options), host_(std::move(host)), port_(port) {
  // A zero backoff would reconnect every loop turn; a zero timeout would fail every command.
  options_.reconnect_min_ms = std::max<uint64_t>(options_.reconnect_min_ms, 1);
  options_.reconnect_max_ms = std::max(options_.reconnect_max_ms, options_.reconnect_min_ms);
  options_.timeout_ms = std::max<uint64_t>(options_.timeout_ms, 1);
  backoff_ms_ = options_.reconnect_min_ms;
  pending_.resize(kInitialRing);
  deadline_task_ = worker_.AddTask([this] { OnDeadline(); });
  reconnect_task_ = worker_.AddTask([this] {
    if (state_ == State::kIdle && ac_ == nullptr) {
      StartConnect();
    }
  });
  flush_task_ = worker_.AddTask([this] { OnFlush(); });
}

Client::~Client() {
  destroying_ = true;
  worker_.RemoveTask(deadline_task_);
  worker_.RemoveTask(reconnect_task_);
  worker_.RemoveTask(flush_task_);
  if (ac_ != nullptr) {
    redisAsyncFree(ac_);  // its NULL callbacks see destroying_; its cleanup hook unwatches
  }
  if (watching_) {
    worker_.Unwatch(watch_);
  }
}

void Client::Command(std::vector<std::string> argv, ReplyCallback done) {
  if (argv.empty() || Unsupported(argv[0])) {
    ++stats_.errors;
    done(Fail(kUnsupported));
    return;
  }
  Send(argv, std::move(done));
}

void Client::Eval(const Script& script, std::vector<std::string> keys,
                  std::vector<std::string> args, ReplyCallback done) {
  if (state_ != State::kConnected) {
    ++stats_.errors;
    done(Fail(kNotConnected));  // before building anything
    return;
  }
  EvalRetry retry{this, RememberScript(script), {}, std::move(done)};
  retry.argv.reserve(3 + keys.size() + args.size());
  retry.argv.emplace_back("EVALSHA");
  retry.argv.push_back(script.sha);
  retry.argv.push_back(std::to_string(keys.size()));
  std::move(keys.begin(), keys.end(), std::back_inserter(retry.argv));
  std::move(args.begin(), args.end(), std::back_inserter(retry.argv));
  const std::span<const std::string> view(retry.argv);
  Send(view, ReplyCallback(std::move(retry)));
}

const std::string* Client::RememberScript(const Script& script) {
  auto it = scripts_.find(script.sha);
  if (it == scripts_.end()) {
    it = scripts_.emplace(script.sha, script.body).first;
  }
  return &it->second;  // unordered_map nodes do not move
}

void Client::Send(std::span<const std::string> argv, ReplyCallback&& done) {
  if (state_ != State::kConnected) {
    ++stats_.errors;
    done(Fail(kNotConnected));
    return;
  }
  argv_ptrs_.clear();
  argv_lens_.clear();
  for (const std::string& arg : argv) {
    argv_ptrs_.push_back(arg.data());
    argv_lens_.push_back(arg.size());
  }
  const uint64_t seq = next_seq_;
  // Appends to hiredis's output buffer and calls AddWrite (which arms the flush); it never
  // calls a reply callback from here.
  if (redisAsyncCommandArgv(
          ac_, &Hooks::OnReply, reinterpret_cast<void*>(static_cast<uintptr_t>(seq)),
          static_cast<int>(argv.size()), argv_ptrs_.data(), argv_lens_.data()) != REDIS_OK) {
    ++stats_.errors;
    done(Fail(kNotConnected));
    return;
  }
  ++next_seq_;
  ++stats_.commands;
  const uint64_t deadline = worker_.now_ms() + options_.timeout_ms;
  PushPending(seq, deadline, std::move(done));
  // Deadlines grow in ring order, so the task only ever needs the head's; an earlier (stale)
  // arming is fine: OnDeadline re-arms for the head.
  if (deadline_armed_ms_ == 0) {
    deadline_armed_ms_ = deadline;
    worker_.ArmTask(deadline_task_, deadline);
  }
}

void Client::PushPending(uint64_t seq, uint64_t deadline_ms, ReplyCallback&& done) {
  if (pending_count_ == pending_.size()) {
    std::vector<Pending> bigger(pending_.size() * 2);
    for (size_t i = 0; i < pending_count_; ++i) {
      bigger[i] = std::move(PendingAt(i));
    }
    pending_ = std::move(bigger);
    pending_head_ = 0;
  }
  Pending& p = PendingAt(pending_count_);
  p.seq = seq;
  p.deadline_ms = deadline_ms;
  p.done = std::move(done);
  ++pending_count_;
}

void Client::OnReply(uint64_t seq, const redisReply* reply) {
  if (pending_count_ == 0 || PendingAt(0).seq != seq) {
    return;  // completed already
  }
  Pending& head = PendingAt(0);
  ReplyCallback done = std::move(head.done);
  head.done = nullptr;
  const uint64_t deadline = head.deadline_ms;
  PopPending();
  if (destroying_) {
    return;
  }
  if (reply == nullptr) {
    // The context is being freed (lost, or dropped by OnDeadline): no new command may start.
    if (state_ == State::kConnected) {
      state_ = State::kClosing;
    }
    ++stats_.errors;
    if (deadline <= worker_.now_ms()) {
      ++stats_.timeouts;
      done(Fail(kTimeout));
    } else {
      done(Fail(kLost));
    }
    return;
  }
  done(ToReply(*reply));
}

void Client::StartConnect() {
  redisAsyncContext* ac = redisAsyncConnect(host_.c_str(), port_);
  if (ac == nullptr || ac->err != 0) {
    // Refused at once (loopback), or out of memory.
    if (uint64_t n = 0; MayLog(&n)) {
      spdlog::warn("redis {}: connect failed: {}{}", options_.address,
                   ac != nullptr ? ac->errstr : "out of memory", SuppressedNote(n));
    }
    if (ac != nullptr) {
      redisAsyncFree(ac);  // nothing attached yet: no hook runs
    }
    ScheduleReconnect();
    return;
  }
  ac_ = ac;
  ac->data = this;
  ac->ev.data = this;
  ac->ev.addRead = &Hooks::AddRead;
  ac->ev.delRead = &Hooks::DelRead;
  ac->ev.addWrite = &Hooks::AddWrite;
  ac->ev.delWrite = &Hooks::DelWrite;
  ac->ev.cleanup = &Hooks::Cleanup;
  state_ = State::kConnecting;
  redisAsyncSetDisconnectCallback(ac, &Hooks::OnDisconnect);
  redisAsyncSetConnectCallback(ac, &Hooks::OnConnect);  // asks for POLLOUT: connect finished
  connect_deadline_ms_ = worker_.now_ms() + options_.timeout_ms;
  if (deadline_armed_ms_ == 0 || connect_deadline_ms_ < deadline_armed_ms_) {
    deadline_armed_ms_ = connect_deadline_ms_;
    worker_.ArmTask(deadline_task_, connect_deadline_ms_);
  }
}

void Client::ScheduleReconnect() {
  if (destroying_) {
    return;
  }
  worker_.ArmTask(reconnect_task_, worker_.now_ms() + backoff_ms_);
  backoff_ms_ = std::min(backoff_ms_ * 2, options_.reconnect_max_ms);
}

void Client::Drop() {
  if (ac_ == nullptr) {
    return;
  }
  state_ = State::kClosing;
  // Outside hiredis's callbacks this frees at once: NULL callbacks (OnReply fails or drops
  // them), then Cleanup (ContextGone), then OnDisconnect if it was connected.
  redisAsyncFree(ac_);
}

void Client::OnDeadline() {
  deadline_armed_ms_ = 0;
  const uint64_t now = worker_.now_ms();
  uint64_t next = 0;
  if (state_ == State::kConnecting) {
    if (now >= connect_deadline_ms_) {
      if (uint64_t n = 0; MayLog(&n)) {
        spdlog::warn("redis {}: connect timed out after {} ms{}", options_.address,
                     options_.timeout_ms, SuppressedNote(n));
      }
      Drop();
      return;
    }
    next = connect_deadline_ms_;
  } else if (state_ == State::kConnected && pending_count_ > 0) {
    if (PendingAt(0).deadline_ms <= now) {
      size_t expired = 0;
      while (expired < pending_count_ && PendingAt(expired).deadline_ms <= now) {
        ++expired;
      }
      if (uint64_t n = 0; MayLog(&n)) {
        spdlog::warn("redis {}: {} command(s) got no reply within {} ms; reconnecting{}",
                     options_.address, expired, options_.timeout_ms, SuppressedNote(n));
      }
      // Only a new connection guarantees that the late replies reach no later command.
      Drop();
      return;
    }
    next = PendingAt(0).deadline_ms;
  }
  if (next != 0) {
    deadline_armed_ms_ = next;
    worker_.ArmTask(deadline_task_, next);
  }
}

void Client::OnFlush() {
  flush_armed_ = false;
  if (state_ != State::kConnected || ac_ == nullptr) {
    return;
  }
  flushing_ = true;
  redisAsyncHandleWrite(ac_);  // may free the context (write error)
  flushing_ = false;
}

void Client::SetWanted(uint32_t events) {
  wanted_ = events;
  if (watching_) {
    worker_.Rewatch(watch_, events);
    return;
  }
  if (ac_ != nullptr && events != 0) {
    watch_ = worker_.Watch(ac_->c.fd, events, [this](uint32_t revents) { OnReadiness(revents); });
    watching_ = true;
  }
}

void Client::OnReadiness(uint32_t revents) {
  redisAsyncContext* ac = ac_;
  if (ac == nullptr) {
    return;
  }
  // An error or hang-up goes to whichever side hiredis waits on: its read or write then fails
  // (or, while connecting, reads SO_ERROR) and frees the context.
  if ((revents & (POLLIN | POLLERR | POLLHUP)) != 0 && (wanted_ & POLLIN) != 0) {
    redisAsyncHandleRead(ac);
    if (ac_ != ac) {
      return;  // freed
    }
  }
  if ((revents & (POLLOUT | POLLERR | POLLHUP)) != 0 && (wanted_ & POLLOUT) != 0) {
    redisAsyncHandleWrite(ac);
  }
}

void Client::ContextGone() {
  if (watching_) {
    worker_.Unwatch(watch_);  // before redisFree() closes the socket
    watching_ = false;
  }
  wanted_ = 0;
  ac_ = nullptr;
  state_ = State::kIdle;
  // hiredis has called back every command it held; anything left would be a bug in that
  // contract, and its callback must still run once.
  while (pending_count_ > 0) {
    Pending& head = PendingAt(0);
    ReplyCallback done = std::move(head.done);
    head.done = nullptr;
    PopPending();
    if (!destroying_) {
      ++stats_.errors;
      done(Fail(kLost));
    }
  }
  ScheduleReconnect();
}

bool Client::MayLog(uint64_t* suppressed) { return log_limit_.Allow(worker_.now_ms(), suppressed); }

}  // namespace torii::redis
