#!/usr/bin/env bash
# Installs what torii needs, builds it (Release), starts three demo origins on 127.0.0.1:9001-9003
# and torii in front of them with conf/demo.toml on http://127.0.0.1:8080/. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build-release}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 --target torii torii-origin

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

for i in 1 2 3; do
  "$BUILD_DIR/tests/origin/torii-origin" --listen "127.0.0.1:900$i" --name "origin-$i" &
  pids+=($!)
done
"$BUILD_DIR/app/torii" -t -c conf/demo.toml
"$BUILD_DIR/app/torii" -c conf/demo.toml &
pids+=($!)

for _ in $(seq 1 50); do
  curl -s -o /dev/null http://127.0.0.1:8080/ && break
  sleep 0.1
done
cat <<MSG

torii is listening on http://127.0.0.1:8080/ in front of origin-1..3 (127.0.0.1:9001-9003).
Try:
  curl -i http://127.0.0.1:8080/                 # X-Backend rotates origin-1, -2, -3
  curl -s 'http://127.0.0.1:8080/?size=1000000' | wc -c
  curl -s -X POST --data-binary @README.md http://127.0.0.1:8080/echo
  curl -s -H 'Accept-Encoding: gzip' 'http://127.0.0.1:8080/?size=100000' | gzip -d | wc -c
  curl -s http://127.0.0.1:9901/metrics          # Prometheus metrics
  curl -s http://127.0.0.1:9901/status.json      # backends, health, counters
  open http://127.0.0.1:9901/ in a browser         # live status page
Access log lines appear below. Ctrl-C stops torii and the origins.

MSG
wait "${pids[-1]}"
