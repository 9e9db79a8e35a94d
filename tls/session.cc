// tls/session.cc: the memory engine: a custom BIO over the caller's spans, the handshake and
// record loop, and OpenSSL errors turned into a Failure.
#include "tls/session.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

#include "tls/client_context.h"
#include "tls/server_context.h"

namespace torii::tls {
namespace {

// Output already consumed is dropped from the front of the buffer once it is this large and
// at least half of it, so a caller that consumes in pieces does not make it grow unbounded.
constexpr size_t kCompactAfter = 64 * 1024;

// A TLS connection starts with a record of content type 20..24 (or an SSLv2-style hello,
// 0x80 and up); an uppercase letter there means something else. "GET /", "PRI * HTTP/2.0"
// and a backend's "HTTP/1.1 400" are plain HTTP; anything else is garbage.
Failure SniffPlaintext(std::span<const char> bytes) {
  const auto is_upper = [](char c) { return c >= 'A' && c <= 'Z'; };
  if (bytes.empty() || !is_upper(bytes[0])) {
    return Failure::kNone;
  }
  const size_t n = std::min<size_t>(bytes.size(), 16);
  for (size_t i = 1; i < n; ++i) {
    if (bytes[i] == ' ' || bytes[i] == '/') {
      return Failure::kPlainHttp;
    }
    if (!is_upper(bytes[i])) {
      return Failure::kBadRecord;
    }
  }
  return Failure::kPlainHttp;  // a method still arriving
}

Failure Classify(unsigned long err) {
  if (ERR_GET_LIB(err) != ERR_LIB_SSL) {
    return err == 0 ? Failure::kProtocol : Failure::kInternal;
  }
  switch (ERR_GET_REASON(err)) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
      return Failure::kPlainHttp;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_CIPHERS_AVAILABLE:
      return Failure::kNoSharedCipher;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_UNSUPPORTED_SSL_VERSION:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_WRONG_SSL_VERSION:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      return Failure::kUnsupportedProtocol;
    case SSL_R_INAPPROPRIATE_FALLBACK:
    case SSL_R_TLSV1_ALERT_INAPPROPRIATE_FALLBACK:
      return Failure::kInappropriateFallback;
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
      return Failure::kNoApplicationProtocol;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return Failure::kCertificate;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_DECRYPTION_FAILED:
    case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
    case SSL_R_ENCRYPTED_LENGTH_TOO_LONG:
    case SSL_R_DATA_LENGTH_TOO_LONG:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_BAD_RECORD_TYPE:
    case SSL_R_BAD_PACKET_LENGTH:
      return Failure::kBadRecord;
    default:
      break;
  }
  // Received alerts are reported as SSL_AD_REASON_OFFSET + the alert's code.
  if (ERR_GET_REASON(err) >= SSL_AD_REASON_OFFSET) {
    return Failure::kPeerAlert;
  }
  return Failure::kProtocol;
}

}  // namespace

// The BIO OpenSSL reads from and writes to: both ends are the session's buffers.
struct SessionIo {
  static Session* Of(BIO* bio) { return static_cast<Session*>(BIO_get_data(bio)); }

  static int Write(BIO* bio, const char* data, size_t len, size_t* written) {
    Of(bio)->PutOutput(std::string_view(data, len));
    *written = len;
    return 1;
  }

  static int Read(BIO* bio, char* out, size_t cap, size_t* read) {
    BIO_clear_retry_flags(bio);
    *read = Of(bio)->TakeInput(out, cap);
    if (*read == 0) {
      BIO_set_retry_read(bio);  // SSL_ERROR_WANT_READ: wait for the next Receive
      return 0;
    }
    return 1;
  }

  static long Ctrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_PENDING:
        return static_cast<long>(Of(bio)->buffered_input());
      default:
        return 0;
    }
  }

  static BIO_METHOD* Method() {
    static BIO_METHOD* const method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "torii-tls");
      if (m != nullptr) {
        BIO_meth_set_write_ex(m, Write);
        BIO_meth_set_read_ex(m, Read);
        BIO_meth_set_ctrl(m, Ctrl);
      }
      return m;
    }();
    return method;
  }
};

