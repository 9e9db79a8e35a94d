#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, build with AddressSanitizer +
# UndefinedBehaviorSanitizer, run every unit and integration test through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build-asan}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTORII_SANITIZE=ON >/dev/null
cmake --build "$BUILD_DIR" -j2
# Every fuzz target under libFuzzer for a few seconds (a crash fails the run; its input is left
# in build-fuzz/artifacts/). Longer runs: scripts/fuzz.sh TARGET SECONDS.
bash scripts/fuzz.sh all "${FUZZ_SECONDS:-5}"
# LeakSanitizer needs ptrace-free /proc access; it works as root here. Fail on any report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900
