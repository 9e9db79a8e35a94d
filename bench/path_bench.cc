// bench/path_bench.cc: Google Benchmark micro-benchmarks of path normalisation
// (http/path.cc), the cost every request pays before routing.
//
//   build-bench/bench/path_bench [--benchmark_min_time=0.5] [--benchmark_repetitions=3]
//
// Cases (each copies the target into a reused std::string, as the session's buffer holds it,
// then normalises it in place; BM_CopyOnly is that copy alone, the baseline to subtract):
//   BM_CopyOnly            the copy of the typical API target, no normalisation
//   BM_AlreadyNormal       "/api/v1/users/12345/profile?fields=name,email": the fast scan only
//   BM_Short               "/": the common benchmark path
//   BM_DotsAndEscapes      "/static/./css/%7Euser/../app.%63ss?v=3": the slow pass
//   BM_LongNormal1K        a 1 KiB path with no work to do
//   BM_RequestIdAndTraceparent  a request ID and a traceparent made and formatted
//   BM_MatchRouteTenPrefixes    route matching over ten prefix routes (last one matches)
#include <benchmark/benchmark.h>

#include <string>

#include "http/path.h"

namespace {

using torii::http::NormalizePath;
using torii::http::PathError;
using torii::http::PathOptions;

void Run(benchmark::State& state, const std::string& target, bool normalise) {
  std::string buf;
  buf.reserve(target.size());
  const PathOptions options;
  for (auto _ : state) {
    buf.assign(target);
    if (normalise) {
      const PathError e = NormalizePath(&buf, options);
      benchmark::DoNotOptimize(e);
    }
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

const std::string kTypical = "/api/v1/users/12345/profile?fields=name,email";

void BM_CopyOnly(benchmark::State& state) { Run(state, kTypical, false); }
void BM_AlreadyNormal(benchmark::State& state) { Run(state, kTypical, true); }
void BM_Short(benchmark::State& state) { Run(state, "/", true); }
void BM_DotsAndEscapes(benchmark::State& state) {
  Run(state, "/static/./css/%7Euser/../app.%63ss?v=3", true);
}
void BM_LongNormal1K(benchmark::State& state) {
  std::string path;
  while (path.size() < 1024) {
    path += "/segment-" + std::to_string(path.size());
  }
  Run(state, path, true);
}

BENCHMARK(BM_CopyOnly);
BENCHMARK(BM_AlreadyNormal);
BENCHMARK(BM_Short);
BENCHMARK(BM_DotsAndEscapes);
BENCHMARK(BM_LongNormal1K);

}  // namespace

// The per-request cost of the request ID and traceparent torii adds (http/trace.h), and of
// route matching with matchers, for the same "< 3 % of a request" budget.
#include "http/router.h"
#include "http/trace.h"

namespace {

void BM_RequestIdAndTraceparent(benchmark::State& state) {
  torii::http::IdSource ids;
  std::string id;
  std::string lines;
  for (auto _ : state) {
    id.clear();
    lines.clear();
    uint8_t raw[16];
    ids.Fill(raw, sizeof(raw));
    torii::http::AppendHex(raw, sizeof(raw), &id);
    torii::http::TraceParent tp;
    ids.Fill(tp.trace_id.data(), tp.trace_id.size());
    ids.Fill(tp.parent_id.data(), tp.parent_id.size());
    lines.append("X-Request-Id: ").append(id).append("\r\ntraceparent: ");
    torii::http::AppendTraceParent(tp, &lines);
    benchmark::DoNotOptimize(lines.data());
  }
}
BENCHMARK(BM_RequestIdAndTraceparent);

// Ten prefix routes, the request matching the last (the common shape of a config).
void BM_MatchRouteTenPrefixes(benchmark::State& state) {
  std::vector<torii::http::RouteSpec> routes(10);
  for (int i = 0; i < 9; ++i) {
    routes[i].path_prefix.assign("/service-").append(1, static_cast<char>('0' + i)).append("/");
  }
  routes[9].path_prefix = "/";
  for (auto _ : state) {
    auto r = torii::http::MatchRoute(routes, "app.example.com", kTypical);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_MatchRouteTenPrefixes);

}  // namespace
