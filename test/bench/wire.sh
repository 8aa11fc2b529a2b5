#!/usr/bin/env bash
# wire.sh [SERVER_KERNEL [CLIENT_KERNEL]]: RoCE v2 between two guests joined by one link
# (test/vm/run.sh --link), as ratios against rxe0 <-> rxe0 measured in the same run: 1 MiB
# WRITE bandwidth, 64 B WRITE message rate and 64 B WRITE latency (perftest, through
# test/guest/wire.sh's WIRE_BENCH list), for rxe0 serving rxe0, pfnic0 serving rxe0, rxe0
# serving pfnic0 and pfnic0 serving pfnic0, on a clean link and on one that loses 1 % of
# its packets (netem on both guests). The server runs SERVER_KERNEL (default 7.x), the
# client CLIENT_KERNEL (default 6.1). Then rxe0 drives WRITEs and READs into pfnic0's ODP
# MR while the blocks under it go offline and online again, in turn, for 20 s, then offline
# for good: the rate meanwhile against the steady rate (pfnic_wire_traffic's "bench:" line).
#
# A benchmark, not a test: nothing here passes or fails on speed. The exit status is non-zero
# only if a pair could not be measured. Environment: PFNIC_BENCH_N, perftest's iterations
# (100 for the 1 MiB WRITEs; 20 and 5 times that for the others).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
server_kernel=${1:-7.x} client_kernel=${2:-6.1}
status=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

setup() { # DEV ADDR
	if [ "$1" = pfnic0 ]; then
		echo "test/vm/guest link $2 && test/vm/guest pfnic netdev=\$(test/vm/guest nic-name) && modprobe rdma_ucm"
	else
		echo "test/vm/guest link $2 && test/vm/guest rxe rxe0 \$(test/vm/guest nic-name) && modprobe rdma_ucm"
	fi
}

# pair SERVER_DEV CLIENT_DEV ENV CASES [SERVER_OPTIONS...]: both guests at once, wire.sh's
# CASES (a regular expression); the client's console into $work/client.txt, the server's
# into $work/server.txt
pair() {
	local sdev=$1 cdev=$2 env=$3 pick=$4 p1 p2 spid
	shift 4
	p1=$((20000 + RANDOM % 20000))
	p2=$((p1 + 1))
	bash test/vm/run.sh --timeout 1200 --link "$p1:$p2:1" "$@" "$server_kernel" -- bash -c \
		"$(setup "$sdev" 10.0.0.1) && $env exec test/guest/wire.sh server $sdev 10.0.0.1 10.0.0.2 '$pick'" \
		> "$work/server" 2>&1 &
	spid=$!
	bash test/vm/run.sh --timeout 1200 --link "$p2:$p1:2" "$client_kernel" -- bash -c \
		"$(setup "$cdev" 10.0.0.2) && $env exec test/guest/wire.sh client $cdev 10.0.0.2 10.0.0.1 '$pick'" \
		> "$work/client" 2>&1
	local crc=$? src
	wait $spid
	src=$?
	tr -d '\r' < "$work/client" > "$work/client.txt"
	tr -d '\r' < "$work/server" > "$work/server.txt"
	if [ $crc != 0 ] || [ $src != 0 ]; then
		echo "bench: $sdev serving $cdev ($env): the guests exited $src and $crc" >&2
		grep -E '^(not ok|Bail out)' "$work/client.txt" "$work/server.txt" >&2
		status=1
		return 1
	fi
}

# measure SERVER_DEV CLIENT_DEV NETEM: "BW RATE LAT" from the client's perftest lines
measure() {
	local env="WIRE_BENCH=1 WIRE_BENCH_N=${PFNIC_BENCH_N:-100}"
	[ -n "$3" ] && env="$env WIRE_NETEM='$3'"
	pair "$1" "$2" "$env" . || { echo "- - -"; return; }
	# the numbers under each case's "ok" line: write_bw 1 MiB, write_bw 64 B, write_lat 64 B
	awk '/^ok 1 /{c=1} /^ok 2 /{c=2} /^ok 3 /{c=3}
	     /^# +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+/ {
		if (c == 1) bw = $5; if (c == 2) rate = $6; if (c == 3) lat = $7 }
	     END { printf "%s %s %s\n", bw ? bw : "-", rate ? rate : "-", lat ? lat : "-" }' "$work/client.txt"
}

ratio() { # A B: A / B, or "-"
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

echo "== RoCE v2 between two guests: server on $server_kernel, client on $client_kernel"
for link in clean lossy; do
	netem=
	[ $link = lossy ] && netem='loss 1%'
	base=
	for p in rxe0:rxe0 pfnic0:rxe0 rxe0:pfnic0 pfnic0:pfnic0; do
		t0=$(date +%s)
		read -r bw rate lat <<< "$(measure "${p%%:*}" "${p##*:}" "$netem")"
		[ -z "$base" ] && base="$bw $rate $lat"
		read -r bbw brate blat <<< "$base"
		printf '%-6s %-7s serving %-7s  1 MiB WRITE %8s MB/s (%s of rxe)  64 B WRITE %8s Mmsg/s (%s)  64 B latency %8s us (%s)  [%ss]\n' \
			"$link" "${p%%:*}" "${p##*:}" "$bw" "$(ratio "$bw" "$bbw")" "$rate" \
			"$(ratio "$rate" "$brate")" "$lat" "$(ratio "$lat" "$blat")" "$(($(date +%s) - t0))"
	done
done

echo "== ODP traffic from rxe0 while the blocks under pfnic0's MR go offline"
if pair pfnic0 rxe0 "WIRE_TRAFFIC=1 WIRE_CHURN=20" none --numa --dimm 384M; then
	grep -h '^# bench:' "$work/client.txt" | sed 's/^# //'
fi
exit $status
