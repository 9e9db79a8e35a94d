// tls/server_context.cc: loading certificates, grouping them by name set, one SSL_CTX per
// group, and the callbacks every handshake runs (ClientHello → SNI, server name ack, ALPN).
#include "tls/server_context.h"

#include <openssl/asn1.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>

#include "tls/ossl.h"

namespace torii::tls {
namespace {

using Error = std::unexpected<std::string>;

constexpr uint64_t kDefaultTicketLifetimeS = 3600;
constexpr uint64_t kMaxTicketLifetimeS = 7 * 24 * 3600;  // RFC 8446 §4.6.1
constexpr size_t kMaxNameLength = 253;
constexpr uint32_t kMaxEarlyData = 16384;  // one record: a request head, as browsers send

struct LoadedCert {
  const CertificateSpec* spec = nullptr;
  ossl::X509Ptr leaf;
  std::vector<ossl::X509Ptr> chain;
  ossl::PkeyPtr key;
  std::vector<std::string> names;
};

// Refuses encrypted keys instead of prompting on the terminal (OpenSSL's default).
int NoPassword(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

std::string TimeText(const ASN1_TIME* time) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || ASN1_TIME_print_ex(bio.get(), time, ASN1_DTFLGS_ISO8601) != 1) {
    ERR_clear_error();
    return "(unreadable date)";
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// Lowercase, without a trailing dot; empty when the name cannot be a DNS name or wildcard.
std::string NormalizeName(std::string_view name) {
  if (!name.empty() && name.back() == '.') {
    name.remove_suffix(1);
  }
  if (name.empty() || name.size() > kMaxNameLength) {
    return {};
  }
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    } else if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '-' && c != '.' &&
               c != '_' && c != '*') {
      return {};
    }
  }
  // A wildcard is only a whole first label: "*.example.com".
  const size_t star = out.find('*');
  if (star != std::string::npos &&
      (star != 0 || out.size() < 3 || out[1] != '.' || out.find('*', 1) != std::string::npos)) {
    return {};
  }
  return out;
}

// The names SNI can select: the SAN DNS names, or the subject CN when there is no DNS SAN.
std::vector<std::string> ReadNames(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  bool has_dns = false;
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
    if (name->type != GEN_DNS) {
      continue;
    }
    has_dns = true;
    const ASN1_IA5STRING* dns = name->d.dNSName;
    std::string normal =
        NormalizeName(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                       static_cast<size_t>(ASN1_STRING_length(dns))));
    if (!normal.empty()) {
      names.push_back(std::move(normal));
    }
  }
  GENERAL_NAMES_free(sans);
  if (!has_dns) {
    X509_NAME* subject = X509_get_subject_name(cert);
    const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    unsigned char* utf8 = nullptr;
    const int len = index >= 0
                        ? ASN1_STRING_to_UTF8(
                              &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)))
                        : -1;
    if (len > 0) {
      std::string normal = NormalizeName(
          std::string_view(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len)));
      if (!normal.empty()) {
        names.push_back(std::move(normal));
      }
    }
    OPENSSL_free(utf8);
  }
  ERR_clear_error();
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::expected<void, std::string> CheckValidity(X509* leaf, const std::string& file) {
  const ASN1_TIME* not_before = X509_get0_notBefore(leaf);
  const ASN1_TIME* not_after = X509_get0_notAfter(leaf);
  const int before = X509_cmp_current_time(not_before);
  const int after = X509_cmp_current_time(not_after);
  if (before == 0 || after == 0) {
    ERR_clear_error();
    return Error("certificate " + file + ": unreadable validity dates");
  }
  if (before > 0) {
    return Error("certificate " + file + " is not valid yet (notBefore " + TimeText(not_before) +
                 ")");
  }
  if (after < 0) {
    return Error("certificate " + file + " has expired (notAfter " + TimeText(not_after) + ")");
  }
  return {};
}

