// tls/record_size.h: how much plaintext goes into each TLS record a connection sends.
//
// A client decrypts a record only once all of it has arrived. A full record (16 KiB) spans a
// dozen TCP segments, more than a new connection's congestion window (10 segments) lets out in
// its first round trip, so the client would see the first byte of a large response a round
// trip later than the first segment came. Dynamic sizing (the default) sends the first
// kSmallBytes of a connection in records that fit one segment each, and again after it sat
// idle for kIdleMs (Linux restarts slow start after an idle period:
// tcp_slow_start_after_idle); then full records, where each costs the least (one AEAD pass and
// 22 bytes of overhead per 16 KiB). A fixed size caps every record instead, as nginx's
// ssl_buffer_size and HAProxy's tune.ssl.maxrecord do.
//
// Leaves out: the sealing itself (Session::Write, one record per call up to kMaxRecord) and
// the clock (the caller's loop time).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "tls/options.h"

namespace torii::tls {

class RecordSizer {
 public:
  static constexpr size_t kMaxRecord = kMaxRecordSize;
  // TLS 1.3's bytes around a record's plaintext: a 5-byte header, the inner content type and
  // a 16-byte AEAD tag.
  static constexpr size_t kOverhead = 22;
  // A record in one TCP segment of 1,400 bytes: an IPv6 header and a TCP header with
  // timestamps fit with it in a 1,500-byte MTU, with room left for a tunnel's header.
  static constexpr size_t kSmallRecord = 1400 - kOverhead;
  // Small records until this much has gone: by then slow start has opened the window to about
  // 40 segments (two or three round trips), where full records arrive within one window.
  static constexpr uint32_t kSmallBytes = 64 * 1024;
  static constexpr uint32_t kIdleMs = 1000;

  // `fixed`: every record at most that many bytes (kMinRecordSize..kMaxRecordSize); 0: dynamic.
  explicit RecordSizer(uint32_t fixed = 0) : fixed_(fixed) {}

  // The most plaintext the next record may carry when it is sealed at `now_ms`.
  size_t Limit(uint64_t now_ms) {
    if (fixed_ != 0) {
      return fixed_;
    }
    if (static_cast<uint32_t>(now_ms) - last_ms_ >= kIdleMs) {
      small_left_ = kSmallBytes;  // a new connection, or one back from idle
    }
    return small_left_ > 0 ? kSmallRecord : kMaxRecord;
  }
  // `bytes` of plaintext were sealed at `now_ms` (after Limit at the same time).
  void Sealed(size_t bytes, uint64_t now_ms) {
    last_ms_ = static_cast<uint32_t>(now_ms);
    small_left_ -= static_cast<uint32_t>(std::min<size_t>(bytes, small_left_));
  }

 private:
  uint32_t fixed_;
  uint32_t small_left_ = kSmallBytes;
  // Milliseconds modulo 2^32: an idle time is a difference, right for up to 49 days apart.
  uint32_t last_ms_ = 0;
};

}  // namespace torii::tls
