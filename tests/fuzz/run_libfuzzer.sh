#!/usr/bin/env bash
# Builds tests/fuzz/h1_request_fuzz.cc as a libFuzzer target (clang, ASan + UBSan) and runs it
# for ${SECONDS_TO_RUN:-60} s on a copy of the seed corpus. Needs clang and libclang-rt-14-dev
# (apt-get install -y clang libclang-rt-14-dev). Prints libFuzzer's final stats line.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT_DIR:-build-fuzz}
mkdir -p "$out/corpus"
cp -n tests/fuzz/corpus/* "$out/corpus/" 2>/dev/null || true
flags=(-std=c++2b -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -DTORII_LIBFUZZER -DLLHTTP_STRICT_MODE=1 -I. -I/usr/share/include/llhttp)
for c in llhttp api http; do
  clang -O1 -g -fsanitize=fuzzer-no-link,address,undefined -DLLHTTP_STRICT_MODE=1 \
    -I/usr/share/include/llhttp -c "/usr/share/llhttp/$c.c" -o "$out/llhttp_$c.o"
done
clang++ "${flags[@]}" tests/fuzz/h1_request_fuzz.cc http/h1_parser.cc http/serialize.cc \
  "$out"/llhttp_*.o -o "$out/h1_request_fuzz"
"$out/h1_request_fuzz" -max_total_time="${SECONDS_TO_RUN:-60}" -max_len=4096 \
  -print_final_stats=1 "$out/corpus" 2>&1 | tail -25
