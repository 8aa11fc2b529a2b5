#!/usr/bin/env bash
# against.sh [-p PAIRS] [-o bench|hotplug] REV [KERNEL...]: what the driver of this checkout
# costs against the driver of git revision REV, on the benchmarks the driver decides (default
# kernels: 6.1 and 7.x).
#
# REV's driver/ is built for each kernel (build/bench-base/REV/<kernel>/pfnic.ko). Then, in one
# guest per kernel, pfnic_bench runs PAIRS times (3) with each pfnic.ko, the two taking turns
# (REV first in odd pairs, this checkout's first in even ones, so a drift of the machine falls
# on both), the module unloaded and loaded again between runs; then pfnic_hotplug --bench
# takes turns the same way, each run in a fresh guest with a DIMM of its own NUMA node. Every
# figure they print is already a ratio measured in its own run (pfnic against rxe0 or the CPU;
# traffic while a block goes offline against steady traffic); this prints, for each, the
# median over its runs with each driver and their quotient, this checkout's over REV's. The
# guests' whole output is kept in build/bench-base/REV/. -o runs only one of the two.
# The provider and the benchmark programs are this checkout's for both: REV must have the same
# user ABI (true of any revision whose provider/ is the same).
#
# A benchmark, not a test: nothing passes or fails on speed. Environment: PFNIC_BENCH_ARGS,
# extra arguments for pfnic_bench (pfnic_bench -h); PFNIC_BENCH_CYCLES, hotplug cycles a run (5).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
pairs=3 only=
usage="usage: test/bench/against.sh [-p PAIRS] [-o bench|hotplug] REV [KERNEL...]"
while getopts p:o: o; do
	case $o in
	p) pairs=$OPTARG ;;
	o) only=$OPTARG ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }
rev=$1
shift
[ $# -gt 0 ] || set -- 6.1 7.x
sha=$(git rev-parse --short=12 "$rev^{commit}") || { echo "against: no revision $rev" >&2; exit 2; }
if ! git diff --quiet "$sha" -- provider driver/uapi/pfnic-abi.h 2> /dev/null; then
	echo "# against: provider/ or the user ABI differs from $rev: figures compare more than the driver"
fi

base=build/bench-base/$sha
rm -rf "$base/src" && mkdir -p "$base/src"
git archive "$sha" driver | tar -x -C "$base/src" || exit 1
bash test/vm/build-driver.sh --source "$base/src/driver" --out "$base" "$@" || exit 1
bash test/vm/build-driver.sh "$@" || exit 1

# The guest's part: PAIRS runs of "$@" with each module, as lines "# base: ..." and "# this: ...".
# shellcheck disable=SC2016 # expanded in the guest
alternate='
pairs=$1 base_ko=$2 this_ko=$3 params=$4
shift 4
for i in $(seq 1 "$pairs"); do
	order="base this"
	[ $((i % 2)) = 0 ] && order="this base"
	for which in $order; do
		rmmod pfnic || exit 1
		if [ "$which" = base ]; then ko=$base_ko; else ko=$this_ko; fi
		# shellcheck disable=SC2086 # params is a list of words
		insmod "$ko" $params || exit 1
		sleep 1
		"$@" 2>&1 | sed "s/^/# $which: /"
	done
done'

# medians of "ratio ID = V" (pfnic_bench) and "median R" (pfnic_hotplug) lines per driver
compare() {
	awk -v rev="$rev" '
	function median(list,   n, a, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	# "ratio ID VARIANT = VALUE (...)": the words before "=" name the figure
	/^# (base|this): ratio / {
		id = $4
		for (k = 5; k < NF && $k != "="; k++) id = id " " $k
		v[$2 id] = v[$2 id] " " $(k + 1)
		if (!(id in seen)) { seen[id] = 1; ids[++n] = id }
	}
	/^# (base|this): .*bench: traffic while a block/ {
		id = "hotplug.offlining/steady"
		if (match($0, /median [0-9.]+/)) {
			v[$2 id] = v[$2 id] " " substr($0, RSTART + 7, RLENGTH - 7)
			if (!(id in seen)) { seen[id] = 1; ids[++n] = id }
		}
	}
	/^# (base|this): (FAILED|not ok|Bail out)/ { print "against: " $0; bad = 1 }
	END {
		for (i = 1; i <= n; i++) {
			id = ids[i]
			if (v["base:" id] == "" || v["this:" id] == "") { printf "%s: not measured with both drivers\n", id; continue }
			b = median(v["base:" id]); t = median(v["this:" id])
			printf "%s: this / %s = %.3f (%s: median %.4g of%s; this: median %.4g of%s)\n", id, rev,
				b ? t / b : 0, rev, b, v["base:" id], t, v["this:" id]
		}
		exit bad
	}'
}

