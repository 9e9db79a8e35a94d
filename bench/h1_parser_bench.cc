// bench/h1_parser_bench.cc: Google Benchmark micro-benchmarks of torii::http::H1Parser and
// BuildUpstreamRequestHead.
//
//   build-bench/bench/h1_parser_bench [--benchmark_min_time=0.5] [--benchmark_repetitions=3]
//
// Cases:
//   BM_ParseTypicalGet     one ~300-byte GET head with 8 headers
//   BM_LlhttpBareTypicalGet  the same bytes through bare llhttp (no callbacks): a baseline
//   BM_ParsePipelined16    16 of those back to back in one buffer (pipelining)
//   BM_ParseLargeHead4K    one GET whose head is ~4 KiB (big Cookie, many headers)
//   BM_ParseChunkedPost64K a POST with a 64 KiB body in 16 chunks of 4 KiB
//   BM_BuildUpstreamHead   the backend request head for the typical GET
//
// Each iteration reuses one parser the way a keep-alive connection does (DropConsumed()
// after kDone, then Next() on the next message), so the per-message cost includes
// H1Parser::Reset() but not construction. Every head and body span is consumed (header
// count, target length and body bytes are summed and passed to DoNotOptimize), and the
// expected totals are checked once before timing so a parser that silently fails cannot
// produce a fast, meaningless figure. bytes_per_second counts input bytes; items_per_second
// counts HTTP messages.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "http/h1_parser.h"
#include "http/serialize.h"

namespace {

using torii::http::Framing;
using torii::http::H1Parser;

// A browser-like API request: 8 headers, ~300 bytes.
std::string TypicalGet() {
  return "GET /api/v1/users/12345/profile?fields=name,email HTTP/1.1\r\n"
         "Host: app.example.com\r\n"
         "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0\r\n"
         "Accept: application/json, */*\r\n"
         "Accept-Language: en-US,en;q=0.5\r\n"
         "Accept-Encoding: gzip, br\r\n"
         "Connection: keep-alive\r\n"
         "Cookie: session=0123456789abcdef\r\n"
         "Referer: https://app.example.com/\r\n"
         "\r\n";
}
constexpr size_t kTypicalHeaders = 8;

// A ~4 KiB head: the typical headers, a 2.5 KiB Cookie and 24 X-Trace-* headers.
std::string LargeHead(size_t* header_count) {
  std::string s =
      "GET /search?q=reverse+proxy&page=2 HTTP/1.1\r\n"
      "Host: app.example.com\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
      "Accept-Language: en-US,en;q=0.5\r\n"
      "Accept-Encoding: gzip, deflate, br\r\n";
  size_t n = 5;
  s += "Cookie: ";
  for (int i = 0; s.size() < 2800; ++i) {
    s += 'c';
    s += std::to_string(i);
    s += "=0123456789abcdef0123456789abcdef; ";
  }
  s += "last=1\r\n";
  ++n;
  for (int i = 0; s.size() < 4096 - 60; ++i) {
    s += "X-Trace-";
    s += std::to_string(i);
    s += ": 00-4bf92f3577b34da6a3ce929d0e0e4736-01\r\n";
    ++n;
  }
  s += "\r\n";
  *header_count = n;
  return s;
}

std::string ChunkedPost(size_t total, size_t chunk) {
  std::string s =
      "POST /upload HTTP/1.1\r\n"
      "Host: app.example.com\r\n"
      "Content-Type: application/octet-stream\r\n"
      "Transfer-Encoding: chunked\r\n"
      "\r\n";
  const std::string data(chunk, 'x');
  char hex[32];
  for (size_t done = 0; done < total; done += chunk) {
    std::snprintf(hex, sizeof hex, "%zx\r\n", chunk);
    s += hex;
    s += data;
    s += "\r\n";
  }
  s += "0\r\n\r\n";
  return s;
}

struct Tally {
  uint64_t messages = 0;
  uint64_t headers = 0;
  uint64_t target_bytes = 0;
  uint64_t body_bytes = 0;
  bool error = false;
};

// Parses every message in buf[0..len) with a reused parser. The buffer holds whole messages:
// the run stops at the kDone that consumes the last byte, so the next call may DropConsumed()
// (allowed only after kHead/kBody/kDone, not after the kNeedMore that starts a new head).
inline void ParseAll(H1Parser& p, const std::string& buf, Tally& t) {
  p.DropConsumed();  // the previous run ended at kDone: start over at offset 0
  for (;;) {
    const H1Parser::Step s = p.Next(buf.data(), buf.size());
    switch (s.event) {
      case H1Parser::Event::kHead:
        t.headers += p.head().headers.size();
        t.target_bytes += p.head().target.size();
        benchmark::DoNotOptimize(p.head().headers.data());
        break;
      case H1Parser::Event::kBody:
        t.body_bytes += s.body.size();
        benchmark::DoNotOptimize(s.body.data());
        break;
      case H1Parser::Event::kDone:
        ++t.messages;
        if (p.consumed() == buf.size()) return;
        break;
      case H1Parser::Event::kNeedMore:
        return;
      case H1Parser::Event::kError:
        t.error = true;
        return;
    }
  }
}

// Runs the parse benchmark on `buf`, which holds `messages` messages with `headers` headers
// and `body` body bytes in total.
void RunParse(benchmark::State& state, const std::string& buf, uint64_t messages,
              uint64_t headers, uint64_t body) {
  H1Parser parser(H1Parser::Kind::kRequest, H1Parser::Limits{});
  {
    Tally check;
    ParseAll(parser, buf, check);
    if (check.error || check.messages != messages || check.headers != headers ||
        check.body_bytes != body) {
    std::fprintf(stderr, "check: error=%d (%d %s) messages=%llu headers=%llu body=%llu\n",
                 check.error, parser.error_status(), parser.error_reason(),
                 (unsigned long long)check.messages, (unsigned long long)check.headers,
                 (unsigned long long)check.body_bytes);
      state.SkipWithError("parser did not produce the expected messages");
      return;
    }
  }
  Tally t;
  for (auto _ : state) {
    ParseAll(parser, buf, t);
    benchmark::DoNotOptimize(t);
  }
  if (t.error) {
    state.SkipWithError("parse error during the timed loop");
    return;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * messages));
  state.counters["input_bytes"] = static_cast<double>(buf.size());
  state.counters["msgs"] = static_cast<double>(messages);
}

