// cache/range.cc: see range.h.
#include "cache/range.h"

#include <optional>

#include "base/text.h"
#include "cache/http_date.h"

namespace torii::cache {

namespace {

// 1*DIGIT, without overflow (values past 2^62 are refused: no representation is that long).
std::optional<uint64_t> Digits(std::string_view s) {
  if (s.empty() || s.size() > 18) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

bool UnitIsBytes(std::string_view unit) { return base::EqualsIgnoreCase(unit, "bytes"); }

}  // namespace

RangeAnswer EvaluateRange(std::string_view range, uint64_t length) {
  RangeAnswer ignore;
  const size_t eq = range.find('=');
  if (eq == std::string_view::npos || !UnitIsBytes(base::TrimOws(range.substr(0, eq)))) {
    return ignore;
  }
  std::string_view spec = base::TrimOws(range.substr(eq + 1));
  // Empty list elements are allowed by the list syntax (RFC 9110 §5.6.1); more than one
  // real element is a multi-range request, which is not served from here.
  std::string_view only;
  int elements = 0;
  while (!spec.empty()) {
    const std::string_view element = base::TrimOws(base::PopField(&spec, ','));
    if (element.empty()) {
      continue;
    }
    if (++elements > 1) {
      return ignore;
    }
    only = element;
  }
  const size_t dash = only.find('-');
  if (elements != 1 || dash == std::string_view::npos) {
    return ignore;
  }
  const std::string_view a = only.substr(0, dash);
  const std::string_view b = only.substr(dash + 1);
  RangeAnswer out;
  if (a.empty()) {
    // suffix-range: the last N bytes.
    const std::optional<uint64_t> n = Digits(b);
    if (!n) {
      return ignore;
    }
    if (*n == 0 || length == 0) {
      out.kind = RangeKind::kUnsatisfiable;
      return out;
    }
    out.kind = RangeKind::kSatisfiable;
    out.first = *n >= length ? 0 : length - *n;
    out.last = length - 1;
    return out;
  }
  const std::optional<uint64_t> first = Digits(a);
  const std::optional<uint64_t> last = b.empty() ? std::optional<uint64_t>(UINT64_MAX) : Digits(b);
  if (!first || !last || *last < *first) {
    return ignore;  // "5-3" and other invalid specs (§14.1.1)
  }
  if (*first >= length) {
    out.kind = RangeKind::kUnsatisfiable;
    return out;
  }
  out.kind = RangeKind::kSatisfiable;
  out.first = *first;
  out.last = *last >= length ? length - 1 : *last;
  return out;
}

bool IfRangeHolds(std::string_view if_range, const Entry& entry) {
  if_range = base::TrimOws(if_range);
  if (if_range.starts_with("W/")) {
    return false;  // a weak tag never matches (strong comparison)
  }
  if (if_range.starts_with("\"")) {
    return !entry.etag.empty() && !entry.etag.starts_with("W/") && if_range == entry.etag;
  }
  if (entry.last_modified.empty()) {
    return false;
  }
  const std::optional<int64_t> asked = ParseHttpDate(if_range, entry.date_value);
  const std::optional<int64_t> stored = ParseHttpDate(entry.last_modified, entry.date_value);
  return asked && stored && *asked == *stored && *stored + 1 <= entry.date_value;
}

}  // namespace torii::cache
