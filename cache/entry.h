// cache/entry.h: the plain data the cache's policy (policy.h) and store (store.h) share.
//
// Owns: the header view callers pass in, the stored response (Entry) and the request-header
// source used to match a stored response's Vary. Times are Unix seconds (int64_t) supplied by
// the caller, so every decision is testable with an injected clock.
//
// Leaves out: parsing (cache_control.h, http_date.h), decisions (policy.h), storage and
// eviction (store.h), and everything about sockets or HTTP framing (http/ wires the cache).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "cache/cache_control.h"

namespace torii::cache {

// One header field of a request or response as the caller holds it (names in any case).
struct HeaderView {
  std::string_view name;
  std::string_view value;
};

// A header field kept in an Entry (name lowercased by the policy when the entry is built).
struct Header {
  std::string name;
  std::string value;
};

// Where the policy reads a request's headers (Vary matching, conditionals). Get() returns
// false when the request has no such field; several fields of one name are combined with
// ", " into `out` (RFC 9110 §5.3).
class HeaderSource {
 public:
  virtual ~HeaderSource() = default;
  virtual bool Get(std::string_view lower_name, std::string* out) const = 0;
};

// A stored response's body: its bytes and what keeps them alive. Usually a string of its own
// (shared by the versions a 304 refresh creates, and by the sends still queued); a body served
// from the disk tier's mapping holds that record in place instead (disk.h: Pin). Reads like the
// shared_ptr<const std::string> it generalises: `body->size()`, `*body`, `if (body)`. A body
// that is not a string of its own is borrowed(): whoever keeps an entry for long (the memory
// tier) copies it first, so a record is not held in place for longer than a response takes.
class Body {
 public:
  Body() = default;
  Body(std::nullptr_t) {}  // NOLINT(google-explicit-constructor)
  template <typename S>
  requires std::is_convertible_v<S*, const std::string*> Body(
      std::shared_ptr<S> s)  // NOLINT(google-explicit-constructor)
      : bytes_(s ? std::string_view(*s) : std::string_view()), keep_(std::move(s)) {}
  // `bytes`, valid while `keep` lives.
  Body(std::string_view bytes, std::shared_ptr<const void> keep)
      : bytes_(bytes), keep_(std::move(keep)), borrowed_(true) {}

  explicit operator bool() const { return keep_ != nullptr; }
  const std::string_view* operator->() const { return &bytes_; }
  std::string_view operator*() const { return bytes_; }
  const std::shared_ptr<const void>& keep() const { return keep_; }
  bool borrowed() const { return borrowed_; }
  void reset() { *this = Body(); }
  friend bool operator==(const Body& b, std::nullptr_t) { return !b; }
  // The same bytes, in the same place, kept by the same owner.
  friend bool operator==(const Body& a, const Body& b) {
    return a.keep_ == b.keep_ && a.bytes_.data() == b.bytes_.data() &&
           a.bytes_.size() == b.bytes_.size();
  }

 private:
  std::string_view bytes_;
  std::shared_ptr<const void> keep_;
  bool borrowed_ = false;
};

// A stored response: immutable once inserted in the Store and shared between workers through
// shared_ptr<const Entry>, so a worker streaming a body never races the one that evicts it.
struct Entry {
  uint16_t status = 0;
  std::vector<Header> headers;  // end-to-end fields as stored (hop-by-hop removed by the caller)
  Body body;

  // RFC 9111 §4.2.3 inputs (Unix seconds).
  int64_t request_time = 0;   // when the request that fetched it was sent
  int64_t response_time = 0;  // when its response head arrived
  int64_t date_value = 0;     // Date field (response_time when absent or invalid)
  int64_t age_value = 0;      // Age field (0 when absent)
  int64_t freshness_lifetime = 0;  // seconds; computed once when the entry is built
  bool heuristic = false;          // freshness_lifetime came from Last-Modified
  CacheControl cc;                 // the response's Cache-Control, parsed

  std::string etag;           // as sent (with W/ if weak); empty when none
  std::string last_modified;  // as sent; empty when none

  // Vary: the lowercased field names, and for each the normalised value the request that
  // stored the entry carried (has_value false: that request had no such field). vary_star:
  // "Vary: *" (never matches; such responses are not stored, kept for completeness).
  struct VaryField {
    std::string name;
    std::string value;
    bool has_value = false;
  };
  std::vector<VaryField> vary;
  bool vary_star = false;

  // The body's content coding as stored: 0 = as the origin sent it. http/ stores compressed
  // variants it made itself under a derived key with coding != 0 and source_id = the id of the
  // entry they were made from, so a variant of an older version is recognised and dropped.
  uint8_t coding = 0;
  uint64_t source_id = 0;
  // Assigned by Store::Insert, unique per process; an entry served from the disk tier in place
  // carries its record's (disk.h: top bit set).
  uint64_t id = 0;

  // The fields as the layer that serves hits renders them, made once before the entry is
  // stored (http/: HTTP/1.1 field lines); opaque here. Empty: not made (each hit renders).
  std::string rendered;

  // Bytes this entry is charged against the store's memory bound (body, headers, key, bookkeeping).
  size_t charge = 0;
};

}  // namespace torii::cache
