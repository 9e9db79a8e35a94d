// tests/tls/server_context_test.cc: ServerContext (tls/server_context.h): loading errors that
// name the file, SNI selection, ECDSA/RSA selection, version and cipher policy, ALPN.
#include "tls/server_context.h"

#include <gtest/gtest.h>

#include "tests/tls/tls_test_util.h"

namespace torii::tls {
namespace {

using testing::Collector;
using testing::MakeServer;
using testing::Options;
using testing::Pki;
using testing::Pump;
using testing::RawClient;

std::string CreateError(const ServerOptions& options) {
  auto made = ServerContext::Create(options);
  return made ? std::string("(no error)") : made.error();
}

// A certificate file that does not exist: the message names it.
TEST(ServerContextTest, MissingCertificateFileIsNamed) {
  ServerOptions options = Options({Pki::Get().a_ec});
  options.certificates[0].cert = Pki::Get().dir + "/nope.crt";
  const std::string error = CreateError(options);
  EXPECT_NE(error.find(Pki::Get().dir + "/nope.crt"), std::string::npos) << error;
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
}

// A key file that does not exist: the message names it.
TEST(ServerContextTest, MissingKeyFileIsNamed) {
  ServerOptions options = Options({Pki::Get().a_ec});
  options.certificates[0].key = Pki::Get().dir + "/nope.key";
  const std::string error = CreateError(options);
  EXPECT_NE(error.find(Pki::Get().dir + "/nope.key"), std::string::npos) << error;
}

// A key that belongs to another certificate is refused, naming both files.
TEST(ServerContextTest, MismatchedKeyIsRefused) {
  ServerOptions options;
  options.certificates.push_back({Pki::Get().a_ec.cert, Pki::Get().b_ec.key, {}});
  const std::string error = CreateError(options);
  EXPECT_EQ(error,
            "key " + Pki::Get().b_ec.key + " does not match certificate " + Pki::Get().a_ec.cert);
}

// An expired certificate is refused with its file and notAfter date.
TEST(ServerContextTest, ExpiredCertificateIsRefused) {
  const std::string error = CreateError(Options({Pki::Get().expired}));
  EXPECT_EQ(error.rfind("certificate " + Pki::Get().expired.cert + " has expired (notAfter ", 0),
            0u)
      << error;
  EXPECT_NE(error.find("Z)"), std::string::npos) << error;  // an ISO 8601 UTC date
}

// A certificate that is not valid yet is refused with its file and notBefore date.
TEST(ServerContextTest, NotYetValidCertificateIsRefused) {
  const std::string error = CreateError(Options({Pki::Get().future}));
  EXPECT_EQ(
      error.rfind("certificate " + Pki::Get().future.cert + " is not valid yet (notBefore ", 0), 0u)
      << error;
}

// A file that is not PEM is refused, naming it.
TEST(ServerContextTest, GarbageCertificateFileIsRefused) {
  const std::string path = Pki::Get().dir + "/garbage.crt";
  std::ofstream(path) << "not a certificate\n";
  ServerOptions options = Options({Pki::Get().a_ec});
  options.certificates[0].cert = path;
  const std::string error = CreateError(options);
  EXPECT_EQ(error.rfind("certificate " + path + ": no PEM certificate", 0), 0u) << error;
}

// Unknown versions, a TLS 1.2 list that is not ECDHE + AEAD, no certificate: refused.
TEST(ServerContextTest, PolicyErrors) {
  ServerOptions options = Options({Pki::Get().a_ec});
  options.min_version = "1.1";
  EXPECT_EQ(CreateError(options), "min_version \"1.1\": expected \"1.3\" or \"1.2\"");
  options.min_version = "1.2";
  options.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:AES128-SHA";
  EXPECT_EQ(CreateError(options),
            "ciphers: AES128-SHA is not ECDHE with an AEAD cipher (TLS 1.2 needs a modern list)");
  options.ciphers = "ECDHE-RSA-AES128-SHA256";
  EXPECT_NE(CreateError(options).find("ECDHE-RSA-AES128-SHA256 is not ECDHE with an AEAD"),
            std::string::npos);
  EXPECT_EQ(CreateError(ServerOptions{}), "tls: at least one certificate is required");
  options = Options({Pki::Get().a_ec});
  options.alpn = {""};
  EXPECT_NE(CreateError(options).find("alpn"), std::string::npos);
}

// Two certificates with the same names and key type cannot both be served.
TEST(ServerContextTest, DuplicateKeyTypeForSameNamesIsRefused) {
  const std::string error = CreateError(Options({Pki::Get().a_ec, Pki::Get().a_chain}));
  // a_chain names only a.test, a_ec also www.a.test: different name sets, so accepted.
  EXPECT_EQ(error, "(no error)");
  const std::string dup = CreateError(Options({Pki::Get().a_ec, Pki::Get().a_ec}));
  EXPECT_EQ(dup, "certificates " + Pki::Get().a_ec.cert + " and " + Pki::Get().a_ec.cert +
                     " have the same names and key type: keep one");
}

// Names come from the SAN (wildcards kept as such), or from the CN when there is no SAN.
TEST(ServerContextTest, ReadsNamesAndGroupsCertificates) {
  auto ctx = MakeServer(
      Options({Pki::Get().a_ec, Pki::Get().b_ec, Pki::Get().a_rsa(), Pki::Get().cn_only}));
  ASSERT_NE(ctx, nullptr);
  ASSERT_EQ(ctx->group_count(), 3u);  // a (EC + RSA), b, cn-only
  EXPECT_EQ(ctx->group_names(0), (std::vector<std::string>{"a.test", "www.a.test"}));
  EXPECT_EQ(ctx->group_names(1), (std::vector<std::string>{"*.b-wild.test", "b.test"}));
  EXPECT_EQ(ctx->group_names(2), (std::vector<std::string>{"cn-only.test"}));
}

// SNI lookup: exact (any case, trailing dot), one-label wildcard, default otherwise.
TEST(ServerContextTest, LookupExactWildcardDefault) {
  auto ctx = MakeServer(Options({Pki::Get().a_ec, Pki::Get().b_ec, Pki::Get().cn_only}));
  ASSERT_NE(ctx, nullptr);
  EXPECT_EQ(ctx->Lookup("a.test"), 0u);
  EXPECT_EQ(ctx->Lookup("b.test"), 1u);
  EXPECT_EQ(ctx->Lookup("B.Test."), 1u);
  EXPECT_EQ(ctx->Lookup("x.b-wild.test"), 1u);
  EXPECT_EQ(ctx->Lookup("y.x.b-wild.test"), 0u);  // a wildcard covers one label only
  EXPECT_EQ(ctx->Lookup("b-wild.test"), 0u);
  EXPECT_EQ(ctx->Lookup("cn-only.test"), 2u);
  EXPECT_EQ(ctx->Lookup("unknown.test"), 0u);
  EXPECT_EQ(ctx->Lookup(""), 0u);
  EXPECT_EQ(ctx->Lookup(std::string(300, 'a')), 0u);
}

// The certificate served follows the SNI of the handshake (default when absent or unknown).
TEST(ServerContextTest, SniSelectsCertificate) {
  auto ctx = MakeServer(Options({Pki::Get().a_ec, Pki::Get().b_ec}));
  ASSERT_NE(ctx, nullptr);
  const std::pair<std::string, std::string> cases[] = {
      {"a.test", "a.test"},      {"b.test", "b.test"}, {"x.b-wild.test", "b.test"},
      {"nobody.test", "a.test"}, {"", "a.test"},       {"WWW.A.TEST", "a.test"},
  };
  for (const auto& [sni, cn] : cases) {
    DownstreamSession server(ctx);
    RawClient client(sni);
    Pump(client, server);
    ASSERT_TRUE(server.handshake_done()) << sni << ": " << server.failure_reason();
    EXPECT_EQ(client.PeerCn(), cn) << sni;
    EXPECT_EQ(server.sni(), sni) << sni;
  }
}

// With an ECDSA and an RSA certificate for the same names, a client offering ECDSA gets the
// ECDSA one and a client offering only RSA signatures gets the RSA one.
TEST(ServerContextTest, EcdsaPreferredRsaForRsaOnlyClients) {
  auto ctx = MakeServer(Options({Pki::Get().a_ec, Pki::Get().a_rsa()}));
  ASSERT_NE(ctx, nullptr);
  ASSERT_EQ(ctx->group_count(), 1u);
  {
    DownstreamSession server(ctx);
    RawClient client("a.test");
    Pump(client, server);
    ASSERT_TRUE(server.handshake_done());
    EXPECT_EQ(client.PeerKeyType(), EVP_PKEY_EC);
  }
  {
    DownstreamSession server(ctx);
    RawClient client("a.test", [](SSL_CTX* c) {
      ASSERT_EQ(SSL_CTX_set1_sigalgs_list(c, "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384"), 1);
    });
    Pump(client, server);
    ASSERT_TRUE(server.handshake_done()) << server.failure_reason();
    EXPECT_EQ(client.PeerKeyType(), EVP_PKEY_RSA);
  }
  {
    DownstreamSession server(ctx);
    RawClient client("a.test", [](SSL_CTX* c) {
      ASSERT_EQ(SSL_CTX_set1_sigalgs_list(c, "ecdsa_secp256r1_sha256"), 1);
    });
    Pump(client, server);
    ASSERT_TRUE(server.handshake_done()) << server.failure_reason();
    EXPECT_EQ(client.PeerKeyType(), EVP_PKEY_EC);
  }
}

// A certificate file holding leaf + intermediate sends both: a client trusting only the root
// verifies it.
TEST(ServerContextTest, ChainFromCertificateFileIsSent) {
  auto ctx = MakeServer(Options({Pki::Get().a_chain}));
  ASSERT_NE(ctx, nullptr);
  DownstreamSession server(ctx);
  RawClient client("a.test", [](SSL_CTX* c) {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    ASSERT_EQ(SSL_CTX_load_verify_locations(c, Pki::Get().ca.cert.c_str(), nullptr), 1);
  });
  Pump(client, server);
  ASSERT_TRUE(client.done());
  EXPECT_EQ(SSL_get_verify_result(client.ssl()), X509_V_OK);
}

// TLS 1.2 is refused by default (1.3 only) with "unsupported protocol".
TEST(ServerContextTest, Tls12RefusedByDefault) {
  auto ctx = MakeServer(Options({Pki::Get().a_ec}));
  ASSERT_NE(ctx, nullptr);
  DownstreamSession server(ctx);
  RawClient client("a.test", [](SSL_CTX* c) { SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION); });
  Pump(client, server);
  EXPECT_TRUE(server.failed());
  EXPECT_EQ(server.failure(), Failure::kUnsupportedProtocol);
  EXPECT_EQ(server.failure_reason(), "unsupported protocol");
  EXPECT_TRUE(client.failed());
  EXPECT_EQ(ctx->stats().failures(Failure::kUnsupportedProtocol), 1u);
  EXPECT_EQ(ctx->stats().full.load(), 0u);
}

// min_version "1.2" accepts a TLS 1.2 client with an ECDHE + AEAD suite.
TEST(ServerContextTest, Tls12AcceptedWhenEnabled) {
  ServerOptions options = Options({Pki::Get().a_ec});
  options.min_version = "1.2";
  auto ctx = MakeServer(options);
  ASSERT_NE(ctx, nullptr);
  DownstreamSession server(ctx);
  RawClient client("a.test", [](SSL_CTX* c) { SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION); });
  Pump(client, server);
  ASSERT_TRUE(server.handshake_done()) << server.failure_reason();
  EXPECT_EQ(server.version(), "TLSv1.2");
  EXPECT_EQ(server.cipher(), "ECDHE-ECDSA-AES128-GCM-SHA256");
}

