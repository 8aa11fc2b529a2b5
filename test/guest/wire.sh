#!/bin/bash
# wire.sh server|client DEVICE ADDR PEER_ADDR [CASES]: unmodified verbs and rdma_cm programs
# between this guest's DEVICE and a device of another guest, across the Ethernet link of
# test/vm/run.sh --link, as TAP. Both guests run the same list in the same order, one as the
# server side of every program, the other as the client side; each reports its own half.
# DEVICE's GID is the RoCE v2 GID of ADDR, found in its GID table. CASES: a regular
# expression that picks cases by their command (all by default).
#
# WIRE_NETEM=SPEC: a lossy link. This guest's side of it drops, duplicates, delays and
# reorders packets as netem's SPEC says (both guests set it), the datagram cases are left out
# (a datagram lost is lost), and a pfnic device's counters must show what its requester and
# responder did about it: packets sent again, sequence NAKs, duplicates.
#
# Before each case the client listens on a TCP port of its own and the server, once its
# program listens, connects to it: the client starts only then, so neither side needs to
# guess how long the other takes to boot or to start a program under TCG.
#
# WIRE_TRAFFIC=1: last, build/cmake/tests/pfnic_wire_traffic, the server side's ODP MR
# (a pfnic server's) taken through WRITEs and READs by the client, every byte checked,
# while the server takes its NUMA node 1's memory offline; WIRE_UNPLUG=1 on the server: and
# has the host remove that node's DIMM ("ready-for-unplug" on the console; test/vm/run.sh
# --numa --dimm SIZE --qmp PATH); WIRE_CHURN=SECONDS on the server: its blocks first go
# offline and online again in turn for that long.
#
# ibv_rc_pingpong and ibv_srq_pingpong check the data they receive (-c); the rest prove
# the verbs and the transport work, and pfnic_wire_traffic checks every byte.
set -u
role=${1:?usage: wire.sh server|client DEVICE ADDR PEER_ADDR [CASES]}
dev=${2:?} addr=${3:?} peer=${4:?} pick=${5:-.}
sync_port=7000
nc="/bin/busybox nc"

# The index of DEVICE's RoCE v2 GID for IPv4 address $1.
gid_index() {
	want=$(printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' $(echo "$1" | tr . ' '))
	for _ in $(seq 1 50); do
		for g in /sys/class/infiniband/"$dev"/ports/1/gids/*; do
			i=${g##*/}
			[ "$(cat "$g" 2> /dev/null)" = "$want" ] || continue
			[ "$(cat /sys/class/infiniband/"$dev"/ports/1/gid_attrs/types/"$i" 2> /dev/null)" = "RoCE v2" ] || continue
			echo "$i"
			return 0
		done
		sleep 0.2
	done
	return 1
}

gid=$(gid_index "$addr") || { echo "1..0 # no RoCE v2 GID for $addr on $dev"; exit 1; }
# ODP where the device has it: a pfnic side registers its MRs on demand (%o for the verbs
# examples, %O for perftest), so that the other host's traffic meets pages that are not there
odp_pp= odp_pt=
case $dev in pfnic*) odp_pp=-o odp_pt=--odp ;; esac
cases=(
	"ibv_rc_pingpong -d $dev -g $gid -n 100 -c"
	"ibv_rc_pingpong -d $dev -g $gid -n 50 -s 10000 -c"
	"ibv_rc_pingpong -d $dev -g $gid -n 50 -s 65536 -c %o"
	"ibv_srq_pingpong -d $dev -g $gid -n 20 -c %o"
	"ibv_ud_pingpong -d $dev -g $gid -n 100 -s 512"
	"ib_write_bw -d $dev -x $gid -n 100 -F"
	"ib_write_bw -d $dev -x $gid -n 100 -F %O"
	"ib_read_bw -d $dev -x $gid -n 100 -F"
	"ib_read_bw -d $dev -x $gid -n 100 -F %O"
	"ib_send_bw -d $dev -x $gid -n 100 -F %O"
	"ib_write_lat -d $dev -x $gid -n 100 -F"
	"ib_read_lat -d $dev -x $gid -n 100 -F %O"
	"ib_send_lat -d $dev -x $gid -n 100 -F"
	"ib_atomic_bw -d $dev -x $gid -n 100 -F"
	"ib_atomic_bw -d $dev -x $gid -n 100 -F -A CMP_AND_SWAP"
	"ib_atomic_lat -d $dev -x $gid -n 100 -F"
)
if [ -n "${WIRE_NETEM:-}" ]; then
	nic=$(ip -o addr show to "$addr" | awk '{print $2}')
	modprobe sch_netem || { echo "1..0 # no netem"; exit 1; }
	# shellcheck disable=SC2086
	tc qdisc add dev "$nic" root netem $WIRE_NETEM || { echo "1..0 # netem $WIRE_NETEM refused"; exit 1; }
	cases=(
		"ibv_rc_pingpong -d $dev -g $gid -n 100 -c"
		"ibv_rc_pingpong -d $dev -g $gid -n 30 -s 65536 -c %o"
		"ib_write_bw -d $dev -x $gid -n 100 -F %O"
		"ib_read_bw -d $dev -x $gid -n 100 -F %O"
		"ib_send_bw -d $dev -x $gid -n 100 -F %O"
		"ib_atomic_bw -d $dev -x $gid -n 100 -F"
	)