Session::Session(ssl_st* ssl, HandshakeStats* stats) : ssl_(ssl), stats_(stats) {
  BIO* bio =
      ssl_ != nullptr && SessionIo::Method() != nullptr ? BIO_new(SessionIo::Method()) : nullptr;
  if (bio == nullptr) {
    Fail(Failure::kInternal);
    return;
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // one reference serves both directions
  SSL_set_app_data(ssl_, this);
  SSL_set_msg_callback(ssl_, OnMessage);
  SSL_set_msg_callback_arg(ssl_, this);
}

Session::~Session() {
  if (ssl_ != nullptr && state_ == HandshakeState::kDone) {
    // SSL_free marks the session of a connection that was not shut down "not resumable".
    // A TLS 1.3 ticket does not depend on how its connection ended (a pooled upstream
    // connection is usually just dropped), so only a failed session loses it.
    SSL_set_shutdown(ssl_, SSL_get_shutdown(ssl_) | SSL_SENT_SHUTDOWN);
  }
  SSL_free(ssl_);
}

void Session::OnMessage(int write_p, int /*version*/, int content_type, const void* buf, size_t len,
                        ssl_st* /*ssl*/, void* arg) {
  auto* self = static_cast<Session*>(arg);
  if (write_p != 0 || content_type != SSL3_RT_HANDSHAKE || len == 0) {
    return;
  }
  if (self->handshake_done()) {
    ++self->post_handshake_;
  }
  if (*static_cast<const unsigned char*>(buf) == SSL3_MT_NEWSESSION_TICKET) {
    self->ticket_received_ = true;  // processed once SSL_read returns
  }
}

Status Session::Fail(Failure failure) {
  if (state_ != HandshakeState::kFailed) {
    if (stats_ != nullptr) {
      stats_->Count(state_ == HandshakeState::kDone ? stats_->failed_after_handshake
                                                    : stats_->failed[static_cast<size_t>(failure)]);
    }
    state_ = HandshakeState::kFailed;
    failure_ = failure;
  }
  in_.clear();
  in_consumed_ = 0;
  feed_consumed_ = feed_.size();
  early_plain_.clear();
  return Status::kFailed;
}

Status Session::FailFromSsl(int ssl_error) {
  Failure failure = Failure::kInternal;
  if (ssl_error == SSL_ERROR_SSL) {
    failure = Classify(ERR_peek_error());
  } else if (ssl_error == SSL_ERROR_SYSCALL) {
    failure = Failure::kProtocol;  // our BIO never fails: an EOF OpenSSL did not expect
  }
  ERR_clear_error();  // the thread's queue serves every session of the worker: leave it empty
  return Fail(failure);
}

void Session::FailTimeout() {
  if (state_ == HandshakeState::kInProgress) {
    Fail(Failure::kTimeout);
  }
}

Status Session::Advance() {
  if (state_ != HandshakeState::kInProgress) {
    return state_ == HandshakeState::kFailed ? Status::kFailed : Status::kOk;
  }
  if (early_phase_) {
    return Status::kOk;  // SSL_read_early_data drives the handshake (ReadEarly)
  }
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_);
  if (rc != 1) {
    const int err = SSL_get_error(ssl_, rc);
    return err == SSL_ERROR_WANT_READ ? Status::kOk : FailFromSsl(err);
  }
  state_ = HandshakeState::kDone;
  if (stats_ != nullptr) {
    stats_->Count(SSL_session_reused(ssl_) == 1 ? stats_->resumed : stats_->full);
  }
  ticket_received_ = false;
  OnSessionUpdate();
  if (!early_plain_.empty()) {
    std::string early;
    early.swap(early_plain_);
    return Write(early);
  }
  return Status::kOk;
}

Status Session::BeginReceive(std::span<const char> ciphertext) {
  if (state_ == HandshakeState::kFailed) {
    return Status::kFailed;
  }
  feed_ = ciphertext;
  feed_consumed_ = 0;
  if (bytes_in_ == 0) {
    const Failure sniffed = SniffPlaintext(ciphertext);
    if (sniffed != Failure::kNone) {
      bytes_in_ += ciphertext.size();
      return Fail(sniffed);
    }
  }
  bytes_in_ += ciphertext.size();
  return Advance();
}

