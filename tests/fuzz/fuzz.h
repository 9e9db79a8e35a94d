// tests/fuzz/fuzz.h: what every fuzz target shares.
//
// A target is one function `int torii::fuzz::FuzzX(const uint8_t*, size_t)` that feeds the bytes
// to one parser or decision and checks an oracle; a violation calls Violation(), which aborts
// (libFuzzer reports it, and the corpus replay in fuzz_test fails). The return value is the
// number of inputs the oracle had something to check (the replay asserts valid seeds do).
// Each target is built two ways: with clang and libFuzzer by scripts/fuzz.sh (TORII_LIBFUZZER
// defines LLVMFuzzerTestOneInput through TORII_FUZZ_ENTRY), and always inside fuzz_test, which
// replays tests/fuzz/corpus/<target>/ with deterministic mutations under ASan/UBSan.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace torii::fuzz {

[[noreturn]] inline void Violation(const char* target, const char* what, std::string_view detail) {
  std::fprintf(stderr, "%s: %s: %.*s\n", target, what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

// Reads fuzz input front to back: small integers for choices, then the rest as text.
class Input {
 public:
  Input(const uint8_t* data, size_t size)
      : p_(reinterpret_cast<const char*>(data)), n_(size) {}
  uint8_t Byte() {
    if (n_ == 0) {
      return 0;
    }
    --n_;
    return static_cast<uint8_t>(*p_++);
  }
  // Up to `max` bytes, ending early at `stop` (consumed, not returned).
  std::string_view Until(char stop, size_t max = ~size_t{0}) {
    size_t i = 0;
    while (i < n_ && i < max && p_[i] != stop) {
      ++i;
    }
    const std::string_view out(p_, i);
    const size_t used = i < n_ && p_[i] == stop ? i + 1 : i;
    p_ += used;
    n_ -= used;
    return out;
  }
  std::string_view Rest() {
    const std::string_view out(p_, n_);
    p_ += n_;
    n_ = 0;
    return out;
  }
  bool empty() const { return n_ == 0; }

 private:
  const char* p_;
  size_t n_;
};

}  // namespace torii::fuzz

#ifdef TORII_LIBFUZZER
#define TORII_FUZZ_ENTRY(fn)                                                   \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {    \
    torii::fuzz::fn(data, size);                                               \
    return 0;                                                                  \
  }
#else
#define TORII_FUZZ_ENTRY(fn)
#endif