fi
# WIRE_BENCH=1: perftest's measures for test/bench/wire.sh instead (nothing checked but that
# they run): 1 MiB WRITE bandwidth, 64 B WRITE message rate, 64 B WRITE latency
if [ -n "${WIRE_BENCH:-}" ]; then
	cases=(
		"ib_write_bw -d $dev -x $gid -s 1048576 -n ${WIRE_BENCH_N:-100} -F"
		"ib_write_bw -d $dev -x $gid -s 64 -n $((${WIRE_BENCH_N:-100} * 20)) -F"
		"ib_write_lat -d $dev -x $gid -s 64 -n $((${WIRE_BENCH_N:-100} * 5)) -F"
	)
fi
picked=()
for c in "${cases[@]}"; do
	[[ $c =~ $pick ]] || continue
	c=${c//%o/$odp_pp}
	c=${c//%O/$odp_pt}
	picked+=("${c% }")
done

# rdma_cm: rping resolves the peer's address and connects through the CM's MADs on QP1
rping_server="rping -s -a $addr -v -C 10 -S 4000"
rping_client="rping -c -a $peer -v -C 10 -S 4000"
with_rping=0
[[ rping =~ $pick || $pick = . ]] && [ -z "${WIRE_BENCH:-}" ] && with_rping=1

# the counters of a pfnic device, which must have seen a lossy link
counted=0
[ -n "${WIRE_NETEM:-}" ] && [ -z "${WIRE_BENCH:-}" ] && [[ $dev = pfnic* ]] && counted=1
counter() { rdma statistic show link "$dev/1" | tr ' ' '\n' | grep -A1 -x "$1" | tail -n 1; }

with_traffic=0
[ -n "${WIRE_TRAFFIC:-}" ] && with_traffic=1

echo "TAP version 13"
echo "1..$((${#picked[@]} + with_rping + with_traffic + counted))"

# go_server [PORT]: once something listens on TCP port PORT here, tell the client to start
go_server() {
	for _ in $(seq 1 200); do
		[ -z "${1:-}" ] && break
		ss -ltn 2> /dev/null | grep -q ":$1 " && break
		sleep 0.1
	done
	for _ in $(seq 1 150); do
		timeout 2 bash -c "echo go > /dev/tcp/$peer/$sync_port" 2> /dev/null && return 0
		sleep 0.2
	done
	return 1
}

# go_client: wait for the server's word
go_client() {
	timeout 300 $nc -l -p $sync_port > /dev/null
}

# report N NAME STATUS OUTPUT...: one TAP line, with the output as a YAML block on failure
report() {
	n=$1 name=$2 st=$3
	shift 3
	if [ "$st" = 0 ]; then
		echo "ok $n - $role: $name"
	else
		echo "not ok $n - $role: $name (exit $st)"
		echo "  ---"
		echo "  output: |"
		cat "$@" 2> /dev/null | tail -n 30 | sed 's/^/    /'
		echo "  ..."
	fi
}

n=0
port=18515
out=$(mktemp)
for cmd in "${picked[@]}"; do
	n=$((n + 1))
	port=$((port + 1))
	if [ "$role" = server ]; then
		timeout 180 $cmd -p $port > "$out" 2> "$out.err" &
		pid=$!
		go_server $port
		wait $pid
		st=$?
	else
		go_client
		timeout 180 $cmd -p $port "$peer" > "$out" 2> "$out.err"
		st=$?
	fi
	report $n "$cmd" $st "$out" "$out.err"
	grep -h -E 'bytes in|BW average|t_avg|Gb/sec|[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+' "$out" 2> /dev/null | tail -n 2 | sed 's/^/# /'
done

if [ $with_rping = 1 ]; then
	n=$((n + 1))
	if [ "$role" = server ]; then
		timeout 180 $rping_server > "$out" 2> "$out.err" &
		pid=$!
		# rping listens through the CM, not a TCP port: give it a moment to bind
		sleep 2
		go_server
		wait $pid
		st=$?
		report $n "$rping_server" $st "$out" "$out.err"
	else
		go_client
		timeout 180 $rping_client > "$out" 2> "$out.err"
		st=$?
		report $n "$rping_client" $st "$out" "$out.err"
	fi
fi
if [ $with_traffic = 1 ]; then
	# the client connects to the server's side channel itself, retrying until it listens
	n=$((n + 1))
	traffic=build/cmake/tests/pfnic_wire_traffic
	if [ "$role" = server ]; then
		cmd="$traffic server -d $dev -g $gid -p 7100${WIRE_UNPLUG:+ --unplug}${WIRE_CHURN:+ --churn $WIRE_CHURN}"
		# its lines go to the console as they come: the host waits for "ready-for-unplug"
		timeout 900 $cmd 2> "$out.err" | tee "$out"
		st=${PIPESTATUS[0]}
	else
		cmd="$traffic client -d $dev -g $gid -p 7100 $peer"
		timeout 900 $cmd 2> "$out.err" | tee "$out"
		st=${PIPESTATUS[0]}
	fi
	report $n "$cmd" $st "$out" "$out.err"
fi
if [ $counted = 1 ]; then
	n=$((n + 1))
	seen=""
	total=0
	for c in retransmits local_ack_timeout_err rcvd_seq_err out_of_sequence duplicate_request rnr_retries; do
		v=$(counter $c)
		seen+=" $c=$v"
		total=$((total + ${v:-0}))
	done
	if [ $total -gt 0 ]; then
		echo "ok $n - $role: $dev's counters show what the loss made it do:$seen"
	else
		echo "not ok $n - $role: $dev's counters show nothing of the loss:$seen"
	fi
fi
rm -f "$out" "$out.err"
