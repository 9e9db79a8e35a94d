// conf/load.cc: the TOML loader. toml++ document → validated Config, or one ConfigError.
//
// Owns: reading the file, parsing it with toml++, checking every table and key against the
// documented key names (the operator contract: keys are added, never renamed), converting
// durations and sizes, resolving route → pool references and the whole-config checks (at least
// one listener/pool/route, unique names and addresses). Each error names file:line:column of the
// offending key or value and says what was expected; the first error found wins (one clear
// message beats a wall of them).
//
// Unknown tables and keys are refused with their position, never ignored: an operator must
// never believe a protection is on when it is not.
//
// Exceptions: toml++ throws toml::parse_error, and the validators below throw a private
// LoadFailure to unwind to LoadConfigString(), which turns both into a ConfigError. Nothing
// thrown here leaves this file (config loading is off the data plane, the one place where
// exceptions are allowed).
#include "conf/load.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <fcntl.h>
#include <re2/re2.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>

#include "base/text.h"
#include "cache/disk.h"

namespace torii::conf {
namespace {

using namespace std::string_view_literals;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;
// Longer timeouts than this are almost certainly typos, and keeping them bounded means adding
// one to a steady_clock time point can never overflow.
constexpr Duration kMaxDuration = std::chrono::hours(24 * 365);
constexpr size_t kMaxNameLength = 64;
// A config file is a few KiB; refuse to slurp something that is clearly not one.
constexpr size_t kMaxFileBytes = 16 * kMiB;

// Thrown by the validators, caught in LoadConfigString(). Private to this file.
struct LoadFailure {
  toml::source_position where;
  std::string message;
};

[[noreturn]] void Fail(const toml::source_region& at, std::string message) {
  throw LoadFailure{at.begin, std::move(message)};
}

// Fails with no position (line 0): for things that are missing from the whole file.
[[noreturn]] void FailNoPosition(std::string message) {
  throw LoadFailure{toml::source_position{0, 0}, std::move(message)};
}

// `text` in double quotes for a message, with control characters escaped and long text cut, so
// an error line stays one short line whatever the operator wrote.
std::string Quote(std::string_view text) {
  constexpr size_t kMaxShown = 60;
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxShown) {
    out += "...";
  }
  out += '"';
  return out;
}

// "a string", "an integer"...: what the operator wrote, for "expected X, got Y".
std::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// The value as the operator wrote it (strings quoted), for "got ...".
std::string Shown(const toml::node& node) {
  if (const auto* s = node.as_string()) {
    return Quote(s->get());
  }
  if (const auto* i = node.as_integer()) {
    return std::to_string(i->get());
  }
  return std::string(TypeName(node));
}

// 1024 → "1KiB", 1536 → "1536B": the shortest exact spelling, for range messages.
std::string FormatSize(uint64_t bytes) {
  if (bytes != 0 && bytes % kGiB == 0) {
    return std::to_string(bytes / kGiB) + "GiB";
  }
  if (bytes != 0 && bytes % kMiB == 0) {
    return std::to_string(bytes / kMiB) + "MiB";
  }
  if (bytes != 0 && bytes % kKiB == 0) {
    return std::to_string(bytes / kKiB) + "KiB";
  }
  return std::to_string(bytes) + "B";
}

// Levenshtein distance, capped work: config keys are short.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Parses an unsigned decimal prefix of `text` (at least one digit) into *value, refusing
// overflow. Returns the number of characters consumed, 0 when there is no digit or on overflow.
size_t ParseDecimal(std::string_view text, uint64_t* value) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (__builtin_mul_overflow(v, 10u, &v) ||
        __builtin_add_overflow(v, static_cast<uint64_t>(text[i] - '0'), &v)) {
      return 0;
    }
  }
  *value = v;
  return i;
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// A DNS-style host name (already lowercased): labels of [a-z0-9_-], 1..63 bytes, separated by
// single dots, 253 bytes at most. '_' is tolerated because real internal names use it.
bool IsHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) {
        return false;
      }
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
      return false;
    }
    if (++label > 63) {
      return false;
    }
  }
  return label != 0;
}

// Checks "a.b.c.d/len" or "v6/len" and returns it with the prefix spelled out; a bare address
// becomes /32 or /128. Host bits below the prefix are refused (a likely typo: "10.0.0.1/8").
std::optional<std::string> NormalizeCidr(std::string_view text, std::string* why) {
  const size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  std::string address_z(address);
  std::array<unsigned char, 16> bytes{};
  int family = AF_INET;
  uint64_t max_prefix = 32;
  if (address.find(':') != std::string_view::npos) {
    family = AF_INET6;
    max_prefix = 128;
  }
  if (address.empty() || inet_pton(family, address_z.c_str(), bytes.data()) != 1) {
    *why = "expected a CIDR such as \"127.0.0.0/8\" or \"::1/128\"";
    return std::nullopt;
  }
  uint64_t prefix = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view len_text = text.substr(slash + 1);
    if (len_text.empty() || len_text.size() > 3 ||
        ParseDecimal(len_text, &prefix) != len_text.size() || prefix > max_prefix) {
      *why = "expected a prefix length from 0 to " + std::to_string(max_prefix);
      return std::nullopt;
    }
  }
  const size_t total_bytes = max_prefix / 8;
  for (size_t bit = prefix; bit < max_prefix; ++bit) {
    if (bit / 8 < total_bytes && (bytes[bit / 8] & (0x80u >> (bit % 8))) != 0) {
      *why = "address has bits set below the /" + std::to_string(prefix) + " prefix";
      return std::nullopt;
    }
  }
  return address_z + "/" + std::to_string(prefix);
}

// One TOML table being read, with the label used in messages ("[server]",
// "[[pool]] \"app\" backend #2"). Every accessor returns nullopt when the key is absent (the
// caller keeps its default) and fails at the node when it is present but wrong.
class Section {
 public:
  Section(const toml::table& table, std::string label) : table_(table), label_(std::move(label)) {}

  const toml::table& table() const { return table_; }
  const std::string& label() const { return label_; }
  void set_label(std::string label) { label_ = std::move(label); }

  // Refuses the first key (in file order) that is not in `known`, pointing at the key, with a
  // "did you mean" hint when a known key is one or two edits away.
  void CheckKeys(std::initializer_list<std::string_view> known) const {
    const toml::key* unknown = nullptr;
    for (auto&& [key, node] : table_) {
      if (std::find(known.begin(), known.end(), key.str()) != known.end()) {
        continue;
      }
      if (unknown == nullptr || Before(key.source().begin, unknown->source().begin)) {
        unknown = &key;
      }
    }
    if (unknown == nullptr) {
      return;
    }
    std::string message = "unknown key " + Quote(unknown->str()) + " in " + label_;
    for (std::string_view candidate : known) {
      if (EditDistance(unknown->str(), candidate) <= 2) {
        message += "; did you mean " + Quote(candidate) + "?";
        break;
      }
    }
    Fail(unknown->source(), std::move(message));
  }

  const toml::node* Find(std::string_view key) const { return table_.get(key); }

  // The key object itself (for errors that point at a key rather than at its value).
  const toml::key* FindKey(std::string_view key) const {
    auto it = table_.find(key);
    return it == table_.end() ? nullptr : &it->first;
  }

  [[noreturn]] void FailAt(const toml::node& node, std::string_view key,
                           std::string_view what) const {
    Fail(node.source(), label_ + " " + std::string(key) + ": " + std::string(what));
  }

  // Fails at the table itself (its header) when `key` is absent.
  const toml::node& Require(std::string_view key) const {
    const toml::node* node = Find(key);
    if (node == nullptr) {
      Fail(table_.source(), label_ + ": missing required key " + Quote(key));
    }
    return *node;
  }

  std::optional<int64_t> Int(std::string_view key, int64_t min, int64_t max) const {
    const toml::node* node = Find(key);
    if (node == nullptr) {
      return std::nullopt;
    }
    const auto* value = node->as_integer();
    if (value == nullptr) {
      FailAt(*node, key, "expected an integer, got " + std::string(TypeName(*node)));
    }
    const int64_t v = value->get();
    if (v < min || v > max) {
      FailAt(*node, key,
             "expected an integer " + RangeText(min, max) + ", got " + std::to_string(v));
    }
    return v;
  }

  // Int() narrowed to uint32_t and written into *out when present.
  void U32(std::string_view key, int64_t min, int64_t max, uint32_t* out) const {
    if (auto v = Int(key, min, max)) {
      *out = static_cast<uint32_t>(*v);
    }
  }

  std::optional<std::string> String(std::string_view key) const {
    const toml::node* node = Find(key);
    if (node == nullptr) {
      return std::nullopt;
    }
    return StringOf(*node, key);
  }

  std::string StringOf(const toml::node& node, std::string_view key) const {
    const auto* value = node.as_string();
    if (value == nullptr) {
      FailAt(node, key, "expected a string, got " + std::string(TypeName(node)));
    }
    return value->get();
  }

  // A string that must not be empty (paths, log targets).
  void NonEmptyString(std::string_view key, std::string* out) const {
    if (auto v = String(key)) {
      if (v->empty()) {
        FailAt(*Find(key), key, "expected a non-empty string");
      }
      *out = std::move(*v);
    }
  }

  void Bool(std::string_view key, bool* out) const {
    const toml::node* node = Find(key);
    if (node == nullptr) {
      return;
    }
    const auto* value = node->as_boolean();
    if (value == nullptr) {
      FailAt(*node, key, "expected a boolean (true or false), got " + std::string(TypeName(*node)));
    }
    *out = value->get();
  }

  // A duration string ("2s"). Zero is refused unless `allow_zero`; more than a year is refused.
  void Dur(std::string_view key, Duration* out, bool allow_zero = false) const {
    const toml::node* node = Find(key);
    if (node == nullptr) {
      return;
    }
    const auto* value = node->as_string();
    if (value == nullptr) {
      FailAt(*node, key,
             "expected a duration string such as \"2s\" or \"150ms\", got " +
                 std::string(TypeName(*node)));
    }
    const std::optional<Duration> d = ParseDuration(value->get());
    if (!d) {
      FailAt(*node, key, "expected a duration such as \"2s\" or \"150ms\", got " + Shown(*node));
    }
    if (!allow_zero && d->count() == 0) {
      FailAt(*node, key, "expected a duration greater than zero, got " + Shown(*node));
    }
    if (*d > kMaxDuration) {
      FailAt(*node, key, "expected a duration of at most 8760h (one year), got " + Shown(*node));
    }
    *out = *d;
  }

  // A size: a string such as "16KiB" or a plain integer number of bytes, within [min, max].
  void Size(std::string_view key, uint64_t min, uint64_t max, uint64_t* out) const {
    const toml::node* node = Find(key);
    if (node == nullptr) {
      return;
    }
    std::optional<uint64_t> bytes;
    if (const auto* s = node->as_string()) {
      bytes = ParseSize(s->get());
    } else if (const auto* i = node->as_integer()) {
      if (i->get() >= 0) {
        bytes = static_cast<uint64_t>(i->get());
      }
    } else {
      FailAt(*node, key,
             "expected a size such as \"16KiB\" or a number of bytes, got " +
                 std::string(TypeName(*node)));
    }
    if (!bytes) {
      FailAt(*node, key, "expected a size such as \"16KiB\", got " + Shown(*node));
    }
    if (*bytes < min || *bytes > max) {
      std::string range = max == std::numeric_limits<uint64_t>::max()
                              ? "of at least " + FormatSize(min)
                              : "from " + FormatSize(min) + " to " + FormatSize(max);
      FailAt(*node, key, "expected a size " + range + ", got " + Shown(*node));
    }
    *out = *bytes;
  }

  // One of `choices` (name → value), written into *out.
  template <class T>
  void Choice(std::string_view key, std::initializer_list<std::pair<std::string_view, T>> choices,
              T* out) const {
    Choose(key, std::span<const std::pair<std::string_view, T>>(choices.begin(), choices.size()),
           out);
  }
  template <class T>
  void Choose(std::string_view key, std::span<const std::pair<std::string_view, T>> choices,
              T* out) const {
    const toml::node* node = Find(key);
    if (node == nullptr) {
      return;
    }
    const std::string value = StringOf(*node, key);
    std::string names;
    for (const auto& [name, v] : choices) {
      if (name == value) {
        *out = v;
        return;
      }
      names += (names.empty() ? "" : ", ") + Quote(name);
    }
    FailAt(*node, key, "expected one of " + names + ", got " + Quote(value));
  }

  // One of `values`, each named by name(value), written into *out.
  template <class T>
  void Choice(std::string_view key, std::span<const T> values, std::string_view (*name)(T),
              T* out) const {
    std::vector<std::pair<std::string_view, T>> choices;
    for (T v : values) {
      choices.emplace_back(name(v), v);
    }
    Choose(key, std::span<const std::pair<std::string_view, T>>(choices), out);
  }

