#!/usr/bin/env bash
# check.sh: install and build everything (test/setup.sh), then run every test: the host
# tests and the in-VM suites on each kernel of the matrix. Ends with one line
# "N passed, N failed". Extra arguments go to tap (for example a single test file).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

t0=$(date +%s)
test/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
t1=$(date +%s)

mkdir -p .cache/logs
log=.cache/logs/check-$(date +%Y%m%d-%H%M%S).log
npx --no-install tap --reporter=tap "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
t2=$(date +%s)

echo "check: setup $((t1 - t0))s, tests $((t2 - t1))s, total $((t2 - t0))s"
grep -E '^ *# kernel .* took' "$log" | sed 's/^ *# /check: /'
# the failed and skipped tests by name, then the one line "N passed, N failed"
node test/tap-summary.mjs "$log" "$rc"
exit "$rc"