Status Session::CheckPostHandshake() {
  const uint64_t allowed = kPostHandshakeBudget + plaintext_in_ / (1024 * 1024);
  return post_handshake_ > allowed ? Fail(Failure::kHandshakeFlood) : Status::kOk;
}

Status Session::ReadEarly(std::span<char> buf, size_t* n) {
  ERR_clear_error();
  size_t got = 0;
  const int rc = SSL_read_early_data(ssl_, buf.data(), buf.size(), &got);
  if (rc == SSL_READ_EARLY_DATA_ERROR) {
    const int err = SSL_get_error(ssl_, 0);
    return err == SSL_ERROR_WANT_READ ? Status::kOk : FailFromSsl(err);
  }
  hello_done_ = true;
  if (rc == SSL_READ_EARLY_DATA_FINISH) {
    early_phase_ = false;  // the client's EndOfEarlyData (or no early data): finish normally
  }
  plaintext_in_ += got;
  early_bytes_ += got;
  *n = got;
  return Status::kOk;
}

Status Session::ReadChunk(std::span<char> buf, size_t* n) {
  *n = 0;
  if (state_ == HandshakeState::kFailed) {
    return Status::kFailed;
  }
  if (close_notify_received_) {
    return Status::kClosed;
  }
  if (early_phase_) {
    const Status status = ReadEarly(buf, n);
    if (status != Status::kOk || *n > 0 || early_phase_) {
      return status;
    }
  }
  if (state_ == HandshakeState::kInProgress) {
    // After the early data: the client's Finished completes the handshake.
    if (Advance() != Status::kOk || !handshake_done()) {
      return failed() ? Status::kFailed : Status::kOk;
    }
  }
  ERR_clear_error();
  size_t got = 0;
  const int rc = SSL_read_ex(ssl_, buf.data(), buf.size(), &got);
  if (CheckPostHandshake() != Status::kOk) {
    ERR_clear_error();
    return Status::kFailed;
  }
  if (rc == 1) {
    plaintext_in_ += got;
    *n = got;
    return Status::kOk;
  }
  const int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ) {
    return Status::kOk;
  }
  if (err == SSL_ERROR_ZERO_RETURN) {
    close_notify_received_ = true;
    return Status::kClosed;
  }
  return FailFromSsl(err);
}

Status Session::EndReceive(Status status) {
  if (state_ == HandshakeState::kFailed) {
    status = Status::kFailed;
  }
  const size_t left = feed_.size() - feed_consumed_;
  if (status == Status::kOk && left > 0) {
    if (in_consumed_ > 0) {
      in_.erase(0, in_consumed_);
      in_consumed_ = 0;
    }
    in_.append(feed_.data() + feed_consumed_, left);
  } else if (status != Status::kOk) {
    in_.clear();  // after close_notify or a failure, nothing more is read
    in_consumed_ = 0;
  }
  feed_ = {};
  feed_consumed_ = 0;
  if (in_consumed_ == in_.size()) {
    in_.clear();
    in_consumed_ = 0;
  }
  if (buffered_input() > kMaxBufferedInput) {
    return Fail(Failure::kInputOverflow);
  }
  if (ticket_received_ && status != Status::kFailed) {
    ticket_received_ = false;
    OnSessionUpdate();
  }
  return status;
}

size_t Session::TakeInput(char* out, size_t cap) {
  size_t n = 0;
  if (in_consumed_ < in_.size()) {
    n = std::min(cap, in_.size() - in_consumed_);
    std::memcpy(out, in_.data() + in_consumed_, n);
    in_consumed_ += n;
  }
  if (n < cap && feed_consumed_ < feed_.size()) {
    const size_t take = std::min(cap - n, feed_.size() - feed_consumed_);
    std::memcpy(out + n, feed_.data() + feed_consumed_, take);
    feed_consumed_ += take;
    n += take;
  }
  return n;
}

void Session::PutOutput(std::string_view bytes) {
  if (sink_.fn != nullptr) {
    sink_.fn(sink_.ctx, bytes);
    return;
  }
  if (out_consumed_ >= kCompactAfter && out_consumed_ * 2 >= out_.size()) {
    out_.erase(0, out_consumed_);
    out_consumed_ = 0;
  }
  out_.append(bytes);
}

