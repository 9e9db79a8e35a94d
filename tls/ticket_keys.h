// tls/ticket_keys.h: the keys that encrypt stateless session tickets, shared by every worker
// (and, through a key file, by several processes), and the OpenSSL callback that uses them.
//
// Owns: TicketKeys, a small set of 80-byte keys (name 16 + HMAC-SHA256 32 + AES-256 32, the
// layout of nginx's ssl_session_ticket_key files). keys[0] encrypts new tickets; every key
// decrypts. Random keys rotate: Rotate(now) makes a fresh key current and keeps the previous
// one for decryption only, so a ticket issued two rotations ago is no longer decryptable and
// its client simply gets a full handshake (no error). Keys from a file never rotate: the
// operator replaces the file and reloads. Keys a fleet shares (Shared) never rotate here
// either: app/ticket_share.h installs the fleet's set with Replace as its slots turn.
//
// Concurrency: every handshake reads the keys, a timer rotates them a few times a day. The
// set lives in a seqlock over atomic words: readers never lock or write shared memory (a
// retry if they raced a rotation), the rare writer takes a mutex.
//
// Leaves out: the rotation timer (app/ calls Rotate), the session cache (tickets only; the
// server keeps no session state).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "tls/options.h"

struct ssl_ctx_st;

namespace torii::tls {

struct TicketKey {
  static constexpr size_t kNameSize = 16;
  static constexpr size_t kHmacSize = 32;
  static constexpr size_t kAesSize = 32;
  static constexpr size_t kSize = kNameSize + kHmacSize + kAesSize;  // 80
  std::array<uint8_t, kNameSize> name{};
  std::array<uint8_t, kHmacSize> hmac{};
  std::array<uint8_t, kAesSize> aes{};

  // The nginx layout: name, HMAC secret, AES key.
  static TicketKey FromBytes(std::span<const uint8_t, kSize> bytes);
};

class TicketKeys {
 public:
  static constexpr size_t kMaxKeys = 8;
  enum class Match : uint8_t {
    kNone,     // no key has this name: the ticket is ignored (full handshake)
    kCurrent,  // the encryption key: resume
    kOld,      // a decrypt-only key: resume and issue a fresh ticket under the current key
  };

  // One random key, rotated every `rotation_s` seconds by Rotate() (0 = never).
  // Fails only when the system's random generator does.
  static std::expected<std::shared_ptr<TicketKeys>, std::string> Generate(uint64_t rotation_s);
  // Fixed keys read from `path`: 1..kMaxKeys keys of 80 bytes each; the first encrypts. The
  // message names the file on error.
  static std::expected<std::shared_ptr<TicketKeys>, std::string> LoadFile(const std::string& path);
  // Fixed keys given directly (tests, or keys the app obtained elsewhere). 1..kMaxKeys.
  static std::expected<std::shared_ptr<TicketKeys>, std::string> FromKeys(
      std::span<const TicketKey> keys);
  // Keys shared by a fleet under `name`, turning every `slot_s` seconds: one random key of this
  // process's own until the fleet's are installed (Replace).
  static std::expected<std::shared_ptr<TicketKeys>, std::string> Shared(std::string name,
                                                                        uint64_t slot_s);
  // LoadFile when options name a key file, Shared when they share the keys, else
  // Generate(options.ticket_rotation_s).
  static std::expected<std::shared_ptr<TicketKeys>, std::string> FromOptions(
      const ServerOptions& options);

  ~TicketKeys();
  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  // Called by app/ from a timer (any thread, any period shorter than the interval). The
  // first call only records `now_ms`; later calls rotate once `rotation_s` has passed since
  // the last rotation. Returns true when it rotated. Never rotates fixed keys.
  bool Rotate(uint64_t now_ms);
  // Rotates at once (e.g. on reload). False for fixed keys or if no random bytes.
  bool RotateNow();
  bool rotates() const { return rotation_ms_ != 0; }
  uint64_t rotation_s() const { return rotation_ms_ / 1000; }
  // The fleet's name for these keys and how often its key turns (Shared), else empty and 0.
  const std::string& shared_name() const { return shared_name_; }
  uint64_t slot_s() const { return slot_s_; }
  // Installs `keys` (1..kMaxKeys; the first encrypts, all decrypt) in place of the set held,
  // any thread. False, and nothing changed, for another count.
  bool Replace(std::span<const TicketKey> keys);

  // Hot path, lock-free, any thread. Copies the current key into `out`.
  void EncryptionKey(TicketKey* out) const;
  // Finds the key named `name`; copies it into `out` unless kNone.
  Match Find(std::span<const uint8_t, TicketKey::kNameSize> name, TicketKey* out) const;
  size_t size() const;  // keys held now (1 or 2 when rotating)

  // Installs the AES-256-CBC + HMAC-SHA256 ticket callback on `ctx`, reading `keys` (which
  // must outlive `ctx`). Returns false on an OpenSSL failure.
  static bool Install(ssl_ctx_st* ctx, const TicketKeys* keys);

 private:
  static constexpr size_t kWords = TicketKey::kSize / 8;  // 10 words of 8 bytes per key
  TicketKeys(std::span<const TicketKey> keys, uint64_t rotation_ms);
  void Publish(std::span<const TicketKey> keys);  // writer side of the seqlock
  bool RotateLocked();
  TicketKey LoadKey(size_t index) const;  // inside a read section

  uint64_t rotation_ms_;
  std::string shared_name_;
  uint64_t slot_s_ = 0;
  std::mutex writer_mu_;  // serialises Rotate (readers never take it)
  uint64_t last_rotation_ms_ = 0;
  bool clock_started_ = false;
  std::atomic<uint64_t> seq_{0};  // odd while a writer is publishing
  std::atomic<uint32_t> count_{0};
  std::array<std::atomic<uint64_t>, kMaxKeys * kWords> words_{};
};

}  // namespace torii::tls
