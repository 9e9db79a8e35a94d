// http/codec/types.cc: which Content-Types are worth compressing (TypeMatches, DefaultTypes);
// the rules are in codec.h.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/text.h"
#include "http/codec/codec.h"

namespace torii::http::codec {
namespace {

struct MediaType {
  std::string_view type;
  std::string_view subtype;
};

// "type/subtype" with both parts tokens; false otherwise.
bool Split(std::string_view s, MediaType* m) {
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) {
    return false;
  }
  m->type = s.substr(0, slash);
  m->subtype = s.substr(slash + 1);
  return base::IsToken(m->type) && base::IsToken(m->subtype);
}

}  // namespace

bool IsValidTypePattern(std::string_view pattern) {
  MediaType p;
  if (!Split(pattern, &p)) {
    return false;
  }
  // '*' is a tchar, so Split accepts "te*t/h*ml"; only a whole "*" is a wildcard, and "*/x"
  // means nothing.
  const bool type_star = p.type == "*";
  const bool subtype_star = p.subtype == "*";
  if (type_star && !subtype_star) {
    return false;
  }
  return (type_star || p.type.find('*') == std::string_view::npos) &&
         (subtype_star || p.subtype.find('*') == std::string_view::npos);
}

bool TypeMatches(std::string_view content_type, std::span<const std::string> patterns) {
  MediaType t;
  if (!Split(base::TrimOws(content_type.substr(0, content_type.find(';'))), &t)) {
    return false;
  }
  for (const std::string& pattern : patterns) {
    if (!IsValidTypePattern(pattern)) {
      continue;
    }
    MediaType p;
    Split(pattern, &p);
    if (p.type == "*") {
      return true;  // "*/*"
    }
    if (base::EqualsIgnoreCase(p.type, t.type) &&
        (p.subtype == "*" || base::EqualsIgnoreCase(p.subtype, t.subtype))) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> DefaultTypes() {
  return {
      // Text: HTML, CSS, plain, CSV, XML, JavaScript (text/javascript is the registered one),
      // Markdown, event streams (the caller flushes per event; see the wiring notes).
      "text/*",
      // JSON and JSON-based.
      "application/json",
      "application/ld+json",
      "application/manifest+json",
      "application/geo+json",
      "application/problem+json",
      "application/vnd.api+json",
      "application/x-ndjson",
      // JavaScript under its older names.
      "application/javascript",
      "application/x-javascript",
      "application/ecmascript",
      // XML family.
      "application/xml",
      "application/xhtml+xml",
      "application/rss+xml",
      "application/atom+xml",
      // Images that are text or uncompressed.
      "image/svg+xml",
      "image/x-icon",
      "image/vnd.microsoft.icon",
      "image/bmp",
      // Fonts without their own compression (woff/woff2 already are compressed).
      "font/ttf",
      "font/otf",
      "application/vnd.ms-fontobject",
      // WebAssembly: binary, but very redundant.
      "application/wasm",
  };
}

}  // namespace torii::http::codec
