// tls/ticket_keys.cc: ticket keys in a seqlock, and the OpenSSL 3 ticket callback.
#include "tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

namespace torii::tls {
namespace {

constexpr size_t kIvSize = 16;  // AES block

// Fetched once for the process; OpenSSL 3 otherwise looks the algorithm up per use.
const EVP_CIPHER* Aes256Cbc() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return cipher;
}

int KeysIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

bool RandomKey(TicketKey* key) {
  return RAND_bytes(key->name.data(), key->name.size()) == 1 &&
         RAND_bytes(key->hmac.data(), key->hmac.size()) == 1 &&
         RAND_bytes(key->aes.data(), key->aes.size()) == 1;
}

bool SetHmacKey(EVP_MAC_CTX* mac, const TicketKey& key) {
  static char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<uint8_t*>(key.hmac.data()),
                                        key.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  return EVP_MAC_CTX_set_params(mac, params) == 1;
}

// SSL_CTX_set_tlsext_ticket_key_evp_cb's contract: when encrypting, fill `name` and `iv`,
// initialise both contexts and return 1 (-1 = fail the handshake). When decrypting, return 0
// for an unknown name (full handshake), 1 to resume, 2 to resume and renew the ticket.
int TicketCallback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                   EVP_MAC_CTX* mac, int encrypt) {
  const auto* keys =
      static_cast<const TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), KeysIndex()));
  if (keys == nullptr || Aes256Cbc() == nullptr) {
    return encrypt ? -1 : 0;
  }
  TicketKey key;
  int result;
  if (encrypt) {
    keys->EncryptionKey(&key);
    std::memcpy(name, key.name.data(), key.name.size());
    const bool ok = RAND_bytes(iv, kIvSize) == 1 &&
                    EVP_EncryptInit_ex2(cipher, Aes256Cbc(), key.aes.data(), iv, nullptr) == 1 &&
                    SetHmacKey(mac, key);
    result = ok ? 1 : -1;
  } else {
    const TicketKeys::Match match = keys->Find(
        std::span<const uint8_t, TicketKey::kNameSize>(name, TicketKey::kNameSize), &key);
    if (match == TicketKeys::Match::kNone) {
      result = 0;
    } else {
      const bool ok = SetHmacKey(mac, key) &&
                      EVP_DecryptInit_ex2(cipher, Aes256Cbc(), key.aes.data(), iv, nullptr) == 1;
      // 2 = resume and issue a fresh ticket. Always under TLS 1.3: clients use a ticket once
      // (RFC 8446 §C.4; OpenSSL's client marks a resumed session spent), so without a new
      // ticket on every resumption they fall back to a full handshake every other connection.
      // Under TLS 1.2, only when the ticket was sealed with the previous key.
      const bool renew = match != TicketKeys::Match::kCurrent || SSL_version(ssl) >= TLS1_3_VERSION;
      result = !ok ? -1 : renew ? 2 : 1;
    }
  }
  OPENSSL_cleanse(&key, sizeof(key));
  return result;
}

}  // namespace

TicketKey TicketKey::FromBytes(std::span<const uint8_t, kSize> bytes) {
  TicketKey key;
  std::memcpy(key.name.data(), bytes.data(), kNameSize);
  std::memcpy(key.hmac.data(), bytes.data() + kNameSize, kHmacSize);
  std::memcpy(key.aes.data(), bytes.data() + kNameSize + kHmacSize, kAesSize);
  return key;
}

TicketKeys::TicketKeys(std::span<const TicketKey> keys, uint64_t rotation_ms)
    : rotation_ms_(rotation_ms) {
  Publish(keys);
}

TicketKeys::~TicketKeys() {
  for (auto& word : words_) {
    word.store(0, std::memory_order_relaxed);
  }
}

std::expected<std::shared_ptr<TicketKeys>, std::string> TicketKeys::Generate(uint64_t rotation_s) {
  TicketKey key;
  if (!RandomKey(&key)) {
    return std::unexpected("session tickets: no random bytes for a ticket key");
  }
  auto keys = std::shared_ptr<TicketKeys>(new TicketKeys({&key, 1}, rotation_s * 1000));
  OPENSSL_cleanse(&key, sizeof(key));
  return keys;
}

std::expected<std::shared_ptr<TicketKeys>, std::string> TicketKeys::FromKeys(
    std::span<const TicketKey> keys) {
  if (keys.empty() || keys.size() > kMaxKeys) {
    return std::unexpected("session tickets: 1 to " + std::to_string(kMaxKeys) +
                           " keys expected, got " + std::to_string(keys.size()));
  }
  return std::shared_ptr<TicketKeys>(new TicketKeys(keys, 0));
}

std::expected<std::shared_ptr<TicketKeys>, std::string> TicketKeys::LoadFile(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::unexpected("session_ticket_key_file " + path + ": cannot open");
  }
  std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (bytes.empty() || bytes.size() % TicketKey::kSize != 0 ||
      bytes.size() / TicketKey::kSize > kMaxKeys) {
    return std::unexpected("session_ticket_key_file " + path + ": " + std::to_string(bytes.size()) +
                           " bytes, expected 1 to " + std::to_string(kMaxKeys) +
                           " keys of 80 bytes (name 16 + HMAC 32 + AES 32)");
  }
  std::vector<TicketKey> keys;
  for (size_t off = 0; off < bytes.size(); off += TicketKey::kSize) {
    keys.push_back(TicketKey::FromBytes(
        std::span<const uint8_t, TicketKey::kSize>(bytes.data() + off, TicketKey::kSize)));
  }
  auto result = FromKeys(keys);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  OPENSSL_cleanse(keys.data(), keys.size() * sizeof(TicketKey));
  return result;
}

