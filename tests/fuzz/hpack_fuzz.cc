// tests/fuzz/hpack_fuzz.cc: header blocks to torii's HPACK decoder (http/hpack.h), held to
// nghttp2's inflater (differential).
//
// Input: blocks, each one length byte then that many bytes (the last takes what is left), all
// decoded by one decoder, as a connection's blocks are. The oracle, block by block:
//  - torii takes the block exactly when nghttp2 does, and gives the same fields in order;
//  - after each block the dynamic table has the size nghttp2's has;
//  - after an error neither goes on (the connection would have ended).
#include <string>
#include <string_view>

#include "http/hpack.h"
#include "tests/fuzz/fuzz.h"
#include "tests/http/h2_test_util.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "hpack_fuzz";

}  // namespace

int FuzzHpack(const uint8_t* data, size_t size) {
  Input in(data, size);
  http::HpackDecoder ours;
  http::NgInflater ng;
  int checked = 0;
  while (!in.empty()) {
    const size_t n = in.Byte();
    std::string_view block = in.Rest();
    if (block.size() > n) {
      // Put back what follows this block.
      in = Input(reinterpret_cast<const uint8_t*>(block.data() + n), block.size() - n);
      block = block.substr(0, n);
    }
    http::CollectFields c;
    http::Fields want;
    const bool ok = ours.Decode(block, c);
    const bool ng_ok = ng.Decode(block, &want);
    if (ok != ng_ok) {
      Violation(kName,
                ok ? "torii took a block nghttp2 refused" : "torii refused a block nghttp2 took",
                ok ? std::string_view("") : std::string_view(ours.error()));
    }
    if (!ok) {
      break;
    }
    if (c.fields != want) {
      Violation(kName, "the fields differ from nghttp2's", block);
    }
    if (ours.table_size() != ng.table_size()) {
      Violation(kName, "the dynamic table's size differs from nghttp2's", block);
    }
    checked += c.fields.empty() ? 0 : 1;
  }
  return checked > 0 ? 1 : 0;
}

TORII_FUZZ_ENTRY(FuzzHpack)

}  // namespace torii::fuzz
