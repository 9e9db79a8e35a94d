// tests/tls/early_data_test.cc: TLS 1.3 early data (0-RTT) on a DownstreamSession whose
// context has early_data, against a raw OpenSSL client resuming a ticket: the early data
// reaches the sink before the handshake completes, a reply written meanwhile leaves at once
// (0.5-RTT), each ticket carries early data once (EarlyDataGuard), and a context without
// early_data issues tickets that invite none.
#include "tls/early_data.h"

#include <gtest/gtest.h>

#include "tests/tls/tls_test_util.h"

namespace torii::tls {
namespace {

using testing::MakeServer;
using testing::Options;
using testing::Pki;
using testing::Pump;
using testing::RawClient;

EarlyDataGuard::Id IdOf(uint8_t n) {
  EarlyDataGuard::Id id{};
  id.fill(n);
  return id;
}

// A ticket is spent at its first use; a repeat is refused for at least kWindowS (also across
// the swap of generations), and forgotten after 2 * kWindowS, when OpenSSL's freshness
// check refuses its early data anyway.
TEST(EarlyDataGuardTest, EachTicketOnceWithinTheWindow) {
  EarlyDataGuard guard;
  const uint64_t t0 = 1000;
  EXPECT_TRUE(guard.FirstUse(IdOf(1), t0));
  EXPECT_FALSE(guard.FirstUse(IdOf(1), t0));
  EXPECT_TRUE(guard.FirstUse(IdOf(2), t0 + 1));
  EXPECT_FALSE(guard.FirstUse(IdOf(1), t0 + EarlyDataGuard::kWindowS));      // after a swap
  EXPECT_FALSE(guard.FirstUse(IdOf(2), t0 + EarlyDataGuard::kWindowS + 1));  // still kept
  EXPECT_EQ(guard.replays(), 3u);
  EXPECT_EQ(guard.entries(), 2u);
  EXPECT_TRUE(guard.FirstUse(IdOf(1), t0 + 3 * EarlyDataGuard::kWindowS));  // forgotten
  EXPECT_EQ(guard.entries(), 1u);
}

class EarlyDataTest : public ::testing::Test {
 protected:
  static ServerOptions EarlyOptions() {
    ServerOptions o = Options({Pki::Get().a_ec});
    o.early_data = true;
    return o;
  }
  // A full handshake that leaves the client with a ticket (the caller frees it).
  static SSL_SESSION* FirstVisit(const std::shared_ptr<const ServerContext>& ctx) {
    RawClient client("a.test");
    DownstreamSession server(ctx);
    Pump(client, server);
    EXPECT_TRUE(client.done());
    return client.TakeSession();
  }
  // A resumed handshake whose client sends `early` as early data (when the ticket invites
  // any) and answers `reply` to whatever arrives while the server is still in early data.
  struct Visit {
    bool early_written = false;
    std::string during_early;  // plaintext the server took before its handshake completed
    std::string after;         // and after
    std::string client_got;
    bool resumed = false;
  };
  static Visit Resume(const std::shared_ptr<const ServerContext>& ctx, SSL_SESSION* ticket,
                      std::string_view early, std::string_view reply) {
    Visit v;
    RawClient client("a.test");
    SSL_SESSION_up_ref(ticket);
    client.Resume(ticket);
    if (SSL_SESSION_get_max_early_data(ticket) > 0) {
      size_t written = 0;
      v.early_written =
          SSL_write_early_data(client.ssl(), early.data(), early.size(), &written) == 1 &&
          written == early.size();
    }
    DownstreamSession server(ctx);
    for (int round = 0; round < 50; ++round) {
      client.Step();
      const std::string to_server = client.TakeOutput();
      if (!to_server.empty()) {
        server.Receive(to_server, [&](std::string_view plain) {
          if (server.in_early_data()) {
            v.during_early.append(plain);
            server.Write(reply);  // 0.5-RTT: leaves before the client's Finished
          } else {
            v.after.append(plain);
          }
        });
      }
      const std::string to_client(server.PendingOutput());
      server.ConsumeOutput(to_client.size());
      if (!to_client.empty()) {
        client.Give(to_client);
      }
      if (to_server.empty() && to_client.empty()) {
        break;
      }
    }
    client.Step();
    EXPECT_TRUE(server.handshake_done()) << server.failure_reason();
    v.client_got = client.received();
    v.resumed = client.resumed();
    if (!v.during_early.empty()) {
      EXPECT_TRUE(server.early_data_received());
    }
    return v;
  }
};

TEST_F(EarlyDataTest, AcceptedOnceThenRefused) {
  auto ctx = MakeServer(EarlyOptions());
  ASSERT_NE(ctx, nullptr);
  ASSERT_TRUE(ctx->early_data());
  SSL_SESSION* ticket = FirstVisit(ctx);
  ASSERT_NE(ticket, nullptr);
  EXPECT_EQ(SSL_SESSION_get_max_early_data(ticket), 16384u);

  const std::string request = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
  Visit first = Resume(ctx, ticket, request, "0.5-RTT reply");
  EXPECT_TRUE(first.early_written);
  EXPECT_TRUE(first.resumed);
  EXPECT_EQ(first.during_early, request);
  EXPECT_EQ(first.client_got, "0.5-RTT reply");
  EXPECT_EQ(ctx->stats().early_data_accepted.load(), 1u);

  // The same ticket again (a replayed flight would carry it): resumed, early data refused.
  Visit again = Resume(ctx, ticket, request, "never");
  EXPECT_TRUE(again.early_written);
  EXPECT_TRUE(again.resumed);
  EXPECT_EQ(again.during_early, "");
  EXPECT_EQ(again.after, "");  // the client must send it again, after the handshake
  EXPECT_EQ(ctx->stats().early_data_refused.load(), 1u);
  EXPECT_EQ(ctx->early_data_guard()->replays(), 1u);
  SSL_SESSION_free(ticket);
}

// Without early_data the tickets invite none: a client cannot even send it.
TEST_F(EarlyDataTest, OffByDefault) {
  auto ctx = MakeServer(Options({Pki::Get().a_ec}));
  ASSERT_NE(ctx, nullptr);
  EXPECT_FALSE(ctx->early_data());
  SSL_SESSION* ticket = FirstVisit(ctx);
  ASSERT_NE(ticket, nullptr);
  EXPECT_EQ(SSL_SESSION_get_max_early_data(ticket), 0u);
  Visit v = Resume(ctx, ticket, "GET / HTTP/1.1\r\n\r\n", "x");
  EXPECT_FALSE(v.early_written);
  EXPECT_TRUE(v.resumed);
  EXPECT_EQ(v.during_early, "");
  SSL_SESSION_free(ticket);
}

// early_data needs tickets, and is refused beside client certificates.
TEST_F(EarlyDataTest, RefusedWithoutTicketsOrWithClientAuth) {
  ServerOptions no_tickets = EarlyOptions();
  no_tickets.session_tickets = false;
  auto a = ServerContext::Create(no_tickets);
  ASSERT_FALSE(a.has_value());
  EXPECT_NE(a.error().find("session_tickets"), std::string::npos) << a.error();
  ServerOptions mtls = EarlyOptions();
  mtls.client_auth.mode = ClientAuthOptions::Mode::kRequire;
  mtls.client_auth.ca = Pki::Get().ca.cert;
  auto b = ServerContext::Create(mtls);
  ASSERT_FALSE(b.has_value());
  EXPECT_NE(b.error().find("client_auth"), std::string::npos) << b.error();
}

}  // namespace
}  // namespace torii::tls