void Session::ConsumeOutput(size_t n) {
  out_consumed_ += std::min(n, out_.size() - out_consumed_);
  if (out_consumed_ == out_.size()) {
    out_.clear();
    out_consumed_ = 0;
  }
}

void Session::SetOutputSink(OutputSink sink) {
  if (sink.fn != nullptr && !PendingOutput().empty()) {
    sink.fn(sink.ctx, PendingOutput());
    ConsumeOutput(PendingOutput().size());
  }
  sink_ = sink;
}

void Session::ReleaseBuffers() {
  if (PendingOutput().empty()) {
    std::string().swap(out_);
    out_consumed_ = 0;
  }
  if (buffered_input() == 0) {
    std::string().swap(in_);
    in_consumed_ = 0;
  }
  if (early_plain_.empty()) {
    std::string().swap(early_plain_);
  }
}

Status Session::Write(std::string_view plaintext) {
  if (state_ == HandshakeState::kFailed) {
    return Status::kFailed;
  }
  if (shutdown_sent_) {
    return Status::kClosed;
  }
  if (plaintext.empty()) {
    return Status::kOk;
  }
  ERR_clear_error();
  size_t written = 0;
  if (state_ != HandshakeState::kDone) {
    if (!hello_done_) {
      early_plain_.append(plaintext);
      return Status::kOk;
    }
    // Answering early data: sent now, after the server's Finished (0.5-RTT data).
    const int rc = SSL_write_early_data(ssl_, plaintext.data(), plaintext.size(), &written);
    return rc == 1 ? Status::kOk : FailFromSsl(SSL_get_error(ssl_, rc));
  }
  const int rc = SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &written);
  return rc == 1 ? Status::kOk : FailFromSsl(SSL_get_error(ssl_, rc));
}

Status Session::Shutdown() {
  if (state_ == HandshakeState::kFailed) {
    return Status::kFailed;
  }
  if (shutdown_sent_) {
    return Status::kOk;
  }
  shutdown_sent_ = true;
  if (state_ != HandshakeState::kDone) {
    return Status::kOk;  // OpenSSL refuses close_notify mid-handshake; closing says enough
  }
  ERR_clear_error();
  SSL_shutdown(ssl_);  // 0 or 1: close_notify queued; no reply awaited
  ERR_clear_error();
  return Status::kOk;
}

std::string_view Session::version() const {
  return agreed() ? std::string_view(SSL_get_version(ssl_)) : std::string_view();
}

std::string_view Session::cipher() const {
  const SSL_CIPHER* cipher = agreed() ? SSL_get_current_cipher(ssl_) : nullptr;
  return cipher != nullptr ? std::string_view(SSL_CIPHER_get_name(cipher)) : std::string_view();
}

std::string_view Session::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  if (ssl_ != nullptr) {
    SSL_get0_alpn_selected(ssl_, &data, &len);
  }
  return data != nullptr ? std::string_view(reinterpret_cast<const char*>(data), len)
                         : std::string_view();
}

std::string_view Session::sni() const {
  const char* name =
      ssl_ != nullptr ? SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name) : nullptr;
  return name != nullptr ? std::string_view(name) : std::string_view();
}

bool Session::resumed() const { return agreed() && SSL_session_reused(ssl_) == 1; }

DownstreamSession::DownstreamSession(std::shared_ptr<const ServerContext> context)
    : Session(context != nullptr ? SSL_new(context->default_ctx()) : nullptr,
              context != nullptr ? &context->stats() : nullptr),
      context_(std::move(context)) {
  if (!failed()) {
    SSL_set_accept_state(ssl());
    if (context_->early_data()) {
      AllowEarlyData();
    }
  }
}

DownstreamSession::ClientCert DownstreamSession::client_cert() const {
  if (!handshake_done() || SSL_get0_peer_certificate(ssl()) == nullptr) {
    return ClientCert::kNone;
  }
  return SSL_get_verify_result(ssl()) == X509_V_OK ? ClientCert::kVerified : ClientCert::kFailed;
}