// TLS 1.1 is refused even with min_version "1.2" (T1).
TEST(ServerContextTest, Tls11AlwaysRefused) {
  ServerOptions options = Options({Pki::Get().a_ec});
  options.min_version = "1.2";
  auto ctx = MakeServer(options);
  ASSERT_NE(ctx, nullptr);
  DownstreamSession server(ctx);
  RawClient client("a.test", [](SSL_CTX* c) {
    SSL_CTX_set_security_level(c, 0);
    SSL_CTX_set_min_proto_version(c, TLS1_1_VERSION);
    SSL_CTX_set_max_proto_version(c, TLS1_1_VERSION);
    SSL_CTX_set_cipher_list(c, "ALL:@SECLEVEL=0");
  });
  Pump(client, server);
  EXPECT_TRUE(server.failed());
  EXPECT_EQ(server.failure(), Failure::kUnsupportedProtocol);
}

// Weak TLS 1.2 suites offered alone find nothing in common (T2).
TEST(ServerContextTest, WeakCiphersAloneAreRefused) {
  ServerOptions options = Options({Pki::Get().a_ec, Pki::Get().a_rsa()});
  options.min_version = "1.2";
  auto ctx = MakeServer(options);
  ASSERT_NE(ctx, nullptr);
  DownstreamSession server(ctx);
  RawClient client("a.test", [](SSL_CTX* c) {
    SSL_CTX_set_security_level(c, 0);
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(c, "AES128-SHA:AES256-SHA:DES-CBC3-SHA:ECDHE-RSA-AES128-SHA");
  });
  Pump(client, server);
  EXPECT_TRUE(server.failed());
  EXPECT_EQ(server.failure(), Failure::kNoSharedCipher);
  EXPECT_EQ(ctx->stats().failures(Failure::kNoSharedCipher), 1u);
}