void BM_ParseTypicalGet(benchmark::State& state) {
  const std::string req = TypicalGet();
  RunParse(state, req, 1, kTypicalHeaders, 0);
}
BENCHMARK(BM_ParseTypicalGet);

// Baseline: bare llhttp (strict, no callbacks) on the same bytes, to show what H1Parser's
// bookkeeping and checks cost on top of the state machine.
void BM_LlhttpBareTypicalGet(benchmark::State& state) {
  const std::string req = TypicalGet();
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  llhttp_t p;
  uint64_t ok = 0;
  for (auto _ : state) {
    llhttp_init(&p, HTTP_REQUEST, &settings);
    ok += llhttp_execute(&p, req.data(), req.size()) == HPE_OK;
    benchmark::DoNotOptimize(ok);
  }
  if (ok != static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("llhttp rejected the typical request");
    return;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * req.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_LlhttpBareTypicalGet);

void BM_ParsePipelined16(benchmark::State& state) {
  std::string batch;
  for (int i = 0; i < 16; ++i) batch += TypicalGet();
  RunParse(state, batch, 16, 16 * kTypicalHeaders, 0);
}
BENCHMARK(BM_ParsePipelined16);

void BM_ParseLargeHead4K(benchmark::State& state) {
  size_t n = 0;
  const std::string req = LargeHead(&n);
  RunParse(state, req, 1, n, 0);
}
BENCHMARK(BM_ParseLargeHead4K);

void BM_ParseChunkedPost64K(benchmark::State& state) {
  const std::string req = ChunkedPost(64 * 1024, 4 * 1024);
  RunParse(state, req, 1, 3, 64 * 1024);
}
BENCHMARK(BM_ParseChunkedPost64K);

void BM_BuildUpstreamHead(benchmark::State& state) {
  const std::string req = TypicalGet();
  H1Parser parser(H1Parser::Kind::kRequest, H1Parser::Limits{});
  const H1Parser::Step s = parser.Next(req.data(), req.size());
  if (s.event != H1Parser::Event::kHead) {
    state.SkipWithError("typical request did not parse");
    return;
  }
  const torii::http::MessageHead& head = parser.head();
  std::string out;
  out.reserve(1024);
  uint64_t bytes = 0;
  for (auto _ : state) {
    torii::http::BuildUpstreamRequestHead(head, "app.example.com", head.target, "192.0.2.10",
                                          Framing::kNone, &out);
    bytes += out.size();
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["output_bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_BuildUpstreamHead);

}  // namespace