std::string_view DownstreamSession::client_cert_error() const {
  if (client_cert() != ClientCert::kFailed) {
    return {};
  }
  return X509_verify_cert_error_string(SSL_get_verify_result(ssl()));
}

namespace {

void AppendDer(X509* cert, std::vector<std::string>* out) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len > 0) {
    out->emplace_back(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  }
  OPENSSL_free(der);
}

}  // namespace

std::vector<std::string> DownstreamSession::ClientChainDer() const {
  std::vector<std::string> out;
  X509* leaf = handshake_done() ? SSL_get0_peer_certificate(ssl()) : nullptr;
  if (leaf == nullptr) {
    return out;
  }
  AppendDer(leaf, &out);
  // On the server side OpenSSL's peer chain leaves the leaf out: what follows it, as sent.
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl())) {
    for (int i = 0; i < sk_X509_num(chain); ++i) {
      AppendDer(sk_X509_value(chain, i), &out);
    }
  }
  return out;
}

std::string DownstreamSession::ClientSubject() const {
  X509* leaf = handshake_done() ? SSL_get0_peer_certificate(ssl()) : nullptr;
  if (leaf == nullptr) {
    return {};
  }
  BIO* bio = BIO_new(BIO_s_mem());
  std::string out;
  if (bio != nullptr &&
      X509_NAME_print_ex(bio, X509_get_subject_name(leaf), 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    out.assign(data, static_cast<size_t>(len));
  }
  BIO_free(bio);
  return out;
}

std::vector<std::string> DownstreamSession::ClientNames() const {
  std::vector<std::string> out;
  X509* leaf = handshake_done() ? SSL_get0_peer_certificate(ssl()) : nullptr;
  if (leaf == nullptr) {
    return out;
  }
  char cn[256];
  const int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn));
  if (n > 0) {
    out.emplace_back(cn, static_cast<size_t>(n));
  }
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
    if (name->type == GEN_DNS || name->type == GEN_EMAIL || name->type == GEN_URI) {
      const ASN1_IA5STRING* s = name->d.ia5;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (name->type == GEN_IPADD) {
      const int len = ASN1_STRING_length(name->d.ip);
      char text[INET6_ADDRSTRLEN] = {};
      if ((len == 4 || len == 16) &&
          inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(name->d.ip), text,
                    sizeof(text)) != nullptr) {
        out.emplace_back(text);
      }
    }
  }
  GENERAL_NAMES_free(sans);
  return out;
}

UpstreamSession::UpstreamSession(std::shared_ptr<const ClientContext> context,
                                 std::string_view host, std::shared_ptr<ClientSessionCache> cache)
    : Session(context != nullptr ? SSL_new(context->ctx()) : nullptr,
              context != nullptr ? &context->stats() : nullptr),
      context_(std::move(context)),
      cache_(std::move(cache)) {
  if (failed()) {
    return;
  }
  SSL_set_connect_state(ssl());
  if (!context_->Configure(ssl(), host)) {
    ERR_clear_error();
    Fail(Failure::kInternal);
    return;
  }
  if (cache_ != nullptr) {
    if (SSL_SESSION* previous = cache_->Take(); previous != nullptr) {
      SSL_set_session(ssl(), previous);
      SSL_SESSION_free(previous);
    }
  }
}

// TLS 1.3 delivers tickets after the handshake (kept when they arrive); TLS 1.2 within it
// (kept when it completes). A TLS 1.3 session without a ticket cannot be resumed.
void UpstreamSession::OnSessionUpdate() {
  if (cache_ == nullptr) {
    return;
  }
  SSL_SESSION* session = SSL_get1_session(ssl());
  if (session != nullptr && SSL_SESSION_get_protocol_version(session) >= TLS1_3_VERSION &&
      SSL_SESSION_has_ticket(session) != 1) {
    SSL_SESSION_free(session);
    return;
  }
  cache_->Store(session);
}

std::string_view UpstreamSession::verify_error() const {
  return ssl() != nullptr ? X509_verify_cert_error_string(SSL_get_verify_result(ssl())) : "";
}

}  // namespace torii::tls
