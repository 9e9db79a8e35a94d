// tls/session.h: the per-connection TLS engine, pure in memory (no socket, no timer).
//
// Owns: Session, one OpenSSL SSL driven through a custom BIO, and its two faces
// DownstreamSession (client connections, built from a ServerContext) and UpstreamSession (backend
// connections, built from a ClientContext). http/ hands it the ciphertext core/ received and
// gets back plaintext through a sink; it writes plaintext and takes the ciphertext produced.
//
// Copies on the hot path:
//  - in: Receive() lets OpenSSL read straight out of the caller's span (the provided receive
//    buffer); only what is left unread when Receive returns (a partial record, or records
//    held back because the sink asked to pause) is copied into the session. Plaintext is
//    decrypted into a 16 KiB buffer on Receive's stack and handed to the sink as a view.
//  - out: OpenSSL's records are appended to the session's output buffer, which the caller
//    passes to Conn::Write and then consumes (PendingOutput / ConsumeOutput); or, with
//    SetOutputSink, handed straight to the caller as they are produced, saving that copy.
//
// Bounds: plaintext reaches the caller at most kChunk bytes at a time and only while its
// sink accepts more; when it refuses, the rest stays ciphertext (OpenSSL keeps at most one
// record) and is copied aside, up to kMaxBufferedInput: a caller that pauses its receive when
// its sink is full stays far below it, and a session past it fails (kInputOverflow). Output
// grows only by what the caller writes (plus handshake flights, alerts, KeyUpdate replies).
// Post-handshake handshake messages (TLS 1.3 KeyUpdate, a TLS 1.2 renegotiation ClientHello,
// which SSL_OP_NO_RENEGOTIATION answers with a warning) are counted: more than
// kPostHandshakeBudget plus one per MiB of plaintext received fails the session
// (kHandshakeFlood). Idle memory: OpenSSL frees its record buffers between records
// (SSL_MODE_RELEASE_BUFFERS); ReleaseBuffers() frees ours.
//
// Early data (TLS 1.3 0-RTT, a DownstreamSession whose context has early_data): the client's
// first flight may carry application data under a resumed ticket. It reaches the sink before
// the handshake is done (in_early_data() tells), and what the caller writes meanwhile leaves
// at once (0.5-RTT data, after the server's Finished). Whether it was a replay is not known
// until the handshake completes (a replayed flight never completes it): the caller decides
// what to do with it (http/: safe requests only).
//
// Errors are return values (no exceptions). The caller keeps the timers: the handshake
// deadline (ServerContext::handshake_timeout_ms) and idle timeouts.
//
// Leaves out: sockets and io_uring (core/), HTTP (http/), certificates, SNI, tickets
// (server_context.h, ticket_keys.h) and verification policy (client_context.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tls/stats.h"

struct ssl_st;
struct bio_st;

namespace torii::tls {

class ServerContext;
class ClientContext;
class ClientSessionCache;

enum class Status : uint8_t {
  kOk,      // no error; write out whatever PendingOutput() holds
  kClosed,  // the peer sent close_notify: no more plaintext will come (a clean EOF)
  kFailed,  // fatal: failure() says why; send PendingOutput() (usually an alert), then close
};

enum class HandshakeState : uint8_t {
  kInProgress,  // keep feeding ciphertext
  kDone,        // established: plaintext flows both ways
  kFailed,      // the session failed (during or after the handshake): failure() says why
};

// Receives ciphertext as it is produced, when set with Session::SetOutputSink. `bytes` is
// valid for the call only.
struct OutputSink {
  void (*fn)(void* ctx, std::string_view bytes) = nullptr;
  void* ctx = nullptr;
};

class Session {
 public:
  static constexpr size_t kChunk = 16 * 1024;  // largest plaintext chunk (one TLS record)
  static constexpr size_t kMaxBufferedInput = 256 * 1024;
  static constexpr uint32_t kPostHandshakeBudget = 32;

  virtual ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // Not movable either: OpenSSL's BIO points at the session (keep it in a unique_ptr or as
  // a member of the connection handler).