  // A numeric socket address; `allow_port_zero` is false for addresses torii connects to.
  std::optional<SocketAddress> Address(std::string_view key, bool allow_port_zero) const {
    const toml::node* node = Find(key);
    if (node == nullptr) {
      return std::nullopt;
    }
    const std::string text = StringOf(*node, key);
    std::string why;
    std::optional<SocketAddress> address = ParseSocketAddress(text, &why);
    if (!address) {
      FailAt(*node, key,
             "expected an address such as \"127.0.0.1:8080\" or \"[::1]:8080\", got " +
                 Quote(text) + " (" + why + ")");
    }
    if (!allow_port_zero && address->port() == 0) {
      FailAt(*node, key, "port 0 is not valid here, got " + Quote(text));
    }
    return address;
  }

  // A nested table (inline or not), or nullptr when absent.
  const toml::table* SubTable(std::string_view key) const {
    const toml::node* node = Find(key);
    if (node == nullptr) {
      return nullptr;
    }
    const auto* table = node->as_table();
    if (table == nullptr) {
      FailAt(*node, key, "expected a table, got " + std::string(TypeName(*node)));
    }
    return table;
  }

  static bool Before(const toml::source_position& a, const toml::source_position& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  }

 private:

  static std::string RangeText(int64_t min, int64_t max) {
    if (max == std::numeric_limits<int64_t>::max() || max == std::numeric_limits<uint32_t>::max()) {
      return "of at least " + std::to_string(min);
    }
    return "from " + std::to_string(min) + " to " + std::to_string(max);
  }

  const toml::table& table_;
  std::string label_;
};

constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();

// The whole document → Config. Sections are read in a fixed order (server, admin, limits,
// listeners, pools, routes) so that routes can resolve pools.
class Loader {
 public:
  explicit Loader(const toml::table& root) : root_(root) {}

  Config Load(std::string source) {
    Config config;
    config.source = std::move(source);
    Section top(root_, "the top level");
    top.CheckKeys({"server", "admin", "limits", "listener", "pool", "route", "rate_limit",
                   "compression", "cache", "dns", "redis"});

    if (const toml::table* t = top.SubTable("server")) {
      LoadServer(Section(*t, "[server]"), &config.server);
      config.server.error_pages = LoadErrorPages(Section(*t, "[server]"), config.source);
    }
    if (const toml::table* t = top.SubTable("admin")) {
      LoadAdmin(Section(*t, "[admin]"), &config.admin);
    }
    if (const toml::table* t = top.SubTable("limits")) {
      LoadLimits(Section(*t, "[limits]"), &config.limits);
    }
    if (const toml::table* t = top.SubTable("dns")) {
      LoadDns(Section(*t, "[dns]"), &config.dns);
    }
    if (const toml::table* t = top.SubTable("redis")) {
      Section s(*t, "[redis]");
      s.CheckKeys({"address", "timeout", "pool_size"});
      s.Require("address");
      config.redis.enabled = true;
      config.redis.address = *s.Address("address", /*allow_port_zero=*/false);
      s.Dur("timeout", &config.redis.timeout);
      s.U32("pool_size", 1, 16, &config.redis.pool_size);
    }
    for (const toml::table* t : ArrayOfTables(top, "listener")) {
      LoadListener(*t, config);
    }
    for (const toml::table* t : ArrayOfTables(top, "pool")) {
      LoadPool(*t, config);
    }
    if (const toml::table* t = top.SubTable("compression")) {
      LoadCompression(Section(*t, "[compression]"), &config.compression);
    }
    if (const toml::table* t = top.SubTable("rate_limit")) {
      LoadRateLimits(Section(*t, "[rate_limit]"), config);
    }
    if (const toml::table* t = top.SubTable("cache")) {
      LoadCaches(Section(*t, "[cache]"), config);
    }
    for (const toml::table* t : ArrayOfTables(top, "route")) {
      LoadRoute(*t, config);
    }
    if (config.listeners.empty()) {
      FailNoPosition("no [[listener]] defined: at least one is required");
    }
    if (config.pools.empty()) {
      FailNoPosition("no [[pool]] defined: at least one is required");
    }
    if (config.routes.empty()) {
      FailNoPosition("no [[route]] defined: at least one is required");
    }
    return config;
  }

 private:
  // `[[name]]` entries in file order; refuses `[name]` (a single table) and non-table elements.
  std::vector<const toml::table*> ArrayOfTables(const Section& top, std::string_view name) const {
    std::vector<const toml::table*> out;
    const toml::node* node = top.Find(name);
    if (node == nullptr) {
      return out;
    }
    const auto* array = node->as_array();
    if (array == nullptr) {
      Fail(node->source(), "expected [[" + std::string(name) + "]] (an array of tables), got " +
                               std::string(TypeName(*node)));
    }
    for (const toml::node& element : *array) {
      const auto* table = element.as_table();
      if (table == nullptr) {
        Fail(element.source(), "expected each " + std::string(name) + " to be a table, got " +
                                   std::string(TypeName(element)));
      }
      out.push_back(table);
    }
    return out;
  }