// A downgraded retry carrying TLS_FALLBACK_SCSV is refused (T4, RFC 7507).
TEST(ServerContextTest, FallbackScsvIsRefused) {
  ServerOptions options = Options({Pki::Get().a_ec});
  options.min_version = "1.2";
  auto ctx = MakeServer(options);
  ASSERT_NE(ctx, nullptr);
  DownstreamSession server(ctx);
  RawClient client("a.test", [](SSL_CTX* c) {
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_mode(c, SSL_MODE_SEND_FALLBACK_SCSV);
  });
  Pump(client, server);
  EXPECT_TRUE(server.failed());
  EXPECT_EQ(server.failure(), Failure::kInappropriateFallback);
}

// ALPN: our protocol is selected when offered; an offer without it is refused with
// no_application_protocol; no offer at all proceeds without ALPN.
TEST(ServerContextTest, AlpnSelection) {
  auto ctx = MakeServer(Options({Pki::Get().a_ec}));
  ASSERT_NE(ctx, nullptr);
  const auto offer = [](const char* wire, size_t len) {
    return [wire, len](SSL_CTX* c) {
      ASSERT_EQ(SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(wire),
                                        static_cast<unsigned>(len)),
                0);
    };
  };
  {
    DownstreamSession server(ctx);
    RawClient client("a.test", offer("\x02h2\x08http/1.1", 12));
    Pump(client, server);
    ASSERT_TRUE(server.handshake_done());
    EXPECT_EQ(server.alpn(), "http/1.1");
  }
  {
    DownstreamSession server(ctx);
    RawClient client("a.test", offer("\x02h2", 3));
    Pump(client, server);
    EXPECT_TRUE(server.failed());
    EXPECT_EQ(server.failure(), Failure::kNoApplicationProtocol);
    EXPECT_TRUE(client.failed());
  }
  {
    DownstreamSession server(ctx);
    RawClient client("a.test");
    Pump(client, server);
    ASSERT_TRUE(server.handshake_done());
    EXPECT_EQ(server.alpn(), "");
  }
}