std::expected<LoadedCert, std::string> LoadCertificate(const CertificateSpec& spec) {
  LoadedCert loaded;
  loaded.spec = &spec;
  ossl::BioPtr cert_bio(BIO_new_file(spec.cert.c_str(), "r"));
  if (cert_bio == nullptr) {
    ERR_clear_error();
    return Error("certificate " + spec.cert + ": cannot open (" + std::strerror(errno) + ")");
  }
  loaded.leaf.reset(PEM_read_bio_X509_AUX(cert_bio.get(), nullptr, NoPassword, nullptr));
  if (loaded.leaf == nullptr) {
    return Error("certificate " + spec.cert + ": no PEM certificate (" + ossl::TakeError() + ")");
  }
  while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, NoPassword, nullptr)) {
    loaded.chain.emplace_back(extra);
  }
  ERR_clear_error();  // the end of the file reads as "no start line"

  ossl::BioPtr key_bio(BIO_new_file(spec.key.c_str(), "r"));
  if (key_bio == nullptr) {
    ERR_clear_error();
    return Error("key " + spec.key + ": cannot open (" + std::strerror(errno) + ")");
  }
  loaded.key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassword, nullptr));
  if (loaded.key == nullptr) {
    return Error("key " + spec.key + ": no unencrypted PEM private key (" + ossl::TakeError() +
                 ")");
  }
  if (X509_check_private_key(loaded.leaf.get(), loaded.key.get()) != 1) {
    ERR_clear_error();
    return Error("key " + spec.key + " does not match certificate " + spec.cert);
  }
  if (auto valid = CheckValidity(loaded.leaf.get(), spec.cert); !valid) {
    return std::unexpected(valid.error());
  }
  loaded.names = ReadNames(loaded.leaf.get());
  return loaded;
}

// Every TLS 1.2 suite must be ECDHE (forward secrecy) with an AEAD cipher.
int64_t UnixTime(const ASN1_GENERALIZEDTIME* t) {
  std::tm tm{};
  return t != nullptr && ASN1_TIME_to_tm(t, &tm) == 1 ? static_cast<int64_t>(timegm(&tm)) : 0;
}

// Checks an OCSP response (DER) for `leaf`, issued by `issuer`, is one a client may trust: a
// successful response signed by the issuer (or a responder it delegated to), about this
// certificate, "good", and within its validity now. Returns its nextUpdate (Unix seconds, 0 =
// none) or why not.
std::expected<int64_t, std::string> CheckStaple(X509* leaf, X509* issuer, std::string_view der,
                                                std::string_view cert_file) {
  const auto fail = [](const std::string& why) {
    ERR_clear_error();
    return Error(why);
  };
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size()));
  if (resp == nullptr) {
    return fail("not a DER OCSP response");
  }
  std::unique_ptr<OCSP_RESPONSE, decltype(&OCSP_RESPONSE_free)> resp_owner(resp,
                                                                           OCSP_RESPONSE_free);
  if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    return fail("the responder did not answer successfully");
  }
  OCSP_BASICRESP* basic = OCSP_response_get1_basic(resp);
  if (basic == nullptr) {
    return fail("no basic response in it");
  }
  std::unique_ptr<OCSP_BASICRESP, decltype(&OCSP_BASICRESP_free)> basic_owner(basic,
                                                                              OCSP_BASICRESP_free);
  if (issuer == nullptr) {
    return fail("the certificate file must hold the issuer after the leaf to check it");
  }
  // The issuer is the trust anchor: the response is signed by it or by a responder it
  // certified (PARTIAL_CHAIN: no root needed above it).
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  STACK_OF(X509)* certs = sk_X509_new_null();
  std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> certs_owner(
      certs, [](STACK_OF(X509) * s) { sk_X509_free(s); });
  if (store == nullptr || certs == nullptr || X509_STORE_add_cert(store.get(), issuer) != 1 ||
      sk_X509_push(certs, issuer) <= 0) {
    return fail("cannot set up its verification");
  }
  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
  if (OCSP_basic_verify(basic, certs, store.get(), 0) != 1) {
    return fail("not signed by the certificate's issuer (" + ossl::TakeError() + ")");
  }
  OCSP_CERTID* id = OCSP_cert_to_id(nullptr, leaf, issuer);
  std::unique_ptr<OCSP_CERTID, decltype(&OCSP_CERTID_free)> id_owner(id, OCSP_CERTID_free);
  int status = 0;
  int reason = 0;
  ASN1_GENERALIZEDTIME* revoked = nullptr;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next_update = nullptr;
  if (id == nullptr || OCSP_resp_find_status(basic, id, &status, &reason, &revoked, &this_update,
                                             &next_update) != 1) {
    return fail("it is not about certificate " + std::string(cert_file));
  }
  if (status != V_OCSP_CERTSTATUS_GOOD) {
    return fail(status == V_OCSP_CERTSTATUS_REVOKED ? "the certificate is revoked"
                                                    : "the certificate's status is unknown");
  }
  if (OCSP_check_validity(this_update, next_update, 300, -1) != 1) {
    return fail("outside its validity (thisUpdate / nextUpdate)");
  }
  return UnixTime(next_update);
}

