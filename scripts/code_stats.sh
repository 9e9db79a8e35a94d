#!/usr/bin/env bash
# The house's shape, for before/after comparisons of a clean-up: product lines per module,
# the longest functions (Universal Ctags, `apt-get install universal-ctags`), and the
# repeated-code pairs in product code when the `duplicates` tool is at hand.
# Usage: bash scripts/code_stats.sh [how many functions, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
modules="app balancer base cache conf core dns http ratelimit redis tls"
echo "## product lines per module (.cc and .h)"
total=0
for m in $modules; do
  n=$(git ls-files "$m" | grep -E '\.(cc|h)$' | xargs cat | wc -l)
  total=$((total + n))
  printf '%-10s %6d\n' "$m" "$n"
done
printf '%-10s %6d\n' total "$total"
echo
echo "## longest functions (lines)"
# shellcheck disable=SC2046
ctags --fields=+ne --c++-kinds=f --language-force=C++ -o - $(git ls-files $modules | grep -E '\.(cc|h)$') |
  awk -F'\t' '{ line = 0; end = 0
    for (i = 4; i <= NF; i++) {
      if ($i ~ /^line:/) line = substr($i, 6)
      if ($i ~ /^end:/) end = substr($i, 5)
    }
    if (end > 0) printf "%5d  %s:%d %s\n", end - line + 1, $2, line, $1 }' |
  sort -rn | head -n "${1:-15}" || true  # head closing the pipe early is not an error
if command -v duplicates >/dev/null; then
  echo
  echo "## repeated code (six or more lines) in product code"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for m in $modules; do cp -r "$m" "$tmp/"; done
  find "$tmp" -type f ! -name '*.cc' ! -name '*.h' -delete
  duplicates --repo "$tmp" --most 200 --seconds 60 | sed "s#$tmp/##g"
fi
