// tls/early_data.cc: see early_data.h.
#include "tls/early_data.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <cstring>

namespace torii::tls {

size_t EarlyDataGuard::IdHash::operator()(const Id& id) const {
  size_t h = 0;
  std::memcpy(&h, id.data(), sizeof(h));  // a digest already: its bytes are uniform
  return h;
}

bool EarlyDataGuard::FirstUse(const Id& id, uint64_t now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (now_s >= current_since_s_ + kWindowS) {
    // Entries older than the window go; those of the last window stay one more.
    previous_.clear();
    if (now_s < current_since_s_ + 2 * kWindowS) {
      previous_.swap(current_);
    } else {
      current_.clear();
    }
    current_since_s_ = now_s;
  }
  if (current_.contains(id) || previous_.contains(id)) {
    replays_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (current_.size() >= kMaxEntries) {
    return false;
  }
  current_.insert(id);
  return true;
}

size_t EarlyDataGuard::entries() {
  std::lock_guard<std::mutex> lock(mu_);
  return current_.size() + previous_.size();
}

bool EarlyDataGuard::TicketId(ssl_st* ssl, Id* id) {
  const SSL_SESSION* session = SSL_get0_session(ssl);
  if (session == nullptr || SSL_session_reused(ssl) != 1) {
    return false;
  }
  unsigned char secret[EVP_MAX_MD_SIZE];
  const size_t len = SSL_SESSION_get_master_key(session, secret, sizeof(secret));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  const bool ok = len > 0 &&
                  EVP_Digest(secret, len, digest, &digest_len, EVP_sha256(), nullptr) == 1 &&
                  digest_len >= id->size();
  OPENSSL_cleanse(secret, sizeof(secret));
  if (ok) {
    std::memcpy(id->data(), digest, id->size());
  }
  return ok;
}

}  // namespace torii::tls
