#!/usr/bin/env bash
# Runs torii's fuzz targets (tests/fuzz/*_fuzz.cc) under libFuzzer with ASan + UBSan.
#   scripts/fuzz.sh TARGET [SECONDS]   one target, SECONDS (default 60) of fuzzing
#   scripts/fuzz.sh all [SECONDS]      every target, SECONDS each (CI: a few seconds each)
#   scripts/fuzz.sh list               the target names
# Needs clang 16 and libclang-rt-16-dev (scripts/install-deps.sh installs them). Why 16: the
# config loader returns std::expected, and libstdc++ 12 offers it only when __cpp_concepts says
# 202002; clang 16 implements what <expected> needs (P0848, conditionally trivial special
# members) but still reports 201907, so the macro is raised below. clang 14 lacks P0848.
# CXX_FUZZ/CC_FUZZ override the compilers. Objects, binaries,
# the growing working corpus (seeded from tests/fuzz/corpus/TARGET/) and crash artifacts live
# in ${FUZZ_DIR:-build-fuzz}/. A crash fails the script and prints the input's path: add that
# input to tests/fuzz/corpus/TARGET/ with the fix (fuzz_test then replays it on every run).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${FUZZ_DIR:-build-fuzz}
CXX=${CXX_FUZZ:-clang++-16}
CC=${CC_FUZZ:-clang-16}

# Sources each target needs besides its own file (the stage code under test, nothing else).
declare -A SOURCES=(
  [h1_request]="http/h1_parser.cc http/serialize.cc"
  [h1_response]="http/h1_parser.cc http/serialize.cc"
  [path]="http/path.cc"
  [cache]="cache/cache_control.cc cache/http_date.cc cache/policy.cc"
  [negotiate]="http/codec/negotiate.cc http/codec/types.cc"
  [client_ip]="ratelimit/ip.cc ratelimit/client_ip.cc ratelimit/hash.cc"
  [access_log]="http/access_log.cc http/phases.cc"
  [decoder]="http/codec/codec.cc http/codec/gzip.cc http/codec/brotli.cc http/codec/zstd.cc
             http/codec/negotiate.cc http/codec/types.cc"
  [config]="conf/load.cc conf/address.cc balancer/picker.cc balancer/round_robin.cc balancer/least_conn.cc balancer/ip_hash.cc"
  [proxy_protocol]="http/proxy_protocol.cc"
  [h2_fields]="http/h2_fields.cc http/serialize.cc"
  [grpc]="http/grpc.cc"
  [dns_message]="dns/message.cc"
  [disk_meta]="cache/disk.cc cache/tags.cc cache/policy.cc cache/cache_control.cc cache/http_date.cc"
  [h2_client]="http/hpack.cc http/h2_codec.cc http/h2_client_codec.cc http/h1_parser.cc http/serialize.cc"
  [h2_server]="http/hpack.cc http/h2_codec.cc http/h2_server_codec.cc http/h1_parser.cc http/serialize.cc"
  [hpack]="http/hpack.cc"
)
declare -A LIBS=(
  [h1_request]="llhttp"
  [h1_response]="llhttp"
  [access_log]="-lfmt"
  [decoder]="-lz -lisal -lbrotlienc -lbrotlidec -lzstd"
  [config]="-ltomlplusplus -lre2 -lcrypt"
  [disk_meta]="-lisal"
  [h2_client]="llhttp -lnghttp2"
  [h2_server]="llhttp -lnghttp2"
  [hpack]="-lnghttp2"
)
TARGETS=(h1_request h1_response path cache negotiate client_ip access_log decoder config
         proxy_protocol h2_fields grpc dns_message disk_meta h2_client h2_server hpack)

cxxflags=(-std=c++2b -U__cpp_concepts -D__cpp_concepts=202002L -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined
          -DTORII_LIBFUZZER -DLLHTTP_STRICT_MODE=1 -I. -I/usr/share/include/llhttp
          # toml++ as torii links it (Debian's shared library), not its header-only debug build
          -DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1)

# Compiles `src` once into $out/obj (instrumented for coverage, no main); again when it or any
# header it includes (the compiler's dependency file says which) changed since.
stale() {
  local obj=$1 src=$2
  [[ ! -f "$obj" || ! -f "$obj.d" || "$src" -nt "$obj" ]] && return 0
  local dep
  for dep in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$obj.d"); do
    [[ "$dep" -nt "$obj" ]] && return 0
  done
  return 1
}

object() {
  local src=$1 obj="$out/obj/${1//\//_}.o"
  if stale "$obj" "$src"; then
    if [[ "$src" == *.c ]]; then
      "$CC" -O1 -g -fsanitize=fuzzer-no-link,address,undefined -DLLHTTP_STRICT_MODE=1 \
        -I/usr/share/include/llhttp -MMD -MF "$obj.d" -c "$src" -o "$obj"
    else
      "$CXX" "${cxxflags[@]}" -fsanitize=fuzzer-no-link -MMD -MF "$obj.d" -c "$src" -o "$obj"
    fi
  fi
  echo "$obj"
}

build() {
  local t=$1 objs=() libs=() s
  for s in tests/fuzz/${t}_fuzz.cc ${SOURCES[$t]}; do
    objs+=("$(object "$s")")
  done
  for s in ${LIBS[$t]:-}; do
    if [[ "$s" == llhttp ]]; then
      for c in llhttp api http; do
        objs+=("$(object "/usr/share/llhttp/$c.c")")
      done
    else
      libs+=("$s")
    fi
  done
  "$CXX" "${cxxflags[@]}" -fsanitize=fuzzer "${objs[@]}" "${libs[@]}" -o "$out/${t}_fuzz"
}

run() {
  local t=$1 seconds=$2
  mkdir -p "$out/corpus/$t" "$out/artifacts"
  local log="$out/$t.log"
  if ! "$out/${t}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=8192 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
      "$out/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t FAILED (input in $out/artifacts/)" >&2
    return 1
  fi
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  printf 'fuzz: %-12s %10s executions in %s s, corpus %s inputs\n' "$t" "${execs:-?}" "$seconds" \
    "$(ls "$out/corpus/$t" | wc -l)"
}

what=${1:-}
seconds=${2:-60}
if [[ "$what" == list ]]; then
  printf '%s\n' "${TARGETS[@]}"
  exit 0
fi
if [[ -z "$what" ]]; then
  echo "usage: scripts/fuzz.sh TARGET|all|list [SECONDS]" >&2
  exit 2
fi
if [[ "$what" == all ]]; then
  selected=("${TARGETS[@]}")
else
  [[ -n "${SOURCES[$what]+x}" ]] || { echo "unknown target: $what" >&2; exit 2; }
  selected=("$what")
fi
mkdir -p "$out/obj"
for t in "${selected[@]}"; do
  build "$t"
done
status=0
for t in "${selected[@]}"; do
  run "$t" "$seconds" || status=1
done
exit $status
