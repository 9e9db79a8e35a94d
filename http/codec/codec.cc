// http/codec/codec.cc: levels and the MakeEncoder/MakeDecoder factories over the three back
// ends (gzip.h, brotli.h, zstd.h).
#include "http/codec/codec.h"

#include <cstdint>
#include <memory>

#include "http/codec/brotli.h"
#include "http/codec/gzip.h"
#include "http/codec/zstd.h"

namespace torii::http::codec {

int MinLevel(Coding coding) {
  switch (coding) {
    case Coding::kGzip:
    case Coding::kZstd:
      return 1;
    case Coding::kBrotli:
    case Coding::kIdentity:
      return 0;
  }
  return 0;
}

int MaxLevel(Coding coding) {
  switch (coding) {
    case Coding::kGzip:
      return 9;
    case Coding::kBrotli:
      return 11;
    case Coding::kZstd:
      return 19;
    case Coding::kIdentity:
      return 0;
  }
  return 0;
}

int DefaultLevel(Coding coding) {
  switch (coding) {
    case Coding::kGzip:
      return 5;
    case Coding::kBrotli:
      return 4;
    case Coding::kZstd:
      return 3;
    case Coding::kIdentity:
      return 0;
  }
  return 0;
}

std::unique_ptr<Encoder> MakeEncoder(Coding coding, int level) {
  switch (coding) {
    case Coding::kGzip:
      return MakeGzipEncoder(level);
    case Coding::kBrotli:
      return MakeBrotliEncoder(level);
    case Coding::kZstd:
      return MakeZstdEncoder(level);
    case Coding::kIdentity:
      return nullptr;
  }
  return nullptr;
}

std::unique_ptr<Decoder> MakeDecoder(Coding coding, uint64_t max_output) {
  switch (coding) {
    case Coding::kGzip:
      return MakeGzipDecoder(max_output);
    case Coding::kBrotli:
      return MakeBrotliDecoder(max_output);
    case Coding::kZstd:
      return MakeZstdDecoder(max_output);
    case Coding::kIdentity:
      return nullptr;
  }
  return nullptr;
}

}  // namespace torii::http::codec
