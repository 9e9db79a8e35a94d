// cache/tags.h: purge by tag. Backends label responses with `Cache-Tag: a, b` (comma-separated,
// as Cloudflare reads it) or `Surrogate-Key: a b` (space-separated, as Fastly and Varnish's
// xkey read it); a PURGE naming tags removes, or marks stale (soft purge), every stored
// response carrying one of them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/entry.h"

namespace torii::cache {

// The tags of a purge request's `Cache-Tag` value: separated by commas and/or spaces, empty
// ones dropped; at most kMaxPurgeTags of at most kMaxTagLength bytes (longer ones are kept
// whole: they simply match nothing).
constexpr size_t kMaxPurgeTags = 64;
constexpr size_t kMaxTagLength = 1024;
void AppendTags(std::string_view value, std::vector<std::string>* out);

// True when `entry` was stored with one of `tags` in a Cache-Tag or Surrogate-Key field.
bool CarriesTag(const Entry& entry, std::span<const std::string> tags);

// The tags `headers` (a stored response's) carry in Cache-Tag and Surrogate-Key fields, split
// as CarriesTag() splits them; views into `headers`.
void TagsOf(std::span<const Header> headers, std::vector<std::string_view>* out);

// A soft purge's copy of `entry`: stale from `now` on (its freshness lifetime ends at its
// current age), everything else kept, so it is revalidated before its next use and still
// serves stale-if-error / stale-while-revalidate as if it had just expired.
std::shared_ptr<const Entry> MarkedStale(const Entry& entry, int64_t now);

}  // namespace torii::cache
