// http/codec/detail.h: helpers shared by the codec back ends (gzip.cc, brotli.cc, zstd.cc). Not
// part of the public interface; include http/codec/codec.h instead.
//
// Owns: MemoryMeter, the allocation hooks handed to zlib, libbrotli and libzstd so each
// encoder/decoder knows (and tests can pin) the memory its codec holds; Append, the one place
// that appends codec output to a caller's string; StreamEncoder and StreamDecoder, the state
// every encoder and every decoder shares.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "http/codec/codec.h"

namespace torii::http::codec::detail {

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

// The part every streaming encoder shares: the open → finished/failed state, the "nothing
// written since the last flush" shortcut, the byte totals and Reset()'s bookkeeping. A back end
// implements Run() (one zlib/brotli/zstd operation driven to completion, appending its output)
// and ResetCodec(); a false from either leaves the encoder failed until the next Reset().
class StreamEncoder : public Encoder {
 public:
  bool Write(std::string_view in, std::string* out) final {
    if (phase_ != Phase::kOpen) {
      return false;
    }
    if (in.empty()) {
      return true;
    }
    dirty_ = true;
    return Step(in, Op::kProcess, out);
  }

  bool Flush(std::string* out) final {
    if (phase_ != Phase::kOpen) {
      return false;
    }
    if (!dirty_) {
      return true;
    }
    dirty_ = false;
    return Step({}, Op::kFlush, out);
  }

  bool Finish(std::string* out) final {
    if (phase_ != Phase::kOpen || !Step({}, Op::kFinish, out)) {
      return false;
    }
    phase_ = Phase::kFinished;
    return true;
  }

  bool Reset() final {
    total_in_ = 0;
    total_out_ = 0;
    dirty_ = false;
    phase_ = ResetCodec() ? Phase::kOpen : Phase::kFailed;
    return phase_ == Phase::kOpen;
  }

  size_t total_in() const final { return total_in_; }
  size_t total_out() const final { return total_out_; }
  size_t memory_bytes() const final { return meter_.current(); }

 protected:
  // kProcess: consume `in`; kFlush: emit everything so far as a decodable prefix; kFinish:
  // end the stream (both with empty `in`).
  enum class Op : uint8_t { kProcess, kFlush, kFinish };
  virtual bool Run(std::string_view in, Op op, std::string* out) = 0;
  // Back to a fresh stream with the same settings.
  virtual bool ResetCodec() = 0;

  MemoryMeter meter_;  // hand it to the codec library's allocation hooks

 private:
  enum class Phase : uint8_t { kOpen, kFinished, kFailed };

  bool Step(std::string_view in, Op op, std::string* out) {
    const size_t before = out->size();
    if (!Run(in, op, out)) {
      phase_ = Phase::kFailed;
      return false;
    }
    total_out_ += out->size() - before;
    total_in_ += in.size();
    return true;
  }

  Phase phase_ = Phase::kOpen;
  bool dirty_ = false;  // bytes written since the last flush
  size_t total_in_ = 0;
  size_t total_out_ = 0;
};

// The part every streaming decoder shares: the open → finished/failed state and its errors, the
// byte totals, the output bound (`max_output`, zip bombs) and the truncation check. A back end
// implements Decode() (drive its library over `in`, handing each staged piece of output to
// Emit()) and complete() (the input so far ends exactly at the end of a stream).
class StreamDecoder : public Decoder {
 public:
  // `truncated`: the static error text of a stream cut short ("truncated gzip stream").
  StreamDecoder(uint64_t max_output, const char* truncated)
      : max_output_(max_output), truncated_(truncated) {}

  bool Write(std::string_view in, std::string* out) final {
    if (error_ != nullptr) {
      return false;
    }
    if (finished_) {
      return Fail("Write() after Finish()");
    }
    if (in.empty()) {
      return true;
    }
    total_in_ += in.size();
    return Decode(in, out);
  }

  bool Finish(std::string* /*out*/) final {
    if (error_ != nullptr) {
      return false;
    }
    if (finished_) {
      return Fail("Finish() called twice");
    }
    finished_ = true;
    if (total_in_ != 0 && !complete()) {
      return Fail(truncated_);
    }
    return true;
  }

  std::string_view error() const final { return error_ == nullptr ? "" : error_; }
  size_t total_in() const final { return total_in_; }
  size_t total_out() const final { return total_out_; }
  size_t memory_bytes() const final { return meter_.current(); }

 protected:
  virtual bool Decode(std::string_view in, std::string* out) = 0;
  virtual bool complete() const = 0;

  // How much output room to offer the library from a stage of `stage` bytes: at most one byte
  // more than the bound allows, so that going over is seen without ever appending past it.
  size_t Room(size_t stage) const {
    const uint64_t allowance = max_output_ - total_out_;
    return allowance >= stage ? stage : static_cast<size_t>(allowance) + 1;
  }
  // Appends the `n` bytes the library produced into the stage. Past the bound, only what fits
  // is kept (the caller then holds exactly max_output bytes) and the decoder fails; it fails
  // too when *out cannot grow.
  bool Emit(const void* stage, size_t n, std::string* out) {
    const uint64_t allowance = max_output_ - total_out_;
    const char* p = static_cast<const char*>(stage);
    if (n > allowance) {
      if (Append(out, p, static_cast<size_t>(allowance))) {
        total_out_ += allowance;
      }
      return Fail("decoded body exceeds max_output");
    }
    if (!Append(out, p, n)) {
      return Fail("out of memory");
    }
    total_out_ += n;
    return true;
  }
  // Fails the decoder for good with `why` (static text); always false.
  bool Fail(const char* why) {
    error_ = why;
    return false;
  }

  MemoryMeter meter_;  // hand it to the codec library's allocation hooks

 private:
  uint64_t max_output_;
  const char* truncated_;
  uint64_t total_out_ = 0;
  size_t total_in_ = 0;
  const char* error_ = nullptr;  // static text
  bool finished_ = false;        // Finish() was called
};

}  // namespace torii::http::codec::detail
