// http/basic_auth.cc: see basic_auth.h.
#include "http/basic_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>

#include "base/base64.h"
#include "base/text.h"

namespace torii::http {

std::optional<BasicCredentials> ParseBasicCredentials(std::string_view authorization,
                                                      std::string* storage) {
  const std::string_view value = base::TrimOws(authorization);
  const size_t sp = value.find(' ');
  if (sp == std::string_view::npos || !base::EqualsIgnoreCase(value.substr(0, sp), "basic")) {
    return std::nullopt;
  }
  const std::string_view token = base::TrimOws(value.substr(sp + 1));
  if (token.size() > 4096 || !base::DecodeBase64(token, storage)) {
    return std::nullopt;
  }
  const size_t colon = storage->find(':');
  if (colon == std::string::npos) {
    return std::nullopt;
  }
  for (const char c : *storage) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return std::nullopt;  // RFC 7617 §2: no control characters in user-id or password
    }
  }
  const std::string_view text(*storage);
  return BasicCredentials{text.substr(0, colon), text.substr(colon + 1)};
}

BasicAuth::BasicAuth(std::vector<std::pair<std::string, std::string>> users, std::string realm)
    : realm_(std::move(realm)) {
  for (auto& [name, hash] : users) {
    if (dummy_hash_.empty()) {
      dummy_hash_ = hash;
    }
    users_.emplace(std::move(name), std::move(hash));
  }
  challenge_ = "WWW-Authenticate: Basic realm=\"" + realm_ + "\", charset=\"UTF-8\"\r\n";
  if (RAND_bytes(secret_.data(), static_cast<int>(secret_.size())) != 1) {
    // Without a random key the remembered digests are still one-way hashes of the secrets;
    // only their unpredictability is lost.
    secret_.fill(0x5c);
  }
}

size_t BasicAuth::DigestHash::operator()(const Digest& d) const {
  size_t h;
  memcpy(&h, d.data(), sizeof(h));  // already uniformly distributed
  return h;
}

BasicAuth::Digest BasicAuth::Key(std::string_view user, std::string_view password) const {
  std::string msg;
  msg.reserve(user.size() + password.size() + 1);
  msg.append(user).push_back('\0');
  msg.append(password);
  Digest d{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), d.data(), &len);
  OPENSSL_cleanse(msg.data(), msg.size());
  return d;
}

bool BasicAuth::CheckHash(std::string_view password, const std::string& hash) {
  // crypt_data is 32 KiB: one per thread, reused.
  thread_local std::unique_ptr<crypt_data> data = std::make_unique<crypt_data>();
  memset(data.get(), 0, sizeof(crypt_data));
  const std::string phrase(password);
  const char* out = crypt_rn(phrase.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  return out != nullptr && strlen(out) == hash.size() &&
         CRYPTO_memcmp(out, hash.data(), hash.size()) == 0;
}

bool BasicAuth::Verify(std::string_view user, std::string_view password) {
  const Digest key = Key(user, password);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = remembered_.find(key); it != remembered_.end()) {
      return it->second;
    }
  }
  const auto it = users_.find(std::string(user));
  bool ok = false;
  if (it == users_.end()) {
    CheckHash(password, dummy_hash_);  // the same work as a known user: no timing oracle
  } else {
    ok = CheckHash(password, it->second);
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++hashes_;
  if (remembered_.size() >= kMaxRemembered) {
    remembered_.clear();  // bounded; the next requests pay one hash each again
  }
  remembered_.emplace(key, ok);
  return ok;
}

uint64_t BasicAuth::hashes_computed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hashes_;
}

}  // namespace torii::http