// Reads `cert`'s ocsp_file: its bytes, or why not.
std::expected<std::string, std::string> ReadStapleFile(const std::string& file) {
  ossl::BioPtr bio(BIO_new_file(file.c_str(), "rb"));
  if (bio == nullptr) {
    ERR_clear_error();
    return Error("ocsp_file " + file + ": cannot read");
  }
  std::string der;
  char buf[4096];
  int n;
  while ((n = BIO_read(bio.get(), buf, sizeof(buf))) > 0 && der.size() < 64 * 1024) {
    der.append(buf, static_cast<size_t>(n));
  }
  return der;
}

// For ocsp_stapling: the responder `leaf` names (its first AIA OCSP URL) and the DER request
// for it, or why there is none.
std::expected<std::pair<std::string, std::string>, std::string> OcspQuery(X509* leaf,
                                                                          X509* issuer) {
  STACK_OF(OPENSSL_STRING)* urls = X509_get1_ocsp(leaf);
  std::string url = urls != nullptr && sk_OPENSSL_STRING_num(urls) > 0
                        ? std::string(sk_OPENSSL_STRING_value(urls, 0))
                        : std::string();
  X509_email_free(urls);
  if (url.empty()) {
    return Error("names no OCSP responder (Authority Information Access)");
  }
  if (!url.starts_with("http://")) {
    return Error("names OCSP responder " + url + ": only http:// responders are fetched");
  }
  if (issuer == nullptr) {
    return Error("must hold its issuer after the leaf to ask for its OCSP response");
  }
  std::unique_ptr<OCSP_REQUEST, decltype(&OCSP_REQUEST_free)> req(OCSP_REQUEST_new(),
                                                                  OCSP_REQUEST_free);
  OCSP_CERTID* id = OCSP_cert_to_id(nullptr, leaf, issuer);
  if (req == nullptr || id == nullptr || OCSP_request_add0_id(req.get(), id) == nullptr) {
    OCSP_CERTID_free(id);
    ERR_clear_error();
    return Error("cannot build its OCSP request");
  }
  unsigned char* der = nullptr;
  const int len = i2d_OCSP_REQUEST(req.get(), &der);
  if (len <= 0) {
    ERR_clear_error();
    return Error("cannot encode its OCSP request");
  }
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return std::pair{std::move(url), std::move(out)};
}

// RFC 7633 Must-Staple: the certificate's TLS Feature extension lists status_request.
bool MustStaple(X509* leaf) { return X509_get_ext_by_NID(leaf, NID_tlsfeature, -1) >= 0; }

std::expected<void, std::string> CheckModernCiphers(SSL_CTX* ctx) {
  const STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx);
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    const SSL_CIPHER* cipher = sk_SSL_CIPHER_value(ciphers, i);
    if (std::strcmp(SSL_CIPHER_get_version(cipher), "TLSv1.3") == 0) {
      continue;
    }
    if (SSL_CIPHER_get_kx_nid(cipher) != NID_kx_ecdhe ||
        SSL_CIPHER_get_auth_nid(cipher) == NID_auth_null || SSL_CIPHER_is_aead(cipher) != 1) {
      return Error(std::string("ciphers: ") + SSL_CIPHER_get_name(cipher) +
                   " is not ECDHE with an AEAD cipher (TLS 1.2 needs a modern list)");
    }
  }
  return {};
}

