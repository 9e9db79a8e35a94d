// ratelimit/hash.cc: the process key of the keyed hash (hash.h).
#include "ratelimit/hash.h"

#include <random>

namespace torii::ratelimit {
namespace detail {
namespace {

struct ProcessKey {
  uint64_t k0;
  uint64_t k1;
};

// Drawn once, on first use (thread-safe static initialisation). std::random_device reads the
// kernel's getrandom(); that one call at start-up is the only contact this library has with
// the system.
const ProcessKey& Key() {
  static const ProcessKey key = [] {
    std::random_device rd;
    auto draw = [&rd] { return (static_cast<uint64_t>(rd()) << 32) | rd(); };
    ProcessKey k{};
    k.k0 = draw();
    k.k1 = draw();
    return k;
  }();
  return key;
}

}  // namespace

uint64_t KeyedHash(const uint8_t* data, size_t len) {
  const ProcessKey& k = Key();
  return base::SipHash<1, 3>(k.k0, k.k1, data, len);
}

}  // namespace detail

uint64_t HashKey(std::string_view bytes) {
  return detail::KeyedHash(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace torii::ratelimit
