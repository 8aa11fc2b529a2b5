#!/bin/bash
# ecosystem-bench.sh [ROUNDS]: what software nobody here wrote gets from pfnic0 against rxe0
# in this guest, as "# bench:" lines of ratios. Each device gets its own netdev and address,
# as in ecosystem.sh (pfnic0 on d1, 198.51.100.1; rxe0 on d2, 203.0.113.1); the two devices
# take turns, ROUNDS times (3 by default), and each figure is the median of its rounds:
# - rping round trips per second (64-byte pings, 300 of them a round);
# - UCX over rc_verbs: put bandwidth (64 KiB) and tag-matched message rate (8 B), pfnic0
#   pinned and with UCX's (implicit) ODP registration, against rxe0 pinned;
# - NVMe over Fabrics: fio 4 KiB random reads (IOPS) and 128 KiB sequential reads (MiB/s) on
#   a RAM disk exported by nvmet-rdma through each device, 5 s a run, both namespaces
#   connected throughout;
# - perftest's latency over rdma_cm: ib_write_lat and ib_send_lat, 64 B, 2000 iterations,
#   the typical (median) round trip's half in microseconds; pfnic0 once more with its polling
#   engine on (poll_usecs, 1000 us), so that the posts make no system call.
# A benchmark, not a test: the exit status says only whether every figure was measured.
set -u
rounds=${1:-3}
. "$(dirname "$0")/ecosystem-lib.sh"
declare -A nsdev=()
devices=(pfnic0 rxe0)
status=0

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

eco_devices "${devices[@]}" || exit 1

# rping_rate DEVICE: round trips per second of one run.
rping_rate() {
	local a=${addr[$1]} t0 t1
	timeout 120 rping -s -a "$a" -p 7174 -C 300 -S 64 > /dev/null 2>&1 &
	local srv=$!
	eco_wait_listen 7174
	t0=$(date +%s.%N)
	timeout 120 rping -c -a "$a" -p 7174 -C 300 -S 64 > /dev/null 2>&1 || { wait $srv; return 1; }
	t1=$(date +%s.%N)
	wait $srv
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", 300 / (b - a) }'
}