std::expected<void, std::string> ApplyPolicy(SSL_CTX* ctx, const ServerOptions& options) {
  int min_version = 0;
  if (options.min_version == "1.3") {
    min_version = TLS1_3_VERSION;
  } else if (options.min_version == "1.2") {
    min_version = TLS1_2_VERSION;
  } else {
    return Error("min_version \"" + options.min_version + "\": expected \"1.3\" or \"1.2\"");
  }
  uint64_t lifetime =
      options.ticket_rotation_s != 0 ? options.ticket_rotation_s : kDefaultTicketLifetimeS;
  lifetime = std::min(lifetime, kMaxTicketLifetimeS);
  // Early data: OpenSSL's own replay defence would make tickets stateful (a session cache
  // per SSL_CTX, lost on reload, not shared by processes); EarlyDataGuard does it instead.
  const uint32_t early = options.early_data && options.session_tickets ? kMaxEarlyData : 0;
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE |
                               (options.session_tickets ? 0 : SSL_OP_NO_TICKET) |
                               (early > 0 ? SSL_OP_NO_ANTI_REPLAY : 0));
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_timeout(ctx, static_cast<long>(lifetime));
  const bool ok = SSL_CTX_set_min_proto_version(ctx, min_version) == 1 &&
                  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 &&
                  SSL_CTX_set_max_early_data(ctx, early) == 1 &&
                  SSL_CTX_set_recv_max_early_data(ctx, early) == 1 &&
                  SSL_CTX_set_num_tickets(ctx, options.session_tickets ? 1 : 0) == 1;
  if (!ok) {
    return Error("tls: cannot apply the protocol policy (" + ossl::TakeError() + ")");
  }
  std::string groups;
  for (const std::string& g : options.groups) {
    groups.append(groups.empty() ? "" : ":").append(g);
  }
  if (groups.empty() || groups.find_first_of(" ,") != std::string::npos ||
      SSL_CTX_set1_groups_list(ctx, groups.c_str()) != 1) {
    ERR_clear_error();
    return Error("groups [" + groups +
                 "]: expected key exchange groups OpenSSL knows (X25519, P-256, P-384, P-521, "
                 "X448, ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144, ffdhe8192)");
  }
  if (!options.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(ctx, options.ciphersuites.c_str()) != 1) {
    return Error("ciphersuites \"" + options.ciphersuites + "\": " + ossl::TakeError());
  }
  if (min_version == TLS1_2_VERSION) {
    if (SSL_CTX_set_cipher_list(ctx, options.ciphers.c_str()) != 1) {
      return Error("ciphers \"" + options.ciphers + "\": " + ossl::TakeError());
    }
    return CheckModernCiphers(ctx);
  }
  return {};
}

// A hash of the group's certificates: equal for contexts built from the same files (so they
// resume each other's tickets), different between groups (so they never do).
// The session id context: a digest of the group's certificates and of the client_auth policy,
// so that a ticket is resumed only under the same certificates and the same demands on the
// client (a session that never showed a client certificate cannot resume on a listener that
// requires one).
std::expected<void, std::string> SetSessionIdContext(SSL_CTX* ctx,
                                                     const std::vector<LoadedCert*>& certs,
                                                     const ClientAuthOptions& auth) {
  ossl::BioPtr der(BIO_new(BIO_s_mem()));
  for (const LoadedCert* cert : certs) {
    if (der == nullptr || i2d_X509_bio(der.get(), cert->leaf.get()) != 1) {
      return Error("tls: cannot hash certificate " + cert->spec->cert);
    }
  }
  if (auth.mode != ClientAuthOptions::Mode::kOff) {
    const std::string policy = "client_auth " + std::to_string(static_cast<int>(auth.mode)) + " " +
                               auth.ca + " " + auth.crl;
    BIO_write(der.get(), policy.data(), static_cast<int>(policy.size()));
    STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
      if (X509* ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i))) {
        i2d_X509_bio(der.get(), ca);
      }
    }
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(der.get(), &data);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  static_assert(sizeof(digest) <= SSL_MAX_SID_CTX_LENGTH);
  if (SHA256(reinterpret_cast<unsigned char*>(data), static_cast<size_t>(len), digest) == nullptr ||
      SSL_CTX_set_session_id_context(ctx, digest, sizeof(digest)) != 1) {
    return Error("tls: cannot set the session id context (" + ossl::TakeError() + ")");
  }
  return {};
}

// Optional mode: every chain is accepted by the handshake; SSL_get_verify_result keeps what
// verification found, for the routes to act on.
int AcceptAnyClientCert(int /*preverify_ok*/, X509_STORE_CTX* /*store*/) { return 1; }

