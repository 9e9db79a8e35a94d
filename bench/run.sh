#!/usr/bin/env bash
# bench/run.sh: torii against nginx and HAProxy, configured alike (bench/README.md).
#
#   bash bench/run.sh [macro]   wrk throughput, latency and proxy CPU, interleaved rounds
#   bash bench/run.sh idle      memory per idle keep-alive connection (bench/idle_conns.py)
#   bash bench/run.sh parser    the H1Parser micro-benchmark (bench/h1_parser_bench.cc)
#   bash bench/run.sh balance   round robin against least_conn with one slow origin (below;
#                               wrk and ApacheBench)
#   bash bench/run.sh ratelimit the cost of a per-client-IP rate limit that is never hit (below)
#   bash bench/run.sh compress  gzip on the fly of a 100 KiB text response, CPU per request (below)
#   bash bench/run.sh cache     cache hits: 4 KiB, and 100 KiB gzip from the cache (run_cache)
#   bash bench/run.sh disk      cache hits from a disk tier: 100 KiB objects, a working set
#                               twice the memory bound, against nginx's proxy_cache (run_disk)
#   bash bench/run.sh tls       TLS 1.3: keep-alive, full and resumed handshakes (run_tls)
#   bash bench/run.sh timing    the cost of the per-request latency budget (run_timing)
#   bash bench/run.sh edge      the cost of the edge features: richer routes, request IDs and
#                               trace context, merge_slashes (run_edge)
#   bash bench/run.sh h2        HTTP/2 clients (h2load): h2c and h2 over TLS 1.3, 100 B and
#                               4 KiB responses (run_h2)
#   bash bench/run.sh h2up      HTTP/2 to the backend (h2c both sides), and the upstream
#                               connections each proxy used (run_h2up)
#   bash bench/run.sh fleet     the cost of a rate limit shared through Redis, never hit, next
#                               to the same limit in the process and none (torii only)
#   bash bench/run.sh fastopen  time to first byte on a new connection, TCP Fast Open off and
#                               on (client side and, where the proxy has it, backend side),
#                               every backend connection new (bench/ttfb.py; run_fastopen)
#   bash bench/run.sh mtls      full TLS 1.3 handshakes with and without a client certificate
#                               (openssl s_time): the proxy's CPU per handshake (run_mtls)
#   bash bench/run.sh early     TLS 1.3 resumed handshakes: time to first byte with the request
#                               sent after the handshake and as early data (0-RTT), each
#                               proxy with early data on (bench/tls_ttfb.cc; run_early)
#   bash bench/run.sh syscalls  system calls and io_uring submissions per proxied request
#                               (100 B keep-alive), by difference of two request counts
#                               (strace -c, perf stat; run_syscalls)
#   bash bench/run.sh instructions  user-space instructions per proxied request (100 B
#                               keep-alive, and 4 KiB cache hits), by difference of two request
#                               counts (valgrind's callgrind; run_instructions)
#   bash bench/run.sh soak      SOAK_SECONDS [600] of mixed traffic (keep-alive, close, TLS,
#                               cache hits, compression, slow clients, resets) against torii
#                               alone, sampling its RSS, fds, upstream connections and cache
#                               every second: soak-STAMP.csv, .png and .txt (run_soak)
#
# One torii-origin serves all three proxies (balance mode: three, one of them slow). Each proxy runs one worker (torii workers = 1,
# nginx worker_processes 1, HAProxy nbthread 1) pinned to PROXY_CPU; wrk and the origin share
# LOAD_CPU. Everything listens on 127.0.0.1 on free ports. Every process is started in the
# background, recorded by PID and stopped by that PID at the end, on error and on Ctrl-C.
# Each proxy must answer 200 with the origin's exact body before it is measured (and again
# after), and every wrk run is checked for non-2xx answers and socket errors (every ab run,
# balance mode, for non-2xx answers and failed requests).
#
# Environment (defaults in brackets):
#   DURATION [5]            seconds per wrk run (balance mode: and per ab run)
#   ROUNDS [3]              rounds per scenario; a round runs every proxy once, in turn
#   SCENARIOS [small large] small = GET /?size=100, large = GET /?size=102400 (a, b also work)
#   PROXIES [torii nginx haproxy]  also torii-nosplice (splice_min = 0) and haproxy-splice
#                           (option splice-response): the large-body path with and without
#                           splice on both sides
#   CONNS [50]              wrk connections (wrk -t1; balance mode: and ab -c)
#   N [10000]               idle mode: connections to open
#   BATCH [200]             idle mode: connections opened (and their requests in flight) at
#                           once; BATCH=N opens them all together (a burst)
#   BUILD_DIR [<repo>/build-bench]   Release build used (and made unless SKIP_BUILD=1)
#   RESULTS_DIR [$BUILD_DIR/bench-results]   where the tables are written
#   PROXY_CPU [0]  LOAD_CPU [1]      CPUs for the proxy under test / for wrk and the origin
#                           (a CPU or a comma-separated list: "0,1")
#   WORKERS [1]             torii workers, nginx worker_processes, HAProxy nbthread (scaling:
#                           WORKERS=2 PROXY_CPU=0,1 LOAD_CPU=0,1 WRK_THREADS=2; see
#                           bench/README.md for what two cores can and cannot say)
#   WRK_THREADS [1]         wrk -t
#   KEEP_WORK [0]           1 = keep the temp dir (configs, logs, wrk outputs)
#   SKIP_BUILD [0]          1 = use the binaries already in BUILD_DIR
#   BENCH_ARGS              parser mode: extra flags, e.g. "--benchmark_repetitions=5"
#   SLOW_MS [100]           balance mode: the slow origin's added delay per response, in ms
#   COMP_LEVEL [5]          compress mode: the gzip level, 1..9 (5 = torii's default)
#   TLS [0]                 idle mode: 1 = every idle connection over TLS 1.3 (E2)
#   H2C [0]                 idle mode: 1 = every idle connection speaks HTTP/2 (prior knowledge)
#   H2_STREAMS [10]         h2 and h2up modes: streams in flight per h2load connection (-m)
#
# balance mode: three torii-origins on LOAD_CPU, one started with --delay-ms SLOW_MS, the
# other two answering at once. Each proxy gets one pool/upstream/backend of the three (slow
# one listed first: a tie broken by position would go against it), same keep-alive settings
# as macro mode, twice: round robin (torii algorithm = "round_robin", nginx's default,
# HAProxy balance roundrobin) and least connections (torii "least_conn", nginx least_conn;,
# HAProxy balance leastconn). All six instances run at once, pinned to PROXY_CPU, and are
# measured in turn on GET /?size=100, ROUNDS interleaved rounds, each instance twice a round:
#   - wrk -t1 -cCONNS -dDURATION --latency. wrk 4 corrects its percentiles for coordinated
#     omission (it adds the samples a connection stalled on a slow response did not send),
#     so its p99 follows the share of *time* connections spend waiting on the slow origin;
#   - ab -k -r -cCONNS -tDURATION (ApacheBench, Debian's apache2-utils, installed if missing):
#     every request's own time, from sending it to its last byte, NOT corrected: p50, p90,
#     p99 (ab's -e table, microsecond resolution) and p99.9 (from ab's -g per-request dump,
#     whole milliseconds), the per-request distribution that shows where requests went.
# Reported per (proxy, algorithm) and tool: median req/s, the percentiles (medians over the
# rounds) and the share of requests the slow origin served during that tool's runs (its
# /__stats count); per proxy: p99 round robin / p99 least_conn from each tool. Each ab run
# is checked for non-2xx answers, failed requests (connect, receive, length, exceptions) and
# connections that were not kept alive. SCENARIOS does not apply. SLOW_MS defaults to 100:
# with 20, least_conn still sends 2-4 % of the requests to the slow origin, so the p99 of
# either distribution is a slow request under both algorithms; at 100 that share falls
# below 1 % and the per-request p99 can tell the algorithms apart.
#
# ratelimit mode: one torii-origin (as macro mode); each proxy runs twice, same settings as
# macro mode: without a limit ("off") and with a per-client-IP request rate limit on the route
# that is never hit ("on"): torii [rate_limit.per_ip] key = "client_ip",
# rate = "RL_RATE/s", burst = RL_BURST, and rate_limit = "per_ip" on the route; nginx
# limit_req_zone $binary_remote_addr zone=per_ip:10m rate=RL_RATEr/s + limit_req
# zone=per_ip burst=RL_BURST nodelay (limit_req_status 429); HAProxy a stick-table (type ip,
# store http_req_rate(1s)), http-request track-sc0 src and deny deny_status 429 if
# sc_http_req_rate(0) gt RL_RATE. RL_RATE = 100,000,000 per second and RL_BURST = 1,000,000
# (torii's maximum burst): no single client comes near. All six instances run at once, pinned
# to PROXY_CPU, measured in turn with wrk -t1 -cCONNS -dDURATION --latency on GET /?size=100,
# ROUNDS interleaved rounds (odd rounds "off" first, even rounds "on" first). Before the runs
# torii "on" must answer with RateLimit-Policy (and "off" without) and, after a warm-up,
# HAProxy "on" must hold a stick-table entry for 127.0.0.1 (its stats socket). Any non-2xx
# answer means a limit was hit: the run stops. Reported per (proxy, limit): median req/s,
# p50, p99, proxy CPU, requests per proxy CPU-second; per proxy the limit's overhead
# 1 - (req/CPU-s on / req/CPU-s off), overall and round by round. SCENARIOS does not apply.
#
# compress mode: one torii-origin (as macro mode) serving GET /?size=102400&text=1, 100 KiB of
# English-like text (~3.3x with gzip -6; the plain size=N pattern would compress ~300x). Each
# proxy runs once, same settings as macro mode, compressing gzip on the fly at COMP_LEVEL:
# torii [compression] algorithms = ["gzip"], gzip_level = COMP_LEVEL and compress = true on
# the route; nginx gzip on, gzip_comp_level COMP_LEVEL, gzip_types text/plain,
# gzip_min_length 256, gzip_proxied any, gzip_http_version 1.1, gzip_vary on; HAProxy filter
# compression, compression algo gzip, compression type text/plain and global
# tune.comp.maxlevel COMP_LEVEL. (Debian's HAProxy 2.6 is built with libslz, not zlib:
# "haproxy -vv" says "Built with libslz"; slz has a single level, so HAProxy compresses
# alike at any level >= 1 and its output is larger. The table gives each proxy's size.)
# Before the runs (and again after) each proxy must answer a request carrying
# "Accept-Encoding: gzip" with 200, Content-Encoding: gzip and a body that gunzips to the
# origin's exact bytes (report.py check-gzip; the compressed size is recorded), and a request
# without Accept-Encoding with the origin's exact bytes. wrk -t1 -cCONNS -dDURATION --latency
# -H "Accept-Encoding: gzip", ROUNDS interleaved rounds. Reported per proxy: median req/s,
# p50, p99, proxy CPU, requests per proxy CPU-second, the compressed body size and the bytes
# per response wrk read (headers and chunk framing included: the runs were compressed too);
# torii / nginx and torii / HAProxy in req/s and req per CPU-second. Any non-2xx answer stops
# the run. SCENARIOS does not apply. Compressing once per cached variant is measured by cache
# mode (run_cache).
set -euo pipefail

MODE=${1:-macro}
case $MODE in
  macro | idle | parser | balance | ratelimit | fleet | compress | cache | disk | tls | timing | edge | h2 | h2up | syscalls | instructions | soak | fastopen | early | mtls) ;;
  -h | --help | help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "run.sh: unknown mode '$MODE' (macro | idle | parser | balance | ratelimit | fleet | compress | cache | disk | tls | timing | edge | h2 | h2up | syscalls | instructions | soak | fastopen | early | mtls)" >&2
    exit 2
    ;;
esac

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-small large}
PROXIES=${PROXIES:-torii nginx haproxy}
CONNS=${CONNS:-50}
N=${N:-10000}
BATCH=${BATCH:-200}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
WORKERS=${WORKERS:-1}
WRK_THREADS=${WRK_THREADS:-1}
RESULTS_DIR=${RESULTS_DIR:-$BUILD_DIR/bench-results}
KEEP_WORK=${KEEP_WORK:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
SLOW_MS=${SLOW_MS:-100}
COMP_LEVEL=${COMP_LEVEL:-5}
TLS=${TLS:-0}
# ratelimit mode: the limit every "on" instance enforces (never reached by the benchmark).
RL_RATE=100000000 # requests per second per client address (torii accepts 1..1e9)
RL_BURST=1000000  # torii's maximum
# fleet mode: the same for a limit shared through Redis (at most 1e6/s per key there).
FLEET_RATE=1000000
REDIS_ADDR=

for v in PROXY_CPU LOAD_CPU; do
  [[ ${!v} =~ ^[0-9]+(,[0-9]+)*$ ]] ||
    { echo "run.sh: $v must be a CPU number or a comma-separated list (got '${!v}')" >&2; exit 2; }
done
for v in DURATION ROUNDS CONNS N SLOW_MS COMP_LEVEL WORKERS WRK_THREADS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number (got '${!v}')" >&2; exit 2; }
done
((DURATION >= 1 && DURATION <= 600)) || { echo "run.sh: DURATION must be 1..600" >&2; exit 2; }
((ROUNDS >= 1 && ROUNDS <= 20)) || { echo "run.sh: ROUNDS must be 1..20" >&2; exit 2; }
((SLOW_MS >= 1 && SLOW_MS <= 10000)) || { echo "run.sh: SLOW_MS must be 1..10000" >&2; exit 2; }
((COMP_LEVEL >= 1 && COMP_LEVEL <= 9)) || { echo "run.sh: COMP_LEVEL must be 1..9" >&2; exit 2; }
for p in $PROXIES; do
  [[ $p == torii || $p == nginx || $p == haproxy || $p == torii-nosplice || $p == haproxy-splice ]] ||
    { echo "run.sh: unknown proxy '$p' in PROXIES" >&2; exit 2; }
done

TORII_BIN=$BUILD_DIR/app/torii
ORIGIN_BIN=$BUILD_DIR/tests/origin/torii-origin
PARSER_BENCH_BIN=$BUILD_DIR/bench/h1_parser_bench
CLK_TCK=$(getconf CLK_TCK)
STAMP=$(date +%Y%m%d-%H%M%S)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------------------------------
# Process bookkeeping: every background process is recorded by PID and stopped by PID.
# ---------------------------------------------------------------------------------------
OWN_PIDS=()   # our children, stopped in reverse order by cleanup
EXTRA_PIDS=() # not our children (nginx workers): stopped only if still an nginx process
EXTRA_DIRS=() # made outside WORK (nginx's cache in /dev/shm): removed at exit
SCHEME=http   # tls mode: https (wrk and the checks speak TLS to the proxies)
CHECK_TLS=()
WORK=""

# True while PID is a live (non-zombie) process.
pid_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# stop_pid PID: SIGTERM, up to 5 s to exit, then SIGKILL; reaps it if it is our child.
stop_pid() {
  local pid=$1 i
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      pid_alive "$pid" || break
      sleep 0.1
    done
    if pid_alive "$pid"; then
      log "PID $pid did not exit within 5 s of SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

forget_pid() {
  local pid=$1 i
  for i in "${!OWN_PIDS[@]}"; do [[ ${OWN_PIDS[i]} == "$pid" ]] && unset 'OWN_PIDS[i]'; done
  OWN_PIDS=("${OWN_PIDS[@]}")
}

# start_bg LOGFILE CMD...: runs CMD in the background; its PID is left in BG_PID.
start_bg() {
  local logfile=$1
  shift
  "$@" </dev/null >"$logfile" 2>&1 &
  BG_PID=$!
  OWN_PIDS+=("$BG_PID")
}

# stop_extra_pids [PID...]: SIGKILLs those of the PIDs (default: all of EXTRA_PIDS) that are
# still nginx processes, and forgets them.
stop_extra_pids() {
  local pid i
  local -a which=("$@")
  (($# > 0)) || which=("${EXTRA_PIDS[@]}")
  for pid in "${which[@]}"; do
    if pid_alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == nginx ]]; then
      log "nginx worker $pid outlived its master: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    for i in "${!EXTRA_PIDS[@]}"; do [[ ${EXTRA_PIDS[i]} == "$pid" ]] && unset 'EXTRA_PIDS[i]'; done
  done
  EXTRA_PIDS=("${EXTRA_PIDS[@]}")
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for ((i = ${#OWN_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${OWN_PIDS[i]}"; done
  stop_extra_pids
  for i in "${EXTRA_DIRS[@]}"; do [[ $i == /dev/shm/torii-bench-* ]] && rm -rf "$i"; done
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ $KEEP_WORK == 1 || $rc != 0 ]]; then
      log "work dir kept: $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

die() {
  log "ERROR: $*"
  exit 1
}

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_file FILE PID WHAT: waits (10 s at most) for FILE to appear while PID lives.
wait_file() {
  local file=$1 pid=$2 what=$3 i
  for ((i = 0; i < 100; i++)); do
    [[ -s $file ]] && return 0
    pid_alive "$pid" || die "$what exited during start-up; its output: $(tail -n 20 "$WORK/$what.log" 2>/dev/null)"
    sleep 0.1
  done
  die "$what wrote no ready file within 10 s; its output: $(tail -n 20 "$WORK/$what.log" 2>/dev/null)"
}

# cpu_ticks PID...: utime + stime (clock ticks) summed over the PIDs.
cpu_ticks() {
  local pid stat total=0
  local -a f
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat") || die "PID $pid is gone"
    stat=${stat##*) }
    read -ra f <<<"$stat"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# cpu_stat CPU: "BUSY TOTAL" jiffies of one CPU from /proc/stat (busy = all but idle and
# iowait; steal counts as busy: the time was not ours).
cpu_stat() {
  # $1: one CPU or a comma-separated list of them (summed).
  awk -v list="$1" 'BEGIN { n = split(list, l, ","); for (i = 1; i <= n; i++) want["cpu" l[i]] = 1 }
    ($1 in want) { b += $2 + $3 + $4 + $7 + $8 + $9; t += $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }
    END { print b + 0, t + 0 }' /proc/stat
}

# busy_pct "B0 T0" "B1 T1": percentage of the interval the CPU was busy (anyone's work).
busy_pct() {
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    t = y[2] - x[2]; printf "%.0f", (t > 0 ? 100 * (y[1] - x[1]) / t : 0) }'
}

scenario_path() {
  case $1 in
    small | a) echo "/?size=100" ;;
    large | b) echo "/?size=102400" ;;
    *) die "unknown scenario '$1' (small | large)" ;;
  esac
}
scenario_size() {
  case $1 in
    small | a) echo 100 ;;
    large | b) echo 102400 ;;
  esac
}
scenario_name() {
  case $1 in
    a) echo small ;;
    b) echo large ;;
    *) echo "$1" ;;
  esac
}

