// http/codec/gzip.cc: gzip Encoders over ISA-L (levels 1-3) and zlib (4-9), the Decoder over
// zlib (see gzip.h).
#include "http/codec/gzip.h"

#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/codec/detail.h"

namespace torii::http::codec {
namespace {

constexpr int kWindowBits = 15;
constexpr int kGzipWrapper = 16;  // windowBits + 16: write a gzip header and trailer
constexpr int kAutoWrapper = 32;  // windowBits + 32: accept a gzip or a zlib header
constexpr int kMemLevel = 8;
// zlib counts input in uInt (32 bits); larger inputs go in slices.
constexpr size_t kMaxSlice = size_t{1} << 30;

voidpf ZAlloc(voidpf opaque, uInt items, uInt size) {
  return detail::MemoryMeter::Alloc(opaque, size_t{items} * size);
}
void ZFree(voidpf opaque, voidpf p) { detail::MemoryMeter::Free(opaque, p); }

class GzipEncoder final : public detail::StreamEncoder {
 public:
  explicit GzipEncoder(int level) : level_(level) {
    zs_.zalloc = &ZAlloc;
    zs_.zfree = &ZFree;
    zs_.opaque = &meter_;
  }
  ~GzipEncoder() override {
    if (ready_) {
      deflateEnd(&zs_);
    }
  }
  GzipEncoder(const GzipEncoder&) = delete;
  GzipEncoder& operator=(const GzipEncoder&) = delete;

  bool Init() {
    ready_ = deflateInit2(&zs_, level_, Z_DEFLATED, kWindowBits + kGzipWrapper, kMemLevel,
                          Z_DEFAULT_STRATEGY) == Z_OK;
    return ready_;
  }

  Coding coding() const override { return Coding::kGzip; }

 private:
  bool ResetCodec() override { return deflateReset(&zs_) == Z_OK; }

  // Feeds `in` with Z_NO_FLUSH, Z_SYNC_FLUSH or Z_FINISH (the last two only with empty
  // input) and appends everything deflate produces until it has consumed all input and
  // completed the flush.
  bool Run(std::string_view in, Op op, std::string* out) override {
    const int flush = op == Op::kProcess ? Z_NO_FLUSH : op == Op::kFlush ? Z_SYNC_FLUSH : Z_FINISH;
    char stage[detail::kStageBytes];
    const char* next = in.data();
    size_t left = in.size();
    zs_.avail_in = 0;
    for (;;) {
      if (zs_.avail_in == 0 && left > 0) {
        const size_t slice = std::min(left, kMaxSlice);
        zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(next));
        zs_.avail_in = static_cast<uInt>(slice);
        next += slice;
        left -= slice;
      }
      zs_.next_out = reinterpret_cast<Bytef*>(stage);
      zs_.avail_out = sizeof(stage);
      const int rc = deflate(&zs_, flush);
      const size_t produced = sizeof(stage) - zs_.avail_out;
      // Z_BUF_ERROR only means "no progress possible", which the checks below rule out
      // before it could repeat; anything else but Z_OK / Z_STREAM_END is a broken state.
      if ((rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) ||
          !detail::Append(out, stage, produced)) {
        return false;
      }
      if (flush == Z_FINISH) {
        if (rc == Z_STREAM_END) {
          break;
        }
        if (rc == Z_BUF_ERROR && produced == 0) {  // cannot happen with room to write
          return false;
        }
        continue;
      }
      // Done once all input is in and deflate stopped with room to spare (zlib's contract:
      // avail_out == 0 means "call again", for Z_SYNC_FLUSH too).
      if (zs_.avail_in == 0 && left == 0 && zs_.avail_out != 0) {
        break;
      }
    }
    return true;
  }

  int level_;
  bool ready_ = false;
  z_stream zs_{};
};

// Levels 1-3: ISA-L's igzip, several times faster than zlib at a similar ratio. Its stream
// state (~80 KiB, with the history window) and level buffer are allocated through the meter,
// so memory_bytes() counts them; the level buffers are ISA-L's "medium" (level 1) and "small"
// (2, 3) sizes, which keep an encoder under zlib's 262 KiB.
class IsalGzipEncoder final : public detail::StreamEncoder {
 public:
  explicit IsalGzipEncoder(int level)
      : level_(level),
        level_buf_size_(level == 1   ? ISAL_DEF_LVL1_MEDIUM
                        : level == 2 ? ISAL_DEF_LVL2_SMALL
                                     : ISAL_DEF_LVL3_SMALL) {}
  ~IsalGzipEncoder() override {
    detail::MemoryMeter::Free(&meter_, level_buf_);
    detail::MemoryMeter::Free(&meter_, stream_);
  }
  IsalGzipEncoder(const IsalGzipEncoder&) = delete;
  IsalGzipEncoder& operator=(const IsalGzipEncoder&) = delete;

  bool Init() {
    stream_ = static_cast<isal_zstream*>(detail::MemoryMeter::Alloc(&meter_, sizeof(isal_zstream)));
    level_buf_ = static_cast<uint8_t*>(detail::MemoryMeter::Alloc(&meter_, level_buf_size_));
    return stream_ != nullptr && level_buf_ != nullptr && ResetCodec();
  }

  Coding coding() const override { return Coding::kGzip; }

