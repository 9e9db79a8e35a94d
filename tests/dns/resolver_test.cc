// tests/dns/resolver_test.cc: c-ares on a worker's ring (dns/resolver.h) against a UDP DNS
// responder on loopback run by the test: an answer with its TTL, a server that never answers
// (timeout, bounded by timeout x attempts), and QueryAll() on a plain thread.
#include "dns/resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace torii::dns {
namespace {

using namespace std::chrono_literals;

// Answers every query with one A record (10.0.0.7, TTL 42), or never when `silent`.
class Responder {
 public:
  explicit Responder(bool silent) : silent_(silent) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Responder() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int queries() const { return queries_.load(); }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        continue;
      }
      uint8_t buf[512];
      sockaddr_in from{};
      socklen_t len = sizeof(from);
      const ssize_t n =
          ::recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 12) {
        continue;
      }
      ++queries_;
      if (silent_) {
        continue;
      }
      // The question ends after its name (labels up to the root) and type and class.
      size_t q = 12;
      while (q < static_cast<size_t>(n) && buf[q] != 0) {
        q += buf[q] + 1;
      }
      q += 5;
      std::vector<uint8_t> out(buf, buf + q);
      out[2] |= 0x80;                           // QR
      out[3] = 0;                               // NOERROR
      out[6] = 0, out[7] = 1;                   // ANCOUNT
      out[8] = out[9] = out[10] = out[11] = 0;  // no NS, no AR (the query's OPT dropped)
      const uint8_t answer[] = {0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 42, 0, 4, 10, 0, 0, 7};
      out.insert(out.end(), answer, answer + sizeof(answer));
      ::sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }

  bool silent_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

// Runs one query on a fresh worker's ring and returns its result.
QueryResult QueryOnWorker(const ResolverOptions& options, const std::string& name) {
  core::WorkerOptions wo;
  wo.sq_entries = 64;
  wo.recv_buffers = 16;
  core::Worker worker(wo);
  std::promise<QueryResult> result;
  std::unique_ptr<Resolver> resolver;
  worker.set_on_start([&](core::Worker& w) {
    auto made = Resolver::Create(w, options);
    if (!made) {
      result.set_value(std::unexpected(made.error()));
      w.RequestStop();
      return;
    }
    resolver = std::move(*made);
    resolver->Query(name, Type::kA, [&](QueryResult r) {
      result.set_value(std::move(r));
      w.RequestStop();
    });
  });
  std::thread t([&] { EXPECT_TRUE(worker.Run().has_value()); });
  auto fut = result.get_future();
  if (fut.wait_for(20s) != std::future_status::ready) {
    std::abort();
  }
  t.join();
  resolver.reset();  // unwatches on the stopped worker, whose ring still exists
  return fut.get();
}

TEST(ResolverTest, AnswerOnTheRingCarriesItsTtl) {
  Responder server(/*silent=*/false);
  ResolverOptions o;
  o.servers = {server.address()};
  QueryResult r = QueryOnWorker(o, "app.test");
  ASSERT_TRUE(r.has_value()) << r.error();
  ASSERT_EQ(r->addresses.size(), 1u);
  EXPECT_EQ(r->addresses[0].ToString(), "10.0.0.7");
  EXPECT_EQ(r->ttl, 42u);
}

TEST(ResolverTest, SilentServerTimesOutWithinTimeoutTimesAttempts) {
  Responder server(/*silent=*/true);
  ResolverOptions o;
  o.servers = {server.address()};
  o.timeout_ms = 100;
  o.attempts = 2;
  const auto start = std::chrono::steady_clock::now();
  QueryResult r = QueryOnWorker(o, "app.test");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("imeout"), std::string::npos) << r.error();
  EXPECT_EQ(server.queries(), 2);
  EXPECT_LT(took, 5s);
}

TEST(ResolverTest, BadServerListIsRefused) {
  core::WorkerOptions wo;
  wo.sq_entries = 64;
  wo.recv_buffers = 16;
  core::Worker worker(wo);
  ResolverOptions o;
  o.servers = {"not an address"};
  auto made = Resolver::Create(worker, o);
  EXPECT_FALSE(made.has_value());
}

TEST(ResolverTest, QueryAllAnswersEveryQuestionOnAPlainThread) {
  Responder server(/*silent=*/false);
  ResolverOptions o;
  o.servers = {server.address()};
  const std::vector<QueryResult> r = QueryAll(o, {{"a.test", Type::kA}, {"b.test", Type::kA}});
  ASSERT_EQ(r.size(), 2u);
  for (const QueryResult& x : r) {
    ASSERT_TRUE(x.has_value()) << x.error();
    EXPECT_EQ(x->addresses.size(), 1u);
  }
}

}  // namespace
}  // namespace torii::dns
