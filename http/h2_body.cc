// http/h2_body.cc: see h2_body.h.
#include "http/h2_body.h"

#include <algorithm>

#include "base/text.h"

namespace torii::http {

H2HeadScratch& ThreadHeadScratch() {
  thread_local H2HeadScratch scratch;
  return scratch;
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

void H2BodyQueue::TrailerFields(std::vector<H2Field>* out) const {
  out->clear();
  for (const auto& [name, value] : trailers_) {
    out->push_back(H2Field{name, value});
  }
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
  end_ = false;
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

}  // namespace torii::http
