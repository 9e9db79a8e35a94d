// tests/tls/tls_test_util.h: what the tls/ tests share: a PKI generated once per test binary
// (EC P-256 and RSA 2048 keys, a CA, leaves signed by it, an expired and a not-yet-valid
// certificate, a second CA) written as PEM into a mkdtemp directory, a raw OpenSSL client over
// memory BIOs (for clients torii itself would never be: TLS 1.1, RSA-only sigalgs, ...), and
// pumps that move bytes between two endpoints until neither has anything to say.
#pragma once

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tls/client_context.h"
#include "tls/ossl.h"
#include "tls/server_context.h"
#include "tls/session.h"

namespace torii::tls::testing {

inline constexpr long kDay = 24 * 3600;

struct KeyPair {
  std::string cert;  // PEM file paths
  std::string key;
};

class Pki {
 public:
  std::string dir;
  KeyPair ca;            // EC CA "torii test CA"
  KeyPair other_ca;      // an unrelated EC CA
  KeyPair a_ec;          // a.test, www.a.test (EC leaf, signed by ca)
  KeyPair b_ec;          // b.test, *.b-wild.test (EC leaf, signed by ca)
  KeyPair cn_only;       // no SAN, CN cn-only.test (self-signed EC)
  KeyPair localhost_ip;  // IP:127.0.0.1 and DNS:localhost (EC leaf, signed by ca)
  KeyPair expired;       // c.test, notAfter a day ago
  KeyPair future;        // d.test, notBefore in a day
  KeyPair a_chain;       // a.test leaf signed by an intermediate; the file holds the chain

  // Generated on first use, removed at exit.
  static const Pki& Get() {
    static const Pki pki;
    return pki;
  }

  // An RSA 2048 leaf for a_ec's names, signed by ca. Generated on first use only: RSA key
  // generation dominates the set-up, and ctest runs every test in its own process.
  const KeyPair& a_rsa() const {
    std::call_once(rsa_once_, [this] {
      Pkey rsa_key(EVP_RSA_gen(2048));
      rsa_ =
          const_cast<Pki*>(this)->Leaf("a-rsa", rsa_key.get(), "a.test",
                                       "DNS:a.test,DNS:www.a.test", ca_cert_.get(), ca_key_.get());
    });
    return rsa_;
  }

  ~Pki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }

 private:
  using Pkey = ossl::PkeyPtr;
  using Cert = ossl::X509Ptr;

  Pki() {
    char tmpl[] = "/tmp/torii-tls-test-XXXXXX";
    const char* made = mkdtemp(tmpl);
    EXPECT_NE(made, nullptr);
    dir = made != nullptr ? made : "/tmp";
    ca_key_.reset(EVP_EC_gen("P-256"));
    ca_cert_ = Make(ca_key_.get(), "torii test CA", "", nullptr, nullptr, -kDay, 30 * kDay,
                    /*is_ca=*/true);
    EVP_PKEY* ca_key = ca_key_.get();
    X509* ca_cert = ca_cert_.get();
    ca = Write("ca", ca_cert, ca_key);
    Pkey other_key(EVP_EC_gen("P-256"));
    Cert other_cert =
        Make(other_key.get(), "other CA", "", nullptr, nullptr, -kDay, 30 * kDay, true);
    other_ca = Write("other-ca", other_cert.get(), other_key.get());

    Pkey a_key(EVP_EC_gen("P-256"));
    a_ec = Leaf("a-ec", a_key.get(), "a.test", "DNS:a.test,DNS:www.a.test", ca_cert, ca_key);
    Pkey b_key(EVP_EC_gen("P-256"));
    b_ec = Leaf("b-ec", b_key.get(), "b.test", "DNS:b.test,DNS:*.b-wild.test", ca_cert, ca_key);
    Pkey cn_key(EVP_EC_gen("P-256"));
    Cert cn_cert =
        Make(cn_key.get(), "cn-only.test", "", nullptr, nullptr, -kDay, 30 * kDay, false);
    cn_only = Write("cn-only", cn_cert.get(), cn_key.get());
    Pkey ip_key(EVP_EC_gen("P-256"));
    localhost_ip =
        Leaf("ip", ip_key.get(), "localhost", "DNS:localhost,IP:127.0.0.1", ca_cert, ca_key);
    Pkey old_key(EVP_EC_gen("P-256"));
    Cert old_cert =
        Make(old_key.get(), "c.test", "DNS:c.test", ca_cert, ca_key, -10 * kDay, -kDay, false);
    expired = Write("expired", old_cert.get(), old_key.get());
    Pkey new_key(EVP_EC_gen("P-256"));
    Cert new_cert =
        Make(new_key.get(), "d.test", "DNS:d.test", ca_cert, ca_key, kDay, 10 * kDay, false);
    future = Write("future", new_cert.get(), new_key.get());

    Pkey mid_key(EVP_EC_gen("P-256"));
    Cert mid_cert =
        Make(mid_key.get(), "torii test intermediate", "", ca_cert, ca_key, -kDay, 30 * kDay, true);
    Pkey chained_key(EVP_EC_gen("P-256"));
    Cert chained = Make(chained_key.get(), "a.test", "DNS:a.test", mid_cert.get(), mid_key.get(),
                        -kDay, 30 * kDay, false);
    a_chain = Write("a-chain", chained.get(), chained_key.get(), mid_cert.get());
  }

