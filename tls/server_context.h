// tls/server_context.h: everything a TLS listener shares between its connections and workers,
// built once at start-up (or reload) from ServerOptions.
//
// Owns: the certificates, one SSL_CTX per set of server names, the SNI map, the ALPN list,
// the handshake counters and (a reference to) the ticket keys.
//  - Certificates are grouped by their name set (SAN DNS names, or the CN when there is no
//    SAN): an ECDSA and an RSA certificate for the same names share one SSL_CTX, and OpenSSL
//    picks the ECDSA one when the client's signature_algorithms allow it. Each group gets a
//    session-id context derived from its certificates, so a ticket issued under one group is
//    never resumed under another (cross-SNI resumption, nginx CVE-2025-23419), while two contexts
//    built from the same files (workers, reloads, processes sharing a key file) resume each
//    other's tickets.
//  - SNI is matched in the ClientHello callback, before OpenSSL looks at any ticket: an
//    exact name, else "*.rest" for a name with one more label, else the default group (the
//    first certificate's). A name claimed by two groups belongs to the first.
//  - Policy: TLS 1.3 only by default, 1.2 allowed only with an ECDHE + AEAD cipher list;
//    no renegotiation, no compression, one ticket per handshake, no server-side session cache
//    (stateless tickets only); 0-RTT only with early_data, each ticket's early data accepted
//    once (early_data.h).
//  - ALPN: the first of our protocols (in our order) that the client offers. A client that
//    offers ALPN without any of ours gets a fatal no_application_protocol alert (RFC 7301
//    §3.2, as nginx does since 1.21.4): continuing would let an "h2"-only client speak h2 to
//    our HTTP/1.1 parser. A client offering no ALPN at all gets HTTP/1.1.
//
// Thread safety: immutable after Create except the counters (atomics), the ticket keys (their
// own seqlock) and the stapled OCSP responses (a mutex each). Leaves out: sockets, timers (the
// caller enforces handshake_timeout_ms), fetching OCSP responses (app/ocsp_fetcher.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tls/early_data.h"
#include "tls/options.h"
#include "tls/stats.h"
#include "tls/ticket_keys.h"

struct ssl_ctx_st;

namespace torii::tls {

class ServerContext {
 public:
  // Loads and checks every certificate and key: a missing or unreadable file, a key that does
  // not match its certificate, a certificate outside its validity period (with its notBefore /
  // notAfter date), two certificates of one key type for the same names, a bad version or
  // cipher list: each an error message naming the file or the value. `keys` (shared by every
  // listener and kept across reloads so tickets survive them) defaults to
  // TicketKeys::FromOptions(options); `stats` to a fresh set of counters; `spent` (the tickets
  // that carried early data, kept across reloads like the keys) to a fresh record when
  // options.early_data.
  static std::expected<std::shared_ptr<const ServerContext>, std::string> Create(
      const ServerOptions& options, std::shared_ptr<TicketKeys> keys = nullptr,
      std::shared_ptr<HandshakeStats> stats = nullptr,
      std::shared_ptr<EarlyDataGuard> spent = nullptr);

  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // The SSL_CTX a connection starts from (the default certificate group).
  ssl_ctx_st* default_ctx() const { return groups_.front().ctx; }
  // The group serving `server_name` (ASCII, any case, may end with a dot): its index in
  // group_names() order, the default group 0 when nothing matches.
  size_t Lookup(std::string_view server_name) const;
  ssl_ctx_st* ctx(size_t group) const { return groups_[group].ctx; }
  size_t group_count() const { return groups_.size(); }
  // The names group `group` serves, lowercase, as read from its certificates.
  const std::vector<std::string>& group_names(size_t group) const { return groups_[group].names; }

  // Each certificate served, in configuration order: its file, first name and the end of
  // its validity (Unix seconds), for expiry metrics and warnings.
  struct Certificate {
    std::string file;
    std::string name;
    int64_t not_after = 0;
  };
  const std::vector<Certificate>& certificates() const { return certificates_; }

