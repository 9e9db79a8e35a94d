// tests/http/h2_test_util.h: raw HTTP/2 frames and header blocks for the codec tests
// (h2_client_codec_test.cc, h2_server_codec_test.cc): what a peer may send, checked by nothing.
#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/h2_codec.h"

namespace torii::http {

using Fields = std::vector<std::pair<std::string, std::string>>;

inline std::string Frame(uint8_t type, uint8_t flags, int32_t id, std::string_view payload) {
  std::string f;
  const auto len = static_cast<uint32_t>(payload.size());
  f.push_back(static_cast<char>(len >> 16));
  f.push_back(static_cast<char>(len >> 8));
  f.push_back(static_cast<char>(len));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  const auto u = static_cast<uint32_t>(id);
  f.push_back(static_cast<char>(u >> 24));
  f.push_back(static_cast<char>(u >> 16));
  f.push_back(static_cast<char>(u >> 8));
  f.push_back(static_cast<char>(u));
  f.append(payload);
  return f;
}

inline std::string U32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

inline std::string Setting(uint16_t id, uint32_t v) {
  return std::string{static_cast<char>(id >> 8), static_cast<char>(id)} + U32(v);
}

// The error code of the first GOAWAY in `out` (frames back to back), or -1.
inline int64_t GoawayCodeIn(std::string_view out) {
  for (size_t at = 0; at + 9 <= out.size();) {
    const uint32_t len = (static_cast<uint8_t>(out[at]) << 16) |
                         (static_cast<uint8_t>(out[at + 1]) << 8) |
                         static_cast<uint8_t>(out[at + 2]);
    if (out[at + 3] == 0x7 && len >= 8 && at + 17 <= out.size()) {
      return (static_cast<uint8_t>(out[at + 13]) << 24) |
             (static_cast<uint8_t>(out[at + 14]) << 16) |
             (static_cast<uint8_t>(out[at + 15]) << 8) | static_cast<uint8_t>(out[at + 16]);
    }
    at += 9 + len;
  }
  return -1;
}

inline std::vector<nghttp2_nv> Nvs(const Fields& fields) {
  std::vector<nghttp2_nv> nv;
  for (const auto& [n, v] : fields) {
    nv.push_back(nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                            reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(),
                            v.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

// Body bytes as DATA frames into the codec's output as the windows allow, the way torii's
// connections send them; returns how many went.
inline size_t SendBodyFrames(H2Codec& codec, int32_t id, std::string_view body, bool end) {
  size_t sent = 0;
  while (sent < body.size()) {
    const size_t n = std::min(codec.Sendable(id), body.size() - sent);
    if (n == 0) {
      break;
    }
    const bool last = end && sent + n == body.size();
    const std::array<char, 9> h = codec.DataHeader(id, n, last);
    codec.output().append(h.data(), h.size());
    codec.output().append(body.substr(sent, n));
    sent += n;
  }
  return sent;
}

// A header block as a peer may encode it (nghttp2's deflater checks nothing).
class Deflater {
 public:
  Deflater() { nghttp2_hd_deflate_new(&d_, 4096); }
  ~Deflater() { nghttp2_hd_deflate_del(d_); }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  std::string Block(const Fields& fields) {
    std::vector<nghttp2_nv> nv = Nvs(fields);
    std::string out(nghttp2_hd_deflate_bound(d_, nv.data(), nv.size()), '\0');
    const ssize_t n = nghttp2_hd_deflate_hd(d_, reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                            nv.data(), nv.size());
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }

 private:
  nghttp2_hd_deflater* d_ = nullptr;
};

// The fields torii's HPACK decoder (http/hpack.h) gives, as they come.
struct CollectFields : HpackDecoder::Sink {
  void Field(std::string_view name, std::string_view value) override {
    fields.emplace_back(std::string(name), std::string(value));
  }
  Fields fields;
};

// nghttp2's HPACK inflater, the reference torii's decoder (http/hpack.h) is held to: one whole
// block at a time, false on the error nghttp2 finds.
class NgInflater {
 public:
  NgInflater() { nghttp2_hd_inflate_new(&i_); }
  ~NgInflater() { nghttp2_hd_inflate_del(i_); }
  NgInflater(const NgInflater&) = delete;
  NgInflater& operator=(const NgInflater&) = delete;
  bool Decode(std::string_view block, Fields* out) {
    auto in = reinterpret_cast<const uint8_t*>(block.data());
    size_t left = block.size();
    for (;;) {
      nghttp2_nv nv;
      int flags = 0;
      const ssize_t n = nghttp2_hd_inflate_hd2(i_, &nv, &flags, in, left, 1);
      if (n < 0) {
        return false;
      }
      in += n;
      left -= static_cast<size_t>(n);
      if ((flags & NGHTTP2_HD_INFLATE_EMIT) != 0) {
        out->emplace_back(std::string(reinterpret_cast<const char*>(nv.name), nv.namelen),
                          std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen));
      }
      if ((flags & NGHTTP2_HD_INFLATE_FINAL) != 0) {
        nghttp2_hd_inflate_end_headers(i_);
        return true;
      }
      if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) {
        return true;
      }
    }
  }
  size_t table_size() const { return nghttp2_hd_inflate_get_dynamic_table_size(i_); }

 private:
  nghttp2_hd_inflater* i_ = nullptr;
};

}  // namespace torii::http