  KeyPair Leaf(const std::string& file, EVP_PKEY* key, const std::string& cn,
               const std::string& san, X509* issuer, EVP_PKEY* issuer_key) {
    Cert cert = Make(key, cn, san, issuer, issuer_key, -kDay, 30 * kDay, false);
    return Write(file, cert.get(), key);
  }

  static void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    ASSERT_NE(ext, nullptr) << value;
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }

  // A certificate for `key`, valid from now + not_before_s to now + not_after_s, signed by
  // `issuer_key` (self-signed when `issuer` is null).
  static Cert Make(EVP_PKEY* key, const std::string& cn, const std::string& san, X509* issuer,
                   EVP_PKEY* issuer_key, long not_before_s, long not_after_s, bool is_ca) {
    static long serial = 1;
    Cert cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), not_before_s);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), not_after_s);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
    AddExt(cert.get(), issuer, NID_subject_key_identifier, "hash");
    if (issuer != nullptr) {
      AddExt(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
    }
    if (is_ca) {
      AddExt(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE");
      AddExt(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
      AddExt(cert.get(), issuer, NID_basic_constraints, "CA:FALSE");
    }
    if (!san.empty()) {
      AddExt(cert.get(), issuer, NID_subject_alt_name, san);
    }
    EXPECT_GT(X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()), 0);
    return cert;
  }

  Pkey ca_key_;
  Cert ca_cert_;
  mutable std::once_flag rsa_once_;
  mutable KeyPair rsa_;

  KeyPair Write(const std::string& base, X509* cert, EVP_PKEY* key, X509* chain = nullptr) {
    KeyPair pair{dir + "/" + base + ".crt", dir + "/" + base + ".key"};
    ossl::BioPtr out(BIO_new_file(pair.cert.c_str(), "w"));
    EXPECT_EQ(PEM_write_bio_X509(out.get(), cert), 1);
    if (chain != nullptr) {
      EXPECT_EQ(PEM_write_bio_X509(out.get(), chain), 1);
    }
    ossl::BioPtr key_out(BIO_new_file(pair.key.c_str(), "w"));
    EXPECT_EQ(PEM_write_bio_PrivateKey(key_out.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
              1);
    return pair;
  }
};

inline CertificateSpec Spec(const KeyPair& pair) {
  return CertificateSpec{pair.cert, pair.key, {}};
}

inline ServerOptions Options(std::vector<KeyPair> certs) {
  ServerOptions options;
  for (const KeyPair& pair : certs) {
    options.certificates.push_back(Spec(pair));
  }
  return options;
}

inline std::shared_ptr<const ServerContext> MakeServer(const ServerOptions& options,
                                                       std::shared_ptr<TicketKeys> keys = nullptr) {
  auto made = ServerContext::Create(options, std::move(keys));
  EXPECT_TRUE(made.has_value()) << (made ? "" : made.error());
  return made ? *made : nullptr;
}

inline std::shared_ptr<const ClientContext> MakeClient(ClientOptions options) {
  auto made = ClientContext::Create(options);
  EXPECT_TRUE(made.has_value()) << (made ? "" : made.error());
  return made ? *made : nullptr;
}

inline ClientOptions TrustingTestCa(std::vector<std::string> alpn = {"http/1.1"}) {
  ClientOptions options;
  options.ca = Pki::Get().ca.cert;
  options.alpn = std::move(alpn);
  return options;
}

// A plain OpenSSL client over two memory BIOs, configured directly by the test.
class RawClient {
 public:
  // `configure` may adjust the SSL_CTX (versions, ciphers, sigalgs) before the SSL exists.
  template <class F>
  explicit RawClient(const std::string& sni, F&& configure) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_session_cache_mode(ctx_.get(), SSL_SESS_CACHE_OFF);
    configure(ctx_.get());
    ssl_.reset(SSL_new(ctx_.get()));
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);  // empty = "retry", not EOF
    SSL_set_bio(ssl_.get(), in_, out_);
    SSL_set_connect_state(ssl_.get());
    if (!sni.empty()) {
      SSL_set_tlsext_host_name(ssl_.get(), sni.c_str());
    }
  }
  explicit RawClient(const std::string& sni = "") : RawClient(sni, [](SSL_CTX*) {}) {}
  // As if closed cleanly: OpenSSL would otherwise mark the session not resumable.
  ~RawClient() { SSL_set_shutdown(ssl_.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN); }

  SSL* ssl() const { return ssl_.get(); }

  // Runs the handshake, or reads whatever application data (and tickets) arrived.
  void Step() {
    if (SSL_is_init_finished(ssl_.get()) == 0) {
      const int rc = SSL_do_handshake(ssl_.get());
      if (rc != 1 && SSL_get_error(ssl_.get(), rc) != SSL_ERROR_WANT_READ) {
        failed_ = true;
      }
    }
    if (SSL_is_init_finished(ssl_.get()) != 0) {
      char buf[16384];
      size_t n = 0;
      while (SSL_read_ex(ssl_.get(), buf, sizeof(buf), &n) == 1) {
        received_.append(buf, n);
      }
    }
    ERR_clear_error();
  }
  std::string TakeOutput() {
    std::string out;
    char buf[16384];
    int n;
    while ((n = BIO_read(out_, buf, sizeof(buf))) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  void Give(std::string_view bytes) {
    BIO_write(in_, bytes.data(), static_cast<int>(bytes.size()));
  }
  bool done() const { return SSL_is_init_finished(ssl_.get()) != 0 && !failed_; }
  bool failed() const { return failed_; }
  bool resumed() const { return SSL_session_reused(ssl_.get()) == 1; }
  const std::string& received() const { return received_; }

  // The peer certificate's subject CN.
  std::string PeerCn() const {
    X509* cert = SSL_get0_peer_certificate(ssl_.get());
    if (cert == nullptr) {
      return {};
    }
    char buf[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf));
    return buf;
  }
  int PeerKeyType() const {
    X509* cert = SSL_get0_peer_certificate(ssl_.get());
    return cert != nullptr ? EVP_PKEY_get_base_id(X509_get0_pubkey(cert)) : 0;
  }
  // The session to resume with (call after a Step that read the tickets).
  SSL_SESSION* TakeSession() const { return SSL_get1_session(ssl_.get()); }
  void Resume(SSL_SESSION* session) {
    SSL_set_session(ssl_.get(), session);
    SSL_SESSION_free(session);
  }

 private:
  ossl::SslCtxPtr ctx_;
  ossl::SslPtr ssl_;
  BIO* in_ = nullptr;   // server → client
  BIO* out_ = nullptr;  // client → server
  bool failed_ = false;
  std::string received_;
};