  static void LoadServer(const Section& s, ServerConfig* out) {
    s.CheckKeys({"workers",
                 "ready_file",
                 "access_log",
                 "access_log_format",
                 "error_log",
                 "log_level",
                 "shutdown_grace",
                 "max_connections",
                 "max_open_files",
                 "sq_entries",
                 "cq_entries",
                 "recv_buffers",
                 "recv_buffer_size",
                 "trusted_proxies",
                 "phase_timing",
                 "merge_slashes",
                 "request_id_header",
                 "trace_context",
                 "error_pages",
                 "forwarded_header",
                 "user",
                 "group"});
    s.U32("workers", 0, 1024, &out->workers);
    s.Bool("phase_timing", &out->phase_timing);
    s.Bool("merge_slashes", &out->merge_slashes);
    s.Bool("trace_context", &out->trace_context);
    s.Bool("forwarded_header", &out->forwarded_header);
    for (const auto& [key, field] :
         {std::pair{"user", &out->user}, std::pair{"group", &out->group}}) {
      if (auto v = s.String(key)) {
        const bool ok =
            !v->empty() && v->size() <= 32 && std::all_of(v->begin(), v->end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '-' || c == '.';
            });
        if (!ok) {
          s.FailAt(*s.Find(key), key, "expected a user or group name, got " + Quote(*v));
        }
        *field = std::move(*v);
      }
    }
    if (!out->group.empty() && out->user.empty()) {
      s.FailAt(*s.Find("group"), "group", "set user too (group alone drops nothing)");
    }
    if (auto v = s.String("request_id_header")) {
      if (!std::all_of(v->begin(), v->end(), base::IsTchar) ||
          base::EqualsIgnoreCase(*v, "traceparent") || base::EqualsIgnoreCase(*v, "host")) {
        s.FailAt(*s.Find("request_id_header"), "request_id_header",
                 "expected a header name (or \"\" for none), got " + Quote(*v));
      }
      out->request_id_header = std::move(*v);
    }
    out->trusted_proxies = CidrList(s, "trusted_proxies");
    if (auto v = s.String("ready_file")) {
      out->ready_file = std::move(*v);
    }
    s.NonEmptyString("access_log", &out->access_log);
    s.Choice<LogFormat>("access_log_format",
                        {{"text", LogFormat::kText}, {"json", LogFormat::kJson}},
                        &out->access_log_format);
    s.NonEmptyString("error_log", &out->error_log);
    s.Choice<std::string>("log_level",
                          {{"trace", "trace"},
                           {"debug", "debug"},
                           {"info", "info"},
                           {"warn", "warn"},
                           {"error", "error"},
                           {"critical", "critical"},
                           {"off", "off"}},
                          &out->log_level);
    // Zero grace is meaningful: close everything at once on shutdown.
    s.Dur("shutdown_grace", &out->shutdown_grace, /*allow_zero=*/true);
    s.U32("max_connections", 16, 1 << 24, &out->max_connections);
    s.U32("max_open_files", 0, 1 << 30, &out->max_open_files);
    // io_uring's own limits: IORING_MAX_ENTRIES and IORING_MAX_CQ_ENTRIES.
    s.U32("sq_entries", 1, 32768, &out->sq_entries);
    s.U32("cq_entries", 0, 65536, &out->cq_entries);
    if (out->cq_entries != 0 && out->cq_entries < out->sq_entries) {
      s.FailAt(*s.Find("cq_entries"), "cq_entries",
               "expected 0 or at least sq_entries (" + std::to_string(out->sq_entries) + "), got " +
                   std::to_string(out->cq_entries));
    }
    s.U32("recv_buffers", 1, 32768, &out->recv_buffers);
    if ((out->recv_buffers & (out->recv_buffers - 1)) != 0) {
      s.FailAt(*s.Find("recv_buffers"), "recv_buffers",
               "expected a power of two from 1 to 32768, got " + std::to_string(out->recv_buffers));
    }
    uint64_t buffer_size = out->recv_buffer_size;
    s.Size("recv_buffer_size", kKiB, kMiB, &buffer_size);
    out->recv_buffer_size = static_cast<uint32_t>(buffer_size);
  }

  static void LoadAdmin(const Section& s, AdminConfig* out) {
    s.CheckKeys({"address", "allow"});
    out->enabled = true;
    s.Require("address");
    out->address = *s.Address("address", /*allow_port_zero=*/true);
    out->allow = CidrList(s, "allow");
  }

  // An array of CIDR strings, normalised ("10.0.0.1" → "10.0.0.1/32"); empty when absent.
  static std::vector<std::string> CidrList(const Section& s, std::string_view key) {
    std::vector<std::string> out;
    const toml::node* node = s.Find(key);
    if (node == nullptr) {
      return out;
    }
    const auto* array = node->as_array();
    if (array == nullptr) {
      s.FailAt(*node, key, "expected an array of CIDR strings, got " + std::string(TypeName(*node)));
    }
    for (const toml::node& element : *array) {
      const std::string text = s.StringOf(element, key);
      std::string why;
      std::optional<std::string> cidr = NormalizeCidr(text, &why);
      if (!cidr) {
        s.FailAt(element, key, why + ", got " + Quote(text));
      }
      out.push_back(std::move(*cidr));
    }
    return out;
  }

  static void LoadLimits(const Section& s, LimitsConfig* out) {
    s.CheckKeys({"header_bytes", "header_count", "body_bytes", "header_timeout", "idle_timeout",
                 "body_timeout", "send_timeout", "keepalive_requests", "body_min_rate",
                 "body_rate_grace", "tunnel_idle_timeout", "max_concurrent_streams"});
    s.Size("header_bytes", kKiB, kMiB, &out->header_bytes);
    s.U32("header_count", 1, 10000, &out->header_count);
    s.Size("body_bytes", 0, std::numeric_limits<uint64_t>::max(), &out->body_bytes);
    s.Dur("header_timeout", &out->header_timeout);
    s.Dur("idle_timeout", &out->idle_timeout);
    s.Dur("body_timeout", &out->body_timeout);
    s.Size("body_min_rate", 0, kGiB, &out->body_min_rate);
    s.Dur("body_rate_grace", &out->body_rate_grace, /*allow_zero=*/true);
    s.Dur("send_timeout", &out->send_timeout);
    s.Dur("tunnel_idle_timeout", &out->tunnel_idle_timeout);
    s.U32("keepalive_requests", 1, std::numeric_limits<uint32_t>::max(), &out->keepalive_requests);
    s.U32("max_concurrent_streams", 1, 65536, &out->max_concurrent_streams);
  }

  // Reads `name` (required, [A-Za-z0-9_-]+) and relabels the section with it.
  static std::string LoadName(Section& s, std::string_view kind) {
    const toml::node& node = s.Require("name");
    std::string name = s.StringOf(node, "name");
    if (name.empty() || name.size() > kMaxNameLength ||
        !std::all_of(name.begin(), name.end(), IsNameChar)) {
      s.FailAt(node, "name", "expected 1 to 64 letters, digits, '_' or '-', got " + Quote(name));
    }
    s.set_label("[[" + std::string(kind) + "]] " + Quote(name));
    return name;
  }

  // `name` is not among the `kind`s loaded so far (`earlier`, declared at `lines`).
  template <class T>
  static void RequireUniqueName(const Section& s, const toml::node& name_node,
                                std::string_view kind, const std::string& name,
                                const std::vector<T>& earlier, const std::vector<uint32_t>& lines) {
    for (size_t i = 0; i < earlier.size(); ++i) {
      if (earlier[i].name == name) {
        s.FailAt(name_node, "name",
                 std::string(kind) + " name " + Quote(name) + " is already used at line " +
                     std::to_string(lines[i]));
      }
    }
  }

  void LoadListener(const toml::table& table, Config& config) {
    Section s(table, "[[listener]] #" + std::to_string(config.listeners.size() + 1));
    s.CheckKeys({"name", "address", "backlog", "allow", "deny", "max_conns_per_ip", "max_conns",
                 "tls", "http_to_https", "allow_encoded_slash", "allow_encoded_nul",
                 "proxy_protocol", "client_auth", "h2c", "tcp_fastopen"});
    ListenerConfig listener;
    const toml::node& name_node = s.Require("name");
    listener.name = LoadName(s, "listener");
    RequireUniqueName(s, name_node, "listener", listener.name, config.listeners, listener_lines_);
    if (config.admin.enabled && listener.name == "admin") {
      s.FailAt(name_node, "name",
               "listener name \"admin\" is reserved for [admin] (it names it in the ready file)");
    }
    const toml::node& address_node = s.Require("address");
    listener.address = *s.Address("address", /*allow_port_zero=*/true);
    // Port 0 means "pick one", so two port-0 listeners never collide.
    if (listener.address.port() != 0) {
      const std::string key = listener.address.ToString();
      for (const ListenerConfig& other : config.listeners) {
        if (other.address.ToString() == key) {
          s.FailAt(address_node, "address",
                   "address " + Quote(listener.address.text) + " is already used by listener " +
                       Quote(other.name));
        }
      }
      if (config.admin.enabled && config.admin.address.ToString() == key) {
        s.FailAt(address_node, "address",
                 "address " + Quote(listener.address.text) + " is already used by [admin]");
      }
    }
    s.U32("backlog", 1, 65535, &listener.backlog);
    s.U32("tcp_fastopen", 0, 65535, &listener.tcp_fastopen);
    listener.allow = CidrList(s, "allow");
    listener.deny = CidrList(s, "deny");
    s.U32("max_conns_per_ip", 0, 1 << 24, &listener.max_conns_per_ip);
    s.U32("max_conns", 0, 1 << 24, &listener.max_conns);
    if (const toml::table* t = s.SubTable("tls")) {
      listener.tls = LoadTls(Section(*t, s.label() + " tls"), config.source);
      if (!listener.tls->shared_ticket_keys.empty()) {
        if (!config.redis.enabled) {
          Section ts(*t, s.label() + " tls");
          ts.FailAt(*ts.Find("session_ticket_keys"), "session_ticket_keys",
                    "\"redis\" needs a [redis] table with its address");
        }
        listener.tls->shared_ticket_keys = listener.name;
      }
    }
    if (const toml::table* t = s.SubTable("client_auth")) {
      if (!listener.tls) {
        s.FailAt(*s.Find("client_auth"), "client_auth",
                 "client certificates need TLS: add tls = { ... } to this listener");
      }
      Section a(*t, s.label() + " client_auth");
      a.CheckKeys({"ca", "mode", "crl", "verify_depth", "forward"});
      tls::ClientAuthOptions& auth = listener.tls->client_auth;
      auth.ca = RelativeTo(config.source, a.StringOf(a.Require("ca"), "ca"));
      auth.mode = tls::ClientAuthOptions::Mode::kRequire;
      a.Choice<tls::ClientAuthOptions::Mode>(
          "mode",
          {{"require", tls::ClientAuthOptions::Mode::kRequire},
           {"optional", tls::ClientAuthOptions::Mode::kOptional}},
          &auth.mode);
      if (auto crl = a.String("crl")) {
        auth.crl = RelativeTo(config.source, *crl);
      }
      a.U32("verify_depth", 1, 16, &auth.verify_depth);
      a.Bool("forward", &listener.client_cert_forward);
      if (listener.tls->early_data) {
        s.FailAt(*s.Find("client_auth"), "client_auth",
                 "tls.early_data and client_auth together are not supported: early data is "
                 "accepted only where no client certificate is asked for");
      }
    }
    s.Bool("http_to_https", &listener.http_to_https);
    s.Bool("allow_encoded_slash", &listener.allow_encoded_slash);
    s.Bool("allow_encoded_nul", &listener.allow_encoded_nul);
    s.Bool("proxy_protocol", &listener.proxy_protocol);
    s.Bool("h2c", &listener.h2c);
    if (listener.h2c && listener.tls) {
      s.FailAt(*s.Find("h2c"), "h2c",
               "h2c is HTTP/2 without TLS: on a TLS listener, list \"h2\" in tls.alpn instead");
    }
    if (listener.proxy_protocol && config.server.trusted_proxies.empty()) {
      s.FailAt(*s.Find("proxy_protocol"), "proxy_protocol",
               "a PROXY header is accepted only from [server] trusted_proxies, which is empty");
    }
    if (listener.http_to_https && listener.tls) {
      s.FailAt(*s.Find("http_to_https"), "http_to_https",
               "a TLS listener cannot redirect to itself: set http_to_https on a plain listener");
    }
    config.listeners.push_back(std::move(listener));
    listener_lines_.push_back(table.source().begin.line);
  }

  // A listener's tls = { certificates = [{ cert, key }], alpn, min_version, ... }.
  static tls::ServerOptions LoadTls(const Section& s, const std::string& source) {
    s.CheckKeys({"certificates", "alpn", "min_version", "ciphersuites", "ciphers",
                 "handshake_timeout", "session_tickets", "ticket_rotation",
                 "session_ticket_key_file", "session_ticket_keys", "groups", "early_data",
                 "ocsp_stapling", "record_size"});
    tls::ServerOptions o;
    const toml::node& certs = s.Require("certificates");
    const auto* array = certs.as_array();
    if (array == nullptr || array->empty()) {
      s.FailAt(certs, "certificates",
               "expected an array of { cert = \"FILE\", key = \"FILE\" } tables, got " +
                   (array == nullptr ? std::string(TypeName(certs)) : std::string("[]")));
    }
    for (const toml::node& element : *array) {
      const auto* t = element.as_table();
      if (t == nullptr) {
        s.FailAt(element, "certificates",
                 "expected { cert = \"FILE\", key = \"FILE\" }, got " +
                     std::string(TypeName(element)));
      }
      Section c(*t, s.label() + " certificate");
      c.CheckKeys({"cert", "key", "ocsp_file"});
      tls::CertificateSpec spec;
      spec.cert = RelativeTo(source, c.StringOf(c.Require("cert"), "cert"));
      spec.key = RelativeTo(source, c.StringOf(c.Require("key"), "key"));
      if (auto ocsp = c.String("ocsp_file")) {
        spec.ocsp_file = RelativeTo(source, *ocsp);
      }
      // A private key any local user can replace lets them impersonate the site: refused.
      struct stat st {};
      if (::stat(spec.key.c_str(), &st) == 0 && (st.st_mode & S_IWOTH) != 0) {
        c.FailAt(*c.Find("key"), "key",
                 "refused: " + Quote(spec.key) + " is writable by every user (chmod o-w on it)");
      }
      o.certificates.push_back(std::move(spec));
    }
    if (const toml::node* alpn = s.Find("alpn")) {
      const auto* list = alpn->as_array();
      if (list == nullptr) {
        s.FailAt(*alpn, "alpn", "expected an array such as [\"http/1.1\"], got " +
                                    std::string(TypeName(*alpn)));
      }
      o.alpn.clear();
      for (const toml::node& element : *list) {
        std::string proto = s.StringOf(element, "alpn");
        if (proto != "http/1.1" && proto != "h2") {
          s.FailAt(element, "alpn", "expected \"h2\" or \"http/1.1\", got " + Quote(proto));
        }
        for (const std::string& seen : o.alpn) {
          if (seen == proto) {
            s.FailAt(element, "alpn", Quote(proto) + " is listed twice");
          }
        }
        o.alpn.push_back(std::move(proto));
      }
    }
    s.Choice<std::string>("min_version", {{"1.3", "1.3"}, {"1.2", "1.2"}}, &o.min_version);
    if (auto v = s.String("ciphersuites")) {
      o.ciphersuites = std::move(*v);
    }
    if (auto v = s.String("ciphers")) {
      o.ciphers = std::move(*v);
    }
    Duration handshake{o.handshake_timeout_ms};
    s.Dur("handshake_timeout", &handshake);
    o.handshake_timeout_ms = static_cast<uint64_t>(handshake.count());
    s.Bool("session_tickets", &o.session_tickets);
    s.Bool("early_data", &o.early_data);
    s.Bool("ocsp_stapling", &o.ocsp_stapling);
    if (const toml::node* size = s.Find("record_size")) {
      const auto* text = size->as_string();
      if (text != nullptr && text->get() != "dynamic" && !ParseSize(text->get())) {
        s.FailAt(*size, "record_size",
                 "expected \"dynamic\" or a size such as \"4KiB\", got " + Shown(*size));
      }
      if (text == nullptr || text->get() != "dynamic") {
        uint64_t bytes = 0;
        s.Size("record_size", tls::kMinRecordSize, tls::kMaxRecordSize, &bytes);
        o.record_size = static_cast<uint32_t>(bytes);
      }
    }
    if (o.early_data && !o.session_tickets) {
      s.FailAt(*s.Find("early_data"), "early_data",
               "early data rides on a resumed session ticket: it needs session_tickets = true");
    }
    Duration rotation{o.ticket_rotation_s * 1000};
    s.Dur("ticket_rotation", &rotation, /*allow_zero=*/true);
    if (rotation.count() % 1000 != 0 || (rotation.count() > 0 && rotation.count() < 60000)) {
      s.FailAt(*s.Find("ticket_rotation"), "ticket_rotation",
               "expected whole seconds of at least 60s (or \"0s\" = never), got " +
                   Shown(*s.Find("ticket_rotation")));
    }
    o.ticket_rotation_s = static_cast<uint64_t>(rotation.count() / 1000);
    if (auto v = s.String("session_ticket_key_file")) {
      o.session_ticket_key_file = RelativeTo(source, *v);
    }
    bool shared = false;
    s.Choice<bool>("session_ticket_keys", {{"local", false}, {"redis", true}}, &shared);
    if (shared) {
      const toml::node& at = *s.Find("session_ticket_keys");
      if (!o.session_ticket_key_file.empty()) {
        s.FailAt(at, "session_ticket_keys",
                 "the keys come from Redis or from session_ticket_key_file, not both");
      }
      if (!o.session_tickets || o.ticket_rotation_s == 0) {
        s.FailAt(at, "session_ticket_keys",
                 "keys shared through Redis turn with ticket_rotation: it needs session_tickets "
                 "= true and a ticket_rotation other than \"0s\"");
      }
      o.shared_ticket_keys = "?";  // named after its listener by the caller
    }
    if (const toml::node* list = s.Find("groups")) {
      const auto* array = list->as_array();
      if (array == nullptr || array->empty()) {
        s.FailAt(*list, "groups", "expected a non-empty array such as [\"X25519\", \"P-256\"]");
      }
      o.groups.clear();
      for (const toml::node& element : *array) {
        o.groups.push_back(s.StringOf(element, "groups"));  // names: checked with the context
      }
    }
    return o;
  }

  // error_pages = { 404 = "path", ... } in `s`: each file read now (so torii -t checks it).
  static std::vector<ErrorPage> LoadErrorPages(const Section& s, const std::string& source) {
    std::vector<ErrorPage> out;
    const toml::table* table = s.SubTable("error_pages");
    if (table == nullptr) {
      return out;
    }
    for (auto&& [key, node] : *table) {
      const std::string code(key.str());
      const bool numeric = code.size() == 3 && std::all_of(code.begin(), code.end(), [](char c) {
                             return c >= '0' && c <= '9';
                           });
      const int status = numeric ? std::stoi(code) : 0;
      if (status < 400 || status > 599) {
        Fail(key.source(),
             s.label() + " error_pages: expected a status from 400 to 599, got " + Quote(code));
      }
      const std::string path = RelativeTo(source, s.StringOf(node, "error_pages"));
      std::error_code ec;
      if (!std::filesystem::is_regular_file(path, ec)) {
        s.FailAt(node, "error_pages", "cannot read " + Quote(path) + ": not a readable file");
      }
      if (std::filesystem::file_size(path, ec) > 64 * 1024) {
        s.FailAt(node, "error_pages", Quote(path) + " is larger than 64KiB");
      }
      std::ifstream f(path, std::ios::binary);
      if (!f.is_open()) {
        s.FailAt(node, "error_pages", "cannot read " + Quote(path));
      }
      std::string body((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      ErrorPage page;
      page.status = static_cast<uint16_t>(status);
      page.content_type = path.ends_with(".html") || path.ends_with(".htm")
                              ? "text/html; charset=utf-8"
                          : path.ends_with(".json") ? "application/json"
                                                    : "text/plain; charset=utf-8";
      page.body = std::move(body);
      out.push_back(std::move(page));
    }
    return out;
  }

  // A path from the config file: relative ones are taken from the file's directory.
  static std::string RelativeTo(const std::string& source, const std::string& path) {
    if (path.empty() || path.front() == '/') {
      return path;
    }
    const size_t slash = source.rfind('/');
    return slash == std::string::npos ? path : source.substr(0, slash + 1) + path;
  }

  static void LoadDns(const Section& s, DnsConfig* out) {
    s.CheckKeys({"servers", "timeout", "attempts", "min_ttl", "max_ttl", "resolve_at_start"});
    if (const toml::node* node = s.Find("servers")) {
      const auto* list = node->as_array();
      if (list == nullptr || list->empty()) {
        s.FailAt(*node, "servers",
                 "expected a non-empty array of addresses such as [\"127.0.0.1:53\"], got " +
                     (list == nullptr ? std::string(TypeName(*node)) : std::string("[]")));
      }
      for (const toml::node& element : *list) {
        const std::string text = s.StringOf(element, "servers");
        std::string why;
        if (!ParseSocketAddress(text, &why)) {
          s.FailAt(element, "servers",
                   "expected a numeric address such as \"127.0.0.1:53\" or \"[::1]:53\", got " +
                       Quote(text) + " (" + why + ")");
        }
        out->servers.push_back(text);
      }
    }
    s.Dur("timeout", &out->timeout);
    s.U32("attempts", 1, 16, &out->attempts);
    s.Dur("min_ttl", &out->min_ttl);
    s.Dur("max_ttl", &out->max_ttl);
    if (out->max_ttl < out->min_ttl) {
      const toml::node* at = s.Find("max_ttl") != nullptr ? s.Find("max_ttl") : s.Find("min_ttl");
      s.FailAt(*at, "max_ttl", "must not be shorter than min_ttl");
    }
    s.Bool("resolve_at_start", &out->resolve_at_start);
  }

  // A pool's `backends = [...]` (it may be empty or absent when `discover` names an SRV record).
  void LoadBackends(const Section& s, PoolConfig& pool) {
    const toml::node* backends_node = s.Find("backends");
    const auto* backends = backends_node != nullptr ? backends_node->as_array() : nullptr;
    if (backends_node == nullptr && pool.discover_srv.empty()) {
      s.Require("backends");
    }
    if (backends_node != nullptr &&
        (backends == nullptr || (backends->empty() && pool.discover_srv.empty()))) {
      s.FailAt(*backends_node, "backends",
               "expected a non-empty array of tables such as [{ address = \"10.0.0.1:9000\" }], "
               "got " +
                   (backends == nullptr ? std::string(TypeName(*backends_node))
                                        : std::string("an empty array")));
    }
    static const toml::array kNoBackends;
    for (const toml::node& element : backends != nullptr ? *backends : kNoBackends) {
      const std::string label = s.label() + " backend #" + std::to_string(pool.backends.size() + 1);
      const auto* backend_table = element.as_table();
      if (backend_table == nullptr) {
        Fail(element.source(),
             label + ": expected a table such as { address = \"10.0.0.1:9000\" }, got " +
                 std::string(TypeName(element)));
      }
      Section b(*backend_table, label);
      b.CheckKeys({"address", "weight", "backup", "resolve"});
      BackendConfig backend;
      const toml::node& address_node = b.Require("address");
      bool resolve = false;
      b.Bool("resolve", &resolve);
      const std::string text = b.StringOf(address_node, "address");
      std::string why;
      if (std::optional<SocketAddress> numeric = ParseSocketAddress(text, &why)) {
        backend.address = *b.Address("address", /*allow_port_zero=*/false);
      } else if (resolve) {
        std::optional<HostPort> named = ParseHostPort(text, /*port_required=*/true, &why);
        if (!named) {
          b.FailAt(address_node, "address",
                   "expected \"NAME:PORT\" such as \"app.internal:8080\" or a numeric address, "
                   "got " +
                       Quote(text) + " (" + why + ")");
        }
        backend.host = named->host;
        backend.port = named->port;
      } else if (!text.empty() && text.front() != '[' &&
                 ParseHostPort(text, /*port_required=*/true, nullptr)) {
        b.FailAt(address_node, "address",
                 Quote(text) +
                     " is a host name: add resolve = true to find its addresses in DNS "
                     "(re-resolved at the record's TTL), or give a numeric address");
      } else {
        backend.address = *b.Address("address", /*allow_port_zero=*/false);
      }
      for (const BackendConfig& other : pool.backends) {
        if (other.Label() == backend.Label()) {
          b.FailAt(address_node, "address",
                   "backend " + Quote(text) + " is listed twice in this pool");
        }
      }
      b.U32("weight", 1, 256, &backend.weight);
      b.Bool("backup", &backend.backup);
      pool.backends.push_back(std::move(backend));
    }
  }

  // A pool's `health = { ... }`: its active checks.
  HealthConfig LoadHealth(const Section& pool, const toml::table& table) {
    Section h(table, pool.label() + " health");
    h.CheckKeys({"type", "path", "host", "interval", "timeout", "rise", "fall", "expect_status",
                 "service"});
    HealthConfig health;
    if (auto type = h.String("type")) {
      if (*type == "tcp") {
        health.type = HealthConfig::Type::kTcp;
      } else if (*type == "grpc") {
        health.type = HealthConfig::Type::kGrpc;
      } else if (*type != "http") {
        h.FailAt(*h.Find("type"), "type",
                 "expected \"http\", \"tcp\" or \"grpc\", got " + Quote(*type));
      }
    }
    if (auto service = h.String("service")) {
      if (health.type != HealthConfig::Type::kGrpc) {
        h.FailAt(*h.Find("service"), "service", "only a type = \"grpc\" check names a service");
      }
      if (!std::all_of(service->begin(), service->end(),
                       [](char c) { return c > 0x20 && c < 0x7f; })) {
        h.FailAt(*h.Find("service"), "service",
                 "expected a gRPC service name such as \"pkg.Service\", got " + Quote(*service));
      }
      health.service = std::move(*service);
    }
    if (auto path = h.String("path")) {
      if (path->empty() || path->front() != '/' || !IsCleanPath(*path)) {
        h.FailAt(*h.Find("path"), "path",
                 "expected a path starting with '/' (no spaces or control characters), got " +
                     Quote(*path));
      }
      health.path = std::move(*path);
    }
    h.Dur("interval", &health.interval);
    h.Dur("timeout", &health.timeout);
    h.U32("rise", 1, 1000, &health.rise);
    h.U32("fall", 1, 1000, &health.fall);
    if (auto host = h.String("host")) {
      if (!IsHostName(base::ToLowerAscii(*host))) {
        h.FailAt(*h.Find("host"), "host", "expected a host name, got " + Quote(*host));
      }
      health.host = std::move(*host);
    }
    if (health.timeout > health.interval) {
      h.FailAt(*h.Find("timeout"), "timeout",
               "must not be longer than interval (one check per backend at a time)");
    }
    if (h.Find("expect_status") != nullptr) {
      health.expect_status = StatusList(h, "expect_status", 100, 599);
    }
    return health;
  }

  void LoadPool(const toml::table& table, Config& config) {
    Section s(table, "[[pool]] #" + std::to_string(config.pools.size() + 1));
    s.CheckKeys({"name",
                 "algorithm",
                 "backends",
                 "health",
                 "connect_timeout",
                 "response_timeout",
                 "keepalive_timeout",
                 "keepalive",
                 "retries",
                 "hash_key",
                 "max_fails",
                 "fail_window",
                 "max_eject",
                 "fail_status",
                 "max_conns",
                 "queue_timeout",
                 "tls",
                 "send_proxy",
                 "protocol",
                 "max_streams",
                 "discover",
                 "slow_start",
                 "tcp_fastopen",
                 "splice_min"});
    PoolConfig pool;
    const toml::node& name_node = s.Require("name");
    pool.name = LoadName(s, "pool");
    RequireUniqueName(s, name_node, "pool", pool.name, config.pools, pool_lines_);
    s.Choice("algorithm", std::span<const Algorithm>(balancer::kAlgorithms),
             &balancer::AlgorithmName, &pool.algorithm);
    if (auto key = s.String("hash_key")) {
      const toml::node& node = *s.Find("hash_key");
      if (pool.algorithm != Algorithm::kIpHash) {
        s.FailAt(node, "hash_key",
                 "only ip_hash pools hash a key; remove it or set "
                 "algorithm = \"ip_hash\"");
      }
      pool.hash_key = ParseHashKey(s, node, *key);
    }

    s.Dur("slow_start", &pool.slow_start, /*allow_zero=*/true);
    if (pool.slow_start.count() > 0 && pool.algorithm == Algorithm::kIpHash) {
      s.FailAt(*s.Find("slow_start"), "slow_start",
               "ip_hash keeps each client on its backend, so it cannot ramp a new one's share: "
               "use round_robin or least_conn, or remove slow_start");
    }
    if (const toml::table* discover = s.SubTable("discover")) {
      Section d(*discover, s.label() + " discover");
      d.CheckKeys({"srv"});
      const toml::node& srv_node = d.Require("srv");
      std::string why;
      const std::string text = d.StringOf(srv_node, "srv");
      auto name = ParseHostPort(text, /*port_required=*/false, &why);
      if (!name || name->port != 0) {
        d.FailAt(srv_node, "srv",
                 "expected an SRV name such as \"_http._tcp.app.internal\", got " + Quote(text) +
                     (name ? std::string(" (no port: SRV records carry it)") : " (" + why + ")"));
      }
      pool.discover_srv = name->host;
    }
    LoadBackends(s, pool);

    if (const toml::table* health_table = s.SubTable("health")) {
      pool.health = LoadHealth(s, *health_table);
    }
    s.U32("max_fails", 0, 1000, &pool.max_fails);
    s.Dur("fail_window", &pool.fail_window);
    s.Dur("max_eject", &pool.max_eject);
    if (pool.max_eject < pool.fail_window) {
      const toml::node* node = s.Find("max_eject");
      s.FailAt(node != nullptr ? *node : *s.Find("fail_window"), "max_eject",
               "must be at least fail_window (the first ejection lasts fail_window)");
    }
    if (s.Find("fail_status") != nullptr) {
      pool.fail_status = StatusList(s, "fail_status", 500, 599);
    }
    s.U32("max_conns", 0, 1000000, &pool.max_conns);
    s.Dur("queue_timeout", &pool.queue_timeout);
    s.Dur("connect_timeout", &pool.connect_timeout);
    s.Dur("response_timeout", &pool.response_timeout);
    s.Dur("keepalive_timeout", &pool.keepalive_timeout);
    s.U32("keepalive", 0, 10000, &pool.keepalive);
    s.U32("retries", 0, 10, &pool.retries);
    if (auto v = s.String("protocol")) {
      if (*v == "http/1.1") {
        pool.protocol = PoolConfig::Protocol::kHttp11;
      } else if (*v == "h2") {
        pool.protocol = PoolConfig::Protocol::kH2;
      } else if (*v == "h2c") {
        pool.protocol = PoolConfig::Protocol::kH2c;
      } else {
        s.FailAt(*s.Find("protocol"), "protocol",
                 "expected \"http/1.1\", \"h2\" or \"h2c\", got " + Quote(*v));
      }
    }
    s.U32("max_streams", 1, 1000000, &pool.max_streams);
    s.Bool("tcp_fastopen", &pool.tcp_fastopen);
    s.Size("splice_min", 0, uint64_t{1} << 40, &pool.splice_min);
    if (auto v = s.String("send_proxy")) {
      if (*v != "v1" && *v != "v2") {
        s.FailAt(*s.Find("send_proxy"), "send_proxy",
                 "expected \"v1\" or \"v2\", got " + Quote(*v));
      }
      pool.send_proxy = (*v)[1] == '1' ? 1 : 2;
    }
    if (const toml::table* t = s.SubTable("tls")) {
      Section ts(*t, s.label() + " tls");
      ts.CheckKeys({"verify", "ca", "sni", "cert", "key"});
      tls::ClientOptions o;
      ts.Bool("verify", &o.verify);
      if (auto ca = ts.String("ca")) {
        o.ca = RelativeTo(config.source, *ca);
      }
      if ((ts.Find("cert") != nullptr) != (ts.Find("key") != nullptr)) {
        ts.FailAt(*t, "cert", "a client certificate needs both cert and key");
      }
      if (auto cert = ts.String("cert")) {
        o.cert = RelativeTo(config.source, *cert);
        o.key = RelativeTo(config.source, *ts.String("key"));
      }
      if (auto sni = ts.String("sni")) {
        o.sni = std::move(*sni);
      }
      pool.tls = std::move(o);
    }
    if (pool.protocol == PoolConfig::Protocol::kH2) {
      if (!pool.tls) {
        s.FailAt(*s.Find("protocol"), "protocol",
                 "\"h2\" is HTTP/2 over TLS: add tls = { ... }, or say \"h2c\" for cleartext");
      }
      pool.tls->alpn = {"h2"};
    } else if (pool.protocol == PoolConfig::Protocol::kH2c && pool.tls) {
      s.FailAt(*s.Find("protocol"), "protocol",
               "\"h2c\" is cleartext HTTP/2: say \"h2\" for HTTP/2 over this pool's tls");
    }
    if (pool.protocol == PoolConfig::Protocol::kHttp11 && pool.health &&
        pool.health->type == HealthConfig::Type::kGrpc) {
      s.FailAt(*s.Find("health"), "health",
               "gRPC health checks speak HTTP/2: set protocol = \"h2c\" or \"h2\"");
    }
    if (pool.protocol != PoolConfig::Protocol::kHttp11 && pool.tcp_fastopen) {
      s.FailAt(*s.Find("tcp_fastopen"), "tcp_fastopen",
               "HTTP/1.1 pools only: an HTTP/2 connection is opened once and carries many "
               "requests, so there is no round trip per request to save");
    }
    if (pool.protocol != PoolConfig::Protocol::kHttp11 && pool.send_proxy != 0) {
      s.FailAt(*s.Find("send_proxy"), "send_proxy",
               "a PROXY header names one client; an HTTP/2 connection carries many");
    }
    config.pools.push_back(std::move(pool));
    pool_lines_.push_back(table.source().begin.line);
  }

  static void LoadCompression(const Section& s, CompressionConfig* out) {
    s.CheckKeys({"algorithms", "min_bytes", "types", "gzip_level", "br_level", "zstd_level",
                 "decompress"});
    if (const toml::node* node = s.Find("algorithms")) {
      const auto* array = node->as_array();
      if (array == nullptr || array->empty()) {
        s.FailAt(*node, "algorithms",
                 "expected a non-empty array of \"br\", \"zstd\" and \"gzip\" in order of "
                 "preference, got " + (array == nullptr ? std::string(TypeName(*node))
                                                        : std::string("an empty array")));
      }
      out->algorithms.clear();
      for (const toml::node& element : *array) {
        const std::string name = s.StringOf(element, "algorithms");
        if (name != "br" && name != "zstd" && name != "gzip") {
          s.FailAt(element, "algorithms",
                   "expected \"br\", \"zstd\" or \"gzip\", got " + Quote(name));
        }
        if (std::find(out->algorithms.begin(), out->algorithms.end(), name) !=
            out->algorithms.end()) {
          s.FailAt(element, "algorithms", Quote(name) + " is listed twice");
        }
        out->algorithms.push_back(name);
      }
    }
    s.Size("min_bytes", 0, kGiB, &out->min_bytes);
    if (const toml::node* node = s.Find("types")) {
      const auto* array = node->as_array();
      if (array == nullptr || array->empty()) {
        s.FailAt(*node, "types",
                 "expected a non-empty array of content types such as \"text/*\", got " +
                     (array == nullptr ? std::string(TypeName(*node))
                                       : std::string("an empty array")));
      }
      for (const toml::node& element : *array) {
        const std::string type = base::ToLowerAscii(s.StringOf(element, "types"));
        const size_t slash = type.find('/');
        const bool ok = slash != std::string::npos && slash > 0 && slash + 1 < type.size() &&
                        std::all_of(type.begin(), type.end(),
                                    [](char c) { return base::IsTchar(c) || c == '/'; }) &&
                        type.find('/', slash + 1) == std::string::npos &&
                        type.substr(0, slash).find('*') == std::string::npos &&
                        (type.substr(slash + 1) == "*" ||
                         type.substr(slash + 1).find('*') == std::string::npos);
        if (!ok) {
          s.FailAt(element, "types",
                   "expected a media type (\"application/json\") or \"type/*\", got " +
                       Quote(type));
        }
        out->types.push_back(type);
      }
    }
    uint32_t level = 0;
    if (s.Find("gzip_level") != nullptr) {
      s.U32("gzip_level", 1, 9, &level);
      out->gzip_level = static_cast<int>(level);
    }
    if (s.Find("br_level") != nullptr) {
      s.U32("br_level", 0, 11, &level);
      out->br_level = static_cast<int>(level);
    }
    if (s.Find("zstd_level") != nullptr) {
      s.U32("zstd_level", 1, 19, &level);
      out->zstd_level = static_cast<int>(level);
    }
    s.Bool("decompress", &out->decompress);
  }

  // The NAME = table entries of [KIND.NAME] tables, in file order, each checked to be a table
  // with a valid name (`what` names the kind in messages: "rate limit").
  static std::vector<std::pair<std::string, const toml::table*>> NamedTables(
      const Section& top, std::string_view kind, std::string_view what) {
    std::vector<std::pair<const toml::key*, const toml::node*>> entries;
    for (auto&& [key, node] : top.table()) {
      entries.emplace_back(&key, &node);
    }
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      return Section::Before(a.first->source().begin, b.first->source().begin);
    });
    std::vector<std::pair<std::string, const toml::table*>> out;
    for (const auto& [key, node] : entries) {
      std::string name(key->str());
      const auto* table = node->as_table();
      if (table == nullptr) {
        Fail(key->source(), "expected [" + std::string(kind) + "." + name +
                                "] to be a table, got " + std::string(TypeName(*node)));
      }
      if (name.empty() || name.size() > kMaxNameLength ||
          !std::all_of(name.begin(), name.end(), IsNameChar)) {
        Fail(key->source(), std::string(what) + " name " + Quote(name) +
                                " must be 1 to 64 letters, digits, '_' or '-'");
      }
      out.emplace_back(std::move(name), table);
    }
    return out;
  }

  // [rate_limit.NAME] tables, in file order.
  static void LoadRateLimits(const Section& top, Config& config) {
    for (const auto& [name, table] : NamedTables(top, "rate_limit", "rate limit")) {
      Section s(*table, "[rate_limit." + name + "]");
      s.CheckKeys({"key", "rate", "burst", "mode", "max_keys", "ban_after", "ban_window", "ban_for",
                   "store", "sync_interval", "on_store_error"});
      RateLimitConfig r;
      r.name = name;
      if (auto k = s.String("key")) {
        ParseRateKey(s, *k, &r);
      }
      const toml::node& rate_node = s.Require("rate");
      const std::string rate = s.StringOf(rate_node, "rate");
      if (!ParseRate(rate, &r.rate_count, &r.rate_period)) {
        s.FailAt(rate_node, "rate",
                 "expected COUNT/UNIT such as \"100/s\", \"6000/m\" or \"10/h\" (count 1 to "
                 "1000000000), got " + Quote(rate));
      }
      s.U32("burst", 0, 1000000, &r.burst);
      s.Choice<bool>("mode", {{"reject", false}, {"delay", true}}, &r.delay);
      if (r.delay && r.burst == 0) {
        s.FailAt(*s.Find("mode"), "mode",
                 "delay mode needs a burst (how many requests may wait), got burst = 0");
      }
      s.U32("max_keys", 16, 100000000, &r.max_keys);
      s.U32("ban_after", 0, 64, &r.ban_after);
      s.Dur("ban_window", &r.ban_window);
      s.Dur("ban_for", &r.ban_for);
      s.Choice<bool>("store", {{"local", false}, {"redis", true}}, &r.redis);
      s.Dur("sync_interval", &r.sync_interval);
      s.Choice<RateLimitConfig::OnStoreError>("on_store_error",
                                              {{"local", RateLimitConfig::OnStoreError::kLocal},
                                               {"allow", RateLimitConfig::OnStoreError::kAllow},
                                               {"deny", RateLimitConfig::OnStoreError::kDeny}},
                                              &r.on_store_error);
      if (r.redis && !config.redis.enabled) {
        s.FailAt(*s.Find("store"), "store",
                 "store = \"redis\" needs a [redis] table with its address");
      }
      if (r.redis && r.rate_count * 1000 > static_cast<uint64_t>(r.rate_period.count()) * 1000000) {
        s.FailAt(rate_node, "rate",
                 "a limit shared through Redis takes at most 1000000/s per key (the store counts "
                 "in microseconds), got " +
                     Quote(rate));
      }
      if (r.redis && r.delay) {
        s.FailAt(*s.Find("mode"), "mode",
                 "delay mode holds requests on one process: it cannot be shared through Redis "
                 "(use mode = \"reject\", or store = \"local\")");
      }
      if (!r.redis) {
        for (std::string_view key : {"sync_interval", "on_store_error"}) {
          if (const toml::node* node = s.Find(key)) {
            s.FailAt(*node, key, "only a store = \"redis\" limit has it");
          }
        }
      }
      config.rate_limits.push_back(std::move(r));
    }
  }

  // An array of header names, lowercased ([cache.NAME] key_headers, targeted).
  static std::vector<std::string> HeaderNames(const Section& s, std::string_view key) {
    std::vector<std::string> out;
    const toml::node* list = s.Find(key);
    if (list == nullptr) {
      return out;
    }
    const auto* array = list->as_array();
    if (array == nullptr) {
      s.FailAt(*list, key, "expected an array of header names, got " + std::string(TypeName(*list)));
    }
    for (const toml::node& element : *array) {
      std::string header = s.StringOf(element, key);
      if (header.empty() || !std::all_of(header.begin(), header.end(), base::IsTchar)) {
        s.FailAt(element, key, "expected a header name, got " + Quote(header));
      }
      std::transform(header.begin(), header.end(), header.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      out.push_back(std::move(header));
    }
    return out;
  }

  // [cache.NAME] tables, in file order.
  static void LoadCaches(const Section& top, Config& config) {
    for (const auto& [name, table] : NamedTables(top, "cache", "cache")) {
      Section s(*table, "[cache." + name + "]");
      s.CheckKeys({"memory", "max_object", "negative_ttl", "lock_timeout", "key_query",
                   "key_headers", "purge_allow", "targeted", "set_cookie", "disk"});
      CacheConfig c;
      c.name = name;
      s.Size("memory", kMiB, 1024 * kGiB, &c.memory);
      s.Size("max_object", 1, kGiB, &c.max_object);
      if (c.max_object > c.memory / 4) {
        const toml::node* where = s.Find("max_object");
        s.FailAt(where != nullptr ? *where : *s.Find("memory"), "max_object",
                 "max_object (" + FormatSize(c.max_object) +
                     ") must be at most a quarter of memory (" + FormatSize(c.memory) + ")");
      }
      s.Dur("negative_ttl", &c.negative_ttl, /*allow_zero=*/true);
      s.Dur("lock_timeout", &c.lock_timeout);
      s.Bool("key_query", &c.key_query);
      c.key_headers = HeaderNames(s, "key_headers");
      if (auto v = s.String("set_cookie")) {
        using SetCookie = cache::Options::SetCookie;
        if (*v == "strip") {
          c.set_cookie = SetCookie::kStrip;
        } else if (*v == "bypass") {
          c.set_cookie = SetCookie::kBypass;
        } else if (*v == "store") {
          c.set_cookie = SetCookie::kStore;
        } else {
          s.FailAt(*s.Find("set_cookie"), "set_cookie",
                   "expected \"strip\", \"bypass\" or \"store\", got " + Quote(*v));
        }
      }
      if (s.Find("targeted") != nullptr) {
        c.targeted = HeaderNames(s, "targeted");
        for (const std::string& name : c.targeted) {
          if (name == "cache-control") {
            s.FailAt(*s.Find("targeted"), "targeted",
                     "Cache-Control is what targeted fields replace: list only targeted ones "
                     "such as \"CDN-Cache-Control\"");
          }
        }
      }
      c.purge_allow = CidrList(s, "purge_allow");
      if (const toml::table* disk = s.SubTable("disk")) {
        Section d(*disk, s.label() + " disk");
        d.CheckKeys({"path", "size"});
        const toml::node& path = d.Require("path");
        d.Require("size");
        c.disk_path = d.String("path").value_or("");
        if (c.disk_path.empty() || c.disk_path.front() != '/') {
          d.FailAt(path, "path", "expected an absolute file path, got " + Shown(path));
        }
        d.Size("size", cache::DiskStore::kMinSize, uint64_t{1} << 50, &c.disk_size);
        if (c.disk_size / 4 < c.max_object) {
          d.FailAt(*d.Find("size"), "size",
                   "size (" + FormatSize(c.disk_size) +
                       ") must be at least four times max_object (" + FormatSize(c.max_object) +
                       ")");
        }
        for (const CacheConfig& other : config.caches) {
          if (other.disk_path == c.disk_path) {
            d.FailAt(path, "path", "[cache." + other.name + "] already keeps its disk tier there");
          }
        }
      }
      config.caches.push_back(std::move(c));
    }
  }

  // "client_ip", "client_ip/24" (and "client_ip/24/64" for v4/v6), "header:X-Api-Key",
  // "route".
  static void ParseRateKey(const Section& s, std::string_view text, RateLimitConfig* r) {
    const toml::node& node = *s.Find("key");
    auto fail = [&] {
      s.FailAt(node, "key",
               "expected \"client_ip\", \"client_ip/PREFIX\" (\"client_ip/24\", or "
               "\"client_ip/24/64\" for IPv4/IPv6), \"header:NAME\" or \"route\", got " +
                   Quote(text));
    };
    if (text == "route") {
      r->key = RateLimitConfig::Key::kRoute;
      return;
    }
    if (text.starts_with("header:")) {
      const std::string_view name = text.substr(7);
      if (name.empty() || !std::all_of(name.begin(), name.end(), base::IsTchar)) {
        fail();
      }
      r->key = RateLimitConfig::Key::kHeader;
      r->header = base::ToLowerAscii(name);
      return;
    }
    if (!text.starts_with("client_ip")) {
      fail();
    }
    std::string_view rest = text.substr(9);
    r->key = RateLimitConfig::Key::kClientIp;
    if (rest.empty()) {
      return;
    }
    uint64_t v4 = 0;
    uint64_t v6 = 0;
    if (rest.front() != '/') {
      fail();
    }
    rest.remove_prefix(1);
    const size_t n = ParseDecimal(rest, &v4);
    if (n == 0 || v4 < 1 || v4 > 32) {
      fail();
    }
    rest.remove_prefix(n);
    if (rest.empty()) {
      v6 = std::min<uint64_t>(128, v4 + 32);  // a v4 /24 is roughly a v6 /56 (one site)
    } else {
      if (rest.front() != '/') {
        fail();
      }
      rest.remove_prefix(1);
      if (ParseDecimal(rest, &v6) != rest.size() || v6 < 1 || v6 > 128) {
        fail();
      }
    }
    r->prefix_v4 = static_cast<uint8_t>(v4);
    r->prefix_v6 = static_cast<uint8_t>(v6);
  }

  // "100/s", "6000/m", "10/h", "1000/d" → count and period.
  static bool ParseRate(std::string_view text, uint64_t* count, Duration* period) {
    const size_t slash = text.find('/');
    if (slash == std::string_view::npos || slash == 0) {
      return false;
    }
    uint64_t n = 0;
    if (ParseDecimal(text.substr(0, slash), &n) != slash || n < 1 || n > 1000000000) {
      return false;
    }
    const std::string_view unit = text.substr(slash + 1);
    if (unit == "s") {
      *period = std::chrono::seconds(1);
    } else if (unit == "m") {
      *period = std::chrono::minutes(1);
    } else if (unit == "h") {
      *period = std::chrono::hours(1);
    } else if (unit == "d") {
      *period = std::chrono::hours(24);
    } else {
      return false;
    }
    *count = n;
    return true;
  }

  // "header:X-User-Id" or "cookie:session" (names are RFC 9110 tokens).
  static HashKeyConfig ParseHashKey(const Section& s, const toml::node& node, std::string_view text,
                                    std::string_view key_name = "hash_key") {
    HashKeyConfig key;
    const size_t colon = text.find(':');
    const std::string_view kind = text.substr(0, colon);
    const std::string_view name =
        colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
    if (colon != std::string_view::npos && !name.empty() &&
        std::all_of(name.begin(), name.end(), base::IsTchar)) {
      if (kind == "header") {
        key.kind = HashKeyConfig::Kind::kHeader;
        key.name = base::ToLowerAscii(name);
        return key;
      }
      if (kind == "cookie") {
        key.kind = HashKeyConfig::Kind::kCookie;
        key.name = std::string(name);
        return key;
      }
    }
    if (text == "client_ip") {
      return key;
    }
    s.FailAt(node, key_name,
             "expected \"client_ip\", \"header:NAME\" or \"cookie:NAME\", got " + Quote(text));
  }

  // An array of status codes (404) or classes ("5xx") within [min, max].
  static std::vector<StatusRange> StatusList(const Section& s, std::string_view key, int min,
                                             int max) {
    const toml::node& node = *s.Find(key);
    const auto* array = node.as_array();
    const std::string expected = "expected an array of status codes (" + std::to_string(min) +
                                 ") or classes (\"" + std::to_string(min / 100) + "xx\")";
    if (array == nullptr || array->empty()) {
      s.FailAt(node, key, expected + ", got " +
                              (array == nullptr ? std::string(TypeName(node)) : "an empty array"));
    }
    std::vector<StatusRange> out;
    for (const toml::node& element : *array) {
      StatusRange range;
      if (const auto* i = element.as_integer()) {
        if (i->get() < min || i->get() > max) {
          s.FailAt(element, key, expected + ", got " + std::to_string(i->get()));
        }
        range = {static_cast<uint16_t>(i->get()), static_cast<uint16_t>(i->get())};
      } else if (const auto* str = element.as_string()) {
        const std::string& v = str->get();
        if (v.size() != 3 || v[0] < '1' || v[0] > '5' || (v[1] != 'x' && v[1] != 'X') ||
            (v[2] != 'x' && v[2] != 'X') || (v[0] - '0') * 100 < min || (v[0] - '0') * 100 > max) {
          s.FailAt(element, key, expected + ", got " + Quote(v));
        }
        const auto first = static_cast<uint16_t>((v[0] - '0') * 100);
        range = {first, static_cast<uint16_t>(first + 99)};
      } else {
        s.FailAt(element, key, expected + ", got " + std::string(TypeName(element)));
      }
      out.push_back(range);
    }
    return out;
  }

  // A request-target path: printable ASCII without spaces (anything else could not have come
  // from a valid request line, so such a prefix would never match).
  static bool IsCleanPath(std::string_view path) {
    return std::all_of(path.begin(), path.end(),
                       [](char c) { return static_cast<unsigned char>(c) > 0x20 && c != 0x7f; });
  }

  // A Location value: "http(s)://host..." or "/path", printable ASCII without spaces. A prefix
  // gets the request path appended, so it must not end in '/' (that would double it).
  static bool IsRedirectTarget(std::string_view url, bool prefix) {
    if (!IsCleanPath(url) || url.empty()) {
      return false;
    }
    if (prefix && url.back() == '/') {
      return false;
    }
    if (url.front() == '/') {
      return url.size() == 1 || url[1] != '/';  // "//host" would be scheme-relative
    }
    for (std::string_view scheme : {"http://", "https://"}) {
      if (url.size() > scheme.size() &&
          base::ToLowerAscii(url.substr(0, scheme.size())) == scheme) {
        return url[scheme.size()] != '/';
      }
    }
    return false;
  }

  // Headers that torii itself manages (framing, hop-by-hop); adding them would break messages.
  static bool IsManagedHeader(std::string_view lower_name) {
    static constexpr std::string_view kManaged[] = {
        "connection", "content-length", "transfer-encoding", "keep-alive", "upgrade",
        "te",         "trailer",        "proxy-connection",  "host"};
    return std::find(std::begin(kManaged), std::end(kManaged), lower_name) != std::end(kManaged);
  }

  void LoadRoute(const toml::table& table, Config& config) {
    Section s(table, "[[route]] #" + std::to_string(config.routes.size() + 1));
    s.CheckKeys({"host",
                 "path_prefix",
                 "pool",
                 "compress",
                 "server_timing",
                 "add_headers",
                 "redirect",
                 "redirect_prefix",
                 "redirect_status",
                 "rate_limit",
                 "allow",
                 "deny",
                 "cache",
                 "strip_prefix",
                 "replace_prefix",
                 "regex_rewrite",
                 "upgrades",
                 "trailers",
                 "auth",
                 "require_client_cert",
                 "client_cert_allow",
                 "host_rewrite",
                 "request_headers",
                 "response_headers",
                 "path_exact",
                 "path_regex",
                 "methods",
                 "headers",
                 "query",
                 "return",
                 "split",
                 "split_sticky",
                 "split_by",
                 "connect_timeout",
                 "response_timeout",
                 "error_pages"});
    RouteConfig route;

    if (auto host = s.String("host")) {
      route.host = base::ToLowerAscii(*host);
      const bool ok = route.host == "*" ||
                      (route.host.starts_with("*.") && IsHostName(route.host.substr(2))) ||
                      IsHostName(route.host);
      if (!ok) {
        s.FailAt(*s.Find("host"), "host",
                 "expected a host name (\"example.com\"), a wildcard (\"*.example.com\") or \"*\", "
                 "got " +
                     Quote(*host));
      }
    }
    if (auto prefix = s.String("path_prefix")) {
      if (prefix->empty() || prefix->front() != '/' || !IsCleanPath(*prefix)) {
        s.FailAt(*s.Find("path_prefix"), "path_prefix",
                 "expected a path starting with '/' (no spaces or control characters), got " +
                     Quote(*prefix));
      }
      route.path_prefix = std::move(*prefix);
    }
    LoadMatchers(s, &route);

    const toml::node* redirect_node = s.Find("redirect");
    const toml::node* prefix_node = s.Find("redirect_prefix");
    if (redirect_node != nullptr && prefix_node != nullptr) {
      s.FailAt(*prefix_node, "redirect_prefix",
               "a route has either redirect (exact Location) or redirect_prefix (Location plus "
               "the request's path), not both");
    }
    if (redirect_node != nullptr || prefix_node != nullptr) {
      const std::string_view key = redirect_node != nullptr ? "redirect" : "redirect_prefix";
      const toml::node& node = redirect_node != nullptr ? *redirect_node : *prefix_node;
      route.redirect = s.StringOf(node, key);
      route.redirect_prefix = prefix_node != nullptr;
      if (!IsRedirectTarget(route.redirect, route.redirect_prefix)) {
        s.FailAt(node, key,
                 "expected an absolute URL (\"https://example.com/\") or a path (\"/new\") "
                 "without spaces or control characters" +
                     std::string(route.redirect_prefix ? " and not ending in '/'" : "") +
                     ", got " + Quote(route.redirect));
      }
      if (const toml::key* k = s.FindKey("pool")) {
        Fail(k->source(), s.label() + " pool: a redirect route answers itself; remove pool");
      }
      if (auto status = s.Int("redirect_status", 301, 308)) {
        if (*status == 304 || *status == 305 || *status == 306) {
          s.FailAt(*s.Find("redirect_status"), "redirect_status",
                   "expected 301, 302, 303, 307 or 308, got " + std::to_string(*status));
        }
        route.redirect_status = static_cast<uint16_t>(*status);
      }
    } else if (route.return_status != 0) {
      if (const toml::key* k = s.FindKey("pool")) {
        Fail(k->source(), s.label() + " pool: a return route answers itself; remove pool");
      }
    } else {
      if (const toml::key* k = s.FindKey("redirect_status")) {
        Fail(k->source(), s.label() + " redirect_status: set only with redirect or redirect_prefix");
      }
      if (s.Find("split") != nullptr) {
        LoadSplit(s, config, &route);
      } else {
        const toml::node& pool_node = s.Require("pool");
        route.pool = s.StringOf(pool_node, "pool");
        route.pool_index = PoolIndex(s, pool_node, config, route.pool);
      }
    }
    for (const std::string_view key : {"split_sticky", "split_by"}) {
      if (route.split.empty() && s.Find(key) != nullptr) {
        s.FailAt(*s.Find(key), key, "set only with split");
      }
    }

    if (auto name = s.String("rate_limit")) {
      auto it = std::find_if(config.rate_limits.begin(), config.rate_limits.end(),
                             [&](const RateLimitConfig& r) { return r.name == *name; });
      if (it == config.rate_limits.end()) {
        s.FailAt(*s.Find("rate_limit"), "rate_limit",
                 "no [rate_limit." + *name + "] table is defined");
      }
      route.rate_limit = std::move(*name);
      route.rate_limit_index = static_cast<uint32_t>(it - config.rate_limits.begin());
    }
    if (auto name = s.String("cache")) {
      auto it = std::find_if(config.caches.begin(), config.caches.end(),
                             [&](const CacheConfig& c) { return c.name == *name; });
      if (it == config.caches.end()) {
        s.FailAt(*s.Find("cache"), "cache", "no [cache." + *name + "] table is defined");
      }
      if (route.pool.empty()) {
        s.FailAt(*s.Find("cache"), "cache", "a redirect route answers itself: nothing to cache");
      }
      route.cache = std::move(*name);
      route.cache_index = static_cast<uint32_t>(it - config.caches.begin());
    }
    route.allow = CidrList(s, "allow");
    route.deny = CidrList(s, "deny");
    s.Bool("compress", &route.compress);
    s.Bool("server_timing", &route.server_timing);
    if (const toml::table* headers = s.SubTable("add_headers")) {
      route.add_headers = LoadHeaderMap(Section(*headers, s.label() + " add_headers"));
    }
    LoadRewrites(s, &route);
    s.Bool("require_client_cert", &route.require_client_cert);
    if (const toml::node* list = s.Find("client_cert_allow")) {
      const auto* array = list->as_array();
      if (array == nullptr || array->empty()) {
        s.FailAt(*list, "client_cert_allow",
                 "expected a non-empty array of certificate names (subject CN or SAN)");
      }
      for (const toml::node& element : *array) {
        std::string name = s.StringOf(element, "client_cert_allow");
        if (name.empty()) {
          s.FailAt(element, "client_cert_allow", "expected a name, got \"\"");
        }
        route.client_cert_allow.push_back(std::move(name));
      }
      route.require_client_cert = true;
    }
    if (const toml::table* t = s.SubTable("auth")) {
      if (route.pool.empty()) {
        s.FailAt(*s.Find("auth"), "auth", "a redirect route answers itself: nothing to protect");
      }
      route.auth = LoadBasicAuth(Section(*t, s.label() + " auth"), config.source);
    }
    route.error_pages = LoadErrorPages(s, config.source);
    for (const auto& [key, out] : {std::pair{"connect_timeout", &route.connect_timeout},
                                   std::pair{"response_timeout", &route.response_timeout}}) {
      if (s.Find(key) != nullptr) {
        if (route.pool.empty()) {
          s.FailAt(*s.Find(key), key, "a route that answers itself has no backend to wait for");
        }
        Duration d{};
        s.Dur(key, &d);
        *out = d;
      }
    }

    auto plain = [](const RouteConfig& r) {
      return r.path_exact.empty() && r.path_regex.empty() && r.methods.empty() &&
             r.headers.empty() && r.query.empty();
    };
    for (size_t i = 0; i < config.routes.size(); ++i) {
      const RouteConfig& other = config.routes[i];
      if (plain(other) && plain(route) && other.host == route.host &&
          other.path_prefix == route.path_prefix) {
        Fail(table.source(), s.label() + ": same host and path_prefix as [[route]] #" +
                                 std::to_string(i + 1) + ", so it could never match");
      }
    }
    config.routes.push_back(std::move(route));
  }

  // add_headers = { "Name" = "value", ... }: names are RFC 9110 tokens, values hold no CR, LF,
  // NUL or other control character (HTAB is fine). Kept in file order, not toml++'s key order.
  static std::vector<std::pair<std::string, std::string>> LoadHeaderMap(const Section& s) {
    std::vector<std::pair<std::string, std::string>> out;
    std::vector<std::pair<const toml::key*, const toml::node*>> entries;
    for (auto&& [key, node] : s.table()) {
      entries.emplace_back(&key, &node);
    }
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      const toml::source_position& pa = a.first->source().begin;
      const toml::source_position& pb = b.first->source().begin;
      return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
    });
    std::vector<std::string> seen;
    for (const auto& [key, node] : entries) {
      const std::string name(key->str());
      if (name.empty() || !std::all_of(name.begin(), name.end(), base::IsTchar)) {
        Fail(key->source(), s.label() + ": header name " + Quote(name) +
                                " is not a valid token (letters, digits and !#$%&'*+-.^_`|~)");
      }
      const std::string lower = base::ToLowerAscii(name);
      if (IsManagedHeader(lower)) {
        Fail(key->source(),
             s.label() + ": header " + Quote(name) + " cannot be added: torii manages it");
      }
      if (std::find(seen.begin(), seen.end(), lower) != seen.end()) {
        Fail(key->source(), s.label() + ": header " + Quote(name) + " is listed twice");
      }
      seen.push_back(lower);
      std::string value = s.StringOf(*node, name);
      const bool clean = std::all_of(value.begin(), value.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u == '\t' || (u >= 0x20 && u != 0x7f);
      });
      if (!clean) {
        s.FailAt(*node, name,
                 "header value must not contain CR, LF, NUL or other control characters, got " +
                     Quote(value));
      }
      out.emplace_back(name, std::move(value));
    }
    return out;
  }

  // split = [{ pool, weight }, ...], split_sticky, split_by.
  // The index of the pool a route (or one of its split targets) names at `node`; an error
  // there when no [[pool]] has that name.
  static uint32_t PoolIndex(const Section& s, const toml::node& node, const Config& config,
                            const std::string& name) {
    auto pool = std::find_if(config.pools.begin(), config.pools.end(),
                             [&](const PoolConfig& p) { return p.name == name; });
    if (pool == config.pools.end()) {
      s.FailAt(node, "pool", "route pool " + Quote(name) + " is not defined");
    }
    return static_cast<uint32_t>(pool - config.pools.begin());
  }

  static void LoadSplit(const Section& s, const Config& config, RouteConfig* route) {
    const toml::node& list = *s.Find("split");
    if (s.Find("pool") != nullptr) {
      s.FailAt(*s.Find("pool"), "pool", "a route has either pool or split, not both");
    }
    const auto* array = list.as_array();
    if (array == nullptr || array->size() < 2) {
      s.FailAt(list, "split", "expected at least two { pool = \"...\", weight = N } entries");
    }
    for (const toml::node& element : *array) {
      const toml::table* t = element.as_table();
      if (t == nullptr) {
        s.FailAt(element, "split", "expected { pool = \"...\", weight = N }");
      }
      Section e(*t, s.label() + " split");
      e.CheckKeys({"pool", "weight"});
      RouteConfig::SplitTarget target;
      const toml::node& pool_node = e.Require("pool");
      target.pool = e.StringOf(pool_node, "pool");
      target.pool_index = PoolIndex(e, pool_node, config, target.pool);
      for (const RouteConfig::SplitTarget& other : route->split) {
        if (other.pool == target.pool) {
          e.FailAt(pool_node, "pool", "pool " + Quote(target.pool) + " is listed twice");
        }
      }
      e.U32("weight", 0, 1000000, &target.weight);
      route->split.push_back(std::move(target));
    }
    uint64_t total = 0;
    for (const RouteConfig::SplitTarget& t : route->split) {
      total += t.weight;
    }
    if (total == 0) {
      s.FailAt(list, "split", "at least one weight must be above 0");
    }
    route->pool = route->split[0].pool;
    route->pool_index = route->split[0].pool_index;
    s.Bool("split_sticky", &route->split_sticky);
    if (auto by = s.String("split_by")) {
      route->split_by = ParseHashKey(s, *s.Find("split_by"), *by, "split_by");
      if (route->split_by->kind == HashKeyConfig::Kind::kClientIp) {
        s.FailAt(*s.Find("split_by"), "split_by",
                 "expected \"header:NAME\" or \"cookie:NAME\" (split_sticky keys on the client)");
      }
    }
  }

  // path_exact / path_regex, methods, headers, query, return.
  static void LoadMatchers(const Section& s, RouteConfig* route) {
    const int paths = (s.Find("path_prefix") != nullptr) + (s.Find("path_exact") != nullptr) +
                      (s.Find("path_regex") != nullptr);
    if (paths > 1) {
      const toml::node& n = s.Find("path_regex") != nullptr ? *s.Find("path_regex")
                                                            : *s.Find("path_exact");
      s.FailAt(n, s.Find("path_regex") != nullptr ? "path_regex" : "path_exact",
               "a route matches one of path_prefix, path_exact or path_regex");
    }
    if (auto exact = s.String("path_exact")) {
      if (exact->empty() || exact->front() != '/' || !IsCleanPath(*exact)) {
        s.FailAt(*s.Find("path_exact"), "path_exact",
                 "expected a path starting with '/' (no spaces or control characters), got " +
                     Quote(*exact));
      }
      route->path_exact = std::move(*exact);
    }
    if (auto regex = s.String("path_regex")) {
      CheckRegex(s, *s.Find("path_regex"), "path_regex", *regex);
      route->path_regex = std::move(*regex);
    }
    if (const toml::node* list = s.Find("methods")) {
      static constexpr std::string_view kKnown[] = {"GET",     "HEAD",  "POST",  "PUT",  "DELETE",
                                                    "OPTIONS", "TRACE", "PATCH", "PURGE"};
      const auto* array = list->as_array();
      if (array == nullptr || array->empty()) {
        s.FailAt(*list, "methods", "expected a non-empty array of methods such as [\"GET\"]");
      }
      for (const toml::node& element : *array) {
        std::string m = s.StringOf(element, "methods");
        if (std::find(std::begin(kKnown), std::end(kKnown), m) == std::end(kKnown)) {
          s.FailAt(element, "methods",
                   "expected one of GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH, PURGE "
                   "(uppercase), got " +
                       Quote(m));
        }
        route->methods.push_back(std::move(m));
      }
    }
    for (const auto& [key, out] :
         {std::pair{"headers", &route->headers}, std::pair{"query", &route->query}}) {
      const toml::node* list = s.Find(key);
      if (list == nullptr) {
        continue;
      }
      const auto* array = list->as_array();
      if (array == nullptr) {
        s.FailAt(*list, key, "expected an array of { name = ..., value | present | regex = ... }");
      }
      for (const toml::node& element : *array) {
        const toml::table* t = element.as_table();
        if (t == nullptr) {
          s.FailAt(element, key, "expected { name = ..., value | present | regex = ... }");
        }
        Section m(*t, s.label() + " " + key);
        m.CheckKeys({"name", "value", "present", "regex"});
        FieldMatch f;
        f.name = m.StringOf(m.Require("name"), "name");
        if (f.name.empty() || !std::all_of(f.name.begin(), f.name.end(), base::IsTchar)) {
          m.FailAt(*m.Find("name"), "name", "expected a field name, got " + Quote(f.name));
        }
        if (std::string_view(key) == "headers") {
          f.name = base::ToLowerAscii(f.name);
        }
        const int kinds = (m.Find("value") != nullptr) + (m.Find("present") != nullptr) +
                          (m.Find("regex") != nullptr);
        if (kinds != 1) {
          m.FailAt(*m.Find("name"), "name", "give exactly one of value, present or regex");
        }
        if (auto v = m.String("value")) {
          f.kind = FieldMatch::Kind::kExact;
          f.value = std::move(*v);
        } else if (auto r = m.String("regex")) {
          CheckRegex(m, *m.Find("regex"), "regex", *r);
          f.kind = FieldMatch::Kind::kRegex;
          f.value = std::move(*r);
        } else {
          bool present = true;
          m.Bool("present", &present);
          f.kind = present ? FieldMatch::Kind::kPresent : FieldMatch::Kind::kAbsent;
        }
        out->push_back(std::move(f));
      }
    }
    if (const toml::table* ret = s.SubTable("return")) {
      Section r(*ret, s.label() + " return");
      r.CheckKeys({"status", "body"});
      const auto status = r.Int("status", 200, 599);
      if (!status) {
        r.FailAt(*ret, "status", "expected status = 200..599");
      }
      route->return_status = static_cast<uint16_t>(*status);
      if (auto body = r.String("body")) {
        if (body->size() > 64 * 1024) {
          r.FailAt(*r.Find("body"), "body", "expected at most 64KiB");
        }
        route->return_body = std::move(*body);
      }
      if (s.Find("redirect") != nullptr || s.Find("redirect_prefix") != nullptr) {
        s.FailAt(*s.Find("return"), "return", "a route either redirects or returns, not both");
      }
    }
  }

  // A bcrypt, SHA-crypt or yescrypt hash as libcrypt reads it (http/basic_auth.h checks
  // passwords against them); the legacy and foreign formats are refused.
  static bool IsSupportedPasswordHash(const std::string& hash) {
    static constexpr std::string_view kPrefixes[] = {"$2b$", "$2y$", "$2a$", "$5$", "$6$", "$y$"};
    return std::any_of(std::begin(kPrefixes), std::end(kPrefixes),
                       [&](std::string_view p) { return hash.starts_with(p); }) &&
           crypt_checksalt(hash.c_str()) == CRYPT_SALT_OK;
  }

  // auth = { users_file, realm, forward }: the htpasswd file is read here, one "user:hash"
  // per line ('#' comments and blank lines skipped); each hash must be one libcrypt checks
  // and that is not a weak legacy one.
  static BasicAuthConfig LoadBasicAuth(const Section& s, const std::string& source) {
    s.CheckKeys({"users_file", "realm", "forward"});
    BasicAuthConfig auth;
    const toml::node& file_node = s.Require("users_file");
    auth.users_file = RelativeTo(source, s.StringOf(file_node, "users_file"));
    if (auto realm = s.String("realm")) {
      if (realm->empty() || realm->size() > 128 ||
          !std::all_of(realm->begin(), realm->end(),
                       [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; })) {
        s.FailAt(*s.Find("realm"), "realm",
                 "expected 1-128 printable characters without quotes or backslashes, got " +
                     Quote(*realm));
      }
      auth.realm = std::move(*realm);
    }
    s.Bool("forward", &auth.forward);
    std::ifstream f(auth.users_file);
    if (!f) {
      s.FailAt(file_node, "users_file", "cannot read " + Quote(auth.users_file));
    }
    std::string line;
    for (uint32_t n = 1; std::getline(f, line); ++n) {
      if (!line.empty() && line.back() == '\r') {
        line.pop_back();
      }
      const std::string_view text = base::TrimOws(line);
      if (text.empty() || text.front() == '#') {
        continue;
      }
      const std::string where = auth.users_file + ":" + std::to_string(n) + ": ";
      const size_t colon = text.find(':');
      if (colon == 0 || colon == std::string_view::npos) {
        s.FailAt(file_node, "users_file", where + "expected USER:HASH");
      }
      std::string user(text.substr(0, colon));
      std::string hash(text.substr(colon + 1));
      if (!IsSupportedPasswordHash(hash)) {
        s.FailAt(file_node, "users_file",
                 where + "the hash of " + Quote(user) +
                     " is not bcrypt ($2y$, from htpasswd -B), SHA-crypt ($5$, $6$) or yescrypt "
                     "($y$); MD5 ($apr1$, $1$), DES, {SHA} and plain text are refused");
      }
      for (const auto& [other, unused] : auth.users) {
        if (other == user) {
          s.FailAt(file_node, "users_file", where + "user " + Quote(user) + " listed twice");
        }
      }
      auth.users.emplace_back(std::move(user), std::move(hash));
    }
    if (auth.users.empty()) {
      s.FailAt(file_node, "users_file", Quote(auth.users_file) + " lists no user");
    }
    return auth;
  }

  static void CheckRegex(const Section& s, const toml::node& node, std::string_view key,
                         const std::string& pattern) {
    RE2::Options options;
    options.set_log_errors(false);
    const RE2 re(pattern, options);
    if (!re.ok()) {
      s.FailAt(node, key, "invalid regular expression (RE2 syntax): " + re.error());
    }
  }

  // strip_prefix / replace_prefix, host_rewrite, request_headers, response_headers.
  static void LoadRewrites(const Section& s, RouteConfig* route) {
    const toml::node* strip = s.Find("strip_prefix");
    const toml::node* replace = s.Find("replace_prefix");
    const toml::node* regex = s.Find("regex_rewrite");
    if ((strip != nullptr) + (replace != nullptr) + (regex != nullptr) > 1) {
      s.FailAt(replace != nullptr ? *replace : *regex,
               replace != nullptr ? "replace_prefix" : "regex_rewrite",
               "a route has one of strip_prefix, replace_prefix or regex_rewrite");
    }
    if (route->pool.empty()) {
      for (const std::string_view key :
           {"strip_prefix", "replace_prefix", "regex_rewrite", "host_rewrite", "request_headers"}) {
        if (const toml::node* n = s.Find(key)) {
          s.FailAt(*n, key, "a redirect route answers itself: nothing goes to a backend to rewrite");
        }
      }
    }
    for (const auto& [node, key] :
         {std::pair{strip, "strip_prefix"}, std::pair{replace, "replace_prefix"}}) {
      if (node == nullptr) {
        continue;
      }
      std::string value = s.StringOf(*node, key);
      if (value.empty() || value.front() != '/' || !IsCleanPath(value)) {
        s.FailAt(*node, key,
                 "expected a path starting with '/' (no spaces or control characters), got " +
                     Quote(value));
      }
      if (node == strip) {
        route->strip_prefix = std::move(value);
      } else {
        route->replace_prefix = std::move(value);
      }
    }
    if (const toml::node* list = s.Find("trailers")) {
      route->trailers = HeaderNames(s, "trailers");
      for (const std::string& name : route->trailers) {
        if (IsManagedHeader(name)) {
          s.FailAt(*list, "trailers", Quote(name) + " frames the message: never a trailer");
        }
      }
    }
    if (const toml::node* list = s.Find("upgrades")) {
      const auto* array = list->as_array();
      if (array == nullptr) {
        s.FailAt(*list, "upgrades", "expected an array of protocols such as [\"websocket\"]");
      }
      route->upgrades.clear();
      for (const toml::node& element : *array) {
        std::string name = base::ToLowerAscii(s.StringOf(element, "upgrades"));
        if (name.empty() || name == "h2c" || !std::all_of(name.begin(), name.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                     c == '_';
            })) {
          s.FailAt(element, "upgrades",
                   "expected a protocol token such as \"websocket\" (h2c is not tunnelled), got " +
                       Quote(name));
        }
        route->upgrades.push_back(std::move(name));
      }
    }
    if (const toml::table* rw = s.SubTable("regex_rewrite")) {
      Section r(*rw, s.label() + " regex_rewrite");
      r.CheckKeys({"pattern", "substitution"});
      auto pattern = r.String("pattern");
      auto substitution = r.String("substitution");
      if (!pattern || !substitution) {
        r.FailAt(*rw, pattern ? "substitution" : "pattern",
                 "expected regex_rewrite = { pattern = \"^/old/(.*)$\", substitution = "
                 "\"/new/\\\\1\" }");
      }
      CheckRegex(r, *r.Find("pattern"), "pattern", *pattern);
      RE2::Options options;
      options.set_log_errors(false);
      const RE2 re(*pattern, options);
      std::string why;
      if (!re.CheckRewriteString(*substitution, &why)) {
        r.FailAt(*r.Find("substitution"), "substitution", why);
      }
      if (!IsCleanPath(*substitution)) {
        r.FailAt(
            *r.Find("substitution"), "substitution",
            "expected path text (no spaces or control characters), got " + Quote(*substitution));
      }
      route->rewrite_pattern = std::move(*pattern);
      route->rewrite_substitution = std::move(*substitution);
    }
    if (auto host = s.String("host_rewrite")) {
      const std::string_view name = std::string_view(*host).substr(0, host->rfind(':'));
      const bool port_ok = host->rfind(':') == std::string::npos ||
                           (host->size() > name.size() + 1 &&
                            std::all_of(host->begin() + name.size() + 1, host->end(),
                                        [](char c) { return c >= '0' && c <= '9'; }));
      if (!IsHostName(base::ToLowerAscii(name)) || !port_ok) {
        s.FailAt(*s.Find("host_rewrite"), "host_rewrite",
                 "expected a host name with an optional port (\"api.internal:8080\"), got " +
                     Quote(*host));
      }
      route->host_rewrite = std::move(*host);
    }
    for (const auto& [key, out] : {std::pair{"request_headers", &route->request_headers},
                                   std::pair{"response_headers", &route->response_headers}}) {
      const toml::table* table = s.SubTable(key);
      if (table == nullptr) {
        continue;
      }
      Section h(*table, s.label() + " " + key);
      h.CheckKeys({"set", "add", "remove"});
      if (std::string_view(key) == "request_headers") {
        // Fields torii writes itself for the backend: a second copy would contradict it.
        for (const std::string_view sub : {"set", "add"}) {
          const toml::table* t = h.SubTable(sub);
          for (auto&& [k, v] : t != nullptr ? *t : toml::table{}) {
            const std::string lower = base::ToLowerAscii(k.str());
            if (lower == "x-forwarded-for" || lower == "x-forwarded-proto" ||
                lower == "x-forwarded-host" || lower == "via") {
              Fail(k.source(), h.label() + " " + std::string(sub) + ": " + Quote(std::string(k.str())) +
                                   " is written by torii (trusted_proxies decides what it says)");
            }
          }
        }
      }
      if (const toml::table* set = h.SubTable("set")) {
        out->set = LoadHeaderMap(Section(*set, h.label() + " set"));
      }
      if (const toml::table* add = h.SubTable("add")) {
        out->add = LoadHeaderMap(Section(*add, h.label() + " add"));
      }
      out->remove = HeaderNames(h, "remove");
      for (const std::string& name : out->remove) {
        if (IsManagedHeader(name)) {
          h.FailAt(*h.Find("remove"), "remove",
                   "header " + Quote(name) + " cannot be removed: torii manages it");
        }
      }
    }
  }

  const toml::table& root_;
  // Where each accepted [[listener]] / [[pool]] starts, to point duplicates at the original.
  std::vector<uint32_t> listener_lines_;
  std::vector<uint32_t> pool_lines_;
};

}  // namespace