// client_auth: the CA list sent in the CertificateRequest, the store client chains are checked
// against (with the CRL when given), and the verify mode.
std::expected<void, std::string> ApplyClientAuth(SSL_CTX* ctx, const ClientAuthOptions& auth) {
  if (auth.mode == ClientAuthOptions::Mode::kOff) {
    return {};
  }
  if (SSL_CTX_load_verify_locations(ctx, auth.ca.c_str(), nullptr) != 1) {
    return Error("client_auth ca " + auth.ca + ": " + ossl::TakeError());
  }
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(auth.ca.c_str());
  if (names == nullptr) {
    return Error("client_auth ca " + auth.ca + ": no certificate in it (" + ossl::TakeError() +
                 ")");
  }
  SSL_CTX_set_client_CA_list(ctx, names);
  if (!auth.crl.empty()) {
    ossl::BioPtr bio(BIO_new_file(auth.crl.c_str(), "r"));
    if (bio == nullptr) {
      return Error("client_auth crl " + auth.crl + ": cannot read (" + ossl::TakeError() + ")");
    }
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    int loaded = 0;
    while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
      const int ok = X509_STORE_add_crl(store, crl);
      X509_CRL_free(crl);
      if (ok != 1) {
        return Error("client_auth crl " + auth.crl + ": " + ossl::TakeError());
      }
      ++loaded;
    }
    ERR_clear_error();  // the end of the file reads as an error
    if (loaded == 0) {
      return Error("client_auth crl " + auth.crl + ": no CRL in it");
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  const bool require = auth.mode == ClientAuthOptions::Mode::kRequire;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (require ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                     require ? nullptr : AcceptAnyClientCert);
  SSL_CTX_set_verify_depth(ctx, static_cast<int>(auth.verify_depth));
  return {};
}

std::expected<void, std::string> UseCertificates(SSL_CTX* ctx,
                                                 const std::vector<LoadedCert*>& certs) {
  for (const LoadedCert* cert : certs) {
    const std::string& file = cert->spec->cert;
    if (SSL_CTX_use_certificate(ctx, cert->leaf.get()) != 1) {
      return Error("certificate " + file + ": " + ossl::TakeError());
    }
    for (const ossl::X509Ptr& extra : cert->chain) {
      if (SSL_CTX_add1_chain_cert(ctx, extra.get()) != 1) {
        return Error("certificate " + file + ": chain: " + ossl::TakeError());
      }
    }
    if (SSL_CTX_use_PrivateKey(ctx, cert->key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      return Error("key " + cert->spec->key + ": " + ossl::TakeError());
    }
  }
  return {};
}

// The server_name extension's body: a list (u16 length) of (u8 type, u16 length, name);
// the first host_name (type 0) entry counts.
bool ParseServerName(const unsigned char* ext, size_t len, std::string_view* name) {
  if (len < 2 || static_cast<size_t>((ext[0] << 8) | ext[1]) != len - 2) {
    return false;
  }
  size_t pos = 2;
  while (pos + 3 <= len) {
    const unsigned type = ext[pos];
    const size_t name_len = static_cast<size_t>((ext[pos + 1] << 8) | ext[pos + 2]);
    pos += 3;
    if (pos + name_len > len) {
      return false;
    }
    if (type == 0) {
      *name = std::string_view(reinterpret_cast<const char*>(ext + pos), name_len);
      return true;
    }
    pos += name_len;
  }
  return false;
}

}  // namespace

// The callbacks and the steps of Create, with access to ServerContext's members.
struct ServerContextBuilder {
  // A client asked for the certificate status (status_request): staple the response of the
  // certificate chosen for it, while the response is valid; otherwise none (never a stale
  // one).
  static int OnStatusRequest(SSL* ssl, void* arg) {
    const auto* self = static_cast<const ServerContext*>(arg);
    X509* cert = SSL_get_certificate(ssl);
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    for (const auto& staple : self->staples_) {
      if (staple->leaf != cert && X509_cmp(static_cast<X509*>(staple->leaf), cert) != 0) {
        continue;
      }
      const auto [der, next_update] = staple->Current();
      if (der == nullptr || (next_update != 0 && now >= next_update)) {
        return SSL_TLSEXT_ERR_NOACK;
      }
      auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(der->size()));
      if (copy == nullptr) {
        return SSL_TLSEXT_ERR_NOACK;
      }
      memcpy(copy, der->data(), der->size());
      SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(der->size()));
      return SSL_TLSEXT_ERR_OK;  // OpenSSL owns (and frees) the copy
    }
    return SSL_TLSEXT_ERR_NOACK;
  }

  // Runs first on every ClientHello, before OpenSSL looks at tickets: switches to the SNI's
  // group so the session-id context checked on resumption is that group's.
  // A resumed session offers early data that OpenSSL found fresh: accepted once per ticket.
  static int OnEarlyData(SSL* ssl, void* arg) {
    auto* self = static_cast<ServerContext*>(arg);
    EarlyDataGuard::Id id;
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const bool first = EarlyDataGuard::TicketId(ssl, &id) &&
                       self->early_data_->FirstUse(id, static_cast<uint64_t>(now.tv_sec));
    self->stats_->Count(first ? self->stats_->early_data_accepted
                              : self->stats_->early_data_refused);
    return first ? 1 : 0;
  }

  static int OnClientHello(SSL* ssl, int* alert, void* arg) {
    const auto* self = static_cast<const ServerContext*>(arg);
    const unsigned char* ext = nullptr;
    size_t len = 0;
    if (self->groups_.size() == 1 ||
        SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) != 1) {
      return SSL_CLIENT_HELLO_SUCCESS;
    }
    std::string_view name;
    if (!ParseServerName(ext, len, &name)) {
      *alert = SSL_AD_DECODE_ERROR;
      return SSL_CLIENT_HELLO_ERROR;
    }
    SSL_CTX* ctx = self->groups_[self->Lookup(name)].ctx;
    if (ctx != SSL_get_SSL_CTX(ssl) && SSL_set_SSL_CTX(ssl, ctx) == nullptr) {
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
  }

  // The group is already chosen; accepting the name makes OpenSSL acknowledge it and keep it
  // for SSL_get_servername.
  static int OnServerName(SSL* /*ssl*/, int* /*alert*/, void* /*arg*/) { return SSL_TLSEXT_ERR_OK; }

  static int OnAlpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_len,
                    const unsigned char* in, unsigned int in_len, void* arg) {
    const std::string& ours = static_cast<const ServerContext*>(arg)->alpn_wire_;
    for (size_t i = 0; i < ours.size(); i += 1 + static_cast<unsigned char>(ours[i])) {
      const auto len = static_cast<unsigned char>(ours[i]);
      for (unsigned j = 0; j < in_len && j + 1 + in[j] <= in_len; j += 1 + in[j]) {
        if (in[j] == len && std::memcmp(in + j + 1, ours.data() + i + 1, len) == 0) {
          *out = in + j + 1;
          *out_len = len;
          return SSL_TLSEXT_ERR_OK;
        }
      }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol (see the header)
  }

  static std::expected<void, std::string> BuildAlpn(ServerContext& self,
                                                    const std::vector<std::string>& alpn) {
    for (const std::string& proto : alpn) {
      if (proto.empty() || proto.size() > 255) {
        return Error("alpn: protocol name \"" + proto + "\" must be 1 to 255 bytes");
      }
      self.alpn_wire_.push_back(static_cast<char>(proto.size()));
      self.alpn_wire_.append(proto);
      self.offers_h2_ = self.offers_h2_ || proto == "h2";
    }
    return {};
  }

  // Certificates with the same name set share a group (one SSL_CTX), in first-seen order.
  static std::expected<std::vector<std::vector<LoadedCert*>>, std::string> Group(
      std::vector<LoadedCert>& certs) {
    std::vector<std::vector<LoadedCert*>> groups;
    std::map<std::vector<std::string>, size_t> by_names;
    for (LoadedCert& cert : certs) {
      auto [it, added] = by_names.emplace(cert.names, groups.size());
      if (added) {
        groups.emplace_back();
      }
      for (const LoadedCert* other : groups[it->second]) {
        if (EVP_PKEY_get_base_id(other->key.get()) == EVP_PKEY_get_base_id(cert.key.get())) {
          return Error("certificates " + other->spec->cert + " and " + cert.spec->cert +
                       " have the same names and key type: keep one");
        }
      }
      groups[it->second].push_back(&cert);
    }
    return groups;
  }

  static std::expected<SSL_CTX*, std::string> BuildCtx(ServerContext& self,
                                                       const ServerOptions& options,
                                                       const std::vector<LoadedCert*>& certs) {
    ossl::SslCtxPtr ctx(SSL_CTX_new_ex(nullptr, nullptr, TLS_server_method()));
    if (ctx == nullptr) {
      return Error("tls: cannot create an SSL_CTX (" + ossl::TakeError() + ")");
    }
    if (auto policy = ApplyPolicy(ctx.get(), options); !policy) {
      return std::unexpected(policy.error());
    }
    if (auto used = UseCertificates(ctx.get(), certs); !used) {
      return std::unexpected(used.error());
    }
    if (auto auth = ApplyClientAuth(ctx.get(), options.client_auth); !auth) {
      return std::unexpected(auth.error());
    }
    if (auto sid = SetSessionIdContext(ctx.get(), certs, options.client_auth); !sid) {
      return std::unexpected(sid.error());
    }
    SSL_CTX_set_client_hello_cb(ctx.get(), OnClientHello, &self);
    SSL_CTX_set_tlsext_status_cb(ctx.get(), OnStatusRequest);
    SSL_CTX_set_tlsext_status_arg(ctx.get(), &self);
    SSL_CTX_set_tlsext_servername_callback(ctx.get(), OnServerName);
    if (!self.alpn_wire_.empty()) {
      SSL_CTX_set_alpn_select_cb(ctx.get(), OnAlpn, &self);
    }
    if (self.early_data_ != nullptr) {
      SSL_CTX_set_allow_early_data_cb(ctx.get(), OnEarlyData, &self);
    }
    if (options.session_tickets && !TicketKeys::Install(ctx.get(), self.keys_.get())) {
      return Error("tls: cannot install the session ticket callback (" + ossl::TakeError() + ")");
    }
    return ctx.release();
  }

  static void IndexNames(ServerContext& self) {
    for (size_t g = 0; g < self.groups_.size(); ++g) {
      for (const std::string& name : self.groups_[g].names) {
        if (name.starts_with("*.")) {
          self.wildcard_.emplace(name.substr(2), g);  // emplace keeps the first group's claim
        } else {
          self.exact_.emplace(name, g);
        }
      }
    }
  }
};