raise_fd_limit() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  FD_LIMIT=$(ulimit -n)
}

# ---------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------
build() {
  if [[ $SKIP_BUILD == 1 ]]; then
    local b
    for b in "$@"; do
      case $b in
        torii) [[ -x $TORII_BIN ]] || die "SKIP_BUILD=1 but $TORII_BIN is missing" ;;
        torii-origin) [[ -x $ORIGIN_BIN ]] || die "SKIP_BUILD=1 but $ORIGIN_BIN is missing" ;;
        h1_parser_bench) [[ -x $PARSER_BENCH_BIN ]] || die "SKIP_BUILD=1 but $PARSER_BENCH_BIN is missing" ;;
      esac
    done
    return 0
  fi
  log "building Release in $BUILD_DIR: $*"
  timeout 600 cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DTORII_SANITIZE=OFF -DTORII_BUILD_TESTS=ON -DTORII_BUILD_BENCH=ON >"$WORK/cmake.log" 2>&1 ||
    die "cmake failed: $(tail -n 30 "$WORK/cmake.log")"
  timeout 1800 ninja -C "$BUILD_DIR" -j"$(nproc)" "$@" >"$WORK/ninja.log" 2>&1 ||
    die "build failed: $(tail -n 30 "$WORK/ninja.log")"
}

# ---------------------------------------------------------------------------------------
# Servers. Each start_* fills PORT[name] and CPU_PIDS[name] (the PIDs whose CPU is counted).
# A proxy instance is named after its kind (torii, nginx, haproxy), optionally followed by
# "-SUFFIX" (balance mode runs torii-rr, torii-lc, ...); its files are $WORK/NAME/ and
# $WORK/NAME.log. It proxies to every address in BACKENDS with the algorithm ALGO given to
# start_proxy: "" (the proxy's default, no directive written), rr or lc. With LIMIT = on it also
# limits each client address to RL_RATE requests per second with a burst of RL_BURST
# (ratelimit mode); with LIMIT = "" or off, no limit. With COMP = gzip it compresses text/plain
# responses with gzip at COMP_LEVEL (compress mode); with COMP = "", not at all.
# ---------------------------------------------------------------------------------------
declare -A PORT CPU_PIDS MAIN_PID NGINX_WORKERS ORIGIN_AT ADMIN_PORT
ORIGIN_ADDR=""  # the origin whose bytes check_proxy compares against
ORIGIN_PID=""
ORIGIN_PIDS=()  # every origin started
BACKENDS=()     # the origin addresses the proxies are configured with

# start_origin [NAME [DELAY_MS]]: one torii-origin on LOAD_CPU (--name bench-NAME, output in
# $WORK/NAME.log, every response delayed DELAY_MS); its address goes to ORIGIN_AT[NAME] and
# BACKENDS (and to ORIGIN_ADDR if it is the first origin without delay), its PID to ORIGIN_PID
# and ORIGIN_PIDS.
start_origin() {
  local name=${1:-origin} delay=${2:-0}
  local -a extra=()
  ((delay > 0)) && extra=(--delay-ms "$delay")
  [[ -n ${ORIGIN_FASTOPEN:-} ]] && extra+=(--tcp-fastopen "$ORIGIN_FASTOPEN")
  start_bg "$WORK/$name.log" taskset -c "$LOAD_CPU" "$ORIGIN_BIN" --listen 127.0.0.1:0 \
    --name "bench-$name" --ready-file "$WORK/$name.ready" "${extra[@]}"
  ORIGIN_PID=$BG_PID
  ORIGIN_PIDS+=("$BG_PID")
  wait_file "$WORK/$name.ready" "$ORIGIN_PID" "$name"
  ORIGIN_AT[$name]=$(head -n 1 "$WORK/$name.ready" | tr -d '[:space:]')
  BACKENDS+=("${ORIGIN_AT[$name]}")
  [[ -z $ORIGIN_ADDR && $delay == 0 ]] && ORIGIN_ADDR=${ORIGIN_AT[$name]}
  python3 "$BENCH_DIR/check_http.py" --name "$name" --addr "${ORIGIN_AT[$name]}" --path "/?size=100" \
    --size 100 --count 3 >/dev/null || die "the origin $name does not answer 200 on ${ORIGIN_AT[$name]}"
  log "$name (PID $ORIGIN_PID, CPU $LOAD_CPU$( ((delay > 0)) && echo ", every response delayed ${delay} ms")) on ${ORIGIN_AT[$name]}"
}

