// torii-origin — the origin (backend) server used by torii's demo fleet, its integration
// tests and its wrk benchmarks.
//
// It is a test fixture, not part of the proxy: a small, fast HTTP/1.1 server built on plain
// epoll (one non-blocking, level-triggered loop per thread, SO_REUSEPORT listeners) and
// llhttp in strict mode for request parsing. Besides ordinary responses whose shape is
// chosen by query parameters (size, chunked, delay, status, cache headers, ...), it serves
// a set of deliberately broken responses (truncated bodies, resets, smuggling-style
// framing, bad header bytes) so the proxy's defences can be tested from both sides.
//
//   torii-origin --listen 127.0.0.1:0 --name NAME [--ready-file PATH] [--log PATH]
//                [--threads N] [--keepalive-timeout SECONDS] [--delay-ms N]
//                [--tcp-fastopen N]
//
// --delay-ms N holds every response (the control endpoints /__stats and /__health excepted)
// for N ms before producing it, on the same timer path as the per-request delay= parameter
// (the two add up): a slow backend for the load-balancing benchmark (bench/run.sh balance).
//
// Every parsed request can be appended to a JSON-lines log (--log), so tests can assert on
// exactly what reached the origin. The endpoint list is in Loop::route() below and in
// usage().
//
// Connection model: one request at a time per connection. llhttp is paused at the end of
// each message; bytes of pipelined requests that follow stay in the connection's input
// buffer (and the socket is not read) until the current response has been written, which
// answers pipelined requests in order and bounds memory. Bodies are read (and discarded,
// except for /echo) before the response is produced. Large generated bodies (size=N) are
// streamed from a fixed pattern buffer (or, with text=1, a fixed buffer of English-like
// text), never allocated whole.

#include <llhttp.h>

#include "http/codec/codec.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <strings.h>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------
// Configuration and process-wide state
// ---------------------------------------------------------------------------------------

struct Options {
  std::string listen;
  std::string name = "origin";
  std::string ready_file;
  std::string log_path;
  int threads = 1;
  double keepalive_s = 60;  // 0 disables the idle timeout
  int64_t delay_ms = 0;     // --delay-ms: added to every response's delay= (control paths excepted)
  int tcp_fastopen = 0;     // --tcp-fastopen: TCP Fast Open queue on the listener (0 = off)
};

Options g_opt;
llhttp_settings_t g_settings;

std::atomic<uint64_t> g_requests{0};     // parsed requests, /__stats excluded
std::atomic<uint64_t> g_connections{0};  // accepted connections
std::atomic<int64_t> g_active{0};        // currently open connections
std::atomic<uint64_t> g_next_conn_id{0};
std::atomic<uint64_t> g_health_toggle{0};
std::atomic<int> g_health_status{200};  // what /health answers; set with /__health?status=N

int g_log_fd = -1;
std::mutex g_log_mu;

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxHeaderBytes = 64 * 1024;       // request line + headers -> 431
constexpr size_t kMaxEchoBody = 256u * 1024 * 1024;  // /echo request body -> 413
constexpr size_t kLogBodyBytes = 4096;
constexpr size_t kFillBytes = 256 * 1024;     // generated body bytes queued per fill
constexpr size_t kWriteBudget = 4 * 1024 * 1024;  // bytes per flush before yielding
constexpr size_t kChunkBytes = 16 * 1024;     // max chunk size for chunked responses
constexpr int64_t kLingerMs = 2000;           // max wait for the peer's FIN after ours
constexpr int64_t kRstDelayMs = 20;           // /die-mid-rst: let the 10 bytes land first
constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";

// kFillBytes + one alphabet period of the repeating body pattern, so that any slice of up
// to kFillBytes can be copied from offset (pos % 36).
const std::string& pattern() {
  static const std::string p = [] {
    std::string s;
    s.reserve(kFillBytes + kAlphabet.size());
    while (s.size() < kFillBytes + kAlphabet.size()) s += kAlphabet;
    return s;
  }();
  return p;
}

// text=1 bodies: English-like prose, so that a compressing proxy has realistic work (the
// 36-byte pattern above compresses ~300x; this compresses ~3.3x with gzip -6). Words come
// from a fixed vocabulary; each next word is, 70% of the time, one of 4 fixed successors of
// the previous word (the phrases repeat, as in real text) and otherwise any word, drawn by
// a seeded splitmix64, so the bytes are the same in every run and every process. Sentences
// of 5..18 words with a capital, commas and . ? !, paragraphs of 3..7 sentences separated by
// an empty line, lines wrapped at 72 columns. Generated once (on first use) as a
// kTextPeriod-byte cycle followed by its first kFillBytes again, so that any slice of up to
// kFillBytes can be copied from offset (pos % kTextPeriod); a body longer than the period
// repeats it (invisible to gzip's 32 KiB window).
constexpr size_t kTextPeriod = 1u << 20;
constexpr std::string_view kWords[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but",
    "have", "an", "they", "you", "were", "her", "she", "there", "their", "one", "all",
    "we", "can", "has", "been", "if", "more", "when", "will", "would", "who", "so", "no",
    "out", "up", "into", "do", "than", "time", "its", "only", "other", "new", "some",
    "could", "these", "two", "may", "first", "then", "any", "like", "now", "my", "over",
    "such", "our", "man", "me", "even", "most", "made", "after", "also", "did", "many",
    "before", "must", "through", "back", "years", "where", "much", "your", "way", "well",
    "down", "should", "because", "each", "just", "those", "people", "how", "too", "little",
    "state", "good", "very", "make", "world", "still", "own", "see", "men", "work", "long",
    "here", "get", "both", "between", "life", "being", "under", "never", "day", "same",
    "another", "know", "while", "last", "might", "us", "great", "old", "year", "off",
    "come", "since", "against", "go", "came", "right", "used", "take", "three", "states",
    "himself", "few", "house", "use", "during", "without", "again", "place", "around",
    "however", "home", "small", "found", "thought", "went", "say", "part", "once",
    "general", "high", "upon", "school", "every", "town", "does", "got", "united", "left",
    "number", "course", "war", "until", "always", "away", "something", "fact", "though",
    "water", "less", "public", "put", "think", "almost", "hand", "enough", "far", "took",
    "head", "yet", "government", "system", "better", "set", "told", "nothing", "night",
    "end", "why", "called", "river", "eyes", "find", "going", "look", "asked", "later",
    "knew", "point", "next", "city", "give", "group", "toward", "young", "let", "room",
    "president", "side", "social", "given", "present", "several", "order", "national",
    "possible", "rather", "second", "face", "per", "among", "form", "important", "often",
    "things", "looked", "early", "white", "case", "garden", "become", "large", "big", "need",
    "four", "within", "felt", "along", "children", "saw", "best", "church", "ever",
    "least", "power", "development", "light", "thing", "seemed", "family", "interest",
    "want", "members", "mind", "country", "area", "others", "done", "turned", "although",
    "open", "story", "service", "problem", "certain", "kind", "different", "thus", "began",
    "door", "help", "means", "sense", "whole", "matter", "perhaps", "itself", "market",
    "times", "human", "law", "line", "above", "name", "example", "action", "company",
    "hands", "local", "show", "whether", "five", "history", "gave", "today", "either",
    "act", "feet", "across", "taken", "past", "quite", "anything", "seen", "having",
    "death", "week", "experience", "body", "word", "half", "really", "field", "car",
    "words", "already", "themselves", "information", "tell", "together", "college",
    "shall", "money", "period", "held", "keep", "sure", "free", "probably", "seems",
    "political", "real", "behind", "question", "air", "office", "making", "brought",
    "whose", "special", "heard", "major", "problems", "ago", "became", "federal", "moment",
    "study", "available", "known", "result", "street", "economic", "boy", "position",
    "reason", "change", "south", "board", "individual", "job", "society", "areas", "west",
    "close", "turn", "love", "community", "true", "court", "force", "full",
};
constexpr size_t kNumWords = sizeof kWords / sizeof kWords[0];