 private:
  bool ResetCodec() override {
    isal_deflate_init(stream_);
    stream_->level = static_cast<uint32_t>(level_);
    stream_->level_buf = level_buf_;
    stream_->level_buf_size = static_cast<uint32_t>(level_buf_size_);
    stream_->gzip_flag = IGZIP_GZIP;
    return true;
  }

  // isal_deflate returns when its input is used up or its output is full: a call that leaves
  // room in the output has taken everything, flush included; the end of the stream is its
  // own state (trailer written).
  bool Run(std::string_view in, Op op, std::string* out) override {
    char stage[detail::kStageBytes];
    stream_->flush = op == Op::kFlush ? SYNC_FLUSH : NO_FLUSH;
    stream_->end_of_stream = op == Op::kFinish ? 1 : 0;
    const char* next = in.data();
    size_t left = in.size();
    stream_->avail_in = 0;
    for (;;) {
      if (stream_->avail_in == 0 && left > 0) {
        const size_t slice = std::min(left, kMaxSlice);
        stream_->next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(next));
        stream_->avail_in = static_cast<uint32_t>(slice);
        next += slice;
        left -= slice;
      }
      stream_->next_out = reinterpret_cast<uint8_t*>(stage);
      stream_->avail_out = sizeof(stage);
      if (isal_deflate(stream_) != COMP_OK) {
        return false;
      }
      if (!detail::Append(out, stage, sizeof(stage) - stream_->avail_out)) {
        return false;
      }
      if (stream_->avail_in != 0 || left != 0) {
        continue;
      }
      if (op == Op::kFinish ? stream_->internal_state.state == ZSTATE_END
                            : stream_->avail_out != 0) {
        return true;
      }
    }
  }

  int level_;
  size_t level_buf_size_;
  isal_zstream* stream_ = nullptr;
  uint8_t* level_buf_ = nullptr;
};

class GzipDecoder final : public detail::StreamDecoder {
 public:
  explicit GzipDecoder(uint64_t max_output) : StreamDecoder(max_output, "truncated gzip stream") {
    zs_.zalloc = &ZAlloc;
    zs_.zfree = &ZFree;
    zs_.opaque = &meter_;
  }
  ~GzipDecoder() override {
    if (ready_) {
      inflateEnd(&zs_);
    }
  }
  GzipDecoder(const GzipDecoder&) = delete;
  GzipDecoder& operator=(const GzipDecoder&) = delete;

  bool Init() {
    ready_ = inflateInit2(&zs_, kWindowBits + kAutoWrapper) == Z_OK;
    return ready_;
  }

 private:
  bool Decode(std::string_view in, std::string* out) override {
    char stage[detail::kStageBytes];
    const char* next = in.data();
    size_t left = in.size();
    zs_.avail_in = 0;
    while (left > 0 || zs_.avail_in > 0 || produced_full_) {
      if (member_done_) {
        // More bytes after a complete member: the next member of a multi-member file.
        if (inflateReset(&zs_) != Z_OK) {
          return Fail("gzip: inflateReset failed");
        }
        member_done_ = false;
      }
      if (zs_.avail_in == 0 && left > 0) {
        const size_t slice = std::min(left, kMaxSlice);
        zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(next));
        zs_.avail_in = static_cast<uInt>(slice);
        next += slice;
        left -= slice;
      }
      const size_t room = Room(sizeof(stage));
      zs_.next_out = reinterpret_cast<Bytef*>(stage);
      zs_.avail_out = static_cast<uInt>(room);
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      if (!Emit(stage, room - zs_.avail_out, out)) {
        return false;
      }
      produced_full_ = zs_.avail_out == 0;
      switch (rc) {
        case Z_OK:
          break;
        case Z_STREAM_END:
          member_done_ = true;
          produced_full_ = false;
          break;
        case Z_BUF_ERROR:
          // No progress: fine when the input is used up (wait for more), impossible otherwise.
          if (zs_.avail_in != 0 || left != 0) {
            return Fail("gzip: no progress");
          }
          produced_full_ = false;
          break;
        case Z_MEM_ERROR:
          return Fail("out of memory");
        default:  // Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR
          return Fail("corrupt gzip data");
      }
    }
    return true;
  }

  bool complete() const override { return member_done_; }

  bool ready_ = false;
  bool member_done_ = false;    // the last member ended with its trailer
  bool produced_full_ = false;  // the last inflate filled its output: call again
  z_stream zs_{};
};

}  // namespace

std::unique_ptr<Encoder> MakeGzipEncoder(int level) {
  if (level < 1 || level > 9) {
    return nullptr;
  }
  if (level <= ISAL_DEF_MAX_LEVEL) {
    auto encoder = std::make_unique<IsalGzipEncoder>(level);
    if (!encoder->Init()) {
      return nullptr;
    }
    return encoder;
  }
  auto encoder = std::make_unique<GzipEncoder>(level);
  if (!encoder->Init()) {
    return nullptr;
  }
  return encoder;
}

std::unique_ptr<Decoder> MakeGzipDecoder(uint64_t max_output) {
  auto decoder = std::make_unique<GzipDecoder>(max_output);
  if (!decoder->Init()) {
    return nullptr;
  }
  return decoder;
}

}  // namespace torii::http::codec