std::string ConfigError::ToString() const {
  if (line == 0) {
    return file + ": " + message;
  }
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

std::expected<Config, ConfigError> LoadConfigFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::unexpected(
        ConfigError{path, 0, 0, "cannot read file: " + std::string(std::strerror(errno))});
  }
  // A config any local user can rewrite lets any local user reroute the traffic: refused.
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IWOTH) != 0) {
    ::close(fd);
    return std::unexpected(ConfigError{
        path, 0, 0, "refused: the file is writable by every user (chmod o-w " + path + ")"});
  }
  std::string text;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      const int saved = errno;
      ::close(fd);
      return std::unexpected(
          ConfigError{path, 0, 0, "cannot read file: " + std::string(std::strerror(saved))});
    }
    if (n == 0) {
      break;
    }
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxFileBytes) {
      ::close(fd);
      return std::unexpected(ConfigError{path, 0, 0, "cannot read file: larger than 16MiB"});
    }
  }
  ::close(fd);
  return LoadConfigString(text, path);
}

std::expected<Config, ConfigError> LoadConfigString(std::string_view text,
                                                    const std::string& source_name) {
  try {
    const toml::table root = toml::parse(text, std::string_view(source_name));
    return Loader(root).Load(source_name);
  } catch (const toml::parse_error& e) {
    const toml::source_position& at = e.source().begin;
    return std::unexpected(ConfigError{source_name, at.line, at.column,
                                       "TOML syntax error: " + std::string(e.description())});
  } catch (const LoadFailure& e) {
    return std::unexpected(ConfigError{source_name, e.where.line, e.where.column, e.message});
  } catch (const std::exception& e) {
    return std::unexpected(ConfigError{source_name, 0, 0, std::string("cannot load: ") + e.what()});
  } catch (...) {
    return std::unexpected(ConfigError{source_name, 0, 0, "cannot load: unknown error"});
  }
}

