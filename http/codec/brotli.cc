// http/codec/brotli.cc: Brotli Encoder and Decoder over libbrotli (see brotli.h).
#include "http/codec/brotli.h"

#include <brotli/decode.h>
#include <brotli/encode.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/codec/detail.h"

namespace torii::http::codec {
namespace {

constexpr uint32_t kLgWin = 16;  // see brotli.h

class BrotliEncoder final : public detail::StreamEncoder {
 public:
  explicit BrotliEncoder(int level) : level_(level) {}
  ~BrotliEncoder() override { Destroy(); }
  BrotliEncoder(const BrotliEncoder&) = delete;
  BrotliEncoder& operator=(const BrotliEncoder&) = delete;

  bool Init() {
    state_ = BrotliEncoderCreateInstance(&detail::MemoryMeter::Alloc, &detail::MemoryMeter::Free,
                                         &meter_);
    if (state_ == nullptr ||
        !BrotliEncoderSetParameter(state_, BROTLI_PARAM_QUALITY, static_cast<uint32_t>(level_)) ||
        !BrotliEncoderSetParameter(state_, BROTLI_PARAM_LGWIN, kLgWin)) {
      Destroy();
      return false;
    }
    return true;
  }

  Coding coding() const override { return Coding::kBrotli; }

 private:
  // libbrotli 1.0.9 cannot reset an encoder: start over with a fresh instance.
  bool ResetCodec() override {
    Destroy();
    return Init();
  }

  void Destroy() {
    if (state_ != nullptr) {
      BrotliEncoderDestroyInstance(state_);
      state_ = nullptr;
    }
  }

  // Runs the operation over `in` until the input is consumed and the operation has completed
  // (brotli's contract: repeat a FLUSH or FINISH until there is no more output), appending the
  // output.
  bool Run(std::string_view in, Op op, std::string* out) override {
    const BrotliEncoderOperation operation = op == Op::kProcess ? BROTLI_OPERATION_PROCESS
                                             : op == Op::kFlush ? BROTLI_OPERATION_FLUSH
                                                                : BROTLI_OPERATION_FINISH;
    uint8_t stage[detail::kStageBytes];
    size_t avail_in = in.size();
    const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
    for (;;) {
      size_t avail_out = sizeof(stage);
      uint8_t* next_out = stage;
      const bool ok = BrotliEncoderCompressStream(state_, operation, &avail_in, &next_in,
                                                  &avail_out, &next_out, nullptr) == BROTLI_TRUE;
      const size_t produced = sizeof(stage) - avail_out;
      if (!ok || !detail::Append(out, reinterpret_cast<const char*>(stage), produced)) {
        return false;
      }
      const bool done = op == Op::kFinish
                            ? BrotliEncoderIsFinished(state_) == BROTLI_TRUE
                            : avail_in == 0 && BrotliEncoderHasMoreOutput(state_) == BROTLI_FALSE;
      if (done) {
        return true;
      }
    }
  }

  int level_;
  BrotliEncoderState* state_ = nullptr;
};

class BrotliDecoder final : public detail::StreamDecoder {
 public:
  explicit BrotliDecoder(uint64_t max_output)
      : StreamDecoder(max_output, "truncated brotli stream") {}
  ~BrotliDecoder() override {
    if (state_ != nullptr) {
      BrotliDecoderDestroyInstance(state_);
    }
  }
  BrotliDecoder(const BrotliDecoder&) = delete;
  BrotliDecoder& operator=(const BrotliDecoder&) = delete;

  bool Init() {
    state_ = BrotliDecoderCreateInstance(&detail::MemoryMeter::Alloc, &detail::MemoryMeter::Free,
                                         &meter_);
    return state_ != nullptr;
  }

 private:
  bool Decode(std::string_view in, std::string* out) override {
    if (done_) {
      return Fail("bytes after the end of the brotli stream");
    }
    uint8_t stage[detail::kStageBytes];
    size_t avail_in = in.size();
    const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
    for (;;) {
      const size_t room = Room(sizeof(stage));
      size_t avail_out = room;
      uint8_t* next_out = stage;
      const BrotliDecoderResult result = BrotliDecoderDecompressStream(
          state_, &avail_in, &next_in, &avail_out, &next_out, nullptr);
      if (!Emit(stage, room - avail_out, out)) {
        return false;
      }
      switch (result) {
        case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
          continue;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
          // All input is consumed, but libbrotli says so even when the output it was given
          // filled up exactly and more is waiting: drain that first.
          if (BrotliDecoderHasMoreOutput(state_) == BROTLI_TRUE) {
            continue;
          }
          return true;
        case BROTLI_DECODER_RESULT_SUCCESS:
          done_ = true;
          if (avail_in != 0) {
            return Fail("bytes after the end of the brotli stream");
          }
          return true;
        case BROTLI_DECODER_RESULT_ERROR:
        default: {
          // Codes -30..-21 are allocation failures; the other errors are about the input.
          const int code = BrotliDecoderGetErrorCode(state_);
          return Fail(code <= -21 && code >= -30 ? "out of memory" : "corrupt brotli data");
        }
      }
    }
  }

  bool complete() const override { return done_; }

  bool done_ = false;  // the stream's last meta-block was decoded
  BrotliDecoderState* state_ = nullptr;
};

}  // namespace

std::unique_ptr<Encoder> MakeBrotliEncoder(int level) {
  if (level < BROTLI_MIN_QUALITY || level > BROTLI_MAX_QUALITY) {
    return nullptr;
  }
  auto encoder = std::make_unique<BrotliEncoder>(level);
  if (!encoder->Init()) {
    return nullptr;
  }
  return encoder;
}

std::unique_ptr<Decoder> MakeBrotliDecoder(uint64_t max_output) {
  auto decoder = std::make_unique<BrotliDecoder>(max_output);
  if (!decoder->Init()) {
    return nullptr;
  }
  return decoder;
}

}  // namespace torii::http::codec
