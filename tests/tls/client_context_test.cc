// tests/tls/client_context_test.cc: TLS to backends (tls/client_context.h): verification
// against the configured CA and name, SNI, ALPN, and resumption through the per-backend
// session cache.
#include "tls/client_context.h"

#include <gtest/gtest.h>

#include "tests/tls/tls_test_util.h"

namespace torii::tls {
namespace {

using testing::Collector;
using testing::MakeClient;
using testing::MakeServer;
using testing::Options;
using testing::Pki;
using testing::Pump;
using testing::TrustingTestCa;

struct Outcome {
  bool client_done = false;
  bool server_done = false;
  bool resumed = false;
  Failure client_failure = Failure::kNone;
  std::string verify_error;
  std::string sni;
  std::string alpn;
};

Outcome Connect(const std::shared_ptr<const ServerContext>& server_ctx,
                const std::shared_ptr<const ClientContext>& client_ctx, const std::string& host,
                std::shared_ptr<ClientSessionCache> cache = nullptr) {
  DownstreamSession server(server_ctx);
  UpstreamSession client(client_ctx, host, std::move(cache));
  EXPECT_EQ(client.Start(), Status::kOk);
  Collector at_client, at_server;
  Pump(client, at_client, server, at_server);
  return Outcome{client.handshake_done(),
                 server.handshake_done(),
                 client.resumed(),
                 client.failure(),
                 std::string(client.verify_error()),
                 std::string(server.sni()),
                 std::string(client.alpn())};
}

// A backend whose chain leads to the configured CA and whose name matches is accepted.
TEST(ClientContextTest, VerifiesAgainstConfiguredCa) {
  auto server = MakeServer(Options({Pki::Get().a_ec, Pki::Get().b_ec}));
  auto client = MakeClient(TrustingTestCa());
  const Outcome out = Connect(server, client, "b.test");
  EXPECT_TRUE(out.client_done);
  EXPECT_TRUE(out.server_done);
  EXPECT_EQ(out.verify_error, "ok");
  EXPECT_EQ(out.sni, "b.test");
  EXPECT_EQ(out.alpn, "http/1.1");
}

// A CA that did not sign the backend's certificate: the handshake fails as a certificate
// failure with OpenSSL's verification error.
TEST(ClientContextTest, WrongCaFails) {
  auto server = MakeServer(Options({Pki::Get().a_ec}));
  ClientOptions options;
  options.ca = Pki::Get().other_ca.cert;
  auto client = MakeClient(options);
  const Outcome out = Connect(server, client, "a.test");
  EXPECT_FALSE(out.client_done);
  EXPECT_FALSE(out.server_done);
  EXPECT_EQ(out.client_failure, Failure::kCertificate);
  EXPECT_EQ(out.verify_error, "unable to get local issuer certificate");
  EXPECT_EQ(client->stats().failures(Failure::kCertificate), 1u);
}

// The right CA but another name: refused (hostname check).
TEST(ClientContextTest, WrongNameFails) {
  auto server = MakeServer(Options({Pki::Get().a_ec}));
  ClientOptions options = TrustingTestCa();
  options.sni = "evil.test";
  auto client = MakeClient(options);
  const Outcome out = Connect(server, client, "a.test");
  EXPECT_FALSE(out.client_done);
  EXPECT_EQ(out.client_failure, Failure::kCertificate);
  EXPECT_EQ(out.verify_error, "hostname mismatch");
}

// options.sni overrides the backend's host for SNI and verification.
TEST(ClientContextTest, SniOverride) {
  auto server = MakeServer(Options({Pki::Get().a_ec, Pki::Get().b_ec}));
  ClientOptions options = TrustingTestCa();
  options.sni = "b.test";
  auto client = MakeClient(options);
  const Outcome out = Connect(server, client, "10.0.0.11");
  EXPECT_TRUE(out.client_done);
  EXPECT_EQ(out.sni, "b.test");
}

// A backend addressed by IP: no SNI is sent and the certificate's IP SAN is checked.
TEST(ClientContextTest, IpAddressBackend) {
  auto server = MakeServer(Options({Pki::Get().localhost_ip}));
  auto client = MakeClient(TrustingTestCa());
  Outcome out = Connect(server, client, "127.0.0.1");
  EXPECT_TRUE(out.client_done) << out.verify_error;
  EXPECT_EQ(out.sni, "");
  out = Connect(server, client, "127.0.0.2");
  EXPECT_FALSE(out.client_done);
  EXPECT_EQ(out.verify_error, "IP address mismatch");
}

// verify = false accepts any certificate (a test backend with a self-signed certificate).
TEST(ClientContextTest, VerificationCanBeOff) {
  auto server = MakeServer(Options({Pki::Get().cn_only}));
  ClientOptions options;
  options.verify = false;
  auto client = MakeClient(options);
  EXPECT_TRUE(Connect(server, client, "whatever.test").client_done);
  EXPECT_FALSE(Connect(server, MakeClient(TrustingTestCa()), "cn-only.test").client_done);
}

// A missing CA file is a load error naming it.
TEST(ClientContextTest, MissingCaFile) {
  ClientOptions options;
  options.ca = Pki::Get().dir + "/no-ca.pem";
  auto made = ClientContext::Create(options);
  ASSERT_FALSE(made.has_value());
  EXPECT_EQ(made.error().rfind("ca " + options.ca + ": ", 0), 0u) << made.error();
}

// The per-backend cache makes the next connection resume; without it, none does.
TEST(ClientContextTest, SessionCacheResumes) {
  auto server = MakeServer(Options({Pki::Get().a_ec}));
  auto client = MakeClient(TrustingTestCa());
  auto cache = std::make_shared<ClientSessionCache>();
  EXPECT_TRUE(cache->empty());
  Outcome out = Connect(server, client, "a.test", cache);
  EXPECT_TRUE(out.client_done);
  EXPECT_FALSE(out.resumed);
  EXPECT_FALSE(cache->empty());
  out = Connect(server, client, "a.test", cache);
  EXPECT_TRUE(out.client_done);
  EXPECT_TRUE(out.resumed);
  out = Connect(server, client, "a.test", cache);
  EXPECT_TRUE(out.resumed);
  EXPECT_EQ(server->stats().resumed.load(), 2u);
  EXPECT_EQ(client->stats().resumed.load(), 2u);
  EXPECT_FALSE(Connect(server, client, "a.test").resumed);
  cache->Clear();
  EXPECT_TRUE(cache->empty());
  EXPECT_FALSE(Connect(server, client, "a.test", cache).resumed);
}

}  // namespace
}  // namespace torii::tls
