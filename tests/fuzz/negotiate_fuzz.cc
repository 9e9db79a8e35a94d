// tests/fuzz/negotiate_fuzz.cc: Accept-Encoding negotiation on client bytes (BAD-INPUTS Z4).
//
// Input: one byte choosing the server's preference order, then an Accept-Encoding value. The
// oracle: the choice is identity or one of the server's codings, and a coding the value names
// with q=0 (or not at all, without "*") is never chosen; the value is parsed in bounded time
// whatever its commas and q-values (libFuzzer's timeout catches a blow-up).
#include <array>
#include <span>
#include <string>
#include <string_view>

#include "http/codec/codec.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

int FuzzNegotiate(const uint8_t* data, size_t size) {
  using http::codec::Coding;
  Input in(data, size);
  static constexpr std::array<std::array<Coding, 3>, 3> kOrders = {{
      {Coding::kBrotli, Coding::kZstd, Coding::kGzip},
      {Coding::kGzip, Coding::kBrotli, Coding::kZstd},
      {Coding::kZstd, Coding::kGzip, Coding::kBrotli},
  }};
  const uint8_t choice = in.Byte();
  const auto& order = kOrders[choice % 3];
  const size_t n = 1 + (choice / 3) % 3;
  const std::span<const Coding> server(order.data(), n);
  const std::string_view value = in.Rest();
  const Coding got = http::codec::Negotiate(value, server);
  if (got == Coding::kIdentity) {
    return 0;
  }
  bool offered = false;
  for (Coding c : server) {
    offered = offered || c == got;
  }
  if (!offered) {
    Violation("negotiate_fuzz", "chose a coding the server does not offer", value);
  }
  // Asked alone, the chosen coding must be acceptable to the client too.
  if (http::codec::Negotiate(value, std::span<const Coding>(&got, 1)) != got) {
    Violation("negotiate_fuzz", "chose a coding the client refuses", value);
  }
  return 1;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzNegotiate)
