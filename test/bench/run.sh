#!/usr/bin/env bash
# run.sh [KERNEL...]: run pfnic_bench in a guest of each kernel of the VM rig (default: 6.1
# and 7.x), with soft-RoCE rxe0 and pfnic0 both on dummy netdev d0, and print its output;
# then, in a guest with a DIMM of its own NUMA node, how much ODP traffic slows while a
# memory block holding its MRs goes offline (pfnic_hotplug --bench, PFNIC_BENCH_CYCLES
# cycles, 10 by default); then, in a guest with ummunotify.ko, what /dev/ummunotify costs
# a registration cache and saves it, against a system call per check and a userfaultfd
# monitor (ummunotify_bench; its "# bench:" lines); then what the control plane costs: GET
# /v1/mrs and /metrics with 10,000 MRs and SSE event delivery against a trivial route, and
# pfnic traffic while the API is polled (test/guest/api-bench.ts, PFNIC_BENCH_ROUNDS rounds,
# 5 by default); and what the RDMA ecosystem's software gets from pfnic0 against rxe0: rping
# round trips, UCX put bandwidth and message rate (pinned and ODP), NVMe over Fabrics IOPS and
# bandwidth under fio, perftest's write and send latency over rdma_cm
# (test/guest/ecosystem-bench.sh, PFNIC_BENCH_ROUNDS rounds).
#
# A benchmark, not a test: nothing here passes or fails on speed. The exit status is
# non-zero only if a kernel's run could not measure pfnic or ummunotify (device missing, an
# operation failed) or the guest itself failed (see test/vm/run.sh for its statuses).
#
# Environment: PFNIC_BENCH_ARGS, extra arguments for pfnic_bench (pfnic_bench -h);
# PFNIC_BENCH_MEM, guest memory (3G: room for 1 GiB pinned registrations);
# PFNIC_BENCH_UMN_ARGS, extra arguments for ummunotify_bench (ummunotify_bench -h; --quick
# shrinks every size).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
bin=build/cmake/tests/pfnic_bench

# the userspace build is incremental: this rebuilds the benchmark only when it changed
npm run -s build:addon > /dev/null || { echo "bench: the build failed (npm run build:addon)" >&2; exit 1; }
npm run -s build:ts > /dev/null || { echo "bench: the build failed (npm run build:ts)" >&2; exit 1; }
[ $# -gt 0 ] || set -- 6.1 7.x

status=0
for kernel in "$@"; do
	echo "== pfnic_bench on kernel $kernel"
	t0=$(date +%s)
	# shellcheck disable=SC2086 # PFNIC_BENCH_ARGS is a list of words
	bash test/vm/run.sh --mem "${PFNIC_BENCH_MEM:-3G}" --timeout 600 "$kernel" -- sh -c \
		'test/vm/guest rxe > /dev/null && test/vm/guest pfnic netdev=d0 && exec "$@"' \
		sh "$bin" ${PFNIC_BENCH_ARGS:-}
	rc=$?
	echo "== kernel $kernel: $(($(date +%s) - t0)) s including boot, exit status $rc"
	[ $rc = 0 ] || status=1

	echo "== memory offlining under ODP traffic on kernel $kernel"
	t0=$(date +%s)
	out=$(bash test/vm/run.sh --numa --dimm 384M --timeout 600 "$kernel" -- sh -c \
		'test/vm/guest rxe > /dev/null && test/vm/guest pfnic netdev=d0 && exec "$@"' \
		sh build/cmake/tests/pfnic_hotplug -d pfnic0 -g 1 --bench "${PFNIC_BENCH_CYCLES:-10}")
	rc=$?
	grep '^# bench:' <<< "$out"
	if [ $rc != 0 ]; then
		grep -E '^(not ok|Bail out)' <<< "$out"
		status=1
	fi
	echo "== kernel $kernel: $(($(date +%s) - t0)) s including boot, exit status $rc"

	echo "== ummunotify_bench on kernel $kernel"
	t0=$(date +%s)
	# cgroup v2 mounted, so that memory per watched range is also read from a memory cgroup
	# shellcheck disable=SC2086 # PFNIC_BENCH_UMN_ARGS is a list of words
	out=$(bash test/vm/run.sh --mem "${PFNIC_BENCH_MEM:-3G}" --timeout 600 "$kernel" -- sh -c \
		'test/vm/guest ummunotify || exit 1
		mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
		exec "$@"' \
		sh build/cmake/tests/ummunotify_bench ${PFNIC_BENCH_UMN_ARGS:-})
	rc=$?
	grep '^# bench:' <<< "$out"
	if [ $rc != 0 ]; then
		grep -v '^# bench:' <<< "$out"
		status=1
	fi
	echo "== kernel $kernel: $(($(date +%s) - t0)) s including boot, exit status $rc"

	echo "== the RDMA ecosystem's software on pfnic0 against rxe0 on kernel $kernel"
	t0=$(date +%s)
	out=$(bash test/vm/run.sh --timeout 900 "$kernel" -- \
		test/guest/ecosystem-bench.sh "${PFNIC_BENCH_ROUNDS:-5}" 2>&1)
	rc=$?
	grep '^# bench:' <<< "$out"
	if [ $rc != 0 ]; then
		grep '^bench:' <<< "$out"
		status=1
	fi
	echo "== kernel $kernel: $(($(date +%s) - t0)) s including boot, exit status $rc"

	echo "== the control plane's costs on kernel $kernel"
	t0=$(date +%s)
	out=$(bash test/vm/run.sh --timeout 900 "$kernel" -- sh -c \
		'test/vm/guest rxe > /dev/null && test/vm/guest pfnic netdev=d0 > /dev/null && exec "$@"' \
		sh env PFNIC_BENCH_ROUNDS="${PFNIC_BENCH_ROUNDS:-5}" node dist/test/guest/api-bench.js)
	rc=$?
	grep '# bench:' <<< "$out" | sed 's/^ *//'
	if [ $rc != 0 ]; then
		grep -E '(not ok|Bail out)' <<< "$out"
		status=1
	fi
	echo "== kernel $kernel: $(($(date +%s) - t0)) s including boot, exit status $rc"
done
exit $status
