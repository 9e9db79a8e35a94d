// http/codec/negotiate.cc: coding names and Accept-Encoding negotiation (RFC 9110 §12.5.3);
// the rules are spelled out above Negotiate() in codec.h.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "base/text.h"
#include "http/codec/codec.h"

namespace torii::http::codec {
namespace {

// RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
// Returns whether `v` is a qvalue; *positive says whether it is above zero.
bool ParseQvalue(std::string_view v, bool* positive) {
  if (v.empty() || (v[0] != '0' && v[0] != '1')) {
    return false;
  }
  const bool one = v[0] == '1';
  if (v.size() == 1) {
    *positive = one;
    return true;
  }
  if (v[1] != '.' || v.size() > 5) {
    return false;
  }
  bool nonzero = false;
  for (char c : v.substr(2)) {
    if (c < '0' || c > '9' || (one && c != '0')) {
      return false;
    }
    nonzero = nonzero || c != '0';
  }
  *positive = one || nonzero;
  return true;
}

// What the header says about one coding (or about "*"), over all the members that name it.
struct Verdict {
  bool listed = false;
  bool refused = false;  // some member gave it q=0, or a q we could not read

  void Add(bool acceptable) {
    listed = true;
    refused = refused || !acceptable;
  }
};

// Parses the parameters of one member (what follows the coding, starting at the first ';').
// Returns whether the member is acceptable: a well-formed q > 0, or no q at all.
bool MemberAcceptable(std::string_view params) {
  bool seen_q = false;
  bool positive = true;
  while (!params.empty()) {
    // params starts with ';'.
    params.remove_prefix(1);
    const size_t end = params.find(';');
    const std::string_view param = base::TrimOws(params.substr(0, end));
    params = end == std::string_view::npos ? std::string_view() : params.substr(end);
    if (param.empty()) {
      continue;  // "gzip;" or "gzip;;q=1": tolerated
    }
    const size_t eq = param.find('=');
    if (eq == std::string_view::npos || seen_q) {
      return false;  // a bare name, or a second q
    }
    const std::string_view name = base::TrimOws(param.substr(0, eq));
    if (!base::EqualsIgnoreCase(name, "q")) {
      return false;  // Accept-Encoding has no other parameter
    }
    seen_q = true;
    if (!ParseQvalue(base::TrimOws(param.substr(eq + 1)), &positive)) {
      return false;
    }
  }
  return positive;
}

}  // namespace

std::string_view Name(Coding c) {
  switch (c) {
    case Coding::kIdentity:
      return "identity";
    case Coding::kGzip:
      return "gzip";
    case Coding::kBrotli:
      return "br";
    case Coding::kZstd:
      return "zstd";
  }
  return "";
}

std::optional<Coding> ParseCoding(std::string_view name) {
  if (base::EqualsIgnoreCase(name, "gzip") || base::EqualsIgnoreCase(name, "x-gzip")) {
    return Coding::kGzip;
  }
  if (base::EqualsIgnoreCase(name, "br")) {
    return Coding::kBrotli;
  }
  if (base::EqualsIgnoreCase(name, "zstd")) {
    return Coding::kZstd;
  }
  if (base::EqualsIgnoreCase(name, "identity")) {
    return Coding::kIdentity;
  }
  return std::nullopt;
}

Coding Negotiate(std::string_view accept_encoding, std::span<const Coding> server_order) {
  constexpr size_t kCodings = 4;  // indexed by Coding
  Verdict codings[kCodings];
  Verdict star;
  std::string_view rest = accept_encoding;
  while (!rest.empty()) {
    const std::string_view member = base::PopField(&rest, ',');

    const size_t semi = member.find(';');
    const std::string_view name = base::TrimOws(member.substr(0, semi));
    if (name.empty() || !base::IsToken(name)) {
      continue;  // an empty member (",,"), or one we cannot attribute to any coding
    }
    const std::string_view params =
        semi == std::string_view::npos ? std::string_view() : member.substr(semi);
    if (name == "*") {
      star.Add(MemberAcceptable(params));
    } else if (std::optional<Coding> c = ParseCoding(name)) {
      codings[static_cast<size_t>(*c)].Add(MemberAcceptable(params));
    }
    // Other codings (deflate, compress, ...) cannot change the answer.
  }

  for (Coding c : server_order) {
    const auto i = static_cast<size_t>(c);
    if (c == Coding::kIdentity) {
      return Coding::kIdentity;  // the server prefers identity here: stop
    }
    if (i >= kCodings) {
      continue;  // not a Coding value
    }
    const Verdict& v = codings[i].listed ? codings[i] : star;
    if (v.listed && !v.refused) {
      return c;
    }
  }
  return Coding::kIdentity;
}

}  // namespace torii::http::codec