# in_guest KERNEL NAME "RUN.SH OPTIONS" PROGRAM...: PROGRAM PAIRS times with each driver in one
# guest of KERNEL, its figures compared and its output kept in $base/KERNEL-NAME.log
in_guest() {
	local kernel=$1 name=$2 options=$3 t0 out rc log
	shift 3
	log=$base/$kernel-$name.log
	echo "== $name on kernel $kernel, $pairs runs with each driver in one guest"
	t0=$(date +%s)
	# shellcheck disable=SC2086 # options is a list of words
	out=$(bash test/vm/run.sh $options --timeout 1800 "$kernel" -- sh -c \
		"test/vm/guest rxe > /dev/null && test/vm/guest pfnic netdev=d0 && $alternate" sh \
		"$pairs" "$base/$kernel/pfnic.ko" "build/driver/$kernel/pfnic.ko" netdev=d0 "$@")
	rc=$?
	printf '%s\n' "$out" > "$log"
	compare <<< "$out" || rc=1
	echo "== kernel $kernel: $(($(date +%s) - t0)) s including boot, exit status $rc ($log)"
	return $rc
}

# in_guests KERNEL NAME "RUN.SH OPTIONS" PROGRAM...: as in_guest, but each run in a guest of its
# own, for a program that leaves the guest changed (pfnic_hotplug leaves a block onlined as
# Normal memory, and a second run finds too few Movable ones)
in_guests() {
	local kernel=$1 name=$2 options=$3 t0 out= rc=0 log i which ko
	shift 3
	log=$base/$kernel-$name.log
	echo "== $name on kernel $kernel, $pairs runs with each driver, a guest each"
	t0=$(date +%s)
	for i in $(seq 1 "$pairs"); do
		for which in $( ((i % 2)) && echo base this || echo this base); do
			ko=build/driver/$kernel/pfnic.ko
			[ "$which" = base ] && ko=$base/$kernel/pfnic.ko
			# shellcheck disable=SC2086 # options is a list of words
			out+=$(bash test/vm/run.sh $options --timeout 1800 "$kernel" -- sh -c \
				'test/vm/guest rxe > /dev/null && modprobe ib_core && modprobe ib_uverbs &&
				ko=$1 && shift && insmod "$ko" netdev=d0 && exec "$@"' sh "$ko" "$@" 2>&1 |
				sed "s/^/# $which: /")$'\n' || rc=1
		done
	done
	printf '%s' "$out" > "$log"
	compare <<< "$out" || rc=1
	echo "== kernel $kernel: $(($(date +%s) - t0)) s including boots, exit status $rc ($log)"
	return $rc
}

status=0
for kernel in "$@"; do
	if [ "$only" != hotplug ]; then
		# shellcheck disable=SC2086 # PFNIC_BENCH_ARGS is a list of words
		in_guest "$kernel" pfnic_bench "--mem 3G" build/cmake/tests/pfnic_bench ${PFNIC_BENCH_ARGS:-} ||
			status=1
	fi
	if [ "$only" != bench ]; then
		in_guests "$kernel" pfnic_hotplug "--numa --dimm 384M" build/cmake/tests/pfnic_hotplug \
			-d pfnic0 -g 1 --bench "${PFNIC_BENCH_CYCLES:-5}" || status=1
	fi
done
exit $status
