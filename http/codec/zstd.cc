// http/codec/zstd.cc: Zstandard Encoder and Decoder over libzstd (see zstd.h).
//
// Uses libzstd's "experimental" API (ZSTD_createCCtx_advanced / ZSTD_createDCtx_advanced for
// the allocation hooks, ZSTD_getCParams for the per-level defaults). Debian's shared libzstd
// exports those symbols; they have been stable since 1.4.
#define ZSTD_STATIC_LINKING_ONLY
#include "http/codec/zstd.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/codec/detail.h"

namespace torii::http::codec {
namespace {

// Encoder caps (see zstd.h for the measurements behind them).
constexpr unsigned kMaxWindowLog = 19;    // 512 KiB window
constexpr unsigned kMaxHashLog = 17;      // 512 KiB of hash table
constexpr unsigned kMaxChainLog = 17;     // 512 KiB of chain table / binary tree
constexpr int kDecoderMaxWindowLog = 23;  // RFC 9659: 8 MiB

ZSTD_customMem Hooks(detail::MemoryMeter* meter) {
  return ZSTD_customMem{&detail::MemoryMeter::Alloc, &detail::MemoryMeter::Free, meter};
}

class ZstdEncoder final : public detail::StreamEncoder {
 public:
  explicit ZstdEncoder(int level) : level_(level) {}
  ~ZstdEncoder() override { ZSTD_freeCCtx(cctx_); }
  ZstdEncoder(const ZstdEncoder&) = delete;
  ZstdEncoder& operator=(const ZstdEncoder&) = delete;

  bool Init() {
    cctx_ = ZSTD_createCCtx_advanced(Hooks(&meter_));
    if (cctx_ == nullptr) {
      return false;
    }
    // The level's own parameters for an input of unknown size, each capped. Setting a field
    // explicitly overrides what the level would choose for it.
    const ZSTD_compressionParameters p = ZSTD_getCParams(level_, 0, 0);
    return Set(ZSTD_c_compressionLevel, level_) &&
           Set(ZSTD_c_windowLog, static_cast<int>(std::min(p.windowLog, kMaxWindowLog))) &&
           Set(ZSTD_c_hashLog, static_cast<int>(std::min(p.hashLog, kMaxHashLog))) &&
           Set(ZSTD_c_chainLog, static_cast<int>(std::min(p.chainLog, kMaxChainLog))) &&
           Set(ZSTD_c_checksumFlag, 1);
  }

  Coding coding() const override { return Coding::kZstd; }

 private:
  // session_only keeps the parameters (level, window, checksum) and the allocated tables.
  bool ResetCodec() override {
    return !ZSTD_isError(ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_only));
  }

  bool Set(ZSTD_cParameter param, int value) {
    return !ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, param, value));
  }

  // e_continue: until all input is consumed and the output did not fill up (anything still
  // inside zstd comes out on a later call). e_flush / e_end: until zstd reports 0 bytes left.
  bool Run(std::string_view in, Op op, std::string* out) override {
    const ZSTD_EndDirective mode = op == Op::kProcess ? ZSTD_e_continue
                                   : op == Op::kFlush ? ZSTD_e_flush
                                                      : ZSTD_e_end;
    char stage[detail::kStageBytes];
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    for (;;) {
      ZSTD_outBuffer output{stage, sizeof(stage), 0};
      const size_t left = ZSTD_compressStream2(cctx_, &output, &input, mode);
      if (ZSTD_isError(left) || !detail::Append(out, stage, output.pos)) {
        return false;
      }
      const bool done =
          mode == ZSTD_e_continue ? input.pos == input.size && output.pos < output.size : left == 0;
      if (done) {
        return true;
      }
    }
  }

  int level_;
  ZSTD_CCtx* cctx_ = nullptr;
};

class ZstdDecoder final : public detail::StreamDecoder {
 public:
  explicit ZstdDecoder(uint64_t max_output) : StreamDecoder(max_output, "truncated zstd stream") {}
  ~ZstdDecoder() override { ZSTD_freeDCtx(dctx_); }
  ZstdDecoder(const ZstdDecoder&) = delete;
  ZstdDecoder& operator=(const ZstdDecoder&) = delete;

  bool Init() {
    dctx_ = ZSTD_createDCtx_advanced(Hooks(&meter_));
    return dctx_ != nullptr &&
           !ZSTD_isError(ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, kDecoderMaxWindowLog));
  }

 private:
  bool Decode(std::string_view in, std::string* out) override {
    char stage[detail::kStageBytes];
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    for (;;) {
      ZSTD_outBuffer output{stage, Room(sizeof(stage)), 0};
      const size_t consumed_before = input.pos;
      const size_t hint = ZSTD_decompressStream(dctx_, &output, &input);
      if (ZSTD_isError(hint)) {
        // ZSTD_getErrorName returns static text ("Data corruption detected", "Frame requires
        // too much memory for decoding", ...).
        return Fail(ZSTD_getErrorCode(hint) == ZSTD_error_memory_allocation
                        ? "out of memory"
                        : ZSTD_getErrorName(hint));
      }
      if (!Emit(stage, output.pos, out)) {
        return false;
      }
      // 0: a frame ended and everything it held is out. A call that only drains output of a
      // frame that has not ended, or finds nothing to do, leaves the flag as it was; one that
      // consumes the start of another frame clears it.
      if (hint == 0) {
        frame_done_ = true;
      } else if (input.pos != consumed_before) {
        frame_done_ = false;
      }
      // Stop once the input is used up and zstd has nothing more to give: it said so (0), or
      // it left room in the output. (Calling again after a 0 would start an empty next frame.)
      if (input.pos == input.size && (hint == 0 || output.pos < output.size)) {
        return true;
      }
    }
  }

  bool complete() const override { return frame_done_; }

  bool frame_done_ = false;
  ZSTD_DCtx* dctx_ = nullptr;
};

}  // namespace

std::unique_ptr<Encoder> MakeZstdEncoder(int level) {
  if (level < 1 || level > 19) {
    return nullptr;
  }
  auto encoder = std::make_unique<ZstdEncoder>(level);
  if (!encoder->Init()) {
    return nullptr;
  }
  return encoder;
}

std::unique_ptr<Decoder> MakeZstdDecoder(uint64_t max_output) {
  auto decoder = std::make_unique<ZstdDecoder>(max_output);
  if (!decoder->Init()) {
    return nullptr;
  }
  return decoder;
}

}  // namespace torii::http::codec
