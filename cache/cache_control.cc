// cache/cache_control.cc: ParseCacheControl (cache_control.h).
#include "cache/cache_control.h"

#include <algorithm>
#include <cstddef>

#include "base/text.h"

namespace torii::cache {
namespace {

bool IsOws(char c) { return c == ' ' || c == '\t'; }

// One list element as the scanner found it. `arg` is the argument's raw text: a token, or the
// inside of a quoted-string with its escapes still in place (`quoted`).
struct Element {
  std::string_view name;
  std::string_view arg;
  bool has_arg = false;
  bool quoted = false;
  bool malformed = false;  // anything but OWS between the element and the next comma
};

// Scans a quoted-string starting at s[i] == '"'; returns the index just past the closing quote
// (s.size() when unterminated) and sets *inside to the text between the quotes.
size_t ScanQuoted(std::string_view s, size_t i, std::string_view* inside, bool* terminated) {
  const size_t start = i + 1;
  for (size_t j = start; j < s.size(); ++j) {
    if (s[j] == '\\') {
      ++j;  // quoted-pair: the next octet is literal, whatever it is
    } else if (s[j] == '"') {
      *inside = s.substr(start, j - start);
      *terminated = true;
      return j + 1;
    }
  }
  *inside = s.substr(std::min(start, s.size()));
  *terminated = false;
  return s.size();
}

// Skips to the next top-level comma (quotes respected) or the end; returns its index.
size_t SkipToComma(std::string_view s, size_t i) {
  while (i < s.size() && s[i] != ',') {
    if (s[i] == '"') {
      std::string_view ignored;
      bool terminated;
      i = ScanQuoted(s, i, &ignored, &terminated);
    } else {
      ++i;
    }
  }
  return i;
}

// Reads the element starting at s[i] (OWS and commas before it already skipped) into *e and
// returns the index of the comma that ends it, or s.size().
size_t ScanElement(std::string_view s, size_t i, Element* e) {
  const size_t name_start = i;
  while (i < s.size() && base::IsTchar(s[i])) {
    ++i;
  }
  e->name = s.substr(name_start, i - name_start);
  if (i < s.size() && s[i] == '=') {
    e->has_arg = true;
    ++i;
    if (i < s.size() && s[i] == '"') {
      bool terminated;
      i = ScanQuoted(s, i, &e->arg, &terminated);
      e->quoted = true;
      e->malformed = !terminated;
    } else {
      const size_t arg_start = i;
      while (i < s.size() && base::IsTchar(s[i])) {
        ++i;
      }
      e->arg = s.substr(arg_start, i - arg_start);
    }
  }
  while (i < s.size() && IsOws(s[i])) {
    ++i;
  }
  if (i < s.size() && s[i] != ',') {
    e->malformed = true;
    i = SkipToComma(s, i);
  }
  return i;
}

// The element's argument as delta-seconds (1*DIGIT, clamped to 2^31), or nullopt when it is
// missing or not a delta-seconds (sign, decimal point, empty, junk after it).
std::optional<uint32_t> DeltaSeconds(const Element& e) {
  if (!e.has_arg || e.malformed || e.arg.empty()) {
    return std::nullopt;
  }
  int64_t v = 0;
  for (size_t i = 0; i < e.arg.size(); ++i) {
    char c = e.arg[i];
    if (e.quoted && c == '\\' && i + 1 < e.arg.size()) {
      c = e.arg[++i];
    }
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    v = std::min(v * 10 + (c - '0'), kMaxDeltaSeconds);  // no overflow: v <= 2^31 before
  }
  return static_cast<uint32_t>(v);
}

// Keeps the smaller of the stored value and `v`.
void KeepMin(std::optional<uint32_t>* slot, uint32_t v) {
  *slot = slot->has_value() ? std::min(**slot, v) : v;
}

void KeepMax(std::optional<uint32_t>* slot, uint32_t v) {
  *slot = slot->has_value() ? std::max(**slot, v) : v;
}

// Directives whose argument is delta-seconds. Returns false when `e` is none of them.
bool ApplyDelta(const Element& e, CacheControl* cc) {
  const std::optional<uint32_t> v = DeltaSeconds(e);
  if (base::EqualsIgnoreCase(e.name, "max-age")) {
    KeepMin(&cc->max_age, v.value_or(0));  // invalid: stale (RFC 9111 §4.2.1)
  } else if (base::EqualsIgnoreCase(e.name, "s-maxage")) {
    KeepMin(&cc->s_maxage, v.value_or(0));
  } else if (base::EqualsIgnoreCase(e.name, "max-stale")) {
    if (!e.has_arg) {
      cc->max_stale_any = !cc->max_stale.has_value();
    } else if (v) {
      KeepMin(&cc->max_stale, *v);
      cc->max_stale_any = false;
    }
  } else if (base::EqualsIgnoreCase(e.name, "min-fresh")) {
    if (v) {
      KeepMax(&cc->min_fresh, *v);
    }
  } else if (base::EqualsIgnoreCase(e.name, "stale-while-revalidate")) {
    if (v) {
      KeepMin(&cc->stale_while_revalidate, *v);
    }
  } else if (base::EqualsIgnoreCase(e.name, "stale-if-error")) {
    if (v) {
      KeepMin(&cc->stale_if_error, *v);
    }
  } else {
    return false;
  }
  return true;
}

// Boolean directives. Restrictive ones apply however they are spelled after the name;
// relaxing ones (public, immutable) only when well-formed and without an argument.
void ApplyFlag(const Element& e, CacheControl* cc) {
  const bool exact = !e.has_arg && !e.malformed;
  if (base::EqualsIgnoreCase(e.name, "no-store")) {
    cc->no_store = true;
  } else if (base::EqualsIgnoreCase(e.name, "no-cache")) {
    cc->no_cache = true;
  } else if (base::EqualsIgnoreCase(e.name, "private")) {
    cc->private_ = true;
  } else if (base::EqualsIgnoreCase(e.name, "must-revalidate")) {
    cc->must_revalidate = true;
  } else if (base::EqualsIgnoreCase(e.name, "proxy-revalidate")) {
    cc->proxy_revalidate = true;
  } else if (base::EqualsIgnoreCase(e.name, "no-transform")) {
    cc->no_transform = true;
  } else if (base::EqualsIgnoreCase(e.name, "only-if-cached")) {
    cc->only_if_cached = true;
  } else if (base::EqualsIgnoreCase(e.name, "public")) {
    cc->public_ = cc->public_ || exact;
  } else if (base::EqualsIgnoreCase(e.name, "immutable")) {
    cc->immutable = cc->immutable || exact;
  }
}

}  // namespace

void ParseCacheControl(std::string_view value, CacheControl* cc, bool* malformed) {
  size_t i = 0;
  while (i < value.size()) {
    if (value[i] == ',' || IsOws(value[i])) {
      ++i;
      continue;
    }
    Element e;
    i = ScanElement(value, i, &e);
    if (malformed != nullptr && (e.malformed || e.name.empty())) {
      *malformed = true;
    }
    // An element that starts with a non-token octet has no name: ScanElement stepped over it
    // to the next comma, and there is nothing to apply.
    if (!e.name.empty() && !ApplyDelta(e, cc)) {
      ApplyFlag(e, cc);
    }
  }
}

}  // namespace torii::cache
