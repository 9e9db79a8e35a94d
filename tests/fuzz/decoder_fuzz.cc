// tests/fuzz/decoder_fuzz.cc: the response decoders (decompress = true) on backend bytes.
//
// Input: one byte picking gzip, Brotli or zstd and a write size, then a compressed body. The
// oracle: never more than max_output bytes come out (decompression bombs), a decoder that
// refused stays refused, and no call hangs (libFuzzer's timeout). Real compressed seeds in the
// corpus (and an encoder round trip of the input itself) reach past the headers.
#include <memory>
#include <string>
#include <string_view>

#include "http/codec/codec.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "decoder_fuzz";
constexpr uint64_t kMaxOutput = 1 << 20;

}  // namespace

int FuzzDecoder(const uint8_t* data, size_t size) {
  using http::codec::Coding;
  Input in(data, size);
  const uint8_t choice = in.Byte();
  static constexpr Coding kCodings[] = {Coding::kGzip, Coding::kBrotli, Coding::kZstd};
  const Coding coding = kCodings[choice % 3];
  const size_t piece = 1 + (choice / 3) * 97;
  const std::string_view body = in.Rest();
  int checked = 0;
  // 1. The bytes as a compressed body.
  {
    std::unique_ptr<http::codec::Decoder> d = http::codec::MakeDecoder(coding, kMaxOutput);
    std::string out;
    bool ok = true;
    for (size_t off = 0; off < body.size() && ok; off += piece) {
      ok = d->Write(body.substr(off, piece), &out);
    }
    ok = ok && d->Finish(&out);
    if (out.size() > kMaxOutput) {
      Violation(kName, "decoded past max_output", std::to_string(out.size()));
    }
    if (!ok && d->Write("x", &out)) {
      Violation(kName, "a refused decoder accepted more input", d->error());
    }
    checked += ok ? 1 : 0;
  }
  // 2. The bytes compressed by our encoder decode back to themselves.
  {
    std::unique_ptr<http::codec::Encoder> e = http::codec::MakeEncoder(coding, 1);
    std::string packed;
    if (e->Write(body, &packed) && e->Finish(&packed)) {
      std::unique_ptr<http::codec::Decoder> d = http::codec::MakeDecoder(coding, kMaxOutput);
      std::string out;
      const bool ok = d->Write(packed, &out) && d->Finish(&out);
      if (body.size() <= kMaxOutput && (!ok || out != body)) {
        Violation(kName, "encoder output does not decode to its input", d->error());
      }
      ++checked;
    }
  }
  return checked;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzDecoder)
