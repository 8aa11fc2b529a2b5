#!/bin/bash
# peers.sh DEVICE [GID_INDEX]: unmodified verbs programs between two processes on DEVICE,
# as TAP: ibv_rc_pingpong with and without ODP (-o), with implicit ODP (-O), with prefetch
# (-P) and sleeping on completion events (-e); ibv_srq_pingpong (16 QPs sharing one SRQ)
# checking what it receives (-c), with and without ODP; ibv_ud_pingpong;
# perftest's ib_write_bw, ib_read_bw, ib_send_bw and ib_write_lat with and without --odp,
# ib_send_bw over an SRQ and over UD, ib_send_lat over UD and ib_read_lat with --odp,
# ib_atomic_bw and ib_atomic_lat (perftest itself refuses --odp with atomics; pfnic_traffic
# covers ODP atomics).
# Apart from ibv_srq_pingpong -c these check no data: they prove the verbs work, no more.
dev=${1:?usage: peers.sh DEVICE [GID_INDEX]}
gid=${2:-1}
port=18515
n=0
fail=0
runs=(
	"ibv_rc_pingpong -d $dev -g $gid -n 200"
	"ibv_rc_pingpong -d $dev -g $gid -n 200 -o"
	"ibv_rc_pingpong -d $dev -g $gid -n 200 -o -e"
	"ibv_rc_pingpong -d $dev -g $gid -n 200 -o -P"
	"ibv_rc_pingpong -d $dev -g $gid -n 200 -O"
	"ibv_rc_pingpong -d $dev -g $gid -n 200 -O -P"
	"ibv_srq_pingpong -d $dev -g $gid -n 50 -c"
	"ibv_srq_pingpong -d $dev -g $gid -n 50 -c -o"
	"ibv_ud_pingpong -d $dev -g $gid -n 200 -s 1000"
	"ib_write_bw -d $dev -x $gid -n 200 -F"
	"ib_write_bw -d $dev -x $gid -n 200 -F --odp"
	"ib_read_bw -d $dev -x $gid -n 200 -F"
	"ib_read_bw -d $dev -x $gid -n 200 -F --odp"
	"ib_send_bw -d $dev -x $gid -n 200 -F"
	"ib_send_bw -d $dev -x $gid -n 200 -F --odp"
	"ib_send_bw -d $dev -x $gid -n 200 -F --odp --use-srq"
	"ib_send_bw -d $dev -x $gid -n 200 -F -c UD -s 1024"
	"ib_send_bw -d $dev -x $gid -n 200 -F -c UD -s 1024 --odp"
	"ib_send_lat -d $dev -x $gid -n 200 -F -c UD -s 512 --odp"
	"ib_write_lat -d $dev -x $gid -n 200 -F"
	"ib_write_lat -d $dev -x $gid -n 200 -F --odp"
	"ib_read_lat -d $dev -x $gid -n 200 -F --odp"
	"ib_atomic_bw -d $dev -x $gid -n 200 -F"
	"ib_atomic_bw -d $dev -x $gid -n 200 -F -A CMP_AND_SWAP"
	"ib_atomic_lat -d $dev -x $gid -n 200 -F"
)
echo "TAP version 13"
echo "1..${#runs[@]}"
for cmd in "${runs[@]}"; do
	n=$((n + 1))
	port=$((port + 1))
	p="-p $port"
	out=$(mktemp)
	# server, then the client once the server listens
	# stdout and stderr apart: stdout is flushed at exit, after any error message
	timeout 120 $cmd $p > "$out.srv" 2> "$out.srv.err" &
	srv=$!
	for _ in $(seq 1 100); do
		ss -ltn 2> /dev/null | grep -q ":$port " && break
		sleep 0.1
	done
	timeout 120 $cmd $p 127.0.0.1 > "$out.cli" 2> "$out.cli.err"
	crc=$?
	wait $srv
	src=$?
	if [ $crc = 0 ] && [ $src = 0 ]; then
		echo "ok $n - $cmd"
		tail -n 3 "$out.cli" | sed 's/^/# /'
	else
		fail=1
		echo "not ok $n - $cmd (client exit $crc, server exit $src)"
		sed 's/^/# client: /' "$out.cli" | tail -n 6
		sed 's/^/# client stderr: /' "$out.cli.err" | tail -n 10
		sed 's/^/# server: /' "$out.srv" | tail -n 6
		sed 's/^/# server stderr: /' "$out.srv.err" | tail -n 10
	fi
	rm -f "$out" "$out.cli" "$out.srv" "$out.cli.err" "$out.srv.err"
done
exit $fail
