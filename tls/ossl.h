// tls/ossl.h: owning pointers for the OpenSSL objects tls/ creates, and OpenSSL's error queue
// as a message. Internal to tls/ (and its tests); nothing here is on the hot path.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace torii::tls::ossl {

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};

using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;

// The reason of the oldest error queued ("ee key too small"), then an empty queue. "unknown"
// when the queue is empty.
inline std::string TakeError() {
  const unsigned long err = ERR_peek_error();
  const char* reason = err != 0 ? ERR_reason_error_string(err) : nullptr;
  if (reason == nullptr && err != 0) {
    reason = ERR_lib_error_string(err);
  }
  std::string text = reason != nullptr ? reason : "unknown OpenSSL error";
  ERR_clear_error();
  return text;
}

}  // namespace torii::tls::ossl
