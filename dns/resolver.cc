// dns/resolver.cc: c-ares driven by the worker's ring, or by poll() for QueryAll().
#include "dns/resolver.h"

#include <ares.h>
#include <poll.h>

#include <algorithm>
#include <mutex>
#include <span>
#include <string_view>

namespace torii::dns {

namespace {

// One c-ares channel set up from the options (servers, timeout, attempts), with `on_socket`
// told about every socket c-ares opens, wants polled differently, or closes (nullptr: the
// caller polls with ares_getsock()).
std::expected<ares_channel, std::string> MakeChannel(const ResolverOptions& options,
                                                     ares_sock_state_cb on_socket, void* data) {
  static std::once_flag once;
  static int init_status = ARES_SUCCESS;
  std::call_once(once, [] { init_status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (init_status != ARES_SUCCESS) {
    return std::unexpected(std::string("c-ares: ") + ares_strerror(init_status));
  }
  ares_options o{};
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
  o.timeout = static_cast<int>(std::clamp<uint64_t>(options.timeout_ms, 1, 600000));
  o.tries = static_cast<int>(std::clamp<uint32_t>(options.attempts, 1, 16));
  // EDNS0 (larger UDP answers before the TCP fallback); no search list: names are asked as
  // written.
  o.flags = ARES_FLAG_EDNS | ARES_FLAG_NOSEARCH;
  if (on_socket != nullptr) {
    mask |= ARES_OPT_SOCK_STATE_CB;
    o.sock_state_cb = on_socket;
    o.sock_state_cb_data = data;
  }
  ares_channel channel = nullptr;
  if (const int rc = ares_init_options(&channel, &o, mask); rc != ARES_SUCCESS) {
    return std::unexpected(std::string("c-ares: ") + ares_strerror(rc));
  }
  if (!options.servers.empty()) {
    std::string csv;
    for (const std::string& s : options.servers) {
      csv += (csv.empty() ? "" : ",") + s;
    }
    if (const int rc = ares_set_servers_ports_csv(channel, csv.c_str()); rc != ARES_SUCCESS) {
      ares_destroy(channel);
      return std::unexpected("c-ares: bad server list \"" + csv + "\": " + ares_strerror(rc));
    }
  }
  return channel;
}

// The (read, write) descriptors to hand ares_process_fd() for `revents` on `fd`: an error or
// hang-up wakes the reader, and the writer of a connect in progress.
std::pair<int, int> ReadyFds(int fd, uint32_t revents) {
  const bool in = (revents & (POLLIN | POLLERR | POLLHUP)) != 0;
  const bool out = (revents & (POLLOUT | POLLERR)) != 0;
  return {in ? fd : ARES_SOCKET_BAD, out ? fd : ARES_SOCKET_BAD};
}

// What a finished query means: the parsed response when there is one (NXDOMAIN and NODATA
// included: c-ares reports them as errors but hands the message over), else c-ares's reason.
QueryResult Interpret(int status, const unsigned char* abuf, int alen, const std::string& name,
                      Type type) {
  if (abuf != nullptr && alen > 0) {
    return ParseAnswer(std::span<const uint8_t>(abuf, static_cast<size_t>(alen)), name, type);
  }
  return std::unexpected(std::string(ares_strerror(status)));
}

}  // namespace

struct Resolver::Channel {
  ares_channel channel = nullptr;
  ~Channel() {
    if (channel != nullptr) {
      ares_destroy(channel);
    }
  }
};

namespace {

struct Pending {
  QueryCallback done;
  std::string name;
  Type type;
  uint32_t* in_flight;
  const bool* destroying;
};

}  // namespace

std::expected<std::unique_ptr<Resolver>, std::string> Resolver::Create(
    core::Worker& worker, const ResolverOptions& options) {
  auto channel = std::make_unique<Channel>();
  std::unique_ptr<Resolver> resolver(new Resolver(worker, std::move(channel)));
  auto on_socket = [](void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<Resolver*>(data)->OnSocketState(fd, readable != 0, writable != 0);
  };
  auto made = MakeChannel(options, on_socket, resolver.get());
  if (!made) {
    return std::unexpected(made.error());
  }
  resolver->channel_->channel = *made;
  return resolver;
}

Resolver::Resolver(core::Worker& worker, std::unique_ptr<Channel> channel)
    : worker_(worker), channel_(std::move(channel)) {
  timeout_task_ = worker_.AddTask([this] { Process(ARES_SOCKET_BAD, ARES_SOCKET_BAD); });
}

Resolver::~Resolver() {
  destroying_ = true;
  worker_.RemoveTask(timeout_task_);
  channel_.reset();  // ends the queries in flight (their callbacks see destroying_) and sockets
  for (const auto& [fd, watch] : watches_) {
    worker_.Unwatch(watch);
  }
}

void Resolver::Query(const std::string& name, Type type, QueryCallback done) {
  auto* pending = new Pending{std::move(done), name, type, &in_flight_, &destroying_};
  ++in_flight_;
  ares_query(
      channel_->channel, name.c_str(), 1 /* ns_c_in */, static_cast<int>(type),
      [](void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
        std::unique_ptr<Pending> p(static_cast<Pending*>(arg));
        --*p->in_flight;
        if (*p->destroying) {
          return;
        }
        p->done(Interpret(status, abuf, alen, p->name, p->type));
      },
      pending);
  ArmTimeout();
}

void Resolver::OnSocketState(int fd, bool readable, bool writable) {
  const uint32_t events = (readable ? POLLIN : 0u) | (writable ? POLLOUT : 0u);
  auto it =
      std::find_if(watches_.begin(), watches_.end(), [fd](const auto& w) { return w.first == fd; });
  if (events == 0) {
    if (it != watches_.end()) {
      worker_.Unwatch(it->second);  // c-ares closes the socket right after this
      watches_.erase(it);
    }
    return;
  }
  if (it != watches_.end()) {
    worker_.Rewatch(it->second, events);
    return;
  }
  const core::Worker::WatchId id = worker_.Watch(fd, events, [this, fd](uint32_t revents) {
    const auto [read_fd, write_fd] = ReadyFds(fd, revents);
    Process(read_fd, write_fd);
  });
  watches_.emplace_back(fd, id);
}

void Resolver::Process(int read_fd, int write_fd) {
  if (channel_ == nullptr) {
    return;
  }
  ares_process_fd(channel_->channel, read_fd, write_fd);
  ArmTimeout();
}

void Resolver::ArmTimeout() {
  timeval tv{};
  if (channel_ == nullptr || ares_timeout(channel_->channel, nullptr, &tv) == nullptr) {
    worker_.CancelTask(timeout_task_);
    return;
  }
  const uint64_t ms =
      static_cast<uint64_t>(tv.tv_sec) * 1000 + (static_cast<uint64_t>(tv.tv_usec) + 999) / 1000;
  worker_.ArmTask(timeout_task_, worker_.now_ms() + std::max<uint64_t>(ms, 1));
}

std::vector<QueryResult> QueryAll(const ResolverOptions& options,
                                  const std::vector<std::pair<std::string, Type>>& questions) {
  std::vector<QueryResult> results(questions.size(), std::unexpected(std::string("not asked")));
  auto made = MakeChannel(options, nullptr, nullptr);
  if (!made) {
    std::fill(results.begin(), results.end(), std::unexpected(made.error()));
    return results;
  }
  struct Owned {
    ares_channel channel;
    ~Owned() { ares_destroy(channel); }
  } channel{*made};
  struct Slot {
    QueryResult* out;
    const std::pair<std::string, Type>* question;
    size_t* left;
  };
  size_t left = questions.size();
  std::vector<Slot> slots(questions.size());
  for (size_t i = 0; i < questions.size(); ++i) {
    slots[i] = Slot{&results[i], &questions[i], &left};
    ares_query(
        channel.channel, questions[i].first.c_str(), 1 /* ns_c_in */,
        static_cast<int>(questions[i].second),
        [](void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
          auto* slot = static_cast<Slot*>(arg);
          *slot->out = Interpret(status, abuf, alen, slot->question->first, slot->question->second);
          --*slot->left;
        },
        &slots[i]);
  }
  while (left > 0) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(channel.channel, socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    nfds_t n = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      const short events = static_cast<short>((ARES_GETSOCK_READABLE(bits, i) ? POLLIN : 0) |
                                              (ARES_GETSOCK_WRITABLE(bits, i) ? POLLOUT : 0));
      if (events != 0) {
        fds[n++] = pollfd{socks[i], events, 0};
      }
    }
    timeval tv{};
    int wait_ms = 100;
    if (ares_timeout(channel.channel, nullptr, &tv) != nullptr) {
      wait_ms = static_cast<int>(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
    }
    const int ready = ::poll(fds, n, std::max(wait_ms, 1));
    if (ready <= 0) {
      ares_process_fd(channel.channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      continue;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) {
        continue;
      }
      const auto [read_fd, write_fd] = ReadyFds(fds[i].fd, static_cast<uint16_t>(fds[i].revents));
      ares_process_fd(channel.channel, read_fd, write_fd);
    }
  }
  return results;
}

}  // namespace torii::dns
