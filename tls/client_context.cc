// tls/client_context.cc: the backend-side SSL_CTX, per-connection name checks, and the
// per-backend session cache fed by OpenSSL's new-session callback.
#include "tls/client_context.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/ossl.h"

namespace torii::tls {
namespace {

using Error = std::unexpected<std::string>;

bool IsIpLiteral(const std::string& host) {
  unsigned char addr[16];
  return inet_pton(AF_INET, host.c_str(), addr) == 1 ||
         inet_pton(AF_INET6, host.c_str(), addr) == 1;
}

}  // namespace

std::expected<std::shared_ptr<const ClientContext>, std::string> ClientContext::Create(
    const ClientOptions& options, std::shared_ptr<HandshakeStats> stats) {
  std::shared_ptr<ClientContext> self(new ClientContext());
  self->options_ = options;
  self->stats_ = stats != nullptr ? std::move(stats) : std::make_shared<HandshakeStats>();
  self->ctx_ = SSL_CTX_new_ex(nullptr, nullptr, TLS_client_method());
  SSL_CTX* ctx = self->ctx_;
  if (ctx == nullptr) {
    return Error("tls: cannot create a client SSL_CTX (" + ossl::TakeError() + ")");
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return Error("tls: cannot set the client's minimum version (" + ossl::TakeError() + ")");
  }
  if (options.verify) {
    const bool loaded = options.ca.empty()
                            ? SSL_CTX_set_default_verify_paths(ctx) == 1
                            : SSL_CTX_load_verify_locations(ctx, options.ca.c_str(), nullptr) == 1;
    if (!loaded) {
      return Error(options.ca.empty()
                       ? "tls: cannot load the system trust store (" + ossl::TakeError() + ")"
                       : "ca " + options.ca + ": " + ossl::TakeError());
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!options.cert.empty()) {
    // Our certificate for backends that ask for one (mutual TLS toward the pool).
    if (SSL_CTX_use_certificate_chain_file(ctx, options.cert.c_str()) != 1) {
      return Error("cert " + options.cert + ": " + ossl::TakeError());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, options.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      return Error("key " + options.key + ": " + ossl::TakeError());
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return Error("key " + options.key + " does not match cert " + options.cert);
    }
  }
  std::string wire;
  for (const std::string& proto : options.alpn) {
    if (proto.empty() || proto.size() > 255) {
      return Error("alpn: protocol name \"" + proto + "\" must be 1 to 255 bytes");
    }
    wire.push_back(static_cast<char>(proto.size()));
    wire.append(proto);
  }
  // SSL_CTX_set_alpn_protos returns 0 on success.
  if (!wire.empty() &&
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned>(wire.size())) != 0) {
    return Error("alpn: " + ossl::TakeError());
  }
  // UpstreamSession hands sessions to the backend's ClientSessionCache itself. OpenSSL's client
  // cache mode stays off: with it, OpenSSL marks a resumed TLS 1.3 session, and every ticket
  // later copied from it, not resumable (single-use tickets), so a pool would resume only
  // every other connection.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  return std::shared_ptr<const ClientContext>(std::move(self));
}

ClientContext::~ClientContext() { SSL_CTX_free(ctx_); }

bool ClientContext::Configure(ssl_st* ssl, std::string_view host) const {
  std::string name = !options_.sni.empty() ? options_.sni : std::string(host);
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);  // "[::1]"
  }
  if (name.empty()) {
    return !options_.verify;  // nothing to verify the certificate against
  }
  const bool ip = IsIpLiteral(name);
  if (!ip && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    return false;
  }
  if (!options_.verify) {
    return true;
  }
  return ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1
            : SSL_set1_host(ssl, name.c_str()) == 1;
}

ClientSessionCache::~ClientSessionCache() { SSL_SESSION_free(session_); }

void ClientSessionCache::Store(ssl_session_st* session) {
  if (session != nullptr && SSL_SESSION_is_resumable(session) != 1) {
    SSL_SESSION_free(session);
    session = nullptr;
  }
  ssl_session_st* old = nullptr;
  {
    std::lock_guard lock(mu_);
    old = session_;
    session_ = session;
  }
  SSL_SESSION_free(old);
}

ssl_session_st* ClientSessionCache::Take() const {
  std::lock_guard lock(mu_);
  if (session_ != nullptr) {
    SSL_SESSION_up_ref(session_);
  }
  return session_;
}

void ClientSessionCache::Clear() { Store(nullptr); }

bool ClientSessionCache::empty() const {
  std::lock_guard lock(mu_);
  return session_ == nullptr;
}

}  // namespace torii::tls