struct SplitMix64 {
  uint64_t x;
  uint64_t next() {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return size_t(((next() >> 32) * n) >> 32); }
};

const std::string& text_buffer() {
  static const std::string t = [] {
    constexpr size_t kSucc = 4;
    SplitMix64 r{0x746f726969ull};  // "torii"
    std::vector<uint16_t> succ(kNumWords * kSucc);
    for (auto& s : succ) s = uint16_t(r.below(kNumWords));
    std::string s;
    s.reserve(kTextPeriod + kFillBytes + 4096);
    size_t col = 0, prev = 0;
    while (s.size() < kTextPeriod) {
      for (size_t sentences = 3 + r.below(5); sentences > 0; --sentences) {
        size_t words = 5 + r.below(14);
        for (size_t w = 0; w < words; ++w) {
          size_t i = r.below(100) < 70 ? succ[prev * kSucc + r.below(kSucc)] : r.below(kNumWords);
          prev = i;
          std::string word(kWords[i]);
          if (w == 0) word[0] = char(word[0] - 'a' + 'A');
          if (w + 1 == words)
            word += ".?!."[r.below(4)];
          else if (r.below(10) == 0)
            word += ',';
          if (col > 0 && col + 1 + word.size() > 72) {
            s += '\n';
            col = 0;
          } else if (col > 0) {
            s += ' ';
            ++col;
          }
          s += word;
          col += word.size();
        }
      }
      s += "\n\n";
      col = 0;
    }
    s.resize(kTextPeriod);
    s.append(s, 0, kFillBytes);
    return s;
  }();
  return t;
}

int64_t mono_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// ---------------------------------------------------------------------------------------
// Small string helpers
// ---------------------------------------------------------------------------------------

void append_num(std::string& s, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  s.append(buf, r.ptr);
}

void append_hex(std::string& s, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v, 16);
  s.append(buf, r.ptr);
}

template <class T>
std::optional<T> parse_num(std::string_view s) {
  T v{};
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

// JSON string literal; control characters, DEL and every non-ASCII byte become \u00XX so
// the log stays valid JSON (one line per record) whatever bytes arrived.
void append_json(std::string& s, std::string_view v) {
  static const char* hex = "0123456789abcdef";
  s += '"';
  for (unsigned char ch : v) {
    if (ch == '"' || ch == '\\') {
      s += '\\';
      s += char(ch);
    } else if (ch < 0x20 || ch >= 0x7f) {
      s += "\\u00";
      s += hex[ch >> 4];
      s += hex[ch & 15];
    } else {
      s += char(ch);
    }
  }
  s += '"';
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding: %XX and '+' for space.
std::string url_decode(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '+') {
      out += ' ';
    } else if (v[i] == '%' && i + 2 < v.size() && hexval(v[i + 1]) >= 0 &&
               hexval(v[i + 2]) >= 0) {
      out += char(hexval(v[i + 1]) * 16 + hexval(v[i + 2]));
      i += 2;
    } else {
      out += v[i];
    }
  }
  return out;
}

// Calls fn(key, raw_value) for each key[=value] of a query string.
template <class Fn>
void for_each_param(std::string_view query, Fn&& fn) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      fn(item, std::string_view{});
    else
      fn(item.substr(0, eq), item.substr(eq + 1));
  }
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
  }
}

// "Date: <IMF-fixdate>\r\n", recomputed at most once per second per thread.
std::string_view date_header() {
  thread_local time_t cached_sec = -1;
  thread_local char buf[64];
  thread_local size_t len = 0;
  time_t now = time(nullptr);
  if (now != cached_sec) {
    tm t;
    gmtime_r(&now, &t);
    len = strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &t);
    cached_sec = now;
  }
  return {buf, len};
}

