// tests/fuzz/cache_fuzz.cc: the cache's parsers and freshness decisions on backend bytes.
//
// Input: a status byte, then "name: value" lines (a response's fields). The oracle checks:
//  - Cache-Control folds to the same directives whatever the order of its field lines (the
//    contract of ParseCacheControl), with every delta-seconds at most kMaxDeltaSeconds;
//  - an HTTP-date that parses (and is within the years FormatHttpDate writes) formats to an
//    IMF-fixdate that parses back to the same second;
//  - Storable() always names a reason, and a stored response has a freshness lifetime >= 0.
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_control.h"
#include "cache/http_date.h"
#include "cache/policy.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "cache_fuzz";
constexpr int64_t kNow = 1764547200;  // 2025-12-01: an injected clock, as the policy takes

bool Within(const std::optional<uint32_t>& v) { return !v || *v <= cache::kMaxDeltaSeconds; }

class NoHeaders final : public cache::HeaderSource {
 public:
  bool Get(std::string_view, std::string*) const override { return false; }
};

}  // namespace

int FuzzCache(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint16_t status = static_cast<uint16_t>(100 + in.Byte() * 2 % 500);
  std::vector<cache::HeaderView> headers;
  while (!in.empty() && headers.size() < 64) {
    const std::string_view line = in.Until('\n');
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      headers.push_back({"cache-control", line});
      continue;
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
    headers.push_back({line.substr(0, colon), value});
  }
  cache::CacheControl forward;
  cache::CacheControl backward;
  std::vector<std::string_view> cc_lines;
  for (const cache::HeaderView& h : headers) {
    if (h.name == "cache-control" || h.name == "Cache-Control") {
      cc_lines.push_back(h.value);
    }
  }
  for (std::string_view v : cc_lines) {
    cache::ParseCacheControl(v, &forward);
  }
  for (auto it = cc_lines.rbegin(); it != cc_lines.rend(); ++it) {
    cache::ParseCacheControl(*it, &backward);
  }
  if (!(forward == backward)) {
    Violation(kName, "Cache-Control depends on the order of its lines", "");
  }
  if (!Within(forward.max_age) || !Within(forward.s_maxage) || !Within(forward.max_stale) ||
      !Within(forward.min_fresh) || !Within(forward.stale_while_revalidate) ||
      !Within(forward.stale_if_error)) {
    Violation(kName, "delta-seconds above kMaxDeltaSeconds", "");
  }
  int checked = 0;
  for (const cache::HeaderView& h : headers) {
    const std::optional<int64_t> t = cache::ParseHttpDate(h.value, kNow);
    if (!t) {
      continue;
    }
    ++checked;
    // FormatHttpDate clamps to years 0001..9999: compare only inside them.
    if (*t >= -62135596800 && *t <= 253402300799) {
      const std::string text = cache::FormatHttpDate(*t);
      const std::optional<int64_t> back = cache::ParseHttpDate(text, kNow);
      if (!back || *back != *t) {
        Violation(kName, "HTTP-date does not round-trip", std::string(h.value) + " -> " + text);
      }
    }
  }
  NoHeaders none;
  const cache::Request req = cache::ReadRequest("GET", none);
  const cache::Options options;
  const cache::StoreDecision d = cache::Storable(req, status, headers, options);
  if (d.reason == nullptr) {
    Violation(kName, "Storable without a reason", "");
  }
  if (d.store) {
    const cache::Freshness f = cache::ComputeFreshness(
        status, cache::ResponseCacheControl(headers), headers, kNow, options);
    if (f.lifetime < 0) {
      Violation(kName, "negative freshness lifetime", std::to_string(f.lifetime));
    }
    ++checked;
  }
  return checked;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzCache)
