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

BodyStep SendBodyStep(H2Codec& codec, int32_t id, H2BodyQueue& body, core::Conn& conn,
                      bool* drained) {
  *drained = false;
  const size_t queued = body.queued();
  const bool trailers = !body.trailers().empty();
  if (queued == 0) {
    if (!body.ended()) {
      return BodyStep::kWaiting;
    }
    if (trailers) {
      std::vector<H2Field>& fields = ThreadHeadScratch().fields;
      body.TrailerFields(&fields);
      codec.SendTrailers(id, fields);
      conn.Write(codec.output());
      codec.output().clear();
    } else {
      const std::array<char, 9> h = codec.DataHeader(id, 0, /*end_stream=*/true);
      conn.Write(std::string_view(h.data(), h.size()));
    }
    return BodyStep::kEnded;
  }
  const size_t n = std::min(queued, codec.Sendable(id));
  if (n == 0) {
    return BodyStep::kBlocked;
  }
  const bool last = n == queued && body.ended() && !trailers;
  const std::array<char, 9> h = codec.DataHeader(id, n, last);
  conn.Write(std::string_view(h.data(), h.size()));
  *drained = body.Send(conn, n);
  return last ? BodyStep::kEnded : BodyStep::kSent;
}

}  // namespace torii::http
