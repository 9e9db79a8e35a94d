#!/usr/bin/env bash
# Installs torii's build and test dependencies from Debian packages (nothing else is fetched).
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --bench  also nginx, wrk, strace, perf and valgrind for bench/run.sh
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config git
      liburing-dev libssl-dev node-llhttp zlib1g-dev libisal-dev libbrotli-dev libzstd-dev libre2-dev
      libspdlog-dev libtomlplusplus-dev libgtest-dev libgmock-dev libbenchmark-dev
      libcrypt-dev libnghttp2-dev libc-ares-dev libhiredis-dev redis-server python3 python3-websockets python3-h2 python3-grpcio nghttp2-client iproute2 haproxy curl procps gzip brotli zstd chromium openssl
      clang-16 libclang-rt-16-dev)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(nginx wrk strace linux-perf valgrind)
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