  // OCSP responses torii fetches itself (ocsp_stapling: a certificate without ocsp_file): what
  // to ask and where. `staple` names it to UpdateStaple.
  struct OcspFetch {
    size_t staple = 0;
    std::string certificate;  // the cert file, for logs
    std::string url;          // the responder, from the certificate's AIA ("http://...")
    std::string request;      // the DER OCSPRequest for this certificate
  };
  const std::vector<OcspFetch>& ocsp_fetches() const { return fetches_; }
  // Checks a response fetched for `fetch` as an ocsp_file is checked (the issuer's signature,
  // this certificate, good, within its validity) and staples it from now on, in place of the
  // previous one. Returns its nextUpdate (Unix seconds, 0 = none), or why it was refused (the
  // previous response then stays, while valid). Any thread.
  std::expected<int64_t, std::string> UpdateStaple(const OcspFetch& fetch,
                                                   std::string_view der) const;
  // A reload: the responses `old` staples for the same certificates are stapled here too
  // until this context fetches its own.
  void AdoptStaples(const ServerContext& old) const;
  // The nextUpdate of the response stapled for `fetch` (0: none, or it names none).
  int64_t staple_next_update(const OcspFetch& fetch) const;

  HandshakeStats& stats() const { return *stats_; }
  const std::shared_ptr<HandshakeStats>& stats_ptr() const { return stats_; }
  const std::shared_ptr<TicketKeys>& ticket_keys() const { return keys_; }
  // The record of tickets spent on early data (null without early_data).
  const std::shared_ptr<EarlyDataGuard>& early_data_guard() const { return early_data_; }
  bool early_data() const { return early_data_ != nullptr; }
  uint64_t handshake_timeout_ms() const { return handshake_timeout_ms_; }
  // ServerOptions::record_size (0: dynamic).
  uint32_t record_size() const { return record_size_; }
  // "h2" is among the protocols ALPN may choose.
  bool offers_h2() const { return offers_h2_; }

 private:
  struct Group {
    ssl_ctx_st* ctx = nullptr;
    std::vector<std::string> names;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using NameMap = std::unordered_map<std::string, size_t, Hash, std::equal_to<>>;
  friend struct ServerContextBuilder;

  ServerContext() = default;

  std::vector<Group> groups_;
  std::vector<Certificate> certificates_;
  // OCSP responses to staple, per certificate served with ocsp_file or ocsp_stapling, until
  // their nextUpdate. The response is replaced as fetches complete (mutex: one lock per
  // handshake that asks for it).
  struct Staple {
    void* leaf = nullptr;    // the X509 the SSL_CTX serves (one reference held here)
    void* issuer = nullptr;  // the X509 after it in the cert file (one reference), or null
    std::string file;        // the cert file
    mutable std::mutex mu;
    mutable std::shared_ptr<const std::string> der;  // null: nothing to staple yet
    mutable int64_t next_update = 0;                 // Unix seconds; 0 = the response names none
    // The response and its nextUpdate, read together.
    std::pair<std::shared_ptr<const std::string>, int64_t> Current() const {
      std::lock_guard<std::mutex> lock(mu);
      return {der, next_update};
    }
  };
  std::vector<std::unique_ptr<Staple>> staples_;
  std::vector<OcspFetch> fetches_;
  NameMap exact_;
  NameMap wildcard_;       // "*.example.com" stored as "example.com"
  std::string alpn_wire_;  // length-prefixed protocol names, our preference order
  bool offers_h2_ = false;
  std::shared_ptr<TicketKeys> keys_;
  std::shared_ptr<EarlyDataGuard> early_data_;
  std::shared_ptr<HandshakeStats> stats_;
  uint64_t handshake_timeout_ms_ = 0;
  uint32_t record_size_ = 0;
};

}  // namespace torii::tls
