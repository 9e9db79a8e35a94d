// tls/options.h: what conf/ fills to describe TLS on a listener (ServerOptions) or towards a
// pool's backends (ClientOptions).
//
// Plain data only: no OpenSSL type, no validation. ServerContext::Create and
// ClientContext::Create validate it (at load time) and name the offending file or value.
// Leaves out: parsing (conf/), durations as strings (conf/ turns "1h" into seconds).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace torii::tls {

// One certificate and its private key, both PEM file paths. The certificate file may hold the
// chain after the leaf (leaf first, as nginx's ssl_certificate). The key must not be encrypted.
struct CertificateSpec {
  std::string cert;
  std::string key;
  // An OCSP response (DER, as `openssl ocsp -respout` writes) to staple: checked at load
  // (signed by the certificate's issuer, about this certificate, "good", not outside its
  // validity), stapled to clients that ask while it is within it, read again on reload.
  std::string ocsp_file;
};

// Client certificates asked of the clients of a listener (mutual TLS).
struct ClientAuthOptions {
  enum class Mode : uint8_t {
    kOff,
    kOptional,  // asked for; the handshake completes with none or a bad one, the result is
                // recorded (DownstreamSession::client_cert) for the routes to decide
    kRequire,   // a client without a certificate that verifies against `ca` fails the handshake
  };
  Mode mode = Mode::kOff;
  std::string ca;   // PEM: the issuers client certificates must chain to
  std::string crl;  // PEM: revoked certificates (leaf checked), or empty
  uint32_t verify_depth = 4;
};

// The bounds of ServerOptions::record_size: TLS's largest plaintext per record (RFC 8446
// §5.1), and a floor below which records cost more than they gain.
inline constexpr uint32_t kMinRecordSize = 512;
inline constexpr uint32_t kMaxRecordSize = 16 * 1024;

struct ServerOptions {
  // The first certificate (with any other certificate for the same names, e.g. its RSA
  // twin) is the default, served when SNI is absent or matches no certificate's names.
  std::vector<CertificateSpec> certificates;
  // Protocols offered by ALPN, in server preference order. Empty = ALPN not negotiated.
  std::vector<std::string> alpn = {"http/1.1"};
  std::string min_version = "1.3";  // "1.3" or "1.2" (only with `ciphers` all ECDHE + AEAD)
  std::string ciphersuites;         // TLS 1.3 suites (OpenSSL syntax); empty = OpenSSL default
  // TLS 1.2 cipher list (OpenSSL syntax), used only when min_version is "1.2".
  std::string ciphers =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
  // The caller's deadline from accept to handshake done (the engine keeps no timer).
  uint64_t handshake_timeout_ms = 10000;
  // Stateless session tickets: keys shared by every worker, a new one every
  // `ticket_rotation_s` (the previous one still decrypts). 0 = never rotate. A ticket's
  // lifetime hint is the rotation interval (1 h when 0), so a ticket stays decryptable for
  // as long as it is valid.
  bool session_tickets = true;
  uint64_t ticket_rotation_s = 3600;
  // Optional: a file of one or more 80-byte keys (name 16 + HMAC 32 + AES 32, nginx's
  // ssl_session_ticket_key format). The first key encrypts, all decrypt; no rotation (the
  // operator replaces the file and reloads), so several processes can share the keys.
  std::string session_ticket_key_file;
  // session_ticket_keys = "redis": the name under which a fleet of torii shares this listener's
  // keys through Redis (app/ticket_share.h installs them); empty: this process's own keys.
  std::string shared_ticket_keys;
  // OCSP stapling fetched by torii: every certificate without an ocsp_file gets its response
  // from the responder its Authority Information Access names (http:// only), refreshed
  // before it expires (app/ocsp_fetcher.h). Certificates that name no responder are refused.
  bool ocsp_stapling = false;
  // TLS 1.3 early data (0-RTT): tickets invite up to 16 KiB of it, accepted once per ticket
  // (early_data.h). Needs session_tickets; never with client_auth.
  bool early_data = false;
  // The most plaintext per record sent to clients (kMinRecordSize..kMaxRecordSize), or 0: dynamic
  // (record_size.h: one TCP segment per record at first and after an idle second, then full).
  uint32_t record_size = 0;
  ClientAuthOptions client_auth;
  // Key exchange groups, in preference order (OpenSSL names). The default takes every group
  // OpenSSL offers for TLS 1.3 key exchange: a client offering only X448 or only the RFC 7919
  // FFDHE groups gets a HelloRetryRequest or a matching share, not a handshake failure.
  std::vector<std::string> groups = {"X25519",    "P-256",     "P-384",     "X448",
                                     "P-521",     "ffdhe2048", "ffdhe3072", "ffdhe4096",
                                     "ffdhe6144", "ffdhe8192"};
};

// TLS from torii to a pool's backends.
struct ClientOptions {
  bool verify = true;             // verify the backend's chain and name
  std::string ca;                 // PEM CA file; empty = the system's default trust store
  std::string sni;                // SNI and name to verify; empty = the backend's host
  std::vector<std::string> alpn;  // offered protocols; empty = no ALPN
  // A client certificate for backends that ask for one (PEM; the cert file may hold the chain).
  std::string cert;
  std::string key;
};

}  // namespace torii::tls
