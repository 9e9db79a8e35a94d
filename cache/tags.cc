// cache/tags.cc: see tags.h.
#include "cache/tags.h"

#include <algorithm>

#include "base/text.h"
#include "cache/policy.h"

namespace torii::cache {

namespace {

// Calls `fn` on each tag of `value`, split at any of `separators`.
template <class Fn>
void ForEachTag(std::string_view value, std::string_view separators, Fn&& fn) {
  size_t i = 0;
  while (i < value.size()) {
    const size_t end = std::min(value.find_first_of(separators, i), value.size());
    if (end > i) {
      if (!fn(value.substr(i, end - i))) {
        return;
      }
    }
    i = end + 1;
  }
}

}  // namespace

void AppendTags(std::string_view value, std::vector<std::string>* out) {
  ForEachTag(value, ", \t", [&](std::string_view tag) {
    if (out->size() >= kMaxPurgeTags) {
      return false;
    }
    out->emplace_back(tag);
    return true;
  });
}

bool CarriesTag(const Entry& entry, std::span<const std::string> tags) {
  for (const Header& h : entry.headers) {
    const bool comma = base::EqualsIgnoreCase(h.name, "cache-tag");
    if (!comma && !base::EqualsIgnoreCase(h.name, "surrogate-key")) {
      continue;
    }
    bool found = false;
    ForEachTag(h.value, comma ? ", \t" : " \t", [&](std::string_view tag) {
      found = std::find(tags.begin(), tags.end(), tag) != tags.end();
      return !found;
    });
    if (found) {
      return true;
    }
  }
  return false;
}

void TagsOf(std::span<const Header> headers, std::vector<std::string_view>* out) {
  for (const Header& h : headers) {
    const bool comma = base::EqualsIgnoreCase(h.name, "cache-tag");
    if (comma || base::EqualsIgnoreCase(h.name, "surrogate-key")) {
      ForEachTag(h.value, comma ? ", \t" : " \t", [&](std::string_view tag) {
        out->push_back(tag);
        return true;
      });
    }
  }
}

std::shared_ptr<const Entry> MarkedStale(const Entry& entry, int64_t now) {
  auto copy = std::make_shared<Entry>(entry);
  copy->freshness_lifetime = std::min(entry.freshness_lifetime, CurrentAge(entry, now));
  return copy;
}

}  // namespace torii::cache