// Collects a session's plaintext.
struct Collector {
  std::string data;
  size_t chunks = 0;
  size_t largest = 0;
  bool operator()(std::string_view chunk) {
    data.append(chunk);
    ++chunks;
    largest = std::max(largest, chunk.size());
    return true;
  }
};

// Moves bytes between a raw client and a server session until both fall silent.
inline void Pump(RawClient& client, Session& server, Collector* server_in = nullptr) {
  Collector ignored;
  Collector& sink = server_in != nullptr ? *server_in : ignored;
  for (int round = 0; round < 100; ++round) {
    client.Step();
    const std::string to_server = client.TakeOutput();
    if (!to_server.empty()) {
      server.Receive(to_server, sink);
    }
    const std::string to_client(server.PendingOutput());
    server.ConsumeOutput(to_client.size());
    if (!to_client.empty()) {
      client.Give(to_client);
    }
    if (to_server.empty() && to_client.empty()) {
      client.Step();
      return;
    }
  }
  ADD_FAILURE() << "pump did not settle";
}

// Moves bytes between two sessions until both fall silent.
inline void Pump(Session& a, Collector& a_in, Session& b, Collector& b_in) {
  for (int round = 0; round < 1000; ++round) {
    const std::string a_out(a.PendingOutput());
    a.ConsumeOutput(a_out.size());
    if (!a_out.empty()) {
      b.Receive(a_out, b_in);
    }
    const std::string b_out(b.PendingOutput());
    b.ConsumeOutput(b_out.size());
    if (!b_out.empty()) {
      a.Receive(b_out, a_in);
    }
    if (a_out.empty() && b_out.empty()) {
      return;
    }
  }
  ADD_FAILURE() << "pump did not settle";
}

}  // namespace torii::tls::testing
