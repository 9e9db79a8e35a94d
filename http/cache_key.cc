// http/cache_key.cc: see cache_key.h.
#include "http/cache_key.h"

namespace torii::http {

void BuildCacheKey(std::string_view scheme, std::string_view host, std::string_view target,
                   bool key_query, std::span<const std::string> key_headers,
                   std::span<const HeaderView> request_headers, std::string* out) {
  out->clear();
  out->append(scheme);
  out->append("://");
  const size_t host_at = out->size();
  out->append(host);
  for (char& c : std::span(*out).subspan(host_at)) {
    c = base::LowerAscii(c);
  }
  if (!key_query) {
    target = target.substr(0, target.find('?'));
  }
  out->append(target);
  for (const std::string& name : key_headers) {
    // "\n" + name + ":" + each value in order, "," between repeated fields; an absent header
    // and an empty one differ ("\n" + name alone for absent).
    out->push_back('\n');
    out->append(name);
    bool first = true;
    for (const HeaderView& h : request_headers) {
      if (EqualsIgnoreCase(h.name, name)) {
        out->push_back(first ? ':' : ',');
        out->append(h.value);
        first = false;
      }
    }
  }
}

void VariantKey(std::string_view key, std::string_view coding, std::string* out) {
  out->assign(key);
  out->push_back('\0');
  out->append(coding);
}

}  // namespace torii::http