std::expected<std::shared_ptr<const ServerContext>, std::string> ServerContext::Create(
    const ServerOptions& options, std::shared_ptr<TicketKeys> keys,
    std::shared_ptr<HandshakeStats> stats, std::shared_ptr<EarlyDataGuard> spent) {
  if (options.certificates.empty()) {
    return Error("tls: at least one certificate is required");
  }
  if (options.early_data && !options.session_tickets) {
    return Error("early_data needs session_tickets: early data rides on a resumed ticket");
  }
  if (options.early_data && options.client_auth.mode != ClientAuthOptions::Mode::kOff) {
    return Error(
        "early_data and client_auth together are not supported: early data is "
        "accepted only where no client certificate is asked for");
  }
  if (options.record_size != 0 &&
      (options.record_size < kMinRecordSize || options.record_size > kMaxRecordSize)) {
    return Error("record_size must be from " + std::to_string(kMinRecordSize) + " to " +
                 std::to_string(kMaxRecordSize) + " bytes, got " +
                 std::to_string(options.record_size));
  }
  std::shared_ptr<ServerContext> self(new ServerContext());
  self->handshake_timeout_ms_ = options.handshake_timeout_ms;
  self->record_size_ = options.record_size;
  self->stats_ = stats != nullptr ? std::move(stats) : std::make_shared<HandshakeStats>();
  if (keys == nullptr && options.session_tickets) {
    auto made = TicketKeys::FromOptions(options);
    if (!made) {
      return std::unexpected(made.error());
    }
    keys = std::move(*made);
  }
  self->keys_ = std::move(keys);
  if (options.early_data && options.session_tickets) {
    self->early_data_ = spent != nullptr ? std::move(spent) : std::make_shared<EarlyDataGuard>();
  }
  if (auto alpn = ServerContextBuilder::BuildAlpn(*self, options.alpn); !alpn) {
    return std::unexpected(alpn.error());
  }

  std::vector<LoadedCert> certs;
  certs.reserve(options.certificates.size());
  for (const CertificateSpec& spec : options.certificates) {
    auto loaded = LoadCertificate(spec);
    if (!loaded) {
      return std::unexpected(loaded.error());
    }
    certs.push_back(std::move(*loaded));
  }
  for (const LoadedCert& cert : certs) {
    X509* issuer = cert.chain.empty() ? nullptr : cert.chain.front().get();
    if (!cert.spec->ocsp_file.empty() || options.ocsp_stapling) {
      auto staple = std::make_unique<Staple>();
      staple->file = cert.spec->cert;
      X509_up_ref(cert.leaf.get());  // both released by ~ServerContext
      staple->leaf = cert.leaf.get();
      if (issuer != nullptr) {
        X509_up_ref(issuer);
        staple->issuer = issuer;
      }
      self->staples_.push_back(std::move(staple));
      Staple& added = *self->staples_.back();
      if (!cert.spec->ocsp_file.empty()) {
        auto der = ReadStapleFile(cert.spec->ocsp_file);
        if (!der) {
          return std::unexpected(der.error());
        }
        auto checked = CheckStaple(cert.leaf.get(), issuer, *der, cert.spec->cert);
        if (!checked) {
          return Error("ocsp_file " + cert.spec->ocsp_file + ": " + checked.error());
        }
        added.der = std::make_shared<const std::string>(std::move(*der));
        added.next_update = *checked;
      } else {
        auto query = OcspQuery(cert.leaf.get(), issuer);
        if (!query) {
          return Error("ocsp_stapling: certificate " + cert.spec->cert + " " + query.error() +
                       " (give it an ocsp_file, or turn ocsp_stapling off)");
        }
        self->fetches_.push_back(OcspFetch{self->staples_.size() - 1, cert.spec->cert,
                                           std::move(query->first), std::move(query->second)});
      }
    } else if (MustStaple(cert.leaf.get())) {
      return Error("certificate " + cert.spec->cert +
                   " requires OCSP stapling (Must-Staple): give it an ocsp_file, or turn "
                   "ocsp_stapling on");
    }
    std::tm tm{};
    int64_t not_after = 0;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.leaf.get()), &tm) == 1) {
      not_after = static_cast<int64_t>(timegm(&tm));
    }
    self->certificates_.push_back(Certificate{
        cert.spec->cert, cert.names.empty() ? std::string() : cert.names.front(), not_after});
  }
  auto groups = ServerContextBuilder::Group(certs);
  if (!groups) {
    return std::unexpected(groups.error());
  }
  for (const std::vector<LoadedCert*>& group : *groups) {
    auto ctx = ServerContextBuilder::BuildCtx(*self, options, group);
    if (!ctx) {
      return std::unexpected(ctx.error());
    }
    self->groups_.push_back(Group{*ctx, group.front()->names});
  }
  ServerContextBuilder::IndexNames(*self);
  return std::shared_ptr<const ServerContext>(std::move(self));
}

