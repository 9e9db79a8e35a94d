// http/cache_key.h: the primary key of a request in the response cache.
//
// Owns: which parts of a request name a stored response: scheme, host (lowercased, with the
// port the client named), the request target as routed (so the route and the key always see
// the same path, however the client spelled it), the query unless the cache says
// key_query = false, and the values of the cache's key_headers. Parts are separated by bytes
// that cannot occur in them (a validated Host and target hold no control characters), so two
// different requests never build the same key.
//
// Leaves out: Vary (secondary keys are matched by cache/ against each stored response's own
// Vary) and hashing (the caller hashes with the process's keyed hash).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/h1_parser.h"

namespace torii::http {

void BuildCacheKey(std::string_view scheme, std::string_view host, std::string_view target,
                   bool key_query, std::span<const std::string> key_headers,
                   std::span<const HeaderView> request_headers, std::string* out);

// The key a compressed variant of the entry stored under `key` is kept at.
void VariantKey(std::string_view key, std::string_view coding, std::string* out);

}  // namespace torii::http