std::expected<std::shared_ptr<TicketKeys>, std::string> TicketKeys::Shared(std::string name,
                                                                           uint64_t slot_s) {
  auto keys = Generate(0);
  if (keys) {
    (*keys)->shared_name_ = std::move(name);
    (*keys)->slot_s_ = slot_s;
  }
  return keys;
}

std::expected<std::shared_ptr<TicketKeys>, std::string> TicketKeys::FromOptions(
    const ServerOptions& options) {
  if (!options.session_ticket_key_file.empty()) {
    return LoadFile(options.session_ticket_key_file);
  }
  if (!options.shared_ticket_keys.empty()) {
    return Shared(options.shared_ticket_keys, options.ticket_rotation_s);
  }
  return Generate(options.ticket_rotation_s);
}

bool TicketKeys::Replace(std::span<const TicketKey> keys) {
  if (keys.empty() || keys.size() > kMaxKeys) {
    return false;
  }
  std::lock_guard lock(writer_mu_);
  Publish(keys);
  return true;
}

// Writer: seq odd, words, seq even (Boehm, "Can seqlocks get along with programming language
// memory models?"). Readers that overlap see an odd or changed seq and retry.
void TicketKeys::Publish(std::span<const TicketKey> keys) {
  const uint64_t seq = seq_.load(std::memory_order_relaxed);
  seq_.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  count_.store(static_cast<uint32_t>(keys.size()), std::memory_order_relaxed);
  for (size_t i = 0; i < keys.size(); ++i) {
    uint64_t words[kWords];
    std::memcpy(words, keys[i].name.data(), TicketKey::kNameSize);
    std::memcpy(reinterpret_cast<char*>(words) + TicketKey::kNameSize, keys[i].hmac.data(),
                TicketKey::kHmacSize);
    std::memcpy(reinterpret_cast<char*>(words) + TicketKey::kNameSize + TicketKey::kHmacSize,
                keys[i].aes.data(), TicketKey::kAesSize);
    for (size_t w = 0; w < kWords; ++w) {
      words_[i * kWords + w].store(words[w], std::memory_order_relaxed);
    }
    OPENSSL_cleanse(words, sizeof(words));
  }
  seq_.store(seq + 2, std::memory_order_release);
}

TicketKey TicketKeys::LoadKey(size_t index) const {
  uint64_t words[kWords];
  for (size_t w = 0; w < kWords; ++w) {
    words[w] = words_[index * kWords + w].load(std::memory_order_relaxed);
  }
  TicketKey key;
  std::memcpy(key.name.data(), words, TicketKey::kNameSize);
  std::memcpy(key.hmac.data(), reinterpret_cast<char*>(words) + TicketKey::kNameSize,
              TicketKey::kHmacSize);
  std::memcpy(key.aes.data(),
              reinterpret_cast<char*>(words) + TicketKey::kNameSize + TicketKey::kHmacSize,
              TicketKey::kAesSize);
  OPENSSL_cleanse(words, sizeof(words));
  return key;
}

void TicketKeys::EncryptionKey(TicketKey* out) const {
  while (true) {
    const uint64_t before = seq_.load(std::memory_order_acquire);
    if ((before & 1) == 0) {
      *out = LoadKey(0);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) == before) {
        return;
      }
    }
  }
}

TicketKeys::Match TicketKeys::Find(std::span<const uint8_t, TicketKey::kNameSize> name,
                                   TicketKey* out) const {
  while (true) {
    const uint64_t before = seq_.load(std::memory_order_acquire);
    if ((before & 1) != 0) {
      continue;
    }
    Match match = Match::kNone;
    const size_t count = std::min<size_t>(count_.load(std::memory_order_relaxed), kMaxKeys);
    for (size_t i = 0; i < count && match == Match::kNone; ++i) {
      *out = LoadKey(i);
      if (std::memcmp(out->name.data(), name.data(), TicketKey::kNameSize) == 0) {
        match = i == 0 ? Match::kCurrent : Match::kOld;
      }
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (seq_.load(std::memory_order_relaxed) == before) {
      return match;
    }
  }
}

size_t TicketKeys::size() const { return count_.load(std::memory_order_relaxed); }

// Caller holds writer_mu_ (the only writer of the words, so reading key 0 needs no seqlock).
bool TicketKeys::RotateLocked() {
  TicketKey keys[2];
  if (!RandomKey(&keys[0])) {
    return false;  // keep serving the old keys; the next tick tries again
  }
  keys[1] = LoadKey(0);
  Publish(keys);
  OPENSSL_cleanse(keys, sizeof(keys));
  return true;
}

bool TicketKeys::RotateNow() {
  if (!rotates()) {
    return false;
  }
  std::lock_guard lock(writer_mu_);
  return RotateLocked();
}

bool TicketKeys::Rotate(uint64_t now_ms) {
  if (!rotates()) {
    return false;
  }
  std::lock_guard lock(writer_mu_);
  if (!clock_started_) {
    clock_started_ = true;
    last_rotation_ms_ = now_ms;
    return false;
  }
  if (now_ms < last_rotation_ms_ + rotation_ms_) {
    return false;
  }
  last_rotation_ms_ = now_ms;
  return RotateLocked();
}

bool TicketKeys::Install(ssl_ctx_st* ctx, const TicketKeys* keys) {
  return KeysIndex() >= 0 &&
         SSL_CTX_set_ex_data(ctx, KeysIndex(), const_cast<TicketKeys*>(keys)) == 1 &&
         SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, TicketCallback) == 1;
}

}  // namespace torii::tls
