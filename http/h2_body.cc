// http/h2_body.cc: see h2_body.h.
#include "http/h2_body.h"

#include <algorithm>

#include "base/text.h"

namespace torii::http {

H2HeadScratch& ThreadHeadScratch() {
  thread_local H2HeadScratch scratch;
  return scratch;
}

bool SendFrames(nghttp2_session* ng, core::Conn& conn) {
  // Above the high-water mark, WriteBlocked() asks for OnWritable() when the queue drains.
  while (!conn.closing() && !conn.WriteBlocked()) {
    const uint8_t* bytes = nullptr;
    const ssize_t n = nghttp2_session_mem_send(ng, &bytes);
    if (n < 0) {
      return false;
    }
    if (n == 0) {
      break;
    }
    conn.Write(std::string_view(reinterpret_cast<const char*>(bytes), static_cast<size_t>(n)));
  }
  return true;
}

void H2BodyQueue::Append(std::string_view bytes) {
  if (!pinned_.empty()) {
    auto copy = std::make_shared<const std::string>(bytes);
    AppendPinned(*copy, copy);
    return;
  }
  if (off_ == out_.size()) {
    out_.clear();
    off_ = 0;
  }
  out_.append(bytes);
}

void H2BodyQueue::AppendPinned(std::string_view bytes, const std::shared_ptr<const void>& owner) {
  if (bytes.empty()) {
    return;
  }
  pinned_.push_back(Piece{bytes, owner});
  pinned_bytes_ += bytes.size();
}

void H2BodyQueue::End(std::span<const HeaderView> trailers) {
  trailers_.clear();
  for (const HeaderView& t : trailers) {
    trailers_.emplace_back(base::ToLowerAscii(t.name), t.value);
  }
  end_ = true;
}

void H2BodyQueue::Clear(size_t keep) {
  out_.clear();
  if (out_.capacity() > keep) {
    std::string().swap(out_);
  }
  off_ = 0;
  pinned_.clear();
  pinned_bytes_ = 0;
  trailers_.clear();
  end_ = deferred_ = false;
}

ssize_t H2BodyQueue::Read(nghttp2_session* ng, int32_t id, size_t length, uint32_t* flags) {
  const size_t avail = queued();
  const size_t n = std::min(length, avail);
  if (n == 0 && !end_) {
    deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == avail && end_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!trailers_.empty()) {
      std::vector<nghttp2_nv>& nv = ThreadHeadScratch().nv;
      nv.clear();
      for (const auto& [name, value] : trailers_) {
        nv.push_back(Nv(name, value));
      }
      if (nghttp2_submit_trailer(ng, id, nv.data(), nv.size()) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;  // the trailing HEADERS end the stream
      }
      trailers_.clear();
    }
  }
  return static_cast<ssize_t>(n);
}

void H2BodyQueue::Resume(nghttp2_session* ng, int32_t id) {
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(ng, id);
  }
}

bool H2BodyQueue::Send(core::Conn& conn, size_t length) {
  const bool was_above = queued() > core::Conn::kLowWater;
  const size_t copied = std::min(length, out_.size() - off_);
  if (copied > 0) {
    conn.Write(std::string_view(out_.data() + off_, copied));
    off_ += copied;
    if (off_ == out_.size()) {
      out_.clear();
      off_ = 0;
    } else if (off_ > 64 * 1024 && off_ * 2 > out_.size()) {
      out_.erase(0, off_);
      off_ = 0;
    }
  }
  for (size_t left = length - copied; left > 0 && !pinned_.empty();) {
    Piece& p = pinned_.front();
    const size_t n = std::min(left, p.bytes.size());
    conn.WritePinned(p.bytes.substr(0, n), p.owner);
    p.bytes.remove_prefix(n);
    pinned_bytes_ -= n;
    left -= n;
    if (p.bytes.empty()) {
      pinned_.pop_front();
    }
  }
  return was_above && queued() <= core::Conn::kLowWater;
}

void H2BodyQueue::SendDataFrame(core::Conn& conn, const nghttp2_frame& frame,
                                const uint8_t* framehd, size_t length, H2BodyQueue& queue,
                                bool* drained) {
  conn.Write(std::string_view(reinterpret_cast<const char*>(framehd), 9));
  if (frame.data.padlen > 0) {
    const char pad = static_cast<char>(frame.data.padlen - 1);
    conn.Write(std::string_view(&pad, 1));
  }
  *drained = queue.Send(conn, length);
  if (frame.data.padlen > 1) {
    conn.Write(std::string(frame.data.padlen - 1, '\0'));
  }
}

}  // namespace torii::http