  // Processes `ciphertext` (may be empty: then only what is buffered) and hands each
  // decrypted chunk (at most kChunk bytes, a view valid during the call) to `on_plaintext`,
  // a callable taking std::string_view and returning bool (true = want more, false = pause:
  // the rest stays encrypted until Drain()) or void (always wants more). The sink must take
  // the whole chunk it is given. It may call Write() on this or another session; it must not
  // call Receive() or Drain() on this one. `ciphertext` is read during the call only.
  // Returns kOk (see handshake_state() for progress), kClosed once close_notify arrived
  // (plaintext before it was delivered) or kFailed.
  template <class Sink>
  Status Receive(std::span<const char> ciphertext, Sink&& on_plaintext);
  // Resumes delivery after a sink paused: Receive with no new ciphertext.
  template <class Sink>
  Status Drain(Sink&& on_plaintext) {
    return Receive(std::span<const char>(), on_plaintext);
  }

  // Encrypts `plaintext` into the output. Before the handshake completes the bytes are kept
  // and sent as soon as it does (a client's request written right after Start()). Returns
  // kOk, kClosed after Shutdown(), or kFailed.
  Status Write(std::string_view plaintext);
  // Queues close_notify (once). The caller sends it and closes (or half-closes) the socket;
  // torii does not wait for the peer's close_notify. No-op on a failed session.
  Status Shutdown();

  // The ciphertext produced and not yet consumed (empty while an OutputSink is set). Valid
  // until the next call on the session other than ConsumeOutput / accessors.
  std::string_view PendingOutput() const { return std::string_view(out_).substr(out_consumed_); }
  // Drops the first `n` bytes of PendingOutput() (n <= its size), e.g. once Conn::Write
  // copied them.
  void ConsumeOutput(size_t n);
  // Routes every later record straight to `sink` instead of the output buffer (flushing what
  // is pending into it first). A default OutputSink{} goes back to buffering.
  void SetOutputSink(OutputSink sink);
  // Frees the session's own buffers when they are empty (call when the connection goes
  // idle); OpenSSL's are freed between records already.
  void ReleaseBuffers();
  // The caller's handshake deadline passed: fails the session with kTimeout (counted as a
  // handshake failure). No-op once the handshake is done or failed.
  void FailTimeout();

  HandshakeState handshake_state() const { return state_; }
  bool handshake_done() const { return state_ == HandshakeState::kDone; }
  bool failed() const { return state_ == HandshakeState::kFailed; }
  Failure failure() const { return failure_; }
  std::string_view failure_reason() const { return FailureName(failure_); }
  // True once the peer's close_notify arrived. An EOF on the socket without it (mid-body) is
  // a truncation: abort the exchange, do not pool the upstream connection.
  bool close_notify_received() const { return close_notify_received_; }
  // The ClientHello was taken with early data allowed and the handshake is not done yet:
  // plaintext delivered now is early data (server sessions only).
  bool in_early_data() const { return hello_done_ && state_ == HandshakeState::kInProgress; }
  // Some plaintext was delivered before the handshake completed.
  bool early_data_received() const { return early_bytes_ > 0; }
  size_t buffered_input() const { return in_.size() - in_consumed_; }

  // Facts for the access log, valid once the handshake is done, or during early data (empty
  // before).
  std::string_view version() const;  // "TLSv1.3"
  std::string_view cipher() const;   // "TLS_AES_128_GCM_SHA256"
  std::string_view alpn() const;     // "http/1.1", empty if none was negotiated
  std::string_view sni() const;      // the server name the client sent (empty if none)
  bool resumed() const;              // the handshake resumed a session (ticket)
  // The underlying SSL, for anything not wrapped here. Do not change its BIOs.
  ssl_st* ssl() const { return ssl_; }

 protected:
  // Takes `ssl` (may be nullptr: the session starts failed with kInternal). `stats` (may be
  // null) must outlive the session.
  Session(ssl_st* ssl, HandshakeStats* stats);
  // Drives the handshake as far as the input allows.
  Status Advance();
  Status Fail(Failure failure);
  // Called when the handshake completes and after a Receive that brought a NewSessionTicket:
  // the SSL's current session may be worth keeping.
  virtual void OnSessionUpdate() {}
  // A server session that may take early data: the first flight is read with
  // SSL_read_early_data.
  void AllowEarlyData() { early_phase_ = true; }

 private:
  friend struct SessionIo;