// Header values taken from query parameters must not break the response framing; the
// fault endpoints exist for that.
bool safe_header_value(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// ---------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------

struct Request {
  std::string method;
  std::string target;
  int vmajor = 1, vminor = 1;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> trailers;  // after a chunked body
  bool head_done = false;
  std::string cur_field, cur_value;
  std::string body;        // whole body for /echo, the first kLogBodyBytes otherwise
  uint64_t body_len = 0;
  bool keep_whole_body = false;
  bool keep_alive = true;
  bool head = false;
  size_t header_bytes = 0;

  void reset() {
    method.clear();
    target.clear();
    headers.clear();
    trailers.clear();
    head_done = false;
    cur_field.clear();
    cur_value.clear();
    if (body.capacity() > (1u << 20)) std::string().swap(body);
    body.clear();
    body_len = 0;
    keep_whole_body = false;
    keep_alive = true;
    head = false;
    header_bytes = 0;
  }

  std::string_view path() const {
    std::string_view t = target;
    return t.substr(0, t.find('?'));
  }
  std::string_view query() const {
    std::string_view t = target;
    size_t q = t.find('?');
    return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
  }
};

enum class Phase {
  Reading,   // waiting for / parsing the next request
  Writing,   // response bytes queued; `after` says what happens once they are written
  Delayed,   // waiting for a timer (delay=, interim-then-final, delayed RST)
  Sleeping,  // /sleep: never answer, close when the peer does
  Draining,  // our FIN is sent; discard input until the peer's FIN (lingering close)
};

enum class After { KeepAlive, Close, Rst, Resume, Sleep };
enum class OnTimer { Dispatch, Rst, Close };

struct Conn {
  int fd = -1;
  uint64_t id = 0;
  uint64_t nrequests = 0;  // requests parsed on this connection
  llhttp_t parser;
  Request req;
  int parse_error_status = 0;  // set by callbacks that reject a request (413, 431)

  std::string in;  // unparsed bytes (pipelined requests waiting their turn)
  size_t in_off = 0;
  std::string out;  // bytes queued for the socket
  size_t out_off = 0;

  // Streamed (generated) body: gen_left pattern bytes still to produce.
  bool gen_active = false;
  bool gen_chunked = false;
  bool gen_text = false;  // text=1: slices of text_buffer() instead of pattern()
  uint64_t gen_left = 0;
  uint64_t gen_pos = 0;

  Phase phase = Phase::Reading;
  After after = After::KeepAlive;
  OnTimer on_timer = OnTimer::Dispatch;
  int64_t resume_ms = 0;    // After::Resume: delay before dispatching the next stage
  int stage = 0;            // multi-step responses (/103-then-200)
  bool delay_done = false;  // delay= already waited for the current request
  uint32_t timer_gen = 0;   // invalidates stale one-shot timers
  int64_t idle_deadline = 0;
  bool peer_eof = false;
  bool dead = false;
  uint32_t events = 0;  // current epoll interest

  bool out_pending() const { return out_off < out.size() || gen_active; }
};

Conn& conn_of(llhttp_t* p) { return *static_cast<Conn*>(p->data); }

// --- llhttp callbacks ------------------------------------------------------------------

int reject(Conn& c, int status) {
  c.parse_error_status = status;
  return -1;
}

bool add_header_bytes(Conn& c, size_t n) {
  c.req.header_bytes += n;
  return c.req.header_bytes <= kMaxHeaderBytes;
}

int on_message_begin(llhttp_t* p) {
  conn_of(p).req.reset();
  return 0;
}

int on_url(llhttp_t* p, const char* at, size_t n) {
  Conn& c = conn_of(p);
  if (!add_header_bytes(c, n)) return reject(c, 431);
  c.req.target.append(at, n);
  return 0;
}

int on_header_field(llhttp_t* p, const char* at, size_t n) {
  Conn& c = conn_of(p);
  if (!add_header_bytes(c, n)) return reject(c, 431);
  c.req.cur_field.append(at, n);
  return 0;
}

int on_header_value(llhttp_t* p, const char* at, size_t n) {
  Conn& c = conn_of(p);
  if (!add_header_bytes(c, n)) return reject(c, 431);
  c.req.cur_value.append(at, n);
  return 0;
}

int on_header_value_complete(llhttp_t* p) {
  Request& r = conn_of(p).req;
  while (!r.cur_value.empty() && (r.cur_value.back() == ' ' || r.cur_value.back() == '\t'))
    r.cur_value.pop_back();
  (r.head_done ? r.trailers : r.headers)
      .emplace_back(std::move(r.cur_field), std::move(r.cur_value));
  r.cur_field.clear();
  r.cur_value.clear();
  return 0;
}

int on_headers_complete(llhttp_t* p) {
  Conn& c = conn_of(p);
  Request& r = c.req;
  r.head_done = true;
  r.vmajor = p->http_major;
  r.vminor = p->http_minor;
  r.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  r.head = p->method == HTTP_HEAD;
  r.keep_alive = llhttp_should_keep_alive(p) != 0;
  r.keep_whole_body = r.path() == "/echo";
  bool has_body = (p->flags & F_CHUNKED) != 0 || p->content_length > 0;
  if (has_body && r.vmajor == 1 && r.vminor == 1) {
    for (auto& [k, v] : r.headers) {
      if (iequals(k, "Expect") && iequals(v, "100-continue")) {
        c.out += "HTTP/1.1 100 Continue\r\n\r\n";
        break;
      }
    }
  }
  return 0;
}

int on_body(llhttp_t* p, const char* at, size_t n) {
  Conn& c = conn_of(p);
  Request& r = c.req;
  r.body_len += n;
  if (r.keep_whole_body) {
    if (r.body.size() + n > kMaxEchoBody) return reject(c, 413);
    r.body.append(at, n);
  } else if (r.body.size() < kLogBodyBytes) {
    r.body.append(at, std::min(n, kLogBodyBytes - r.body.size()));
  }
  return 0;
}

int on_message_complete(llhttp_t* p) {
  Conn& c = conn_of(p);
  if (p->upgrade) c.req.keep_alive = false;  // Upgrade / CONNECT: answer, then close
  return HPE_PAUSED;  // one request at a time: the rest stays buffered until we answer
}

void init_llhttp_settings() {
  llhttp_settings_init(&g_settings);
  g_settings.on_message_begin = on_message_begin;
  g_settings.on_url = on_url;
  g_settings.on_header_field = on_header_field;
  g_settings.on_header_value = on_header_value;
  g_settings.on_header_value_complete = on_header_value_complete;
  g_settings.on_headers_complete = on_headers_complete;
  g_settings.on_body = on_body;
  g_settings.on_message_complete = on_message_complete;
}

// --- request log -------------------------------------------------------------------------

void log_request(const Conn& c) {
  if (g_log_fd < 0) return;
  const Request& r = c.req;
  std::string s;
  s.reserve(256 + r.target.size() + std::min<size_t>(r.body.size(), kLogBodyBytes) * 2);
  s += "{\"conn\":";
  append_num(s, c.id);
  s += ",\"method\":";
  append_json(s, r.method);
  s += ",\"target\":";
  append_json(s, r.target);
  s += ",\"version\":\"";
  append_num(s, uint64_t(r.vmajor));
  s += '.';
  append_num(s, uint64_t(r.vminor));
  // [["name","value"],...]
  const auto append_fields = [&s](const std::vector<std::pair<std::string, std::string>>& fields) {
    s += '[';
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i) s += ',';
      s += '[';
      append_json(s, fields[i].first);
      s += ',';
      append_json(s, fields[i].second);
      s += ']';
    }
    s += ']';
  };
  s += "\",\"headers\":";
  append_fields(r.headers);
  s += ",\"trailers\":";
  append_fields(r.trailers);
  s += ",\"body\":";
  append_json(s, std::string_view(r.body).substr(0, kLogBodyBytes));
  s += ",\"body_len\":";
  append_num(s, r.body_len);
  s += "}\n";
  std::lock_guard lock(g_log_mu);
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(g_log_fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += size_t(n);
  }
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