ServerContext::~ServerContext() {
  for (Group& group : groups_) {
    SSL_CTX_free(group.ctx);
  }
  for (const auto& staple : staples_) {
    X509_free(static_cast<X509*>(staple->leaf));
    X509_free(static_cast<X509*>(staple->issuer));
  }
}

std::expected<int64_t, std::string> ServerContext::UpdateStaple(const OcspFetch& fetch,
                                                                std::string_view der) const {
  const Staple& staple = *staples_[fetch.staple];
  auto checked = CheckStaple(static_cast<X509*>(staple.leaf), static_cast<X509*>(staple.issuer),
                             der, staple.file);
  if (!checked) {
    return checked;
  }
  auto copy = std::make_shared<const std::string>(der);
  std::lock_guard<std::mutex> lock(staple.mu);
  staple.der = std::move(copy);
  staple.next_update = *checked;
  return checked;
}

int64_t ServerContext::staple_next_update(const OcspFetch& fetch) const {
  const auto [der, next_update] = staples_[fetch.staple]->Current();
  return der != nullptr ? next_update : 0;
}

void ServerContext::AdoptStaples(const ServerContext& old) const {
  for (const OcspFetch& fetch : fetches_) {
    const Staple& mine = *staples_[fetch.staple];
    for (const auto& theirs : old.staples_) {
      if (X509_cmp(static_cast<X509*>(theirs->leaf), static_cast<X509*>(mine.leaf)) != 0) {
        continue;
      }
      auto [der, next_update] = theirs->Current();
      std::lock_guard<std::mutex> lock(mine.mu);
      if (der != nullptr && mine.der == nullptr) {
        mine.der = std::move(der);
        mine.next_update = next_update;
      }
      break;
    }
  }
}

size_t ServerContext::Lookup(std::string_view server_name) const {
  char buf[kMaxNameLength + 2];
  if (server_name.empty() || server_name.size() >= sizeof(buf)) {
    return 0;
  }
  size_t n = 0;
  for (char c : server_name) {
    buf[n++] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  }
  if (buf[n - 1] == '.') {
    --n;
  }
  const std::string_view name(buf, n);
  if (auto it = exact_.find(name); it != exact_.end()) {
    return it->second;
  }
  const size_t dot = name.find('.');
  if (dot != std::string_view::npos && dot > 0 && dot + 1 < name.size()) {
    if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) {
      return it->second;
    }
  }
  return 0;
}

}  // namespace torii::tls