  Status BeginReceive(std::span<const char> ciphertext);
  // Decrypts up to `buf.size()` bytes into `buf`: kOk with *n = 0 when nothing is ready.
  Status ReadChunk(std::span<char> buf, size_t* n);
  // ReadChunk during the early-data phase (which it ends at the client's EndOfEarlyData).
  Status ReadEarly(std::span<char> buf, size_t* n);
  bool reading() const { return handshake_done() || early_phase_; }
  // Version, cipher and resumption are settled: the handshake is done, or its first flight
  // was taken with early data.
  bool agreed() const { return handshake_done() || hello_done_; }
  Status EndReceive(Status status);
  Status FailFromSsl(int ssl_error);
  Status CheckPostHandshake();
  // The BIO's two ends.
  size_t TakeInput(char* out, size_t cap);
  void PutOutput(std::string_view bytes);
  static void OnMessage(int write_p, int version, int content_type, const void* buf, size_t len,
                        ssl_st* ssl, void* arg);

  ssl_st* ssl_;
  HandshakeStats* stats_;
  std::span<const char> feed_;  // the ciphertext of the Receive in progress
  size_t feed_consumed_ = 0;
  std::string in_;  // ciphertext left over from earlier calls
  size_t in_consumed_ = 0;
  std::string out_;  // ciphertext produced, not yet consumed
  size_t out_consumed_ = 0;
  std::string early_plain_;  // written before the handshake completed
  OutputSink sink_;
  uint64_t bytes_in_ = 0;        // ciphertext received in total
  uint64_t plaintext_in_ = 0;    // plaintext delivered in total
  uint64_t early_bytes_ = 0;     // of which before the handshake completed
  uint32_t post_handshake_ = 0;  // handshake messages received after the handshake
  HandshakeState state_ = HandshakeState::kInProgress;
  Failure failure_ = Failure::kNone;
  bool close_notify_received_ = false;
  bool shutdown_sent_ = false;
  bool ticket_received_ = false;  // a NewSessionTicket arrived during this Receive
  bool early_phase_ = false;      // reading the first flight with SSL_read_early_data
  bool hello_done_ = false;       // that read took the ClientHello (the server flight is out)
};

// A client connection's session. The ServerContext must outlive it (held by shared_ptr).
class DownstreamSession : public Session {
 public:
  explicit DownstreamSession(std::shared_ptr<const ServerContext> context);

  // The client's certificate, on a listener with client_auth (valid once the handshake is
  // done, resumed sessions included): none sent, sent and verified against the listener's CA
  // (and CRL), or sent and not verified (optional mode lets the handshake complete).
  enum class ClientCert : uint8_t { kNone, kVerified, kFailed };
  ClientCert client_cert() const;
  // Why verification failed ("certificate has expired"), "" otherwise.
  std::string_view client_cert_error() const;
  // The client's certificate then the chain it sent with it, DER each; empty without one.
  std::vector<std::string> ClientChainDer() const;
  // The certificate's subject, RFC 2253 ("CN=alice,O=Example"); "" without one.
  std::string ClientSubject() const;
  // The names the certificate is for: its subject CN and every SAN (DNS, email, URI, IP).
  std::vector<std::string> ClientNames() const;

 private:
  std::shared_ptr<const ServerContext> context_;
};

// A backend connection's session: call Start() once to produce the ClientHello.
class UpstreamSession : public Session {
 public:
  // `host` is the backend's name or address: the SNI and the name verified, unless
  // ClientOptions::sni overrides it (no SNI is sent for an IP address; the certificate must
  // then carry that IP). `cache` (may be null) resumes this backend's last session and
  // receives the new ones.
  UpstreamSession(std::shared_ptr<const ClientContext> context, std::string_view host,
                  std::shared_ptr<ClientSessionCache> cache = nullptr);
  // Queues the ClientHello. Returns kOk or kFailed.
  Status Start() { return Advance(); }
  // The X509 verification error of a kCertificate failure, e.g. "unable to get local issuer
  // certificate" ("ok" otherwise).
  std::string_view verify_error() const;

 private:
  void OnSessionUpdate() override;

  std::shared_ptr<const ClientContext> context_;
  std::shared_ptr<ClientSessionCache> cache_;
};

template <class Sink>
Status Session::Receive(std::span<const char> ciphertext, Sink&& on_plaintext) {
  Status status = BeginReceive(ciphertext);
  if (status == Status::kOk && reading()) {
    char chunk[kChunk];
    while (true) {
      size_t n = 0;
      status = ReadChunk(chunk, &n);
      if (status != Status::kOk || n == 0) {
        break;
      }
      const std::string_view plaintext(chunk, n);
      if constexpr (std::is_void_v<std::invoke_result_t<Sink&, std::string_view>>) {
        on_plaintext(plaintext);
      } else if (!on_plaintext(plaintext)) {
        break;
      }
    }
  }
  return EndReceive(status);
}

}  // namespace torii::tls