// An ordinary (well-formed) response, shaped by the query parameters.
struct Response {
  int status = 200;
  std::string content_type = "text/plain";
  std::string body;
  std::optional<uint64_t> size;  // generated body of this many bytes instead of `body`
  bool text = false;             // text=1: the generated body is English-like text
  bool chunked = false;
  bool close = false;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Applies size=, text=, chunked=, status=, cc=, etag=, ct=, close=, hdr= (delay= is handled by
// the dispatcher, before any handler runs).
void apply_params(Response& r, std::string_view query) {
  for_each_param(query, [&](std::string_view key, std::string_view raw) {
    std::string v = url_decode(raw);
    if (key == "size") {
      if (auto n = parse_num<uint64_t>(v)) r.size = *n;
    } else if (key == "text") {
      r.text = v == "1";
    } else if (key == "chunked") {
      r.chunked = v == "1";
    } else if (key == "status") {
      if (auto n = parse_num<int>(v); n && *n >= 100 && *n <= 999) r.status = *n;
    } else if (key == "cc") {
      if (safe_header_value(v)) r.headers.emplace_back("Cache-Control", v);
    } else if (key == "etag") {
      if (safe_header_value(v)) r.headers.emplace_back("ETag", "\"" + v + "\"");
    } else if (key == "ct") {
      if (safe_header_value(v)) r.content_type = v;
    } else if (key == "close") {
      r.close = v == "1";
    } else if (key == "hdr") {
      size_t colon = v.find(':');
      if (colon == std::string::npos || colon == 0 || !safe_header_value(v)) return;
      std::string name = v.substr(0, colon);
      if (name.find_first_of(" \t") != std::string::npos) return;
      size_t start = v.find_first_not_of(" \t", colon + 1);
      r.headers.emplace_back(std::move(name),
                             start == std::string::npos ? std::string() : v.substr(start));
    }
  });
}

// ---------------------------------------------------------------------------------------
// The event loop (one per thread)
// ---------------------------------------------------------------------------------------

class Loop {
 public:
  explicit Loop(int listen_fd) : listen_fd_(listen_fd) {
    ka_ms_ = int64_t(g_opt.keepalive_s * 1000);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ep_ < 0 || wake_fd_ < 0) {
      perror("torii-origin: epoll/eventfd");
      std::exit(1);
    }
    add_fd(listen_fd_, &listen_tag_);
    add_fd(wake_fd_, &wake_tag_);
    scratch_.resize(kReadChunk);
  }

  ~Loop() {
    for (auto& [id, c] : conns_)
      if (!c->dead) ::close(c->fd);
    ::close(listen_fd_);
    ::close(wake_fd_);
    ::close(ep_);
  }

  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  void stop() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  void run() {
    std::vector<epoll_event> evs(256);
    now_ = mono_ms();
    while (!stopping_) {
      int timeout = -1;
      if (!timers_.empty())
        timeout = int(std::clamp<int64_t>(timers_.top().at - mono_ms(), 0, INT_MAX));
      int n = epoll_wait(ep_, evs.data(), int(evs.size()), timeout);
      if (n < 0) {
        if (errno == EINTR) continue;
        perror("torii-origin: epoll_wait");
        break;
      }
      now_ = mono_ms();
      for (int i = 0; i < n; ++i) on_event(evs[i]);
      run_timers();
      reap();
    }
  }

 private:
  struct Timer {
    int64_t at;
    uint64_t conn;
    uint32_t gen;
    bool idle;
    bool operator>(const Timer& o) const { return at > o.at; }
  };

  void add_fd(int fd, void* tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = tag;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      perror("torii-origin: epoll_ctl");
      std::exit(1);
    }
  }

  void on_event(const epoll_event& ev) {
    void* tag = ev.data.ptr;
    if (tag == &listen_tag_) {
      accept_all();
    } else if (tag == &wake_tag_) {
      stopping_ = true;
    } else {
      Conn& c = *static_cast<Conn*>(tag);
      if (c.dead) return;
      if (ev.events & (EPOLLERR | EPOLLHUP)) {
        close_conn(c);  // reset by the peer, or both directions shut: nothing left to do
        return;
      }
      drive(c);
    }
  }