start_torii() {
  local name=$1 algo=$2 limit=${3:-} comp=${4:-} dir=$WORK/$1 algo_line="" backends="" b
  local limit_table="" limit_line="" comp_table="" comp_line="" cache_table="" cache_line=""
  local tls_line="" admin_table="" timing_line="" routes_before=""
  [[ $comp == notiming ]] && timing_line=$'\nphase_timing = false'
  if [[ $comp == edge-off ]]; then
    # The edge features that can be off: no request IDs, no trace context, slashes kept.
    timing_line+=$'\nrequest_id_header = ""\ntrace_context = false\nmerge_slashes = false'
  elif [[ $comp == edge-on ]]; then
    # Eight routes a request is matched against before the catch-all, one of each kind.
    routes_before="
[[route]]
path_exact = \"/robots.txt\"
return = { status = 200, body = \"User-agent: *\" }
[[route]]
path_prefix = \"/api/\"
methods = [\"POST\", \"PUT\"]
pool = \"origin\"
[[route]]
path_regex = \"/users/[0-9]+/posts\"
pool = \"origin\"
[[route]]
host = \"admin.example.com\"
pool = \"origin\"
[[route]]
path_prefix = \"/\"
headers = [{ name = \"X-Canary\", value = \"1\" }]
pool = \"origin\"
[[route]]
path_prefix = \"/\"
query = [{ name = \"v\", regex = \"2|two\" }]
pool = \"origin\"
[[route]]
path_prefix = \"/static/\"
regex_rewrite = { pattern = '^/static/(.*)$', substitution = '/assets/\\1' }
pool = \"origin\"
[[route]]
path_prefix = \"/old/\"
strip_prefix = \"/old\"
request_headers = { set = { \"X-Env\" = \"prod\" }, remove = [\"X-Debug\"] }
pool = \"origin\"
"
  fi
  if [[ $comp == tls* ]]; then
    local tickets=true early=""
    [[ $comp == tls-notickets || $comp == tls-mtls ]] && tickets=false
    [[ $comp == tls-early ]] && early=", early_data = true"
    tls_line=$'\n'"tls = { certificates = [{ cert = \"$WORK/tls/site.crt\", key = \"$WORK/tls/site.key\" }], session_tickets = $tickets$early }"
    [[ $comp == tls-mtls ]] &&
      tls_line+=$'\n'"client_auth = { ca = \"$WORK/tls/clients-ca.crt\", mode = \"require\" }"
    # The admin listener: its /metrics tells how many handshakes were resumed.
    admin_table=$'\n'"[admin]
address = \"127.0.0.1:0\"
"
  fi
  if [[ $comp == h2tls ]]; then
    tls_line=$'\n'"tls = { certificates = [{ cert = \"$WORK/tls/site.crt\", key = \"$WORK/tls/site.key\" }], alpn = [\"h2\", \"http/1.1\"] }"
  elif [[ $comp == h2c || $comp == h2up ]]; then
    tls_line=$'\nh2c = true'
  fi
  local proto_line=""
  [[ $comp == h2up ]] && proto_line=$'\nprotocol = "h2c"'
  # An instance named torii-nosplice sends every body through torii's memory (splice_min = 0;
  # by default bodies of 64 KiB and more go socket to socket).
  [[ $name == *-nosplice ]] && proto_line+=$'\nsplice_min = 0'
  if [[ $comp == tfo ]]; then
    tls_line=$'\ntcp_fastopen = 256'
    proto_line=$'\ntcp_fastopen = true'
  fi
  if [[ $comp == *cache* ]]; then
    cache_table=$'\n'"[cache.bench]
memory = \"256MiB\"
max_object = \"1MiB\"
"
    cache_line=$'\ncache = "bench"'
  fi
  if [[ $comp == disk ]]; then
    cache_table=$'\n'"[cache.bench]
memory = \"$DISK_MEMORY\"
max_object = \"1MiB\"
disk = { path = \"$dir/cache.disk\", size = \"$DISK_SIZE\" }
"
    cache_line=$'\ncache = "bench"'
  fi
  if [[ $comp == *gzip* ]]; then
    comp_table=$'\n'"[compression]
algorithms = [\"gzip\"]
gzip_level = $COMP_LEVEL
"
    comp_line=$'\ncompress = true'
  fi
  if [[ $limit == on ]]; then
    limit_table=$'\n'"[rate_limit.per_ip]
key = \"client_ip\"
rate = \"$RL_RATE/s\"
burst = $RL_BURST
"
    limit_line=$'\nrate_limit = "per_ip"'
  elif [[ $limit == fleet || $limit == local ]]; then
    # fleet mode: the same never-hit limit, kept in Redis (fleet) or in the process (local), at
    # the highest rate a fleet limit takes (µs resolution in Redis).
    limit_table=$'\n'"[rate_limit.per_ip]
key = \"client_ip\"
rate = \"$FLEET_RATE/s\"
burst = $RL_BURST
"
    [[ $limit == fleet ]] && limit_table+="store = \"redis\"
[redis]
address = \"$REDIS_ADDR\"
"
    limit_line=$'\nrate_limit = "per_ip"'
  fi
  case $algo in
    rr) algo_line=$'\nalgorithm = "round_robin"' ;;
    lc) algo_line=$'\nalgorithm = "least_conn"' ;;
  esac
  for b in "${BACKENDS[@]}"; do backends+="${backends:+, }{ address = \"$b\" }"; done
  mkdir -p "$dir"
  cat >"$dir/torii.toml" <<EOF
# generated by bench/run.sh
[server]
workers = $WORKERS
access_log = "off"
error_log = "-"
log_level = "warn"
shutdown_grace = "1s"
max_connections = 30000
ready_file = "$dir/ready"$timing_line

[[listener]]
name = "bench"
address = "127.0.0.1:0"$tls_line
$admin_table
[[pool]]
name = "origin"
backends = [$backends]
keepalive = $POOL_KEEPALIVE$algo_line$proto_line
$limit_table$comp_table$cache_table$routes_before
[[route]]
host = "*"
path_prefix = "/"
pool = "origin"$limit_line$comp_line$cache_line
EOF
  "$TORII_BIN" -t -c "$dir/torii.toml" >"$dir/check.log" 2>&1 ||
    die "$name rejects its bench config: $(cat "$dir/check.log")"
  start_bg "$WORK/$name.log" taskset -c "$PROXY_CPU" "${PROXY_WRAP[@]}" "$TORII_BIN" \
    -c "$dir/torii.toml"
  MAIN_PID[$name]=$BG_PID
  CPU_PIDS[$name]=$BG_PID
  wait_file "$dir/ready" "$BG_PID" "$name"
  local addr
  addr=$(awk '$1 == "bench" { print $2 }' "$dir/ready")
  [[ $addr == 127.0.0.1:* ]] || die "$name ready file has no 'bench' listener: $(cat "$dir/ready")"
  PORT[$name]=${addr##*:}
  addr=$(awk '$1 == "admin" { print $2 }' "$dir/ready")
  [[ -n $addr ]] && ADMIN_PORT[$name]=${addr##*:}
  return 0
}

# nginx's master process: "off" (instructions mode) has the one process serve requests itself.
NGINX_MASTER=on

# nginx_conf_head DIR: the start of an nginx.conf (one worker, logs and temp files in DIR),
# up to the inside of its http block.
nginx_conf_head() {
  cat <<EOF
user root;
worker_processes $WORKERS;
worker_rlimit_nofile $FD_LIMIT;
daemon off;
master_process $NGINX_MASTER;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events {
    worker_connections 20000;
}
http {
    access_log off;
    client_body_temp_path $1/tmp/client_body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
EOF
}

start_nginx() {
  local name=$1 algo=$2 limit=${3:-} comp=${4:-} dir=$WORK/$1 port algo_line="" servers="" b
  local zone_line="" limit_lines="" comp_lines="" cache_path="" cache_lines=""
  local listen_extra="" ssl_lines=""
  if [[ $comp == tls* ]]; then
    listen_extra=" ssl"
    ssl_lines=$'\n'"        ssl_certificate $WORK/tls/site.crt;"
    ssl_lines+=$'\n'"        ssl_certificate_key $WORK/tls/site.key;"
    ssl_lines+=$'\n'"        ssl_protocols TLSv1.3;"
    if [[ $comp == tls-notickets || $comp == tls-mtls ]]; then
      ssl_lines+=$'\n'"        ssl_session_tickets off;"
      ssl_lines+=$'\n'"        ssl_session_cache off;"
    else
      ssl_lines+=$'\n'"        ssl_session_tickets on;"
    fi
    if [[ $comp == tls-early ]]; then
      # nginx's RFC 8470 recipe: early data on, the backend told which requests came in it.
      ssl_lines+=$'\n'"        ssl_early_data on;"
    fi
    if [[ $comp == tls-mtls ]]; then
      ssl_lines+=$'\n'"        ssl_verify_client on;"
      ssl_lines+=$'\n'"        ssl_client_certificate $WORK/tls/clients-ca.crt;"
    fi
  fi
  if [[ $comp == h2tls ]]; then
    listen_extra=" ssl http2"
    ssl_lines=$'\n'"        ssl_certificate $WORK/tls/site.crt;"
    ssl_lines+=$'\n'"        ssl_certificate_key $WORK/tls/site.key;"
    ssl_lines+=$'\n'"        ssl_protocols TLSv1.3;"
  elif [[ $comp == h2c || $comp == h2up ]]; then
    listen_extra=" http2"  # prior knowledge: nginx takes the preface on a plain http2 listen
  fi
  # proxy_max_temp_file_size 0: buffer in memory only, never spill 100 KiB responses to files.
  local pass_lines=$'proxy_pass http://origin;\n            proxy_http_version 1.1;\n            proxy_set_header Connection "";\n            proxy_max_temp_file_size 0;'
  # HTTP/2 to the backend: nginx's grpc module (one stream per upstream connection).
  [[ $comp == h2up ]] && pass_lines="grpc_pass grpc://origin;"
  [[ $comp == tls-early ]] && pass_lines+=$'\n            proxy_set_header Early-Data $ssl_early_data;'
  # fastopen mode: TCP Fast Open on the listener (nginx has none towards upstreams).
  [[ $comp == tfo ]] && listen_extra=" fastopen=256"
  local keepalive_line=$'\n'"        keepalive $POOL_KEEPALIVE;"
  ((POOL_KEEPALIVE > 0)) || keepalive_line=""
  if [[ $comp == h2* ]]; then
    # The same bound on streams per connection as torii's default (nginx: 128 too), and no
    # GOAWAY after 1000 requests (keepalive_requests also bounds HTTP/2 connections in nginx;
    # h2load does not reconnect in a timed run, torii and HAProxy set no such bound on h2).
    ssl_lines+=$'\n'"        http2_max_concurrent_streams 128;"
    ssl_lines+=$'\n'"        keepalive_requests 1000000000;"
  fi
  if [[ $comp == *cache* ]]; then
    # nginx's cache lives in files: put them in RAM (/dev/shm) when there is one, so the
    # comparison is of the cache code, not of a disk.
    local store=$dir/cache
    [[ -d /dev/shm && -w /dev/shm ]] && store=$(mktemp -d /dev/shm/torii-bench-nginx.XXXXXX)
    EXTRA_DIRS+=("$store")
    cache_path=$'\n'"    proxy_cache_path $store levels=1:2 keys_zone=bench:10m max_size=256m inactive=60m use_temp_path=off;"
    cache_lines=$'\n'"            proxy_cache bench;"
    cache_lines+=$'\n'"            proxy_cache_lock on;"
  fi
  if [[ $comp == disk ]]; then
    # On disk (the same file system as torii's disk tier), as large as torii's.
    cache_path=$'\n'"    proxy_cache_path $dir/cache levels=1:2 keys_zone=bench:10m max_size=$DISK_SIZE_NGINX inactive=60m use_temp_path=off;"
    cache_lines=$'\n'"            proxy_cache bench;"
    cache_lines+=$'\n'"            proxy_cache_lock on;"
  fi
  if [[ $comp == *gzip* ]]; then
    comp_lines=$'\n'"    gzip on;"
    comp_lines+=$'\n'"    gzip_comp_level $COMP_LEVEL;"
    comp_lines+=$'\n'"    gzip_types text/plain;"
    comp_lines+=$'\n'"    gzip_min_length 256;"
    comp_lines+=$'\n'"    gzip_proxied any;"
    comp_lines+=$'\n'"    gzip_http_version 1.1;"
    comp_lines+=$'\n'"    gzip_vary on;"
  fi
  [[ $algo == lc ]] && algo_line=$'\n        least_conn;'
  if [[ $limit == on ]]; then
    zone_line=$'\n'"    limit_req_zone \$binary_remote_addr zone=per_ip:10m rate=${RL_RATE}r/s;"
    limit_lines=$'\n'"            limit_req zone=per_ip burst=$RL_BURST nodelay;"
    limit_lines+=$'\n'"            limit_req_status 429;"
  fi
  for b in "${BACKENDS[@]}"; do servers+=$'\n'"        server $b;"; done
  port=$(free_port)
  mkdir -p "$dir/logs" "$dir/tmp"
  {
    echo "# generated by bench/run.sh"
    nginx_conf_head "$dir"
    cat <<EOF
    keepalive_timeout 75s;$zone_line$comp_lines$cache_path
    upstream origin {$algo_line$servers$keepalive_line
    }
    server {
        listen 127.0.0.1:$port$listen_extra;$ssl_lines
        location / {
            $pass_lines$limit_lines$cache_lines
        }
    }
}
EOF
  } >"$dir/nginx.conf"
  nginx -t -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" >"$dir/check.log" 2>&1 ||
    die "$name rejects its bench config: $(cat "$dir/check.log")"
  start_bg "$WORK/$name.log" taskset -c "$PROXY_CPU" "${PROXY_WRAP[@]}" nginx -p "$dir/" \
    -e "$dir/logs/error.log" -c "$dir/nginx.conf"
  MAIN_PID[$name]=$BG_PID
  local master=$BG_PID workers="" i
  [[ $NGINX_MASTER == off ]] && workers=$master
  for ((i = 0; i < 100; i++)); do
    [[ -n $workers ]] && break
    pid_alive "$master" || die "$name exited during start-up: $(tail -n 20 "$dir/logs/error.log" "$WORK/$name.log" 2>/dev/null)"
    # Workers (and the cache manager); not nginx's cache loader, which exits by design
    # about a minute after start-up.
    workers=$({ ps -o pid=,args= --ppid "$master" || true; } | awk '!/cache loader/ { print $1 }' |
      tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
    [[ -n $workers ]] && break
    sleep 0.1
  done
  [[ -n $workers ]] || die "$name started no worker within 10 s"
  local -a wp
  read -ra wp <<<"$workers"
  EXTRA_PIDS+=("${wp[@]}")
  NGINX_WORKERS[$name]=$workers
  CPU_PIDS[$name]=$workers
  [[ $workers == "$master" ]] || CPU_PIDS[$name]="$master $workers"
  PORT[$name]=$port
}

start_haproxy() {
  local name=$1 algo=$2 limit=${3:-} comp=${4:-} dir=$WORK/$1 port algo_line="" servers="" b i=0
  local limit_lines="" stats_line="" comp_global="" comp_lines="" cache_section=""
  local bind_extra="" ssl_global=""
  if [[ $comp == tls* ]]; then
    cat "$WORK/tls/site.crt" "$WORK/tls/site.key" >"$dir.pem"
    bind_extra=" ssl crt $dir.pem ssl-min-ver TLSv1.3 alpn http/1.1"
    if [[ $comp == tls-notickets || $comp == tls-mtls ]]; then
      bind_extra+=" no-tls-tickets"
      ssl_global=$'\n'"    tune.ssl.cachesize 0"
    fi
    [[ $comp == tls-mtls ]] && bind_extra+=" verify required ca-file $WORK/tls/clients-ca.crt"
    if [[ $comp == tls-early ]]; then
      bind_extra+=" allow-0rtt"
      limit_lines+=$'\n'"    http-request set-header Early-Data 1 if { ssl_fc_has_early }"
    fi
  fi
  if [[ $comp == h2tls ]]; then
    cat "$WORK/tls/site.crt" "$WORK/tls/site.key" >"$dir.pem"
    bind_extra=" ssl crt $dir.pem ssl-min-ver TLSv1.3 alpn h2,http/1.1"
  elif [[ $comp == h2c || $comp == h2up ]]; then
    bind_extra=" proto h2"
  fi
  local server_extra="" reuse=always splice_line=""
  # An instance named haproxy-splice splices response bodies (option splice-response; HAProxy
  # splices nothing by default).
  [[ $name == *-splice ]] && splice_line=$'\n    option splice-response'
  [[ $comp == h2up ]] && server_extra=" proto h2"
  # fastopen mode: a new backend connection per request, TCP Fast Open on both sides for tfo.
  ((POOL_KEEPALIVE > 0)) || reuse=never
  if [[ $comp == tfo ]]; then
    bind_extra+=" tfo"
    server_extra+=" tfo"
  fi
  if [[ $comp == *cache* ]]; then
    # Declared before the compression filter: the cache keeps the origin's bytes and every
    # hit is compressed again, as nginx does.
    cache_section=$'\n'"cache bench
    total-max-size 256
    max-object-size 1048576
    max-age 3600
"
    comp_lines=$'\n'"    filter cache bench"
    comp_lines+=$'\n'"    http-request cache-use bench"
    comp_lines+=$'\n'"    http-response cache-store bench"
  fi
  if [[ $comp == *gzip* ]]; then
    comp_global=$'\n'"    tune.comp.maxlevel $COMP_LEVEL"
    comp_lines+=$'\n'"    filter compression"
    comp_lines+=$'\n'"    compression algo gzip"
    comp_lines+=$'\n'"    compression type text/plain"
  fi
  # ratelimit mode (LIMIT on or off): a stats socket, to look at the stick-table afterwards.
  [[ -n $limit ]] && stats_line=$'\n'"    stats socket $dir/admin.sock mode 600 level admin"
  if [[ $limit == on ]]; then
    limit_lines=$'\n'"    stick-table type ip size 100k expire 30s store http_req_rate(1s)"
    limit_lines+=$'\n'"    http-request track-sc0 src"
    limit_lines+=$'\n'"    http-request deny deny_status 429 if { sc_http_req_rate(0) gt $RL_RATE }"
  fi
  case $algo in
    rr) algo_line=$'\n    balance roundrobin' ;;
    lc) algo_line=$'\n    balance leastconn' ;;
  esac
  for b in "${BACKENDS[@]}"; do servers+=$'\n'"    server origin$((++i)) $b$server_extra"; done
  port=$(free_port)
  mkdir -p "$dir"
  # maxconn 30000 makes HAProxy ask for ~60000 descriptors; where the hard limit is lower
  # (and cannot be raised), "no strict-limits" turns its start-up failure into a warning.
  local strict=""
  ((FD_LIMIT >= 60100)) || strict="    no strict-limits   # fd hard limit $FD_LIMIT < the ~60000 maxconn 30000 wants"
  cat >"$dir/haproxy.cfg" <<EOF
# generated by bench/run.sh (no log lines: no logging)
global
    nbthread $WORKERS
    maxconn 30000$stats_line$comp_global$ssl_global
$strict

defaults
    mode http
    option http-keep-alive
    http-reuse $reuse
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    timeout http-request 10s$splice_line

frontend bench
    bind 127.0.0.1:$port$bind_extra$limit_lines$comp_lines
    default_backend origin

backend origin$algo_line$servers
$cache_section
EOF
  haproxy -c -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 ||
    die "$name rejects its bench config: $(cat "$dir/check.log")"
  start_bg "$WORK/$name.log" taskset -c "$PROXY_CPU" "${PROXY_WRAP[@]}" haproxy -db \
    -f "$dir/haproxy.cfg"
  MAIN_PID[$name]=$BG_PID
  CPU_PIDS[$name]=$BG_PID
  PORT[$name]=$port
}

# check_proxy NAME PATH SIZE: 200 with the origin's exact body, or die.
check_proxy() {
  local name=$1 path=$2 size=$3 out
  out=$(python3 "$BENCH_DIR/check_http.py" --name "$name" --addr "127.0.0.1:${PORT[$name]}" \
    --path "$path" --size "$size" --reference "$ORIGIN_ADDR" --count 10 --wait 10 \
    "${CHECK_TLS[@]}") ||
    die "$name failed its response check: $out"
  log "check: $out"
}

# What the proxies are started under (instructions mode: valgrind's callgrind); none by default.
PROXY_WRAP=()

# start_proxy NAME [ALGO [LIMIT [COMP]]]: starts the instance NAME (kind = NAME up to the
# first "-").
start_proxy() {
  "start_${1%%-*}" "$1" "${2:-}" "${3:-}" "${4:-}"
  RUNNING+=" $1"
  check_proxy "$1" "/?size=100" 100
  log "$1 (PID ${MAIN_PID[$1]}, CPU-accounted PIDs ${CPU_PIDS[$1]}, CPU $PROXY_CPU) on 127.0.0.1:${PORT[$1]}"
}

stop_proxy() {
  local pid=${MAIN_PID[$1]}
  stop_pid "$pid"
  forget_pid "$pid"
  local p left=""
  for p in $RUNNING; do [[ $p == "$1" ]] || left+=" $p"; done
  RUNNING=$left
  if [[ ${1%%-*} == nginx ]]; then
    local -a wp
    read -ra wp <<<"${NGINX_WORKERS[$1]}"
    ((${#wp[@]} == 0)) || stop_extra_pids "${wp[@]}"
  fi
  return 0
}

proxies_alive() {
  local p pid
  for p in $RUNNING; do
    for pid in ${CPU_PIDS[$p]}; do
      pid_alive "$pid" || die "$p (PID $pid) died; last output: $(tail -n 20 "$WORK/$p.log" 2>/dev/null)"
    done
  done
  for pid in "${ORIGIN_PIDS[@]}"; do
    pid_alive "$pid" || die "an origin (PID $pid) died: $(tail -n 20 "$WORK"/origin*.log)"
  done
}

# Lines in the proxies' logs that point at a problem.
log_problems() {
  local f n
  {
    for f in "$WORK"/torii*.log; do
      n=$(basename "$f" .log)
      [[ -f $f ]] && grep -E '\[(warning|error|critical)\]' "$f" | sed "s/^/$n: /"
    done
    for f in "$WORK"/nginx*/logs/error.log; do
      n=$(basename "$(dirname "$(dirname "$f")")")
      [[ -f $f ]] && grep -E '\[(warn|error|crit|alert|emerg)\]' "$f" | sed "s/^/$n: /"
    done
    for f in "$WORK"/haproxy*.log; do
      n=$(basename "$f" .log)
      [[ -f $f ]] && grep -E '(WARNING|ALERT)' "$f" | sed "s/^/$n: /"
    done
    for f in "$WORK"/origin*.log; do
      n=$(basename "$f" .log)
      grep -v '^$' "$f" 2>/dev/null | grep -vi 'listening\|ready' | sed "s/^/$n: /"
    done
  } | head -n 40 || true
}

# Extra wrk arguments for every run (compress mode: -H "Accept-Encoding: gzip").
WRK_HEADERS=()

# warm_up NAME PATH OUT: one short unrecorded wrk run (connection pools, caches, page faults).
warm_up() {
  timeout -k 5 30 taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s "${WRK_HEADERS[@]}" \
    "$SCHEME://127.0.0.1:${PORT[$1]}$2" >"$3" 2>&1 ||
    die "wrk warm-up against $1 failed: $(cat "$3")"
}

# measure NAME PATH OUT: one recorded load run against the instance NAME, after a 1 s pause:
# wrk, or with LOADER=h2load h2load -cCONNS -mH2_STREAMS (LOAD_SECS: the run's seconds,
# DURATION by default). Leaves in M_RPS M_REQS M_P50 M_P99 M_NON2XX M_SOCK the parsed figures,
# in M_CPU the proxy's CPU seconds and in M_BUSY_P / M_BUSY_L how busy PROXY_CPU / LOAD_CPU
# were (%).
measure() {
  local name=$1 path=$2 out=$3 c0 c1 vals s0p s0l secs=${LOAD_SECS:-$DURATION}
  local url="$SCHEME://127.0.0.1:${PORT[$name]}$path"
  local -a cpids load
  read -ra cpids <<<"${CPU_PIDS[$name]}"
  if [[ $LOADER == h2load ]]; then
    load=(h2load -c "$CONNS" -m "$H2_STREAMS" -D "$secs" --warm-up-time 1 "$url")
  else
    load=(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${secs}s" --latency "${WRK_HEADERS[@]}" "$url")
  fi
  sleep 1
  s0p=$(cpu_stat "$PROXY_CPU")
  s0l=$(cpu_stat "$LOAD_CPU")
  c0=$(cpu_ticks "${cpids[@]}")
  timeout -k 5 $((secs + 30)) taskset -c "$LOAD_CPU" "${load[@]}" >"$out" 2>&1 ||
    die "$LOADER against $name failed (rc $?): $(tail -n 30 "$out")"
  c1=$(cpu_ticks "${cpids[@]}")
  M_BUSY_P=$(busy_pct "$s0p" "$(cpu_stat "$PROXY_CPU")")
  M_BUSY_L=$(busy_pct "$s0l" "$(cpu_stat "$LOAD_CPU")")
  vals=$(python3 "$BENCH_DIR/report.py" "parse-$LOADER" "$out") || die "cannot parse $out: $(cat "$out")"
  read -r M_RPS M_REQS M_P50 M_P99 M_NON2XX M_SOCK <<<"$vals"
  M_CPU=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
}

# The per-run records of the modes report.py's table reads: runs_header FILE KEY1 KEY2 writes
# the header (KEY1 KEY2 name the first two columns), record_run FILE KEY1 KEY2 ROUND appends the
# figures measure() left in M_*.
runs_header() {
  printf '# %s\t%s\tround\trps\trequests\tp50_us\tp99_us\tcpu_s\tnon2xx\tsock_errors\tproxy_cpu_busy_pct\tload_cpu_busy_pct\n' \
    "$2" "$3" >"$1"
}
record_run() {
  printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$2" "$3" "$4" "$M_RPS" "$M_REQS" \
    "$M_P50" "$M_P99" "$M_CPU" "$M_NON2XX" "$M_SOCK" "$M_BUSY_P" "$M_BUSY_L" >>"$1"
}

# log_run LABEL [NOTE]: measure()'s figures in one log line (NOTE after the proxy CPU).
log_run() {
  log "$1: $M_RPS req/s, p50 ${M_P50}us, p99 ${M_P99}us, proxy CPU ${M_CPU}s${2:+, $2}, CPU $PROXY_CPU/$LOAD_CPU busy $M_BUSY_P%/$M_BUSY_L%, non-2xx $M_NON2XX, socket errors $M_SOCK"
}

# write_table_results RESULTS RUNS TITLE [LINE...]: the results file of a mode whose runs
# report.py's table sums up (TITLE, the environment, the LINEs, the table, with ORIGIN_LOG set
# the origin's requests per run (rounds_counting_origin), the log problems), then shown.
write_table_results() {
  local results=$1 runs=$2 title=$3 line
  shift 3
  {
    echo "$title"
    env_header
    for line in "$@"; do echo "$line"; done
    echo
    python3 "$BENCH_DIR/report.py" table "$runs" --duration "$DURATION" --conns "$CONNS"
    echo
    if [[ -n ${ORIGIN_LOG:-} ]]; then
      origin_requests_summary "$ORIGIN_LOG"
      echo
    fi
    problems_footer
  } >"$results"
  echo
  cat "$results"
  echo
  echo "results: $results (per-run records: $runs)"
}

# keep_failed_run NAME OUT KEPT: a run with non-2xx answers or socket errors is logged and its
# wrk output kept as KEPT.
keep_failed_run() {
  if ((M_NON2XX > 0 || M_SOCK > 0)); then
    log "WARNING: $1: $M_NON2XX non-2xx answers and $M_SOCK socket errors in this run"
    cp "$2" "$3"
  fi
}

# ab keeps every request's time in memory (32 bytes each) and needs a request count: -n caps a
# run at AB_MAX_REQS, far above what one ab process on one CPU makes in DURATION seconds.
AB_MAX_REQS=$((DURATION * 100000))

# measure_ab NAME PATH SIZE OUT: one recorded ApacheBench run (ab -k -cCONNS -tDURATION) against
# the instance NAME, after a 1 s pause: per-request latencies, not corrected for coordinated
# omission. Leaves in A_RPS A_REQS A_P50 A_P90 A_P99 A_P999 A_NON2XX A_FAILED A_KA the parsed
# ab figures (report.py parse-ab; dies if the body length is not SIZE) and in A_BUSY_P /
# A_BUSY_L how busy PROXY_CPU / LOAD_CPU were (%). ab's -e table goes to OUT.csv; its -g
# per-request dump (OUT.raw) is read for p99.9 and deleted.
measure_ab() {
  local name=$1 path=$2 size=$3 out=$4 vals s0p s0l
  sleep 1
  s0p=$(cpu_stat "$PROXY_CPU")
  s0l=$(cpu_stat "$LOAD_CPU")
  # -t before -n: -t resets the request count to 50,000; -r: count receive errors as failed
  # requests instead of stopping ab.
  timeout -k 5 $((DURATION + 60)) taskset -c "$LOAD_CPU" ab -k -r -q -c "$CONNS" -t "$DURATION" \
    -n "$AB_MAX_REQS" -e "$out.csv" -g "$out.raw" "http://127.0.0.1:${PORT[$name]}$path" >"$out" 2>&1 ||
    die "ab against $name failed (rc $?): $(tail -n 30 "$out")"
  A_BUSY_P=$(busy_pct "$s0p" "$(cpu_stat "$PROXY_CPU")")
  A_BUSY_L=$(busy_pct "$s0l" "$(cpu_stat "$LOAD_CPU")")
  vals=$(python3 "$BENCH_DIR/report.py" parse-ab "$out" "$out.csv" "$out.raw" --size "$size" 2>&1) ||
    die "cannot parse ab's output against $name: $vals; $(tail -n 30 "$out")"
  rm -f "$out.raw"
  read -r A_RPS A_REQS A_P50 A_P90 A_P99 A_P999 A_NON2XX A_FAILED A_KA <<<"$vals"
  ((A_REQS < AB_MAX_REQS)) ||
    log "WARNING: ab against $name stopped at its cap of $AB_MAX_REQS requests before ${DURATION}s"
}

# problems_footer: the log lines that may point at a problem, or a line saying there are none.
problems_footer() {
  local problems
  problems=$(log_problems)
  if [[ -n $problems ]]; then
    echo "log lines that may point at a problem:"
    echo "$problems"
  else
    echo "logs: no warning or error lines from torii, nginx, HAProxy or the origin"
  fi
}

env_header() {
  echo "date:      $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit:    $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "machine:   $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "versions:  $("$TORII_BIN" --version 2>&1), $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -n 1 | cut -d' ' -f1-3), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
  echo "pinning:   proxy under test on CPU $PROXY_CPU; wrk and torii-origin on CPU $LOAD_CPU"
}

# ---------------------------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------------------------
# ensure_peers [ab]: nginx, HAProxy and wrk (and with "ab", ApacheBench: balance mode) come
# from Debian packages, like everything else.
ensure_peers() {
  if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
    bash "$ROOT/scripts/install-deps.sh" --bench
  fi
  if [[ ${1:-} == ab ]] && ! command -v ab >/dev/null; then
    local -a sudo=()
    (($(id -u) == 0)) || sudo=(sudo)
    log "installing apache2-utils (ab) from Debian"
    if ! timeout 600 "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      >"$WORK/apt.log" 2>&1; then
      die "apt-get update failed: $(tail -n 20 "$WORK/apt.log")"
    fi
    if ! timeout 600 "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends apache2-utils >>"$WORK/apt.log" 2>&1; then
      die "cannot install apache2-utils (ab): $(tail -n 20 "$WORK/apt.log")"
    fi
    command -v ab >/dev/null || die "apache2-utils is installed but there is no ab on PATH"
  fi
}

run_macro() {
  ensure_peers
  command -v wrk >/dev/null || die "wrk is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/macro-$STAMP.txt runs=$RESULTS_DIR/macro-$STAMP.tsv
  runs_header "$runs" scenario proxy

  start_origin
  local p sc r
  for p in $PROXIES; do start_proxy "$p"; done
  for sc in $SCENARIOS; do
    local path size name
    path=$(scenario_path "$sc")
    size=$(scenario_size "$sc")
    name=$(scenario_name "$sc")
    for p in $PROXIES; do check_proxy "$p" "$path" "$size"; done
    # One short unrecorded warm-up run per proxy (connection pools, caches, page faults).
    for p in $PROXIES; do warm_up "$p" "$path" "$WORK/warmup-$name-$p.txt"; done
    proxies_alive
    for ((r = 1; r <= ROUNDS; r++)); do
      for p in $PROXIES; do
        local out=$WORK/wrk-$name-$p-$r.txt
        measure "$p" "$path" "$out"
        record_run "$runs" "$name" "$p" "$r"
        log_run "$name round $r/$ROUNDS $p"
        keep_failed_run "$p" "$out" "$RESULTS_DIR/macro-$STAMP-wrk-$name-$p-$r.txt"
        proxies_alive
      done
    done
    for p in $PROXIES; do check_proxy "$p" "$path" "$size"; done
  done

  write_table_results "$results" "$runs" \
    "torii benchmark: wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS interleaved round(s)"
}

run_idle() {
  ensure_peers
  build torii torii-origin
  raise_fd_limit
  if ((N + 200 > FD_LIMIT)); then
    die "N=$N idle connections need about $((N + 200)) file descriptors per process; the limit is $FD_LIMIT (hard $(ulimit -Hn)): use N=$((FD_LIMIT - 200)) or less"
  fi
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/idle-$STAMP.txt p line comp="" kind="keep-alive"
  local -a lines=() tls_flag=()
  if [[ ${H2C:-0} == 1 ]]; then
    # Every connection HTTP/2 with prior knowledge: what an idle HTTP/2 connection costs.
    comp=h2c
    tls_flag=(--h2c)
    kind="HTTP/2 (h2c)"
    POOL_KEEPALIVE=$BATCH
  elif [[ $TLS == 1 ]]; then
    # Every connection over TLS 1.3 (ECDSA P-256) first: what an idle TLS connection costs.
    make_bench_cert
    SCHEME=https
    CHECK_TLS=(--tls)
    comp=tls
    tls_flag=(--tls)
    kind="TLS keep-alive"
  fi
  start_origin
  for p in $PROXIES; do
    if [[ $comp == h2c ]]; then
      "start_$p" "$p" "" "" h2c  # nginx and HAProxy take only HTTP/2 on such a listener
      RUNNING+=" $p"
      check_h2 "$p" http "/?size=100" 100
    else
      start_proxy "$p" "" "" "$comp"
    fi
    local pids=() pid
    for pid in ${CPU_PIDS[$p]}; do pids+=(--pid "$pid"); done
    log "$p: opening $N idle $kind connections"
    line=$(timeout -k 5 600 taskset -c "$LOAD_CPU" python3 "$BENCH_DIR/idle_conns.py" \
      --addr "127.0.0.1:${PORT[$p]}" "${pids[@]}" -n "$N" --batch "$BATCH" --label "$p" \
      "${tls_flag[@]}" 2>&1) || {
      proxies_alive
      die "idle_conns.py against $p failed: $line"
    }
    log "$(echo "$line" | head -n 1)"
    lines+=("$(echo "$line" | grep '^RESULT ')")
    proxies_alive
    if [[ $comp == h2c ]]; then
      check_h2 "$p" http "/?size=100" 100
    else
      check_proxy "$p" "/?size=100" 100
    fi
    stop_proxy "$p"
  done
  {
    echo "torii benchmark: memory per idle $kind connection, N=$N opened $BATCH at a time (each sent one GET /?size=100"
    echo "and read the 200 response, then stayed idle; RSS = VmRSS of the proxy's processes)"
    env_header
    echo "fd limit:  $FD_LIMIT (soft = hard for the proxies and the client)"
    echo
    printf '  %-8s %14s %14s %18s %12s\n' proxy "RSS before" "RSS after" "bytes/idle conn" "still open"
    printf '  %s\n' "--------------------------------------------------------------------"
    for line in "${lines[@]}"; do
      local label n alive before after per
      label=$(sed -n 's/.*label=\([^ ]*\).*/\1/p' <<<"$line")
      n=$(sed -n 's/.* n=\([0-9]*\).*/\1/p' <<<"$line")
      alive=$(sed -n 's/.*alive=\([0-9]*\).*/\1/p' <<<"$line")
      before=$(sed -n 's/.*rss_before_kib=\([0-9]*\).*/\1/p' <<<"$line")
      after=$(sed -n 's/.*rss_after_kib=\([0-9]*\).*/\1/p' <<<"$line")
      per=$(sed -n 's/.*bytes_per_conn=\(-\{0,1\}[0-9]*\).*/\1/p' <<<"$line")
      printf '  %-8s %10s KiB %10s KiB %18s %12s\n' "$label" "$before" "$after" "$per" "$alive/$n"
    done
    echo
    echo "nginx RSS is master + worker. Kernel socket memory is not included."
  } >"$results"
  echo
  cat "$results"
  echo
  echo "results: $results"
}

# origin_requests NAME...: the origins' request counts (/__stats), summed.
origin_requests() {
  local -a addrs=()
  local n
  for n in "$@"; do addrs+=("${ORIGIN_AT[$n]}"); done
  python3 "$BENCH_DIR/report.py" origin-requests "${addrs[@]}" ||
    die "cannot read /__stats from the origins ${addrs[*]}"
}

run_balance() {
  ensure_peers ab
  command -v wrk >/dev/null || die "wrk is not installed"
  command -v ab >/dev/null || die "ab (apache2-utils) is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/balance-$STAMP.txt runs=$RESULTS_DIR/balance-$STAMP.tsv
  local path="/?size=100" size=100 p a r inst
  # One line per (proxy, algorithm, round): the wrk run's figures, then the ab run's.
  printf '# proxy\talgorithm\tround\trps\trequests\tp50_us\tp99_us\tcpu_s\tnon2xx\tsock_errors\tslow_requests\tall_requests\tproxy_cpu_busy_pct\tload_cpu_busy_pct\tab_rps\tab_requests\tab_p50_us\tab_p90_us\tab_p99_us\tab_p999_us\tab_non2xx\tab_failed\tab_keepalive\tab_slow_requests\tab_all_requests\tab_proxy_cpu_busy_pct\tab_load_cpu_busy_pct\n' >"$runs"

  # The slow origin first: the backend every proxy lists first.
  start_origin origin-slow "$SLOW_MS"
  start_origin origin1
  start_origin origin2
  local -a instances=()
  for p in $PROXIES; do
    for a in rr lc; do
      start_proxy "$p-$a" "$a"
      instances+=("$p-$a")
    done
  done
  for inst in "${instances[@]}"; do warm_up "$inst" "$path" "$WORK/warmup-$inst.txt"; done
  proxies_alive
  for ((r = 1; r <= ROUNDS; r++)); do
    # Odd rounds measure round robin first, even rounds least_conn first.
    local order="rr lc"
    ((r % 2 == 0)) && order="lc rr"
    for p in $PROXIES; do
      for a in $order; do
        inst=$p-$a
        local out=$WORK/wrk-balance-$inst-$r.txt abo=$WORK/ab-balance-$inst-$r.txt
        local s0 s1 a0 a1 slow all share ab_slow ab_all ab_share
        # wrk: percentiles corrected for coordinated omission.
        s0=$(origin_requests origin-slow)
        a0=$(origin_requests origin-slow origin1 origin2)
        measure "$inst" "$path" "$out"
        s1=$(origin_requests origin-slow)
        a1=$(origin_requests origin-slow origin1 origin2)
        slow=$((s1 - s0)) all=$((a1 - a0))
        share=$(awk -v s="$slow" -v a="$all" 'BEGIN { printf "%.2f", (a > 0 ? 100 * s / a : 0) }')
        log "balance round $r/$ROUNDS $inst wrk: $M_RPS req/s, p50 ${M_P50}us, p99 ${M_P99}us (corrected), slow origin $slow of $all requests ($share%), proxy CPU ${M_CPU}s, CPU $PROXY_CPU/$LOAD_CPU busy $M_BUSY_P%/$M_BUSY_L%, non-2xx $M_NON2XX, socket errors $M_SOCK"
        if ((M_NON2XX > 0 || M_SOCK > 0)); then
          log "WARNING: $inst: $M_NON2XX non-2xx answers and $M_SOCK socket errors in this wrk run"
          cp "$out" "$RESULTS_DIR/balance-$STAMP-wrk-$inst-$r.txt"
        fi
        proxies_alive
        # ab: every request's own latency, not corrected.
        s0=$(origin_requests origin-slow)
        a0=$(origin_requests origin-slow origin1 origin2)
        measure_ab "$inst" "$path" "$size" "$abo"
        s1=$(origin_requests origin-slow)
        a1=$(origin_requests origin-slow origin1 origin2)
        ab_slow=$((s1 - s0)) ab_all=$((a1 - a0))
        ab_share=$(awk -v s="$ab_slow" -v a="$ab_all" 'BEGIN { printf "%.2f", (a > 0 ? 100 * s / a : 0) }')
        printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
          "$p" "$a" "$r" "$M_RPS" "$M_REQS" "$M_P50" "$M_P99" "$M_CPU" "$M_NON2XX" "$M_SOCK" \
          "$slow" "$all" "$M_BUSY_P" "$M_BUSY_L" "$A_RPS" "$A_REQS" "$A_P50" "$A_P90" "$A_P99" \
          "$A_P999" "$A_NON2XX" "$A_FAILED" "$A_KA" "$ab_slow" "$ab_all" "$A_BUSY_P" "$A_BUSY_L" >>"$runs"
        log "balance round $r/$ROUNDS $inst ab: $A_RPS req/s, per request p50 ${A_P50}us, p90 ${A_P90}us, p99 ${A_P99}us, p99.9 ${A_P999}us, slow origin $ab_slow of $ab_all requests ($ab_share%), $A_KA of $A_REQS requests on kept-alive connections, CPU $PROXY_CPU/$LOAD_CPU busy $A_BUSY_P%/$A_BUSY_L%, non-2xx $A_NON2XX, failed $A_FAILED"
        if ((A_NON2XX > 0 || A_FAILED > 0)); then
          log "WARNING: $inst: $A_NON2XX non-2xx answers and $A_FAILED failed requests in this ab run"
          cp "$abo" "$RESULTS_DIR/balance-$STAMP-ab-$inst-$r.txt"
        fi
        # A proxy closes a client connection after so many requests (torii and nginx: 1000),
        # and ab then opens another: more than 1 % of the requests outside kept-alive
        # connections would mean connection set-up in the latencies.
        if ((A_KA * 100 < A_REQS * 99)); then
          log "WARNING: $inst: only $A_KA of $A_REQS ab requests were on kept-alive connections"
          cp "$abo" "$RESULTS_DIR/balance-$STAMP-ab-$inst-$r.txt"
        fi
        proxies_alive
      done
    done
  done
  for inst in "${instances[@]}"; do check_proxy "$inst" "$path" "$size"; done

  {
    echo "torii benchmark: balance, GET $path, $ROUNDS interleaved round(s) of wrk -t1 -c$CONNS -d${DURATION}s --latency and ab -k -c$CONNS -t$DURATION"
    env_header
    echo "ab:        $(ab -V 2>&1 | head -n 1 | sed 's/^This is //; s/ <.*//') (apache2-utils $(dpkg-query -W -f '${Version}' apache2-utils 2>/dev/null || echo '?'))"
    echo "origins:   ${ORIGIN_AT[origin-slow]} (every response delayed $SLOW_MS ms), ${ORIGIN_AT[origin1]}, ${ORIGIN_AT[origin2]}"
    echo
    python3 "$BENCH_DIR/report.py" balance-table "$runs" --duration "$DURATION" --conns "$CONNS" \
      --slow-ms "$SLOW_MS"
    echo
    problems_footer
  } >"$results"
  echo
  cat "$results"
  echo
  echo "results: $results (per-run records: $runs)"
}

# check_limit_live NAME: evidence that the "on" instance NAME applies its limit. torii: the
# RateLimit-Policy header on the response (and no such header from the "off" instance);
# HAProxy: an entry for 127.0.0.1 in its stick-table (after a warm-up). nginx shows nothing at
# run time: its config (limit_req, checked by nginx -t) is the evidence.
check_limit_live() {
  local name=$1 kind=${1%%-*} out
  case $kind in
    torii)
      out=$(python3 "$BENCH_DIR/report.py" header "127.0.0.1:${PORT[$name]}" "/?size=100" \
        RateLimit-Policy) || die "$name (rate limit on) answers without a RateLimit-Policy header"
      log "check: $name answers with RateLimit-Policy: $out"
      if out=$(python3 "$BENCH_DIR/report.py" header "127.0.0.1:${PORT[torii-off]}" "/?size=100" \
        RateLimit-Policy); then
        die "torii-off (no rate limit) answers with a RateLimit-Policy header: $out"
      fi
      ;;
    haproxy)
      out=$(python3 "$BENCH_DIR/report.py" haproxy-table "$WORK/$name/admin.sock" bench) ||
        die "cannot read $name's stick-table: $out"
      grep -q 'key=127\.0\.0\.1 ' <<<"$out" ||
        die "$name's stick-table has no entry for 127.0.0.1 after a warm-up: $out"
      log "check: $name stick-table: $(grep 'key=127\.0\.0\.1 ' <<<"$out" | sed 's/^0x[0-9a-f]*: //')"
      ;;
    nginx) log "check: $name: limit_req zone=per_ip in its config (nginx -t passed)" ;;
  esac
}

run_ratelimit() {
  ensure_peers
  command -v wrk >/dev/null || die "wrk is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/ratelimit-$STAMP.txt runs=$RESULTS_DIR/ratelimit-$STAMP.tsv
  local path="/?size=100" size=100 p l r inst
  runs_header "$runs" proxy limit

  start_origin
  local -a instances=()
  for p in $PROXIES; do
    for l in off on; do
      start_proxy "$p-$l" "" "$l"
      instances+=("$p-$l")
    done
  done
  for inst in "${instances[@]}"; do warm_up "$inst" "$path" "$WORK/warmup-$inst.txt"; done
  for p in $PROXIES; do check_limit_live "$p-on"; done
  proxies_alive
  for ((r = 1; r <= ROUNDS; r++)); do
    # Odd rounds measure the instance without a limit first, even rounds the one with it.
    local order="off on"
    ((r % 2 == 0)) && order="on off"
    for p in $PROXIES; do
      for l in $order; do
        inst=$p-$l
        local out=$WORK/wrk-ratelimit-$inst-$r.txt
        measure "$inst" "$path" "$out"
        record_run "$runs" "$p" "$l" "$r"
        log_run "ratelimit round $r/$ROUNDS $inst"
        if ((M_NON2XX > 0 || M_SOCK > 0)); then
          cp "$out" "$RESULTS_DIR/ratelimit-$STAMP-wrk-$inst-$r.txt"
          # A non-2xx answer (429) means a limit was hit: not the scenario this mode measures.
          ((M_NON2XX == 0)) ||
            die "$inst: $M_NON2XX non-2xx answers (a limit was hit?); wrk output kept in $RESULTS_DIR/ratelimit-$STAMP-wrk-$inst-$r.txt, runs so far in $runs"
          log "WARNING: $inst: $M_SOCK socket errors in this run"
        fi
        proxies_alive
      done
    done
  done
  for inst in "${instances[@]}"; do check_proxy "$inst" "$path" "$size"; done

  {
    echo "torii benchmark: ratelimit, wrk -t1 -c$CONNS -d${DURATION}s --latency GET $path, $ROUNDS interleaved round(s)"
    env_header
    echo "limit:     per client address, $RL_RATE requests/s, burst $RL_BURST (\"on\" instances; never hit)"
    echo
    python3 "$BENCH_DIR/report.py" ratelimit-table "$runs" --duration "$DURATION" --conns "$CONNS"
    echo
    problems_footer
  } >"$results"
  echo
  cat "$results"
  echo
  echo "results: $results (per-run records: $runs)"
}

# fleet mode: what a rate limit shared through Redis costs when it is never hit (issue #19's
# goal: under 5 % of requests per CPU-second). torii alone, three instances pinned to PROXY_CPU
# on GET /?size=100, ROUNDS interleaved rounds: torii-off (no limit), torii-local (a per-client
# limit of FLEET_RATE/s, burst RL_BURST, in the process) and torii-fleet (the same limit with
# store = "redis": leases from a redis-server on LOAD_CPU, started here). The table's ratios
# torii-fleet / torii-off and torii-fleet / torii-local are the cost.
run_fleet() {
  command -v wrk >/dev/null || die "wrk is not installed"
  command -v redis-server >/dev/null || die "redis-server is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/fleet-$STAMP.txt runs=$RESULTS_DIR/fleet-$STAMP.tsv
  runs_header "$runs" scenario proxy
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  start_bg "$WORK/redis.log" taskset -c "$LOAD_CPU" redis-server --port "$port" --bind 127.0.0.1 \
    --save "" --appendonly no --dir "$WORK"
  ORIGIN_PIDS+=("$BG_PID")
  REDIS_ADDR=127.0.0.1:$port
  local i
  for ((i = 0; i < 50; i++)); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
  done
  start_origin
  start_proxy torii-off
  start_proxy torii-local "" local
  start_proxy torii-fleet "" fleet
  local inst r path="/?size=100"
  for inst in torii-off torii-local torii-fleet; do warm_up "$inst" "$path" "$WORK/warmup-$inst.txt"; done
  # The lease script ran in Redis (the keys themselves expire once the leases are returned).
  local calls
  calls=$(python3 -c "
import re, socket
s = socket.create_connection(('127.0.0.1', $port), 2)
s.sendall(b'INFO commandstats\\r\\n')
s.settimeout(0.3)
data = b''
try:
    while len(data) < 1 << 20:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
m = re.search(rb'cmdstat_evalsha:calls=([0-9]+)', data) or re.search(rb'cmdstat_eval:calls=([0-9]+)', data)
print(m.group(1).decode() if m else 0)")
  ((calls > 0)) || die "torii-fleet sent no lease request to Redis during its warm-up: the limit is not shared"
  log "check: Redis ran the lease script $calls time(s) during the warm-ups"
  for ((r = 1; r <= ROUNDS; r++)); do
    for inst in torii-off torii-local torii-fleet; do
      local out=$WORK/wrk-$inst-$r.txt
      measure "$inst" "$path" "$out"
      ((M_NON2XX == 0)) || die "$inst: $M_NON2XX non-2xx answers (the limit was hit?)"
      record_run "$runs" small "$inst" "$r"
      log_run "fleet round $r/$ROUNDS $inst"
      proxies_alive
    done
  done
  write_table_results "$results" "$runs" \
    "torii benchmark: a rate limit shared through Redis, never hit (torii-fleet) vs the same limit in the process (torii-local) vs none (torii-off), wrk -t1 -c$CONNS -d${DURATION}s GET $path, $ROUNDS interleaved round(s)" \
    "limit:     per client address, $FLEET_RATE requests/s, burst $RL_BURST; Redis $REDIS_ADDR on CPU $LOAD_CPU"
}

# check_gzip NAME PATH RECORD: NAME must answer GET PATH with Accept-Encoding: gzip with 200,
# Content-Encoding: gzip and a body that gunzips to the origin's bytes; appends the sizes
# to RECORD (report.py check-gzip).
check_gzip() {
  local name=$1 path=$2 record=$3 out
  out=$(python3 "$BENCH_DIR/report.py" check-gzip --name "$name" --addr "127.0.0.1:${PORT[$name]}" \
    --path "$path" --reference "$ORIGIN_ADDR" --count 10 --record "$record") ||
    die "$name failed its gzip check: $out"
  log "check: $out"
}

run_compress() {
  ensure_peers
  command -v wrk >/dev/null || die "wrk is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/compress-$STAMP.txt runs=$RESULTS_DIR/compress-$STAMP.tsv
  local sizes=$RESULTS_DIR/compress-$STAMP-sizes.tsv
  local path="/?size=102400&text=1" size=102400 p r
  printf '# proxy\tround\trps\trequests\tp50_us\tp99_us\tcpu_s\tnon2xx\tsock_errors\tproxy_cpu_busy_pct\tload_cpu_busy_pct\tbytes_read\n' >"$runs"
  printf '# proxy\tplain_bytes\tgzip_bytes_min\tgzip_bytes_max\tframing\tvary\n' >"$sizes"

  start_origin
  for p in $PROXIES; do start_proxy "$p" "" "" gzip; done
  for p in $PROXIES; do
    check_proxy "$p" "$path" "$size" # no Accept-Encoding: the origin's bytes as they are
    check_gzip "$p" "$path" "$sizes"
  done
  WRK_HEADERS=(-H "Accept-Encoding: gzip")
  for p in $PROXIES; do warm_up "$p" "$path" "$WORK/warmup-compress-$p.txt"; done
  proxies_alive
  for ((r = 1; r <= ROUNDS; r++)); do
    for p in $PROXIES; do
      local out=$WORK/wrk-compress-$p-$r.txt bytes
      measure "$p" "$path" "$out"
      bytes=$(python3 "$BENCH_DIR/report.py" wrk-read "$out") || die "cannot parse $out: $(cat "$out")"
      printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$r" "$M_RPS" "$M_REQS" \
        "$M_P50" "$M_P99" "$M_CPU" "$M_NON2XX" "$M_SOCK" "$M_BUSY_P" "$M_BUSY_L" "$bytes" >>"$runs"
      log "compress round $r/$ROUNDS $p: $M_RPS req/s, p50 ${M_P50}us, p99 ${M_P99}us, proxy CPU ${M_CPU}s, $((bytes / (M_REQS > 0 ? M_REQS : 1))) bytes read per response, CPU $PROXY_CPU/$LOAD_CPU busy $M_BUSY_P%/$M_BUSY_L%, non-2xx $M_NON2XX, socket errors $M_SOCK"
      if ((M_NON2XX > 0 || M_SOCK > 0)); then
        cp "$out" "$RESULTS_DIR/compress-$STAMP-wrk-$p-$r.txt"
        ((M_NON2XX == 0)) ||
          die "$p: $M_NON2XX non-2xx answers; wrk output kept in $RESULTS_DIR/compress-$STAMP-wrk-$p-$r.txt, runs so far in $runs"
        log "WARNING: $p: $M_SOCK socket errors in this run"
      fi
      proxies_alive
    done
  done
  WRK_HEADERS=()
  local after=$WORK/sizes-after.tsv
  for p in $PROXIES; do
    check_proxy "$p" "$path" "$size"
    check_gzip "$p" "$path" "$after"
  done

  {
    echo "torii benchmark: compress, wrk -t1 -c$CONNS -d${DURATION}s --latency -H \"Accept-Encoding: gzip\" GET $path, $ROUNDS interleaved round(s)"
    env_header
    echo "gzip:      level $COMP_LEVEL (torii gzip_level, nginx gzip_comp_level, HAProxy tune.comp.maxlevel; HAProxy: $(haproxy -vv 2>/dev/null | grep -m1 -o 'Built with libslz[^.]*\|Built with zlib[^.]*' || echo 'compression library unknown'))"
    echo
    python3 "$BENCH_DIR/report.py" compress-table "$runs" --sizes "$sizes" --duration "$DURATION" \
      --conns "$CONNS" --level "$COMP_LEVEL"
    echo
    problems_footer
  } >"$results"
  echo
  cat "$results"
  echo
  echo "results: $results (per-run records: $runs, compressed sizes: $sizes)"
}

# cache mode: every proxy with its response cache on (torii [cache.*], nginx proxy_cache in
# /dev/shm, HAProxy "cache" section, 256 MiB each) and gzip at COMP_LEVEL, measured on two
# responses the origin marks Cache-Control: max-age=3600, so that after the warm-up every
# request is a hit (the origin's request count during the recorded runs is reported):
#   hit4k:    GET /?size=4096 (no Accept-Encoding): a 4 KiB hit;
#   hitgzip:  GET /?size=102400&text=1 with Accept-Encoding: gzip: a 100 KiB text hit that the
#             client wants compressed. torii stores one gzip variant and serves it on every
#             later hit; nginx and HAProxy compress the stored bytes again on every hit.
# rounds_counting_origin MODE SCENARIO PATH RUNS ORIGIN_LOG PROXY...: ROUNDS interleaved
# measured runs of PATH against each PROXY, recorded in RUNS, with the origin's requests during
# each run in ORIGIN_LOG (0 when every request was a cache hit).
rounds_counting_origin() {
  local mode=$1 sc=$2 path=$3 runs=$4 origin_log=$5 r p
  shift 5
  for ((r = 1; r <= ROUNDS; r++)); do
    for p in "$@"; do
      local out=$WORK/wrk-$sc-$p-$r.txt o0 o1
      o0=$(python3 "$BENCH_DIR/report.py" origin-requests "$ORIGIN_ADDR") || die "origin /__stats"
      measure "$p" "$path" "$out"
      o1=$(python3 "$BENCH_DIR/report.py" origin-requests "$ORIGIN_ADDR") || die "origin /__stats"
      record_run "$runs" "$sc" "$p" "$r"
      printf '%s\t%s\t%s\t%s\n' "$sc" "$p" "$M_REQS" "$((o1 - o0))" >>"$origin_log"
      log_run "$sc round $r/$ROUNDS $p" "origin requests $((o1 - o0))"
      keep_failed_run "$p" "$out" "$RESULTS_DIR/$mode-$STAMP-wrk-$sc-$p-$r.txt"
      proxies_alive
    done
  done
}

# origin_requests_summary ORIGIN_LOG: the origin's requests per scenario and proxy.
origin_requests_summary() {
  echo "origin requests during the recorded runs (all hits when 0):"
  awk -F'\t' '!/^#/ { n[$1" "$2] += $4; q[$1" "$2] += $3 } END { for (k in n) printf "  %-20s %d of %d requests\n", k, n[k], q[k] }' "$1" | sort
}

run_cache() {
  ensure_peers
  command -v wrk >/dev/null || die "wrk is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/cache-$STAMP.txt runs=$RESULTS_DIR/cache-$STAMP.tsv
  local origin_log=$RESULTS_DIR/cache-$STAMP-origin.tsv
  runs_header "$runs" scenario proxy
  printf '# scenario\tproxy\trequests_answered\torigin_requests\n' >"$origin_log"

  start_origin
  local p sc r
  for p in $PROXIES; do start_proxy "$p" "" "" cache+gzip; done
  for sc in hit4k hitgzip; do
    local path size sizes=$WORK/sizes-$sc.tsv
    case $sc in
      hit4k) path="/?size=4096&cc=max-age=3600" size=4096 WRK_HEADERS=() ;;
      hitgzip) path="/?size=102400&text=1&cc=max-age=3600" size=102400
        WRK_HEADERS=(-H "Accept-Encoding: gzip") ;;
    esac
    for p in $PROXIES; do
      check_proxy "$p" "$path" "$size"
      [[ $sc == hitgzip ]] && check_gzip "$p" "$path" "$sizes"
    done
    for p in $PROXIES; do warm_up "$p" "$path" "$WORK/warmup-$sc-$p.txt"; done
    proxies_alive
    rounds_counting_origin cache "$sc" "$path" "$runs" "$origin_log" $PROXIES
    WRK_HEADERS=()
    for p in $PROXIES; do check_proxy "$p" "$path" "$size"; done
  done

  ORIGIN_LOG=$origin_log write_table_results "$results" "$runs" \
    "torii benchmark: cache hits, wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS interleaved round(s)" \
    "hit4k: GET /?size=4096 (Cache-Control: max-age=3600); hitgzip: GET /?size=102400&text=1 with Accept-Encoding: gzip, gzip level $COMP_LEVEL" \
    "caches: torii [cache.bench] 256 MiB; nginx proxy_cache (files in /dev/shm); HAProxy cache section (256 MB, filter cache before filter compression)"
}

# disk mode: the cache's disk tier. DISK_OBJECTS [1280] objects of 100 KiB (GET /dN?size=102400,
# Cache-Control: max-age=3600), a working set twice torii's memory tier (DISK_MEMORY [64MiB]);
# torii's [cache.bench] keeps them in its disk tier (DISK_SIZE [1GiB], a file in the bench
# directory), nginx's proxy_cache in files in the same directory (max_size as large; nginx has
# no memory tier: its hits are file reads, through the page cache as torii's). Both are filled
# with every object first (each fetched once, then the fill is checked: a second pass must reach
# the origin 0 times), then measured with wrk -t1 -cCONNS picking objects uniformly at random
# (a Lua script, the same seed for both). HAProxy's cache lives in memory only: not compared
# here. Reported: req/s, p50, p99, proxy CPU, requests per proxy CPU-second, torii / nginx, and
# the origin requests during the recorded runs (0 when every request was a hit).
DISK_OBJECTS=${DISK_OBJECTS:-1280}
DISK_MEMORY=${DISK_MEMORY:-64MiB}
DISK_SIZE=${DISK_SIZE:-1GiB}
DISK_SIZE_NGINX=${DISK_SIZE_NGINX:-1g}
run_disk() {
  ensure_peers
  command -v wrk >/dev/null || die "wrk is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/disk-$STAMP.txt runs=$RESULTS_DIR/disk-$STAMP.tsv
  local origin_log=$RESULTS_DIR/disk-$STAMP-origin.tsv script=$WORK/disk.lua
  runs_header "$runs" scenario proxy
  printf '# scenario\tproxy\trequests_answered\torigin_requests\n' >"$origin_log"
  cat >"$script" <<EOF
math.randomseed(1)
request = function()
  return wrk.format("GET", "/d" .. math.random($DISK_OBJECTS) .. "?size=102400&cc=max-age=3600")
end
EOF
  start_origin
  local p r
  local proxies=""
  for p in $PROXIES; do [[ ${p%%-*} == haproxy ]] || proxies+=" $p"; done
  for p in $proxies; do start_proxy "$p" "" "" disk; done
  for p in $proxies; do
    check_proxy "$p" "/d1?size=102400&cc=max-age=3600" 102400
    # Fill: every object once; then a second pass must be all hits.
    local o0 o1 pass
    for pass in fill check; do
      o0=$(python3 "$BENCH_DIR/report.py" origin-requests "$ORIGIN_ADDR") || die "origin /__stats"
      python3 - "127.0.0.1:${PORT[$p]}" "$DISK_OBJECTS" <<'EOF' || die "$p: filling its cache failed"
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port), timeout=30)
for i in range(1, int(sys.argv[2]) + 1):
    c.request("GET", f"/d{i}?size=102400&cc=max-age=3600")
    r = c.getresponse()
    body = r.read()
    if r.status != 200 or len(body) != 102400:
        sys.exit(f"/d{i}: {r.status}, {len(body)} bytes")
EOF
      o1=$(python3 "$BENCH_DIR/report.py" origin-requests "$ORIGIN_ADDR") || die "origin /__stats"
      log "$p: $pass pass of $DISK_OBJECTS objects, $((o1 - o0)) origin requests"
      [[ $pass == check ]] && ((o1 - o0 > 0)) && log "WARNING: $p: $((o1 - o0)) misses after the fill"
      sleep 1  # nginx writes its files when each response ends; torii through its ring
    done
  done
  WRK_HEADERS=(-s "$script")
  for p in $proxies; do warm_up "$p" "/" "$WORK/warmup-disk-$p.txt"; done
  proxies_alive
  # shellcheck disable=SC2086
  rounds_counting_origin disk disk100k "/" "$runs" "$origin_log" $proxies
  WRK_HEADERS=()
  ORIGIN_LOG=$origin_log write_table_results "$results" "$runs" \
    "torii benchmark: cache hits from a disk tier, wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS interleaved round(s)" \
    "disk100k: $DISK_OBJECTS objects of 100 KiB picked at random (working set $((DISK_OBJECTS * 100 / 1024)) MiB); torii memory tier $DISK_MEMORY + disk tier $DISK_SIZE (one file); nginx proxy_cache files, max_size $DISK_SIZE_NGINX, same file system ($(df --output=fstype "$WORK" | tail -n 1))"
}

# timing mode: what the latency budget costs (issue #9's goal: under 3 % of requests per CPU-
# second). Two torii instances, identical but for [server] phase_timing (on: every request's
# phases timed into the access log's fields and the /metrics histograms; off), are measured in
# interleaved rounds on GET /?size=100 (the per-request overhead weighs most on the smallest
# responses). Counters and the latency histogram are always on in both. The table's
# "torii / torii-off" line is the ratio; overhead = 1 - ratio.
run_timing() {
  ensure_peers
  command -v wrk >/dev/null || die "wrk is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/timing-$STAMP.txt runs=$RESULTS_DIR/timing-$STAMP.tsv
  runs_header "$runs" scenario proxy
  start_origin
  start_proxy torii
  start_proxy torii-off "" "" notiming
  local inst r path="/?size=100"
  for inst in torii torii-off; do
    check_proxy "$inst" "$path" 100
    warm_up "$inst" "$path" "$WORK/warmup-$inst.txt"
  done
  for ((r = 1; r <= ROUNDS; r++)); do
    for inst in torii torii-off; do
      measure "$inst" "$path" "$WORK/wrk-$inst-$r.txt"
      record_run "$runs" small "$inst" "$r"
      log_run "timing round $r/$ROUNDS $inst"
      proxies_alive
    done
  done
  write_table_results "$results" "$runs" \
    "torii benchmark: latency budget on (torii) vs phase_timing = false (torii-off), wrk -t1 -c$CONNS -d${DURATION}s GET $path, $ROUNDS interleaved round(s)"
}

# edge mode: torii alone, twice, pinned to PROXY_CPU, on GET /?size=100 (ROUNDS interleaved
# rounds): torii-edge-off with the edge features that can be off turned off (request_id_header
# = "", trace_context = false, merge_slashes = false; one catch-all route), torii-edge-on with
# them on and eight routes of every matcher kind (path_exact, methods, path_regex, host,
# headers, query, regex_rewrite, strip_prefix + request_headers) tried before the catch-all
# that serves the request. Path normalisation itself cannot be turned off (it is a security
# decision): bench/path_bench.cc measures it alone. Reported: req/s and requests per proxy
# CPU-second of each, and the cost 1 - (on / off).
run_edge() {
  command -v wrk >/dev/null || die "wrk is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/edge-$STAMP.txt runs=$RESULTS_DIR/edge-$STAMP.tsv
  runs_header "$runs" scenario proxy
  start_origin
  start_proxy torii-edge-off "" "" edge-off
  start_proxy torii-edge-on "" "" edge-on
  local inst r path="/?size=100"
  for inst in torii-edge-off torii-edge-on; do
    check_proxy "$inst" "$path" 100
    warm_up "$inst" "$path" "$WORK/warmup-$inst.txt"
  done
  for ((r = 1; r <= ROUNDS; r++)); do
    local order="torii-edge-off torii-edge-on"
    ((r % 2 == 0)) && order="torii-edge-on torii-edge-off"
    for inst in $order; do
      measure "$inst" "$path" "$WORK/wrk-$inst-$r.txt"
      record_run "$runs" small "$inst" "$r"
      log_run "edge round $r/$ROUNDS $inst"
      proxies_alive
    done
  done
  write_table_results "$results" "$runs" \
    "torii benchmark: edge features off (torii-edge-off) vs on with eight matcher routes (torii-edge-on), wrk -t1 -c$CONNS -d${DURATION}s GET $path, $ROUNDS interleaved round(s)"
}

# tls mode: each proxy terminating TLS 1.3 with one ECDSA P-256 certificate (made here with
# openssl), twice: with session tickets (NAME-tk) and without tickets or a session cache
# (NAME-nt), all pinned to PROXY_CPU. Scenarios, GET /?size=4096 over https:
#   keepalive: wrk -cCONNS on keep-alive connections (-tk instances): record crypto only;
#   full:      Connection: close on the -nt instances: every request a full handshake;
#   resumed:   Connection: close on the -tk instances: handshakes resume when the client offers
#              a ticket (wrk may or may not: torii's counters say how many did, below).
# Requests per proxy CPU-second is handshakes per CPU-second in full / resumed.
run_tls() {
  ensure_peers
  command -v wrk >/dev/null || die "wrk is not installed"
  command -v openssl >/dev/null || die "openssl is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  make_bench_cert
  local results=$RESULTS_DIR/tls-$STAMP.txt runs=$RESULTS_DIR/tls-$STAMP.tsv
  runs_header "$runs" scenario proxy
  SCHEME=https
  CHECK_TLS=(--tls)
  start_origin
  local p sc r inst path="/?size=4096" size=4096 resumed_note=""
  for p in $PROXIES; do
    start_proxy "$p-tk" "" "" tls
    start_proxy "$p-nt" "" "" tls-notickets
  done
  for sc in keepalive full resumed; do
    case $sc in
      keepalive) WRK_HEADERS=() ;;
      *) WRK_HEADERS=(-H "Connection: close") ;;
    esac
    for p in $PROXIES; do
      inst=$p-tk
      [[ $sc == full ]] && inst=$p-nt
      check_proxy "$inst" "$path" "$size"
      warm_up "$inst" "$path" "$WORK/warmup-$sc-$inst.txt"
    done
    proxies_alive
    local t0="" t1=""
    [[ $sc == resumed && -n ${ADMIN_PORT[torii-tk]:-} ]] && t0=$(tls_handshakes torii-tk)
    for ((r = 1; r <= ROUNDS; r++)); do
      for p in $PROXIES; do
        inst=$p-tk
        [[ $sc == full ]] && inst=$p-nt
        local out=$WORK/wrk-$sc-$inst-$r.txt
        measure "$inst" "$path" "$out"
        record_run "$runs" "tls-$sc" "$p" "$r"
        log_run "tls $sc round $r/$ROUNDS $inst"
        keep_failed_run "$inst" "$out" "$RESULTS_DIR/tls-$STAMP-wrk-$sc-$inst-$r.txt"
        proxies_alive
      done
    done
    if [[ -n $t0 ]]; then
      t1=$(tls_handshakes torii-tk)
      resumed_note="torii handshakes during the resumed runs (full resumed): $(awk -v a="$t0" -v b="$t1" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%d %d", y[1] - x[1], y[2] - x[2] }')"
      log "$resumed_note"
    fi
  done
  WRK_HEADERS=()

  local -a notes=("tls-keepalive: keep-alive connections; tls-full: Connection: close, no tickets or session cache (full handshakes); tls-resumed: Connection: close, tickets on")
  [[ -n $resumed_note ]] && notes+=("$resumed_note")
  write_table_results "$results" "$runs" \
    "torii benchmark: TLS 1.3 (ECDSA P-256), wrk -t1 -c$CONNS -d${DURATION}s --latency GET $path over https, $ROUNDS interleaved round(s)" \
    "${notes[@]}"
}

# make_bench_cert: $WORK/tls/site.crt and site.key, ECDSA P-256, for bench.test.
make_bench_cert() {
  command -v openssl >/dev/null || die "openssl is not installed"
  mkdir -p "$WORK/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$WORK/tls/site.key" -out "$WORK/tls/site.crt" -subj /CN=bench.test \
    -addext subjectAltName=DNS:bench.test >"$WORK/tls/openssl.log" 2>&1 ||
    die "openssl could not make the bench certificate: $(cat "$WORK/tls/openssl.log")"
}

# make_client_cert: $WORK/tls/clients-ca.crt and a client certificate it signed
# ($WORK/tls/client.crt, client.key), ECDSA P-256 (mtls mode).
make_client_cert() {
  local t=$WORK/tls
  {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -keyout "$t/clients-ca.key" -out "$t/clients-ca.crt" -subj "/CN=bench clients CA" &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/client.key" \
        -out "$t/client.csr" -subj /CN=bench-client &&
      openssl x509 -req -in "$t/client.csr" -CA "$t/clients-ca.crt" -CAkey "$t/clients-ca.key" \
        -CAcreateserial -days 2 -out "$t/client.crt"
  } >"$t/client-openssl.log" 2>&1 ||
    die "openssl could not make the client certificate: $(cat "$t/client-openssl.log")"
}

# pair_rounds RUNS A B MEASURE: ROUNDS rounds; in each, for every proxy, `MEASURE PROXY
# VARIANT` for variant A then B (in this shell: it may die), which leaves its figures in
# PAIR_LINE; "ROUND PROXY VARIANT PAIR_LINE" is appended to RUNS (report.py pairs reads it).
pair_rounds() {
  local runs=$1 a=$2 b=$3 measure=$4 r p v
  for ((r = 1; r <= ROUNDS; r++)); do
    for p in $PROXIES; do
      for v in "$a" "$b"; do
        "$measure" "$p" "$v"
        echo "$r $p $v $PAIR_LINE" >>"$runs"
        log "$MODE round $r/$ROUNDS $p $v: $PAIR_LINE"
        proxies_alive
      done
    done
  done
}

# measure_mtls PROXY VARIANT: openssl s_time -new for DURATION s against PROXY-VARIANT with
# the client certificate: "CONNECTIONS SECONDS PROXY_CPU_S CPU_US_PER_HANDSHAKE".
measure_mtls() {
  local inst=$1-$2 out c0 c1 n secs cpu
  local -a cpids
  read -ra cpids <<<"${CPU_PIDS[$inst]}"
  sleep 1
  c0=$(cpu_ticks "${cpids[@]}")
  out=$(timeout -k 5 $((DURATION + 60)) taskset -c "$LOAD_CPU" openssl s_time \
    -connect "127.0.0.1:${PORT[$inst]}" -new -time "$DURATION" -www "/?size=100" \
    -cert "$WORK/tls/client.crt" -key "$WORK/tls/client.key" 2>&1) ||
    die "s_time against $inst failed: $(tail -n 5 <<<"$out")"
  c1=$(cpu_ticks "${cpids[@]}")
  read -r n secs < <(sed -n 's/^\([0-9]*\) connections in \([0-9.]*\) real seconds.*/\1 \2/p' <<<"$out" | head -n 1)
  [[ -n ${n:-} && $n -gt 0 ]] || die "s_time against $inst made no connection: $(tail -n 5 <<<"$out")"
  cpu=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
  PAIR_LINE="$n $secs $cpu $(awk -v c="$cpu" -v n="$n" 'BEGIN { printf "%.1f", c * 1e6 / n }')"
}

# measure_fastopen PROXY VARIANT: bench/ttfb.py against PROXY-VARIANT (MSG_FASTOPEN for tfo):
# "MEDIAN_US P90_US P99_US SYN_DATA".
measure_fastopen() {
  local inst=$1-$2 out med p90 p99 syn n
  local -a fo=()
  [[ $2 == tfo ]] && fo=(--fastopen)
  out=$(timeout -k 5 600 taskset -c "$LOAD_CPU" python3 "$BENCH_DIR/ttfb.py" \
    --addr "127.0.0.1:${PORT[$inst]}" --count "${TTFB_COUNT:-2000}" "${fo[@]}") ||
    die "ttfb against $inst failed: $out"
  read -r med p90 p99 syn n <<<"$out"
  PAIR_LINE="$med $p90 $p99 $syn"
}

# measure_early PROXY VARIANT: bench/tls_ttfb against PROXY-0rtt, the request as early data
# for the variant "early": "MEDIAN_US P90_US P99_US EARLY_ACCEPTED RESUMED".
measure_early() {
  local inst=$1-0rtt
  local -a flag=()
  [[ $2 == early ]] && flag=(--early)
  PAIR_LINE=$(timeout -k 5 600 taskset -c "$LOAD_CPU" "$BUILD_DIR/bench/tls_ttfb" \
    --addr "127.0.0.1:${PORT[$inst]}" --count "${TTFB_COUNT:-2000}" "${flag[@]}" 2>&1) ||
    die "tls_ttfb against $inst failed: $PAIR_LINE"
}

# run_mtls: full TLS 1.3 handshakes (no tickets, no session cache) with and without client
# certificates: each proxy twice, "tls" and "mtls" (a certificate required and verified
# against a CA); openssl s_time -new opens connections for DURATION s, presenting a client
# certificate to both, one GET /?size=100 on each. The proxy's CPU time per handshake is the
# figure (s_time, one process, is the bottleneck of the rate). Rounds interleave the runs.
run_mtls() {
  ensure_peers
  command -v openssl >/dev/null || die "openssl is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  make_bench_cert
  make_client_cert
  local results=$RESULTS_DIR/mtls-$STAMP.txt p
  CHECK_TLS=(--tls --cert "$WORK/tls/client.crt" --key "$WORK/tls/client.key")
  start_origin
  for p in $PROXIES; do
    start_proxy "$p-tls" "" "" tls-notickets
    start_proxy "$p-mtls" "" "" tls-mtls
  done
  {
    echo "# full TLS 1.3 handshakes (openssl s_time -new, ${DURATION}s per run, GET /?size=100)"
    echo "round proxy variant connections seconds proxy_cpu_s cpu_us_per_handshake"
  } >"$results.runs"
  pair_rounds "$results.runs" tls mtls measure_mtls
  python3 "$BENCH_DIR/report.py" pairs "$results.runs" tls mtls cpu_us_per_handshake \
    "CPU µs per full handshake, TLS" "with a client certificate (mTLS)" >"$results" ||
    die "cannot summarise $results.runs"
  cat "$results"
  echo
  echo "results: $results (per run: $results.runs)"
}

# tls_handshakes NAME: "FULL RESUMED" from the torii instance NAME's /metrics.
tls_handshakes() {
  curl -s "http://127.0.0.1:${ADMIN_PORT[$1]}/metrics" |
    awk '/^torii_tls_handshakes_total/ && /kind="full"/ { f = $2 } /^torii_tls_handshakes_total/ && /kind="resumed"/ { r = $2 } END { printf "%d %d", f, r }'
}

# h2 mode: every proxy twice, HTTP/2 over TLS 1.3 (torii alpn = ["h2", "http/1.1"], nginx
# listen ... ssl http2, HAProxy bind ... alpn h2,http/1.1) and h2c with prior knowledge (torii
# h2c = true, nginx listen ... http2, HAProxy bind ... proto h2), HTTP/1.1 keep-alive to the
# origin as in macro mode. Load: h2load -c CONNS -m H2_STREAMS (streams in flight per
# connection) -D DURATION with a 1 s warm-up, pinned to LOAD_CPU; 100-byte and 4 KiB
# responses; ROUNDS interleaved rounds. Each instance must first answer curl --http2 with 200,
# HTTP/2 and the origin's exact size. h2load gives no percentiles: the table's p50 column is
# its mean time per request and p99 its maximum.
run_h2() {
  ensure_peers
  command -v h2load >/dev/null || bash "$ROOT/scripts/install-deps.sh"
  command -v h2load >/dev/null || die "h2load (nghttp2-client) is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  make_bench_cert
  local results=$RESULTS_DIR/h2-$STAMP.txt runs=$RESULTS_DIR/h2-$STAMP.tsv
  POOL_KEEPALIVE=$((CONNS * H2_STREAMS * 2))
  runs_header "$runs" scenario proxy
  start_origin
  local p kind sc r inst path size
  for p in $PROXIES; do
    for kind in h2tls h2c; do
      "start_$p" "$p-$kind" "" "" "$kind"
      RUNNING+=" $p-$kind"
      log "$p-$kind (PID ${MAIN_PID[$p-$kind]}, CPU $PROXY_CPU) on 127.0.0.1:${PORT[$p-$kind]}"
    done
  done
  LOADER=h2load
  for kind in h2tls h2c; do
    SCHEME=http
    [[ $kind == h2tls ]] && SCHEME=https
    for sc in small 4k; do
      size=100
      [[ $sc == 4k ]] && size=4096
      path="/?size=$size"
      for p in $PROXIES; do
        check_h2 "$p-$kind" "$SCHEME" "$path" "$size"
        LOAD_SECS=1 measure "$p-$kind" "$path" "$WORK/warmup-$kind-$sc-$p.txt"
      done
      proxies_alive
      for ((r = 1; r <= ROUNDS; r++)); do
        for p in $PROXIES; do
          inst=$p-$kind
          local out=$WORK/h2load-$kind-$sc-$inst-$r.txt
          measure "$inst" "$path" "$out"
          record_run "$runs" "$kind-$sc" "$p" "$r"
          log_run "h2 $kind $sc round $r/$ROUNDS $inst"
          keep_failed_run "$inst" "$out" "$RESULTS_DIR/h2-$STAMP-h2load-$kind-$sc-$inst-$r.txt"
          proxies_alive
        done
      done
    done
  done
  write_table_results "$results" "$runs" \
    "torii benchmark: HTTP/2 clients, h2load -c$CONNS -m$H2_STREAMS -D ${DURATION}s, $ROUNDS interleaved round(s)" \
    "h2tls = HTTP/2 over TLS 1.3 (ECDSA P-256, ALPN h2); h2c = HTTP/2 with prior knowledge" \
    "upstream: HTTP/1.1 keep-alive, up to $POOL_KEEPALIVE idle connections kept (torii keepalive, nginx keepalive; HAProxy keeps all)" \
    "p50 / p99 columns: h2load's mean / maximum time per request (it reports no percentiles)"
}

# h2up mode: HTTP/2 to the backend. The backend is an nginx answering h2c with prior
# knowledge (listen ... http2; /s100 and /s4k are files of 100 bytes / 4 KiB), one
# worker pinned to LOAD_CPU with h2load. Each proxy takes h2c from h2load and speaks h2c to
# it: torii pool protocol = "h2c" (streams multiplexed on shared connections), HAProxy
# server ... proto h2 (multiplexed), nginx grpc_pass grpc://origin with keepalive (its only
# HTTP/2 upstream: one stream per connection). h2load -c CONNS -m H2_STREAMS -D DURATION,
# 1 s warm-up, ROUNDS interleaved rounds, 100 B and 4 KiB. Besides the usual columns, the log
# gives per run the proxy's established connections to the backend right after it (ss).
# soak mode: tests/integration/soak.py drives the traffic from Python threads (so the rate is
# what a few clients make, a few thousand requests per second, not a saturating load: the point
# is how resources behave over time) against the Release torii, one worker, and one
# torii-origin; Debian's python3 (the TLS client needs its ssl module) and openssl.
run_soak() {
  command -v openssl >/dev/null || die "openssl is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local out=$WORK/soak
  log "soak: ${SOAK_SECONDS:-600} s of mixed traffic (progress every 30 s: t,rss_kib,fds,upstream,cache_bytes,connections)"
  (cd "$ROOT/tests/integration" &&
    TORII_BIN=$TORII_BIN TORII_ORIGIN_BIN=$ORIGIN_BIN SOAK_SECONDS=${SOAK_SECONDS:-600} \
      SOAK_OUT=$out /usr/bin/python3 soak.py)
  local f
  for f in csv png txt; do cp "$out/soak.$f" "$RESULTS_DIR/soak-$STAMP.$f"; done
  log "soak: $RESULTS_DIR/soak-$STAMP.{csv,png,txt}"
}

# run_fastopen: each proxy twice, "cold" (every client and backend connection new, no TCP Fast
# Open) and "tfo" (the same with fast open on its listener and, torii and HAProxy, towards the
# origin, which accepts it); bench/ttfb.py opens TTFB_COUNT connections in a row per run and
# times the first response byte. Rounds interleave the instances.
run_fastopen() {
  ensure_peers
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local flags
  flags=$(cat /proc/sys/net/ipv4/tcp_fastopen)
  if (((flags & 3) != 3)); then
    echo $((flags | 3)) >/proc/sys/net/ipv4/tcp_fastopen 2>/dev/null ||
      die "net.ipv4.tcp_fastopen = $flags: both sides need it on (sysctl -w net.ipv4.tcp_fastopen=3)"
  fi
  local results=$RESULTS_DIR/fastopen-$STAMP.txt count=${TTFB_COUNT:-2000} p
  POOL_KEEPALIVE=0
  ORIGIN_FASTOPEN=256 start_origin
  for p in $PROXIES; do
    start_proxy "$p-cold" "" "" cold
    start_proxy "$p-tfo" "" "" tfo
  done
  {
    echo "# time to first byte on a new connection, µs (bench/ttfb.py, $count connections per run,"
    echo "# one GET /?size=100 each, Connection: close; every backend connection new)"
    echo "round proxy variant median_us p90_us p99_us syn_data"
  } >"$results.runs"
  pair_rounds "$results.runs" cold tfo measure_fastopen
  python3 "$BENCH_DIR/report.py" pairs "$results.runs" cold tfo median_us \
    "TTFB median, cold (µs)" "with TCP Fast Open (µs)" p90_us:"p90 with it (µs)" \
    syn_data:"SYN data accepted" >"$results" || die "cannot summarise $results.runs"
  cat "$results"
  echo
  echo "results: $results (per run: $results.runs)"
}

# run_early: each proxy with TLS 1.3, tickets and early data on; bench/tls_ttfb (TTFB_COUNT
# connections per run, each resuming the ticket the previous one got, Connection: close) times
# connect to first response byte, the request sent after the handshake ("resumed") or as
# early data ("0-RTT"). Rounds interleave the proxies.
run_early() {
  ensure_peers
  command -v openssl >/dev/null || die "openssl is not installed"
  build torii torii-origin tls_ttfb
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  make_bench_cert
  local results=$RESULTS_DIR/early-$STAMP.txt count=${TTFB_COUNT:-2000} p
  CHECK_TLS=(--tls)
  start_origin
  for p in $PROXIES; do
    start_proxy "$p-0rtt" "" "" tls-early
  done
  {
    echo "# TLS 1.3 resumed connections: connect to first response byte, µs (bench/tls_ttfb,"
    echo "# $count connections per run, GET /?size=100, Connection: close)"
    echo "round proxy variant median_us p90_us p99_us early_accepted resumed"
  } >"$results.runs"
  pair_rounds "$results.runs" resumed early measure_early
  python3 "$BENCH_DIR/report.py" pairs "$results.runs" resumed early median_us \
    "TTFB resumed (µs)" "TTFB 0-RTT (µs)" p90_us:"p90 0-RTT (µs)" \
    early_accepted:"early data accepted" >"$results" || die "cannot summarise $results.runs"
  cat "$results"
  echo
  echo "results: $results (per run: $results.runs)"
}

run_h2up() {
  ensure_peers
  command -v h2load >/dev/null || bash "$ROOT/scripts/install-deps.sh"
  command -v h2load >/dev/null || die "h2load (nghttp2-client) is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/h2up-$STAMP.txt runs=$RESULTS_DIR/h2up-$STAMP.tsv
  POOL_KEEPALIVE=$((CONNS * H2_STREAMS * 2))
  runs_header "$runs" scenario proxy
  start_h2_backend
  local p sc r inst path size conns
  for p in $PROXIES; do
    "start_$p" "$p-h2up" "" "" h2up
    RUNNING+=" $p-h2up"
    log "$p-h2up (PID ${MAIN_PID[$p-h2up]}, CPU $PROXY_CPU) on 127.0.0.1:${PORT[$p-h2up]}"
  done
  LOADER=h2load
  SCHEME=http
  for sc in small 4k; do
    size=100 path=/s100
    [[ $sc == 4k ]] && size=4096 path=/s4k
    for p in $PROXIES; do
      check_h2 "$p-h2up" http "$path" "$size"
      LOAD_SECS=1 measure "$p-h2up" "$path" "$WORK/warmup-h2up-$sc-$p.txt"
    done
    proxies_alive
    for ((r = 1; r <= ROUNDS; r++)); do
      for p in $PROXIES; do
        inst=$p-h2up
        local out=$WORK/h2load-h2up-$sc-$inst-$r.txt
        measure "$inst" "$path" "$out"
        conns=$(upstream_conns "$inst")
        record_run "$runs" "h2up-$sc" "$p" "$r"
        log_run "h2up $sc round $r/$ROUNDS $inst" "upstream connections $conns"
        keep_failed_run "$inst" "$out" "$RESULTS_DIR/h2up-$STAMP-h2load-$sc-$inst-$r.txt"
        proxies_alive
      done
    done
  done
  write_table_results "$results" "$runs" \
    "torii benchmark: HTTP/2 to the backend, h2load -c$CONNS -m$H2_STREAMS -D ${DURATION}s (h2c), $ROUNDS interleaved round(s)" \
    "backend: nginx h2c (one worker, CPU $LOAD_CPU) returning 100 B / 4 KiB" \
    "torii protocol = \"h2c\" (multiplexed); HAProxy proto h2 (multiplexed); nginx grpc_pass (a stream per connection)" \
    "upstream connections per run: in the log ('upstream connections N')" \
    "p50 / p99 columns: h2load's mean / maximum time per request (it reports no percentiles)"
}

# syscalls mode: what each proxy asks of the kernel per request. HTTP/1.1 keep-alive, 100 B
# responses, h2load --h1 -cCONNS with an exact request count; for SYSCALL_N1 [20000] and
# SYSCALL_N2 [60000] requests, strace -c -f on every process and thread of the proxy counts its
# system calls, and perf stat counts the io_uring operations it submitted
# (io_uring:io_uring_submit_req; 0 for nginx and HAProxy). The per-request figures are the
# differences divided by N2 - N1 (connection set-up and the tracer's own attach and detach
# cancel out). strace slows every system call down, which changes how many requests each one
# carries; the counts are for comparing, not timings.
SYSCALL_N1=${SYSCALL_N1:-20000}
SYSCALL_N2=${SYSCALL_N2:-60000}
# counting_prelude: what the modes that count per request (syscalls, instructions) need
# before they start: h2load (exact request counts), torii and its origin built, the
# descriptor limit raised, the results directory.
counting_prelude() {
  command -v h2load >/dev/null || bash "$ROOT/scripts/install-deps.sh"
  command -v h2load >/dev/null || die "h2load (nghttp2-client) is not installed"
  build torii torii-origin
  raise_fd_limit
  mkdir -p "$RESULTS_DIR"
}

run_syscalls() {
  ensure_peers
  if ! command -v strace >/dev/null || ! command -v perf >/dev/null; then
    bash "$ROOT/scripts/install-deps.sh" --bench
  fi
  command -v strace >/dev/null || die "strace is not installed"
  command -v perf >/dev/null || die "perf (linux-perf) is not installed"
  counting_prelude
  local results=$RESULTS_DIR/syscalls-$STAMP.txt p n pid st_pid perf_pid url tpids
  local -a pids
  start_origin
  for p in $PROXIES; do start_proxy "$p"; done
  for p in $PROXIES; do
    url="http://127.0.0.1:${PORT[$p]}/?size=100"
    timeout -k 5 60 taskset -c "$LOAD_CPU" h2load --h1 -c "$CONNS" -n 5000 "$url" \
      >"$WORK/syscalls-warm-$p.txt" 2>&1 || die "h2load warm-up against $p failed"
    for n in "$SYSCALL_N1" "$SYSCALL_N2"; do
      pids=()
      for pid in ${CPU_PIDS[$p]}; do pids+=(-p "$pid"); done
      start_bg "$WORK/strace-$p-$n.log" strace -f -c -qq -o "$WORK/strace-$p-$n.txt" "${pids[@]}"
      st_pid=$BG_PID
      tpids=$(echo "${CPU_PIDS[$p]}" | tr ' ' ',')
      start_bg "$WORK/perf-$p-$n.txt" perf stat -x, -e io_uring:io_uring_submit_req -p "$tpids"
      perf_pid=$BG_PID
      sleep 1
      timeout -k 5 300 taskset -c "$LOAD_CPU" h2load --h1 -c "$CONNS" -n "$n" "$url" \
        >"$WORK/syscalls-$p-$n.txt" 2>&1 ||
        die "h2load against $p failed: $(tail -n 5 "$WORK/syscalls-$p-$n.txt")"
      grep -q "$n succeeded" "$WORK/syscalls-$p-$n.txt" ||
        die "$p: not every request succeeded: $(grep requests: "$WORK/syscalls-$p-$n.txt")"
      sleep 0.5
      kill -INT "$st_pid" "$perf_pid" 2>/dev/null || true
      wait "$st_pid" "$perf_pid" 2>/dev/null || true
      forget_pid "$st_pid"
      forget_pid "$perf_pid"
      log "$p: $n requests traced"
      proxies_alive
    done
  done
  {
    echo "torii benchmark: system calls and io_uring operations per proxied request (HTTP/1.1 keep-alive, 100 B, h2load --h1 -c$CONNS)"
    env_header
    echo "per request = (count at $SYSCALL_N2 requests - count at $SYSCALL_N1) / $((SYSCALL_N2 - SYSCALL_N1)); strace -c -f on every process and thread of the proxy; perf stat -e io_uring:io_uring_submit_req"
    echo
    # shellcheck disable=SC2086
    python3 "$BENCH_DIR/report.py" syscalls "$WORK" "$SYSCALL_N1" "$SYSCALL_N2" $PROXIES
  } >"$results"
  echo
  cat "$results"
  echo
  echo "results: $results"
}

# instructions mode: the user-space instructions each proxy executes per request (callgrind,
# under valgrind: only the proxy's own code and its libraries, not the kernel's share), for
# HTTP/1.1 keep-alive requests proxied to the origin (100 B), for 4 KiB cache hits, and for
# HTTP/2 clients proxied to an h2c backend (4 KiB, as the h2up mode). The
# counters of the processes that serve requests (torii's, HAProxy's, nginx's worker) are
# zeroed, INSTR_N1 [20000] requests sent (h2load --h1 -cCONNS), the counters dumped; the same
# for INSTR_N2 [40000]; per request = (dump 2 - dump 1) / (INSTR_N2 - INSTR_N1), so what a run
# costs whatever its length (connections opened, the first misses) cancels out.
INSTR_N1=${INSTR_N1:-20000}
INSTR_N2=${INSTR_N2:-40000}
# INSTR_SCENARIOS ["proxy hit4k h2up"]: which of the three to count.
INSTR_SCENARIOS=${INSTR_SCENARIOS:-proxy hit4k h2up}

# callgrind_at NAME ACTION: callgrind_control ACTION (-z zero, -d dump) on the processes of
# NAME that serve requests. A process asleep in the kernel takes the command when it next
# wakes: one request wakes it (its cost is in both dumps alike, so the difference drops it).
callgrind_at() {
  local name=$1 action=$2 pid path=$3
  local -a serving
  if [[ ${name%%-*} == nginx ]]; then
    read -ra serving <<<"${NGINX_WORKERS[$name]}"
  else
    serving=("${MAIN_PID[$name]}")
  fi
  for pid in "${serving[@]}"; do
    timeout -k 2 30 callgrind_control "$action" "$pid" >"$WORK/callgrind-control.log" 2>&1 &
    local ctl=$!
    sleep 0.3
    curl -s -m 5 -o /dev/null "http://127.0.0.1:${PORT[$name]}$path" || true
    if ! wait "$ctl" || grep -q '^Error' "$WORK/callgrind-control.log"; then
      die "callgrind_control $action $pid ($name) failed: $(tail -n 3 "$WORK/callgrind-control.log")"
    fi
  done
}

run_instructions() {
  ensure_peers
  command -v callgrind_control >/dev/null || bash "$ROOT/scripts/install-deps.sh" --bench
  command -v callgrind_control >/dev/null || die "valgrind is not installed"
  counting_prelude
  local results=$RESULTS_DIR/instructions-$STAMP.txt p n scenario path name i
  start_origin
  for scenario in $INSTR_SCENARIOS; do
    [[ $scenario == h2up ]] && continue  # below: its own backend
    path="/?size=100"
    local cache=""
    if [[ $scenario == hit4k ]]; then
      path="/?size=4096&cc=max-age%3D3600"
      cache=cache
    fi
    for p in $PROXIES; do
      name=$p-$scenario
      # nginx without its master process: callgrind_control reaches no forked worker.
      PROXY_WRAP=(valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind-$name.%p")
      NGINX_MASTER=off
      start_proxy "$name" "" "" "$cache"
      PROXY_WRAP=()
      NGINX_MASTER=on
      timeout -k 5 300 taskset -c "$LOAD_CPU" h2load --h1 -c "$CONNS" -n 2000 \
        "http://127.0.0.1:${PORT[$name]}$path" >"$WORK/instr-warm-$name.txt" 2>&1 ||
        die "h2load warm-up against $name failed: $(tail -n 5 "$WORK/instr-warm-$name.txt")"
      for n in "$INSTR_N1" "$INSTR_N2"; do
        callgrind_at "$name" -z "$path"
        timeout -k 5 600 taskset -c "$LOAD_CPU" h2load --h1 -c "$CONNS" -n "$n" \
          "http://127.0.0.1:${PORT[$name]}$path" >"$WORK/instr-$name-$n.txt" 2>&1 ||
          die "h2load against $name failed: $(tail -n 5 "$WORK/instr-$name-$n.txt")"
        grep -q "$n succeeded" "$WORK/instr-$name-$n.txt" ||
          die "$name: not every request succeeded: $(grep requests: "$WORK/instr-$name-$n.txt")"
        callgrind_at "$name" -d "$path"
        log "$name: $n requests counted"
      done
      stop_proxy "$name"
    done
  done
  # HTTP/2 on both sides: 4 KiB responses from an h2c backend, as the h2up mode runs them.
  if [[ " $INSTR_SCENARIOS " == *" h2up "* ]]; then
    BACKENDS=()  # the h2c backend only
    POOL_KEEPALIVE=$((CONNS * H2_STREAMS * 2))  # as the h2up mode
    start_h2_backend
    path=/s4k
    for p in $PROXIES; do
      name=$p-h2up
      PROXY_WRAP=(valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind-$name.%p")
      NGINX_MASTER=off
      "start_$p" "$name" "" "" h2up
      RUNNING+=" $name"
      PROXY_WRAP=()
      NGINX_MASTER=on
      # Under valgrind a proxy takes seconds to listen (nginx reads OpenSSL's configuration).
      for ((i = 0; i < 300; i++)); do
        curl -s --http2-prior-knowledge -o /dev/null "http://127.0.0.1:${PORT[$name]}$path" && break
        sleep 0.2
      done
      check_h2 "$name" http "$path" 4096
      timeout -k 5 300 taskset -c "$LOAD_CPU" h2load -c "$CONNS" -m "$H2_STREAMS" -n 2000 \
        "http://127.0.0.1:${PORT[$name]}$path" >"$WORK/instr-warm-$name.txt" 2>&1 ||
        die "h2load warm-up against $name failed: $(tail -n 5 "$WORK/instr-warm-$name.txt")"
      # A warm-up may see errors (HAProxy under valgrind resets some of its first streams);
      # the counted runs below may not.
      grep -q "2000 succeeded" "$WORK/instr-warm-$name.txt" ||
        log "$name warm-up: $(grep requests: "$WORK/instr-warm-$name.txt")"
      for n in "$INSTR_N1" "$INSTR_N2"; do
        callgrind_at "$name" -z "$path"
        timeout -k 5 600 taskset -c "$LOAD_CPU" h2load -c "$CONNS" -m "$H2_STREAMS" -n "$n" \
          "http://127.0.0.1:${PORT[$name]}$path" >"$WORK/instr-$name-$n.txt" 2>&1 ||
          die "h2load against $name failed: $(tail -n 5 "$WORK/instr-$name-$n.txt")"
        # nginx's grpc_pass fails about one request in 20,000 here; a failure costs less than a
        # success, so up to one in 1,000 moves the figure by less than 0.1 %, and is logged.
        local ok
        ok=$(sed -n 's/^requests:.* \([0-9]*\) succeeded.*/\1/p' "$WORK/instr-$name-$n.txt")
        ((ok >= n - n / 1000)) ||
          die "$name: too many failed requests: $(grep requests: "$WORK/instr-$name-$n.txt")"
        ((ok == n)) || log "$name: $((n - ok)) of $n requests failed"
        callgrind_at "$name" -d "$path"
        log "$name: $n requests counted"
      done
      stop_proxy "$name"
    done
  fi
  {
    echo "torii benchmark: user-space instructions per request (HTTP/1.1 keep-alive, h2load --h1 -c$CONNS, valgrind --tool=callgrind)"
    env_header
    echo "per request = (instructions over $INSTR_N2 requests - over $INSTR_N1) / $((INSTR_N2 - INSTR_N1)), counters zeroed before each run; kernel time is not counted (see the syscalls mode)"
    echo "proxy: 100 B responses proxied to the origin (keep-alive to it); hit4k: 4 KiB responses served from the proxy's cache"
    [[ " $INSTR_SCENARIOS " == *" h2up "* ]] && echo "h2up: HTTP/2 clients (h2load -c$CONNS -m$H2_STREAMS), 4 KiB responses from an h2c backend (nginx), configured as in the h2up mode"
    echo
    # shellcheck disable=SC2086
    INSTR_SCENARIOS="$INSTR_SCENARIOS" \
      python3 "$BENCH_DIR/report.py" instructions "$WORK" "$INSTR_N1" "$INSTR_N2" $PROXIES
  } >"$results"
  echo
  cat "$results"
  echo
  echo "results: $results"
}

# start_h2_backend: an nginx serving h2c (prior knowledge) on LOAD_CPU; BACKENDS is it.
start_h2_backend() {
  local dir=$WORK/h2backend port
  port=$(free_port)
  mkdir -p "$dir/logs" "$dir/tmp" "$dir/www"
  head -c 100 /dev/zero | tr '\0' 'x' >"$dir/www/s100"
  head -c 4096 /dev/zero | tr '\0' 'x' >"$dir/www/s4k"
  {
    nginx_conf_head "$dir"
    cat <<EOF
    keepalive_timeout 300s;
    keepalive_requests 1000000000;
    http2_max_concurrent_streams 1000;
    default_type text/plain;
    server {
        listen 127.0.0.1:$port http2;
        root $dir/www;
        open_file_cache max=16;
    }
}
EOF
  } >"$dir/nginx.conf"
  nginx -t -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" >"$dir/check.log" 2>&1 ||
    die "the h2 backend rejects its config: $(cat "$dir/check.log")"
  start_bg "$WORK/h2backend.log" taskset -c "$LOAD_CPU" nginx -p "$dir/" -e "$dir/logs/error.log" \
    -c "$dir/nginx.conf"
  local master=$BG_PID workers="" i
  for ((i = 0; i < 100; i++)); do
    workers=$({ ps -o pid= --ppid "$master" || true; } | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
    [[ -n $workers ]] && break
    sleep 0.1
  done
  [[ -n $workers ]] || die "the h2 backend started no worker within 10 s"
  local -a wp
  read -ra wp <<<"$workers"
  EXTRA_PIDS+=("${wp[@]}")
  H2_BACKEND_PORT=$port
  BACKENDS+=("127.0.0.1:$port")
  log "h2 backend: nginx h2c (PID $master, CPU $LOAD_CPU) on 127.0.0.1:$port"
}

# upstream_conns NAME: established TCP connections from proxy NAME's processes to the h2
# backend.
upstream_conns() {
  local pid n=0 line
  while read -r line; do
    for pid in ${CPU_PIDS[$1]}; do
      if [[ $line == *"pid=$pid,"* ]]; then
        n=$((n + 1))
        break
      fi
    done
  done < <(ss -Htnp state established "( dport = :$H2_BACKEND_PORT )" 2>/dev/null)
  echo "$n"
}

H2_STREAMS=${H2_STREAMS:-10}
LOADER=wrk  # measure()'s load generator (h2 mode: h2load)
# Idle upstream connections kept per backend (torii keepalive, nginx keepalive; HAProxy keeps
# them without a count). h2 mode has CONNS x H2_STREAMS requests in flight: 64 would make
# torii and nginx open and close backend connections all the time.
POOL_KEEPALIVE=64

# check_h2 NAME SCHEME PATH SIZE: curl over HTTP/2 gets 200 and SIZE bytes, or die.
check_h2() {
  local name=$1 scheme=$2 path=$3 size=$4 out
  local -a opt=(--http2-prior-knowledge)
  [[ $scheme == https ]] && opt=(--http2 -k)
  local i
  for ((i = 0; i < 100; i++)); do  # a proxy just started may not listen yet: up to 10 s
    out=$(curl -s "${opt[@]}" -o /dev/null -w '%{http_version} %{http_code} %{size_download}' \
      "$scheme://127.0.0.1:${PORT[$name]}$path") && break
    sleep 0.1
  done
  [[ -n $out ]] || die "$name: curl over HTTP/2 failed"
  [[ $out == "2 200 $size" ]] || die "$name: expected HTTP/2 200 with $size bytes, got '$out'"
  log "check: $name answers HTTP/2 200 with $size bytes"
}

run_parser() {
  build h1_parser_bench
  mkdir -p "$RESULTS_DIR"
  local results=$RESULTS_DIR/parser-$STAMP.txt
  # shellcheck disable=SC2086  # BENCH_ARGS: extra Google Benchmark flags, word-split on purpose
  timeout -k 5 600 taskset -c "$PROXY_CPU" "$PARSER_BENCH_BIN" --benchmark_min_time=1 \
    ${BENCH_ARGS:-} >"$results" 2>&1 ||
    die "h1_parser_bench failed: $(tail -n 20 "$results")"
  cat "$results"
  echo
  echo "results: $results"
}

WORK=$(mktemp -d /tmp/torii-bench.XXXXXX)
RUNNING=""  # proxies started and not yet stopped
case $MODE in
  macro) run_macro ;;
  idle) run_idle ;;
  parser) run_parser ;;
  balance) run_balance ;;
  ratelimit) run_ratelimit ;;
  fleet) run_fleet ;;
  compress) run_compress ;;
  cache) run_cache ;;
  disk) run_disk ;;
  tls) run_tls ;;
  timing) run_timing ;;
  edge) run_edge ;;
  h2) run_h2 ;;
  h2up) run_h2up ;;
  syscalls) run_syscalls ;;
  instructions) run_instructions ;;
  soak) run_soak ;;
  fastopen) run_fastopen ;;
  early) run_early ;;
  mtls) run_mtls ;;
esac
