// http/codec/detail.h: helpers shared by the codec back ends (gzip.cc, brotli.cc, zstd.cc). Not
// part of the public interface; include http/codec/codec.h instead.
//
// Owns: MemoryMeter, the allocation hooks handed to zlib, libbrotli and libzstd so each
// encoder/decoder knows (and tests can pin) the memory its codec holds; Append, the one place
// that appends codec output to a caller's string.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <string>

namespace torii::codec::detail {

// Counts the bytes a C codec library allocates through it. The libraries' free callbacks do
// not pass the size, so each block carries a 16-byte header holding it (16 keeps max_align_t
// alignment). A failed malloc returns nullptr, which every library turns into an error code.
class MemoryMeter {
 public:
  static void* Alloc(void* opaque, size_t size) {
    auto* meter = static_cast<MemoryMeter*>(opaque);
    if (size > SIZE_MAX - kHeader) {
      return nullptr;
    }
    void* block = std::malloc(size + kHeader);
    if (block == nullptr) {
      return nullptr;
    }
    *static_cast<size_t*>(block) = size;
    meter->current_ += size;
    meter->peak_ = std::max(meter->peak_, meter->current_);
    return static_cast<char*>(block) + kHeader;
  }
  static void Free(void* opaque, void* p) {
    if (p == nullptr) {
      return;
    }
    auto* meter = static_cast<MemoryMeter*>(opaque);
    void* block = static_cast<char*>(p) - kHeader;
    meter->current_ -= *static_cast<size_t*>(block);
    std::free(block);
  }

  size_t current() const { return current_; }
  size_t peak() const { return peak_; }

 private:
  static constexpr size_t kHeader = 16;
  size_t current_ = 0;
  size_t peak_ = 0;
};

// The codecs write into a stack buffer of this size, and what they produce is appended to the
// caller's string: one memcpy of the (compressed, so smaller) output, in exchange for never
// growing the caller's string ahead of output that may not come (a Write() often produces
// nothing) and a simple bound on a decoder's output (zip bombs).
inline constexpr size_t kStageBytes = 32 * 1024;

// out->append(p, n) that reports failure to grow (bad_alloc, length_error) as false instead of
// throwing; *out is unchanged then.
inline bool Append(std::string* out, const char* p, size_t n) {
  if (n == 0) {
    return true;
  }
  try {
    out->append(p, n);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

}  // namespace torii::codec::detail