// Integer followed by one of us, ms, s, m, h. No sign, no fraction, no spaces; microseconds
// round up to the next millisecond so that "500us" never becomes a zero timeout.
std::optional<Duration> ParseDuration(std::string_view text) {
  uint64_t value = 0;
  const size_t digits = ParseDecimal(text, &value);
  if (digits == 0) {
    return std::nullopt;
  }
  const std::string_view unit = text.substr(digits);
  uint64_t ms = 0;
  if (unit == "us") {
    ms = value / 1000 + (value % 1000 != 0 ? 1 : 0);
  } else {
    uint64_t scale = 0;
    if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60 * 1000;
    } else if (unit == "h") {
      scale = 60 * 60 * 1000;
    } else {
      return std::nullopt;
    }
    if (__builtin_mul_overflow(value, scale, &ms)) {
      return std::nullopt;
    }
  }
  if (ms > static_cast<uint64_t>(std::numeric_limits<Duration::rep>::max())) {
    return std::nullopt;
  }
  return Duration(static_cast<Duration::rep>(ms));
}

// Integer optionally followed by B, KiB/MiB/GiB/TiB (1024-based) or KB/MB/GB/TB (1000-based).
// Units are case-sensitive on purpose: "mb" (millibits?) is more likely a mistake than a size.
std::optional<uint64_t> ParseSize(std::string_view text) {
  uint64_t value = 0;
  const size_t digits = ParseDecimal(text, &value);
  if (digits == 0) {
    return std::nullopt;
  }
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {
      {"", 1},
      {"B", 1},
      {"KiB", kKiB},
      {"MiB", kMiB},
      {"GiB", kGiB},
      {"TiB", kGiB * 1024},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
      {"TB", 1000ull * 1000 * 1000 * 1000},
  };
  const std::string_view unit = text.substr(digits);
  for (const auto& [name, scale] : kUnits) {
    if (unit == name) {
      uint64_t bytes = 0;
      if (__builtin_mul_overflow(value, scale, &bytes)) {
        return std::nullopt;
      }
      return bytes;
    }
  }
  return std::nullopt;
}

}  // namespace torii::conf
