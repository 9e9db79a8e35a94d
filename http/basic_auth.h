// http/basic_auth.h: HTTP Basic authentication per route (RFC 7617) against an htpasswd file.
//
// `[[route]] auth = { users_file = "htpasswd", realm = "...", forward = false }`: a request
// without valid credentials gets 401 with `WWW-Authenticate: Basic realm="...",
// charset="UTF-8"`; with them it goes on, the user is logged, and the Authorization field is
// removed before the backend unless `forward = true`. The password is never logged.
//
// Hashes are checked with libcrypt (libxcrypt): bcrypt ($2b$, $2y$, $2a$), SHA-crypt ($5$,
// $6$) and yescrypt ($y$); the loader refuses the weak or foreign ones (DES, MD5-crypt,
// Apache's $apr1$, {SHA}, plain text). These hashes are slow on purpose (bcrypt cost 10:
// tens of milliseconds), and they run on the worker's thread as nginx's auth_basic does, so
// each result is remembered: a keyed SHA-256 of user and password (never the password
// itself) maps to the verdict, shared by every worker, so a client that sends the same
// credentials again costs one lookup. What is not remembered (a new password guess) costs a
// hash: pair an auth route with a rate_limit to bound that.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace torii::http {

struct BasicCredentials {
  std::string_view user;
  std::string_view password;
};

// The credentials of one `Authorization: Basic <base64>` value, decoded into `*storage`
// (views into it); nullopt when the scheme is not Basic, the base64 is malformed (RFC 4648,
// padding required) or the decoded text has no ':' or a control character.
std::optional<BasicCredentials> ParseBasicCredentials(std::string_view authorization,
                                                      std::string* storage);

// One route's users (immutable after construction) and the verdicts remembered for them.
class BasicAuth {
 public:
  // `users`: (name, hash) pairs, hashes already checked by the config loader.
  BasicAuth(std::vector<std::pair<std::string, std::string>> users, std::string realm);
  BasicAuth(const BasicAuth&) = delete;
  BasicAuth& operator=(const BasicAuth&) = delete;

  // True when `password` is `user`'s. An unknown user costs a hash too (no timing oracle).
  bool Verify(std::string_view user, std::string_view password);
  const std::string& realm() const { return realm_; }
  // "WWW-Authenticate: Basic realm=\"...\", charset=\"UTF-8\"\r\n" for 401 replies.
  const std::string& challenge() const { return challenge_; }
  // Hashes computed so far (tests: a remembered verdict computes none).
  uint64_t hashes_computed() const;

 private:
  using Digest = std::array<uint8_t, 32>;
  struct DigestHash {
    size_t operator()(const Digest& d) const;
  };
  Digest Key(std::string_view user, std::string_view password) const;
  static bool CheckHash(std::string_view password, const std::string& hash);

  std::unordered_map<std::string, std::string> users_;
  std::string realm_;
  std::string challenge_;
  std::string dummy_hash_;  // an existing user's, for unknown names
  std::array<uint8_t, 32> secret_{};
  static constexpr size_t kMaxRemembered = 4096;
  mutable std::mutex mu_;
  std::unordered_map<Digest, bool, DigestHash> remembered_;
  uint64_t hashes_ = 0;
};

}  // namespace torii::http
