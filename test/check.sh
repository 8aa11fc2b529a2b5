#!/usr/bin/env bash
# check.sh: install and build everything (test/setup.sh), then run every test: the host
# tests and the in-VM suites on each kernel of the matrix. Ends with one line
# "N passed, N failed". Extra arguments go to tap (for example a single test file).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

t0=$(date +%s)
mkdir -p .cache/logs
stamp=$(date +%Y%m%d-%H%M%S)
setup_log=.cache/logs/setup-$stamp.log log=.cache/logs/check-$stamp.log
test/setup.sh 2>&1 | tee "$setup_log"
[ "${PIPESTATUS[0]}" = 0 ] || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
t1=$(date +%s)

npx --no-install tap --reporter=tap "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
t2=$(date +%s)

grep -E '^ *# kernel .* took' "$log" | sed 's/^ *# /check: /'
# last, where the tail of a long log still shows them: the set-up's phases and the totals
grep '^setup: ' "$setup_log" | sed 's/^/check: /'
echo "check: setup $((t1 - t0))s, tests $((t2 - t1))s, total $((t2 - t0))s"
# the failed and skipped tests by name, then the one line "N passed, N failed"
node test/tap-summary.mjs "$log" "$rc"
exit "$rc"