// Server preference decides among several of ours the client offers.
TEST(ServerContextTest, AlpnServerPreference) {
  ServerOptions options = Options({Pki::Get().a_ec});
  options.alpn = {"h2", "http/1.1"};
  auto ctx = MakeServer(options);
  ASSERT_NE(ctx, nullptr);
  DownstreamSession server(ctx);
  RawClient client("a.test", [](SSL_CTX* c) {
    SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>("\x08http/1.1\x02h2"), 12);
  });
  Pump(client, server);
  ASSERT_TRUE(server.handshake_done());
  EXPECT_EQ(server.alpn(), "h2");
}

// TLS 1.2 renegotiation is refused (T3): the client's attempt does not renegotiate and the
// server answers with a no_renegotiation alert (a flood of post-handshake messages is cut off:
// SessionTest.KeyUpdateFloodIsCutOff).
TEST(ServerContextTest, RenegotiationRefused) {
  ServerOptions options = Options({Pki::Get().a_ec});
  options.min_version = "1.2";
  auto ctx = MakeServer(options);
  ASSERT_NE(ctx, nullptr);
  DownstreamSession server(ctx);
  RawClient client("a.test", [](SSL_CTX* c) {
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_clear_options(c, SSL_OP_NO_RENEGOTIATION);
  });
  Pump(client, server);
  ASSERT_TRUE(server.handshake_done());
  ASSERT_EQ(SSL_renegotiate(client.ssl()), 1);
  SSL_do_handshake(client.ssl());
  ERR_clear_error();
  const std::string hello = client.TakeOutput();
  ASSERT_FALSE(hello.empty());
  Collector plain;
  EXPECT_EQ(server.Receive(hello, plain), Status::kOk);
  EXPECT_TRUE(server.handshake_done());          // still the first handshake's session
  EXPECT_FALSE(server.PendingOutput().empty());  // the warning alert
  EXPECT_EQ(SSL_renegotiate_pending(server.ssl()), 0);
}

}  // namespace
}  // namespace torii::tls