# nvme_setup DEVICE: a RAM disk exported through DEVICE's address and connected; its block
# device into nsdev[DEVICE].
nvme_setup() {
	local d=$1 nqn=nqn.2026-12.dev.pfnic:bench-$1 i=${#nsdev[@]} dev
	eco_nvmet_export "$nqn" "/dev/ram$i" "${addr[$d]}" $((i + 1)) || return 1
	dev=$(eco_nvme_connect "$nqn" "${addr[$d]}") || return 1
	nsdev[$d]=$dev
}

# ucx_figure DEVICE METHOD TEST SIZE COLUMN: one ucx_perftest run's overall figure (COLUMN 7:
# bandwidth in MB/s, 9: messages per second) over rc_verbs with registration METHOD. UCX's
# odp method crashes in its own teardown once the run is done (see ecosystem.sh): its Final
# line counts.
ucx_figure() {
	local env out
	# shellcheck disable=SC2207 # eco_ucx_env prints words without blanks
	env=($(eco_ucx_env "$1") UCX_IB_REG_METHODS="$2")
	env "${env[@]}" timeout 120 ucx_perftest -p 13337 > /dev/null 2>&1 &
	local srv=$!
	eco_wait_listen 13337
	out=$(env "${env[@]}" timeout 120 ucx_perftest 127.0.0.1 -p 13337 -t "$3" -s "$4" -n 2000 -w 200 2>&1)
	wait $srv
	awk -v c="$5" '$1 == "Final:" { print $c; found = 1 } END { exit !found }' <<< "$out"
}

# fio_figure DEV JOB FIELD: one fio run's read IOPS (FIELD iops) or bandwidth in MiB/s (bw).
fio_figure() {
	local out
	# shellcheck disable=SC2086 # $2 is fio's options
	out=$(timeout 120 fio --name=bench --filename="$1" $2 --direct=1 --ioengine=libaio \
		--runtime=5 --time_based --output-format=terse --terse-version=3 2> /dev/null) || return 1
	# terse v3: field 7 is read bandwidth in KiB/s, field 8 read IOPS
	awk -F';' -v f="$3" '{ print (f == "iops") ? $8 : $7 / 1024 }' <<< "$out"
}

# perftest_lat DEVICE TEST: the typical latency in microseconds of one run of TEST
# (ib_write_lat or ib_send_lat), 2000 iterations of 64 bytes, over rdma_cm.
perftest_lat() {
	local out
	timeout 120 "$2" -d "$1" -R -s 64 -n 2000 -F > /dev/null 2>&1 &
	local srv=$!
	eco_wait_listen 18515
	out=$(timeout 120 "$2" -d "$1" -R -s 64 -n 2000 -F "${addr[$1]}" 2>&1)
	wait $srv
	# the result line: #bytes #iterations t_min t_max t_typical ...
	awk '$1 == "64" && NF >= 5 { print $5; found = 1 } END { exit !found }' <<< "$out"
}

declare -A rp=() iops=() bw=() put=() tag=() lat=()
eco_nvmet_modules || { echo "bench: NVMe over Fabrics modules missing" >&2; status=1; }
for d in "${devices[@]}"; do
	nvme_setup "$d" || { echo "bench: NVMe over Fabrics through $d could not be set up" >&2; status=1; }
	# fill the namespace once, so that reads read data
	[ -n "${nsdev[$d]:-}" ] && dd if=/dev/urandom of="${nsdev[$d]}" bs=1M count=128 oflag=direct 2> /dev/null
done
for r in $(seq 1 "$rounds"); do
	for d in "${devices[@]}"; do
		v=$(rping_rate "$d") && rp[$d]+="$v " || status=1
		for t in ib_write_lat ib_send_lat; do
			v=$(perftest_lat "$d" $t) && lat[$d/$t]+="$v " || status=1
			[ "$d" = pfnic0 ] || continue
			echo 1000 > /sys/module/pfnic/parameters/poll_usecs || status=1
			v=$(perftest_lat "$d" $t) && lat[polled/$t]+="$v " || status=1
			echo 0 > /sys/module/pfnic/parameters/poll_usecs
		done
		for m in rcache,direct odp; do
			# rxe has no implicit ODP, which UCX's odp method registers
			[ "$m" = odp ] && [ "$d" != pfnic0 ] && continue
			v=$(ucx_figure "$d" "$m" ucp_put_bw 65536 7) && put[$d/$m]+="$v " || status=1
			v=$(ucx_figure "$d" "$m" tag_bw 8 9) && tag[$d/$m]+="$v " || status=1
		done
		[ -n "${nsdev[$d]:-}" ] || continue
		v=$(fio_figure "${nsdev[$d]}" "--rw=randread --bs=4k --iodepth=16" iops) && iops[$d]+="$v " || status=1
		v=$(fio_figure "${nsdev[$d]}" "--rw=read --bs=128k --iodepth=4" bw) && bw[$d]+="$v " || status=1
	done
	echo "bench: round $r of $rounds done" >&2
done

report() {
	local what=$1 unit=$2 p=$3 x=$4 mp mx
	mp=$(tr ' ' '\n' <<< "$p" | grep . | median)
	mx=$(tr ' ' '\n' <<< "$x" | grep . | median)
	echo "# bench: $what: pfnic0 $mp $unit, rxe0 $mx $unit, pfnic0/rxe0 $(ratio "$mp" "$mx") (median of $rounds interleaved rounds)"
}
report "rping round trips per second (64 B)" "round trips/s" "${rp[pfnic0]:-}" "${rp[rxe0]:-}"
report "UCX put bandwidth (ucp_put_bw, 64 KiB, rc_verbs, pinned)" MB/s "${put[pfnic0/rcache,direct]:-}" "${put[rxe0/rcache,direct]:-}"
report "UCX put bandwidth, pfnic0 with UCX's ODP registration against rxe0 pinned" MB/s "${put[pfnic0/odp]:-}" "${put[rxe0/rcache,direct]:-}"
report "UCX tag-matched message rate (tag_bw, 8 B, rc_verbs, pinned)" msg/s "${tag[pfnic0/rcache,direct]:-}" "${tag[rxe0/rcache,direct]:-}"
report "UCX tag-matched message rate, pfnic0 with UCX's ODP registration against rxe0 pinned" msg/s "${tag[pfnic0/odp]:-}" "${tag[rxe0/rcache,direct]:-}"
report "NVMe over Fabrics, fio 4 KiB random read" IOPS "${iops[pfnic0]:-}" "${iops[rxe0]:-}"
report "NVMe over Fabrics, fio 128 KiB sequential read" MiB/s "${bw[pfnic0]:-}" "${bw[rxe0]:-}"
report "ib_write_lat, 64 B, typical" us "${lat[pfnic0/ib_write_lat]:-}" "${lat[rxe0/ib_write_lat]:-}"
report "ib_send_lat, 64 B, typical" us "${lat[pfnic0/ib_send_lat]:-}" "${lat[rxe0/ib_send_lat]:-}"
report "ib_write_lat, 64 B, typical, pfnic0 with its polling engine" us "${lat[polled/ib_write_lat]:-}" "${lat[rxe0/ib_write_lat]:-}"
report "ib_send_lat, 64 B, typical, pfnic0 with its polling engine" us "${lat[polled/ib_send_lat]:-}" "${lat[rxe0/ib_send_lat]:-}"
nvme disconnect-all > /dev/null 2>&1
exit $status