  void accept_all() {
    for (int i = 0; i < 128; ++i) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) perror("torii-origin: accept4");
        return;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      c->id = ++g_next_conn_id;
      llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
      c->parser.data = c.get();
      c->idle_deadline = now_ + ka_ms_;
      c->events = EPOLLIN;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c.get();
      if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) < 0) {
        perror("torii-origin: epoll_ctl");
        ::close(fd);
        continue;
      }
      if (ka_ms_ > 0) timers_.push({c->idle_deadline, c->id, 0, true});
      g_connections.fetch_add(1, std::memory_order_relaxed);
      g_active.fetch_add(1, std::memory_order_relaxed);
      conns_.emplace(c->id, std::move(c));
    }
  }

  // --- connection state machine ----------------------------------------------------------

  // Makes as much progress as possible without blocking, then sets the epoll interest.
  void drive(Conn& c) {
    while (!c.dead) {
      if (!flush(c)) break;  // socket full (EPOLLOUT will call us back) or connection died
      if (c.phase == Phase::Writing) {
        finish_response(c);
        continue;
      }
      if (c.phase == Phase::Reading) {
        if (read_requests(c)) continue;  // a request was dispatched
        break;
      }
      if (c.phase == Phase::Sleeping || c.phase == Phase::Draining) discard_input(c);
      break;  // Delayed: the timer resumes us
    }
    if (!c.dead) update_interest(c);
  }

  void update_interest(Conn& c) {
    uint32_t want = 0;
    if (c.out_pending())
      want = EPOLLOUT;
    else if (!c.peer_eof && (c.phase == Phase::Reading || c.phase == Phase::Sleeping ||
                             c.phase == Phase::Draining))
      want = EPOLLIN;
    if (want == c.events) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.ptr = &c;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    c.events = want;
  }

  // Writes queued output (refilling it from the body generator). Returns true once
  // everything is written; false if the socket is full, the write budget is used (level-
  // triggered EPOLLOUT brings us back, letting other connections run), or the peer is gone.
  bool flush(Conn& c) {
    size_t budget = kWriteBudget;
    for (;;) {
      if (c.out_off == c.out.size()) {
        if (c.out.capacity() > (1u << 20))
          std::string().swap(c.out);
        else
          c.out.clear();
        c.out_off = 0;
        if (!fill_generated(c)) return true;
      }
      if (budget == 0) return false;
      size_t len = std::min(c.out.size() - c.out_off, budget);
      ssize_t n = ::send(c.fd, c.out.data() + c.out_off, len, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_off += size_t(n);
        budget -= size_t(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
      close_conn(c);
      return false;
    }
  }

  // Appends the next slice of a generated body to c.out; false when there is none.
  static bool fill_generated(Conn& c) {
    if (!c.gen_active) return false;
    const std::string& pat = c.gen_text ? text_buffer() : pattern();
    const size_t period = c.gen_text ? kTextPeriod : kAlphabet.size();
    if (!c.gen_chunked) {
      size_t n = size_t(std::min<uint64_t>(c.gen_left, kFillBytes));
      c.out.append(pat, size_t(c.gen_pos % period), n);
      c.gen_pos += n;
      c.gen_left -= n;
    } else {
      while (c.gen_left > 0 && c.out.size() < kFillBytes) {
        size_t n = size_t(std::min<uint64_t>(c.gen_left, kChunkBytes));
        append_hex(c.out, n);
        c.out += "\r\n";
        c.out.append(pat, size_t(c.gen_pos % period), n);
        c.out += "\r\n";
        c.gen_pos += n;
        c.gen_left -= n;
      }
      if (c.gen_left == 0) c.out += "0\r\n\r\n";
    }
    if (c.gen_left == 0) c.gen_active = false;
    return true;
  }

  // Reading phase: parse buffered bytes, then read the socket, until one request is
  // complete (dispatched; returns true) or we must wait (returns false).
  bool read_requests(Conn& c) {
    if (c.in_off < c.in.size()) {
      size_t avail = c.in.size() - c.in_off;
      size_t used = 0;
      int r = feed(c, c.in.data() + c.in_off, avail, &used);
      if (r != 0) {
        c.in_off += used;
        if (r > 0) {
          on_request(c);
        } else {
          bad_request(c);
        }
        return true;
      }
    }
    if (c.in.capacity() > (1u << 20))
      std::string().swap(c.in);
    else
      c.in.clear();
    c.in_off = 0;
    if (c.peer_eof) {
      close_conn(c);
      return false;
    }
    for (int i = 0; i < 16; ++i) {
      ssize_t n = ::recv(c.fd, scratch_.data(), scratch_.size(), 0);
      if (n > 0) {
        c.idle_deadline = now_ + ka_ms_;
        size_t used = 0;
        int r = feed(c, scratch_.data(), size_t(n), &used);
        if (r == 0) continue;
        if (r > 0) {
          c.in.assign(scratch_.data() + used, size_t(n) - used);
          on_request(c);
        } else {
          bad_request(c);
        }
        return true;
      }
      if (n == 0) {
        // The peer is done sending; everything it sent has been answered.
        c.peer_eof = true;
        close_conn(c);
        return false;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) close_conn(c);
      return false;
    }
    return false;  // still readable: level-triggered epoll calls us again
  }

  // Runs llhttp over [p, p+n). Returns 0 if all was consumed without finishing a request,
  // 1 if a request completed (*used = bytes up to its end), -1 on a malformed request.
  int feed(Conn& c, const char* p, size_t n, size_t* used) {
    llhttp_errno_t e = llhttp_execute(&c.parser, p, n);
    if (e == HPE_OK) {
      *used = n;
      return 0;
    }
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
      *used = size_t(llhttp_get_error_pos(&c.parser) - p);
      if (e == HPE_PAUSED_UPGRADE) c.req.keep_alive = false;
      llhttp_resume(&c.parser);
      return 1;
    }
    *used = n;
    return -1;
  }

  void discard_input(Conn& c) {
    for (int i = 0; i < 64; ++i) {
      ssize_t n = ::recv(c.fd, scratch_.data(), scratch_.size(), 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      close_conn(c);  // EOF or error: the peer is gone
      return;
    }
  }

  // The queued response has been written: do what it asked for next.
  void finish_response(Conn& c) {
    switch (c.after) {
      case After::KeepAlive:
        c.phase = Phase::Reading;
        c.idle_deadline = now_ + ka_ms_;
        break;
      case After::Close:
        linger_close(c);
        break;
      case After::Rst:
        arm_timer(c, kRstDelayMs, OnTimer::Rst);
        break;
      case After::Resume:
        arm_timer(c, c.resume_ms, OnTimer::Dispatch);
        break;
      case After::Sleep:
        c.phase = Phase::Sleeping;
        break;
    }
  }

  // Graceful close: send FIN now, close once the peer's FIN arrives (or after kLingerMs).
  // Closing while unread request bytes sit in the socket would make the kernel send RST,
  // which could destroy the response before the client reads it.
  void linger_close(Conn& c) {
    ::shutdown(c.fd, SHUT_WR);
    c.in.clear();
    c.in_off = 0;
    arm_timer(c, kLingerMs, OnTimer::Close);
    c.phase = Phase::Draining;
  }

  void rst_close(Conn& c) {
    linger l{1, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close_conn(c);
  }

  void close_conn(Conn& c) {
    if (c.dead) return;
    ::close(c.fd);
    c.dead = true;
    g_active.fetch_sub(1, std::memory_order_relaxed);
    dead_.push_back(c.id);
  }

  void reap() {
    for (uint64_t id : dead_) conns_.erase(id);
    dead_.clear();
  }

  void arm_timer(Conn& c, int64_t ms, OnTimer what) {
    c.phase = Phase::Delayed;
    c.on_timer = what;
    ++c.timer_gen;
    timers_.push({now_ + ms, c.id, c.timer_gen, false});
  }

  void run_timers() {
    while (!timers_.empty() && timers_.top().at <= now_) {
      Timer t = timers_.top();
      timers_.pop();
      auto it = conns_.find(t.conn);
      if (it == conns_.end() || it->second->dead) continue;
      Conn& c = *it->second;
      if (t.idle) {
        bool idle = c.phase == Phase::Reading && !c.out_pending();
        if (idle && now_ >= c.idle_deadline) {
          close_conn(c);
        } else {
          timers_.push({idle ? c.idle_deadline : now_ + ka_ms_, c.id, 0, true});
        }
        continue;
      }
      if (t.gen != c.timer_gen || c.phase == Phase::Writing || c.phase == Phase::Reading)
        continue;
      ++c.timer_gen;
      switch (c.on_timer) {
        case OnTimer::Dispatch:
          dispatch(c);
          drive(c);
          break;
        case OnTimer::Rst:
          rst_close(c);
          break;
        case OnTimer::Close:
          close_conn(c);
          break;
      }
    }
  }

  // --- requests --------------------------------------------------------------------------

  void on_request(Conn& c) {
    ++c.nrequests;
    if (c.req.path() != "/__stats" && c.req.path() != "/__health") {
      g_requests.fetch_add(1, std::memory_order_relaxed);
      log_request(c);
    }
    c.stage = 0;
    c.delay_done = false;
    dispatch(c);
  }

  void bad_request(Conn& c) {
    int status = c.parse_error_status ? c.parse_error_status : 400;
    std::string_view body = reason_phrase(status);
    std::string& o = c.out;
    status_line(o, status);
    o += "Content-Type: text/plain\r\nContent-Length: ";
    append_num(o, body.size() + 1);
    o += "\r\n";
    std_headers(c, c.nrequests + 1);
    o += "Connection: close\r\n\r\n";
    o += body;
    o += '\n';
    c.phase = Phase::Writing;
    c.after = After::Close;
  }

  static void status_line(std::string& o, int status) {
    o += "HTTP/1.1 ";
    append_num(o, uint64_t(status));
    o += ' ';
    o += reason_phrase(status);
    o += "\r\n";
  }

  // Date, X-Backend, X-Request-Count, X-Conn-Id.
  static void std_headers(Conn& c, uint64_t request_count) {
    std::string& o = c.out;
    o += date_header();
    o += "X-Backend: ";
    o += g_opt.name;
    o += "\r\nX-Request-Count: ";
    append_num(o, request_count);
    o += "\r\nX-Conn-Id: ";
    append_num(o, c.id);
    o += "\r\n";
  }
  static void std_headers(Conn& c) { std_headers(c, c.nrequests); }

  // Connection header (if one is needed) per the request's persistence; returns whether
  // the connection closes after this response.
  static bool connection_header(Conn& c, bool force_close) {
    bool close = force_close || !c.req.keep_alive;
    if (close)
      c.out += "Connection: close\r\n";
    else if (c.req.vmajor == 1 && c.req.vminor == 0)
      c.out += "Connection: keep-alive\r\n";
    return close;
  }

  void queued(Conn& c, After after) {
    c.phase = Phase::Writing;
    c.after = after;
  }
  void queued_persistent(Conn& c, bool close) {
    queued(c, close ? After::Close : After::KeepAlive);
  }

  void respond(Conn& c, Response& r) {
    std::string& o = c.out;
    // A conditional GET whose If-None-Match names this response's ETag (etag=) gets 304, as
    // an origin behind a cache would answer a revalidation.
    if (r.status == 200) {
      for (auto& [k, v] : r.headers) {
        if (strcasecmp(k.c_str(), "etag") != 0) continue;
        for (auto& [qk, qv] : c.req.headers) {
          if (strcasecmp(qk.c_str(), "if-none-match") == 0 &&
              (qv == v || qv == "W/" + v || qv == "*")) {
            r.status = 304;
            r.size.reset();
            r.body.clear();
          }
        }
      }
    }
    bool bodiless_status = r.status < 200 || r.status == 204 || r.status == 304;
    status_line(o, r.status);
    if (!bodiless_status) {
      o += "Content-Type: ";
      o += r.content_type;
      o += "\r\n";
      if (r.chunked) {
        o += "Transfer-Encoding: chunked\r\n";
      } else {
        o += "Content-Length: ";
        append_num(o, r.size ? *r.size : r.body.size());
        o += "\r\n";
      }
    }
    for (auto& [k, v] : r.headers) {
      o += k;
      o += ": ";
      o += v;
      o += "\r\n";
    }
    std_headers(c);
    bool close = connection_header(c, r.close);
    o += "\r\n";
    if (!bodiless_status && !c.req.head) {
      if (r.size) {
        c.gen_left = *r.size;
        c.gen_pos = 0;
        c.gen_chunked = r.chunked;
        c.gen_text = r.text;
        c.gen_active = r.chunked || *r.size > 0;
      } else if (r.chunked) {
        std::string_view b = r.body;
        while (!b.empty()) {
          size_t n = std::min(b.size(), kChunkBytes);
          append_hex(o, n);
          o += "\r\n";
          o += b.substr(0, n);
          o += "\r\n";
          b.remove_prefix(n);
        }
        o += "0\r\n\r\n";
      } else {
        o += r.body;
      }
    }
    queued_persistent(c, close);
  }

  void simple(Conn& c, int status, std::string body,
              std::string content_type = "text/plain") {
    Response r;
    r.status = status;
    r.body = std::move(body);
    r.content_type = std::move(content_type);
    respond(c, r);
  }

  // Raw fault response: `head` is the status line plus headers (without the final
  // CRLF); the standard headers and, if `persistence`, a Connection header are added.
  void raw(Conn& c, std::string_view head, std::string_view body, bool persistence,
           std::optional<After> after = std::nullopt) {
    c.out += head;
    std_headers(c);
    bool close = persistence ? connection_header(c, false) : !c.req.keep_alive;
    c.out += "\r\n";
    c.out += body;
    queued(c, after ? *after : close ? After::Close : After::KeepAlive);
  }

  void dispatch(Conn& c) {
    std::string_view query = c.req.query();
    if (!c.delay_done) {
      c.delay_done = true;
      int64_t delay = 0;
      for_each_param(query, [&](std::string_view k, std::string_view v) {
        if (k == "delay") delay = parse_num<int64_t>(v).value_or(0);
      });
      if (g_opt.delay_ms > 0 && c.req.path() != "/__stats" && c.req.path() != "/__health")
        delay = std::max<int64_t>(delay, 0) + g_opt.delay_ms;
      if (delay > 0) {
        arm_timer(c, delay, OnTimer::Dispatch);
        return;
      }
    }
    route(c, c.req.path(), query);
  }

  void route(Conn& c, std::string_view path, std::string_view query) {
    Request& q = c.req;
    if (path == "/echo") {
      Response r;
      r.content_type = "application/octet-stream";
      r.body = std::move(q.body);
      apply_params(r, query);
      respond(c, r);
    } else if (path == "/headers") {
      Response r;
      for (auto& [k, v] : q.headers) {
        r.body += k;
        r.body += ": ";
        r.body += v;
        r.body += '\n';
      }
      apply_params(r, query);
      respond(c, r);
    } else if (path == "/__stats") {
      std::string s = "{\"requests\":";
      append_num(s, g_requests.load());
      s += ",\"connections\":";
      append_num(s, g_connections.load());
      s += ",\"active\":";
      append_num(s, uint64_t(std::max<int64_t>(0, g_active.load())));
      s += "}";
      simple(c, 200, std::move(s), "application/json");
    } else if (path == "/health") {
      const int status = g_health_status.load();
      simple(c, status, status == 200 ? "ok" : "unhealthy");
    } else if (path == "/encoded") {
      // /encoded?coding=gzip|br|zstd&size=N: the size=N pattern body, already compressed,
      // with Content-Encoding (a backend that compresses; tests torii's decompress = true).
      // coding=garbage sends "Content-Encoding: gzip" over bytes that are not gzip.
      std::string coding = "gzip";
      uint64_t size = 1000;
      for_each_param(query, [&](std::string_view k, std::string_view v) {
        if (k == "coding") coding = std::string(v);
        if (k == "size") size = parse_num<uint64_t>(v).value_or(size);
      });
      std::string body;
      std::string name = coding;
      if (coding == "garbage") {
        body = "this is not gzip at all";
        name = "gzip";
      } else if (auto parsed = torii::http::codec::ParseCoding(coding);
                 parsed && *parsed != torii::http::codec::Coding::kIdentity &&
                 size <= (64u << 20)) {
        auto enc =
            torii::http::codec::MakeEncoder(*parsed, torii::http::codec::DefaultLevel(*parsed));
        std::string plain;
        plain.reserve(size);
        for (uint64_t i = 0; i < size; ++i) {
          plain.push_back("abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]);
        }
        if (!enc || !enc->Write(plain, &body) || !enc->Finish(&body)) {
          simple(c, 500, "encoder failed\n");
          return;
        }
      } else {
        simple(c, 400, "bad coding or size\n");
        return;
      }
      raw(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: " + name +
                 "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n",
          body, true);
    } else if (path == "/__health") {
      // Sets what /health answers from now on (the test's switch for active health checks).
      for_each_param(query, [&](std::string_view k, std::string_view v) {
        if (k == "status") {
          if (auto n = parse_num<int>(std::string(v)); n && *n >= 100 && *n <= 599) {
            g_health_status = *n;
          }
        }
      });
      simple(c, 200, "health status " + std::to_string(g_health_status.load()));
    } else if (path == "/health-toggle") {
      bool up = g_health_toggle.fetch_add(1) % 2 == 0;
      simple(c, up ? 200 : 503, up ? "ok" : "down");
    } else if (path == "/die-mid" || path == "/die-mid-rst") {
      raw(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n"
             "Cache-Control: max-age=60\r\n",
          "0123456789", false, path == "/die-mid" ? After::Close : After::Rst);
    } else if (path == "/die-mid-chunked") {
      raw(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n",
          "a\r\n0123456789\r\n", false, After::Close);
    } else if (path == "/trailers") {
      // A chunked body and trailer fields after it: one a client may get (Grpc-Status,
      // X-Checksum), two that belong in a head and must not pass as trailers.
      raw(c,
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
          "Trailer: Grpc-Status, X-Checksum\r\n",
          "5\r\nhello\r\n6\r\n world\r\n0\r\nGrpc-Status: 0\r\nX-Checksum:  abc \r\n"
          "Content-Type: evil/x\r\nSet-Cookie: stolen=1\r\n\r\n",
          true);
    } else if (path == "/bad-trailer") {
      raw(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n",
          "5\r\nhello\r\n0\r\nX-Bad: a\x01"
          "b\r\n\r\n",
          true);
    } else if (path == "/reset") {
      rst_close(c);
    } else if (path == "/close") {
      queued(c, After::Close);
    } else if (path == "/sleep") {
      queued(c, After::Sleep);
    } else if (path == "/garbage") {
      c.out += "THIS IS NOT HTTP\r\n\r\n";
      queued(c, After::Close);
    } else if (path == "/cl-te") {
      raw(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
          "0\r\n\r\n", true);
    } else if (path == "/dup-cl") {
      raw(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n", "hello", true);
    } else if (path == "/nul-hdr") {
      static constexpr char kHead[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Bad: a\0b\r\n";
      raw(c, std::string_view(kHead, sizeof kHead - 1), "ok", true);
    } else if (path == "/cr-hdr") {
      raw(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Bad: a\rb\r\n", "ok", true);
    } else if (path == "/obs-fold") {
      raw(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Folded: a\r\n b\r\n", "ok", true);
    } else if (path == "/bad-status") {
      raw(c, "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n", "ok", true);
    } else if (path == "/long-reason") {
      std::string head = "HTTP/1.1 200 ";
      head.append(65536, 'A');
      head += "\r\nContent-Length: 2\r\n";
      raw(c, head, "ok", true);
    } else if (path == "/r304cl") {
      raw(c, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n", "", true);
    } else if (path == "/r204cl") {
      raw(c, "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n", "", true);
    } else if (path == "/extra-bytes") {
      raw(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n",
          "okHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!", true);
    } else if (path == "/103-then-200" || path == "/100-then-200") {
      if (c.stage == 0) {
        c.out += path == "/103-then-200" ? "HTTP/1.1 103 Early Hints\r\n"
                                         : "HTTP/1.1 100 Continue\r\n";
        c.out += "Link: </a.css>; rel=preload\r\n\r\n";
        c.stage = 1;
        c.resume_ms = 10;
        queued(c, After::Resume);
      } else {
        simple(c, 200, "ok");
      }
    } else if (path == "/no-length") {
      c.out += "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n";
      std_headers(c);
      c.out += "Connection: close\r\n\r\nclose-delimited body\n";
      queued(c, After::Close);
    } else if (path == "/big-headers") {
      std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n";
      for (int i = 0; i < 200; ++i) {
        head += "X-H-";
        append_num(head, uint64_t(i));
        head += ": ";
        head.append(pattern(), size_t(i) % kAlphabet.size(), 100);
        head += "\r\n";
      }
      raw(c, head, "ok", true);
    } else {
      Response r;
      r.body = g_opt.name + "\n";
      apply_params(r, query);
      respond(c, r);
    }
  }

  int listen_fd_;
  int ep_ = -1;
  int wake_fd_ = -1;
  char listen_tag_ = 0;
  char wake_tag_ = 0;
  bool stopping_ = false;
  int64_t now_ = 0;
  int64_t ka_ms_ = 0;
  std::vector<char> scratch_;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::vector<uint64_t> dead_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
};

// ---------------------------------------------------------------------------------------
// Startup
// ---------------------------------------------------------------------------------------

[[noreturn]] void usage(const char* msg) {
  if (msg) fprintf(stderr, "torii-origin: %s\n", msg);
  fputs(
      "usage: torii-origin --listen ADDR:PORT --name NAME [--ready-file PATH] [--log PATH]\n"
      "                    [--threads N] [--keepalive-timeout SECONDS] [--delay-ms N]\n"
      "                    [--tcp-fastopen N]\n"
      "  ADDR:PORT is a.b.c.d:port or [v6]:port; port 0 picks a free port.\n"
      "  --keepalive-timeout 0 disables the idle timeout (default 60 s).\n"
      "  --delay-ms N delays every response by N ms (added to delay=; /__stats and\n"
      "  /__health are not delayed); default 0.\n"
      "  --tcp-fastopen N accepts requests in the SYN (TCP Fast Open, queue N); default off.\n"
      "query parameters (any path not below): size=N chunked=1 delay=MS status=NNN cc=V\n"
      "  etag=V ct=TYPE close=1 hdr=Name:Value (repeatable)\n"
      "  etag=V also answers 304 to If-None-Match: \"V\" (a revalidation)\n"
      "  text=1 makes the size=N body English-like text (~3.3x with gzip -6) instead of\n"
      "  a 36-byte repeating pattern; the same bytes for the same N, every time\n"
      "paths: /echo /headers /__stats /health /health-toggle /die-mid /die-mid-rst\n"
      "  /die-mid-chunked /trailers /bad-trailer /reset /close /sleep /garbage /cl-te /dup-cl\n"
      "  /nul-hdr /cr-hdr /obs-fold /bad-status /long-reason /r304cl /r204cl /extra-bytes\n"
      "  /103-then-200 /100-then-200 /no-length /big-headers\n",
      stderr);
  std::exit(2);
}

void parse_args(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    std::string value;
    size_t eq = a.find('=');
    std::string_view key = a.substr(0, eq);
    if (key == "-h" || key == "--help") usage(nullptr);
    if (eq != std::string_view::npos) {
      value = std::string(a.substr(eq + 1));
    } else {
      if (i + 1 >= argc) usage(("missing value for " + std::string(key)).c_str());
      value = argv[++i];
    }
    if (key == "--listen") {
      g_opt.listen = value;
    } else if (key == "--name") {
      g_opt.name = value;
    } else if (key == "--ready-file") {
      g_opt.ready_file = value;
    } else if (key == "--log") {
      g_opt.log_path = value;
    } else if (key == "--threads") {
      auto n = parse_num<int>(value);
      if (!n || *n < 1 || *n > 256) usage("--threads must be 1..256");
      g_opt.threads = *n;
    } else if (key == "--keepalive-timeout") {
      char* end = nullptr;
      double s = strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(s >= 0) || s > 1e6)
        usage("--keepalive-timeout must be a number of seconds >= 0");
      g_opt.keepalive_s = s;
    } else if (key == "--delay-ms") {
      auto n = parse_num<int64_t>(value);
      if (!n || *n < 0 || *n > 3600000) usage("--delay-ms must be 0..3600000");
      g_opt.delay_ms = *n;
    } else if (key == "--tcp-fastopen") {
      auto n = parse_num<int>(value);
      if (!n || *n < 0 || *n > 65535) usage("--tcp-fastopen must be 0..65535");
      g_opt.tcp_fastopen = *n;
    } else {
      usage(("unknown option " + std::string(key)).c_str());
    }
  }
  if (g_opt.listen.empty()) usage("--listen is required");
  if (!safe_header_value(g_opt.name)) usage("--name must not contain CR, LF or NUL");
}

bool parse_listen(const std::string& spec, sockaddr_storage& ss, socklen_t& len) {
  std::string host, port;
  if (!spec.empty() && spec[0] == '[') {
    size_t close = spec.find("]:");
    if (close == std::string::npos) return false;
    host = spec.substr(1, close - 1);
    port = spec.substr(close + 2);
  } else {
    size_t colon = spec.rfind(':');
    if (colon == std::string::npos) return false;
    host = spec.substr(0, colon);
    port = spec.substr(colon + 1);
  }
  auto p = parse_num<uint16_t>(port);
  if (!p) return false;
  memset(&ss, 0, sizeof ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(*p);
    len = sizeof *v4;
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(*p);
    len = sizeof *v6;
    return true;
  }
  return false;
}

int make_listener(const sockaddr_storage& ss, socklen_t len) {
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (g_opt.tcp_fastopen > 0 && setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &g_opt.tcp_fastopen,
                                           sizeof g_opt.tcp_fastopen) < 0) {
    ::close(fd);
    return -1;
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) < 0 || listen(fd, 4096) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// "a.b.c.d:port" or "[v6]:port" of a bound socket.
std::string bound_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  char host[INET6_ADDRSTRLEN] = "";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
  port = ntohs(v4->sin_port);
  return std::string(host) + ":" + std::to_string(port);
}

bool write_ready_file(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, content.data(), content.size()) == ssize_t(content.size());
  ok = ::close(fd) == 0 && ok;
  if (ok && ::rename(tmp.c_str(), path.c_str()) == 0) return true;
  ::unlink(tmp.c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  parse_args(argc, argv);
  init_llhttp_settings();
  pattern();

  signal(SIGPIPE, SIG_IGN);
  // SIGTERM/SIGINT are taken synchronously by the main thread (sigwait); the loop threads
  // inherit the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  if (!g_opt.log_path.empty()) {
    g_log_fd = ::open(g_opt.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (g_log_fd < 0) {
      perror(("torii-origin: " + g_opt.log_path).c_str());
      return 1;
    }
  }

  sockaddr_storage addr;
  socklen_t addr_len = 0;
  if (!parse_listen(g_opt.listen, addr, addr_len)) usage("bad --listen address");

  // The first socket binds the requested port (maybe 0); the others bind the port it got.
  std::vector<int> listeners;
  for (int i = 0; i < g_opt.threads; ++i) {
    int fd = make_listener(addr, addr_len);
    if (fd < 0) {
      fprintf(stderr, "torii-origin: cannot listen on %s: %s\n", g_opt.listen.c_str(),
              strerror(errno));
      return 1;
    }
    if (i == 0) {
      sockaddr_storage bound{};
      socklen_t blen = sizeof bound;
      getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
      uint16_t port = bound.ss_family == AF_INET6
                          ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                          : reinterpret_cast<sockaddr_in*>(&bound)->sin_port;
      if (addr.ss_family == AF_INET6)
        reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = port;
      else
        reinterpret_cast<sockaddr_in*>(&addr)->sin_port = port;
    }
    listeners.push_back(fd);
  }

  std::vector<std::unique_ptr<Loop>> loops;
  for (int fd : listeners) loops.push_back(std::make_unique<Loop>(fd));
  std::vector<std::thread> threads;
  for (auto& loop : loops) threads.emplace_back([l = loop.get()] { l->run(); });

  std::string address = bound_address(listeners[0]);
  if (!g_opt.ready_file.empty() && !write_ready_file(g_opt.ready_file, address + "\n")) {
    perror("torii-origin: ready file");
    for (auto& loop : loops) loop->stop();
    for (auto& t : threads) t.join();
    return 1;
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  for (auto& loop : loops) loop->stop();
  for (auto& t : threads) t.join();
  loops.clear();
  if (g_log_fd >= 0) ::close(g_log_fd);
  return 0;
}
