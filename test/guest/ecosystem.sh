#!/bin/bash
# ecosystem.sh [DEVICE...]: software nobody here wrote, moving data on each DEVICE (pfnic0
# and rxe0 by default, side by side), as TAP. Each DEVICE gets a netdev (a veth) and an
# address of its own, so that rdma_cm finds exactly that device for the address:
#   pfnic0 on d1, 198.51.100.1; rxe0 on d2, 203.0.113.1
# The clients, each a server and a client in this guest over that address:
# - rdma_cm's own tools: rping checking every byte it reads back (-V), ucmatose (RC) and
#   udaddy (UD) over several connections, rdma_server/rdma_client; perftest's
#   ib_write_bw, ib_read_bw and ib_send_bw connected through rdma_cm (-R);
# - rdma_cm's errors: a connection to a port nobody listens on is rejected, one to an
#   address nobody has fails to resolve (ucmatose: rping waits for ever after that error,
#   on any device), each within a minute, never a hang;
# - libfabric's verbs provider: fi_pingpong on msg and rdm (ofi_rxm) endpoints, every byte
#   checked; UCX: ucx_perftest's tag and put bandwidth over rc_verbs, pinned and with UCX's
#   implicit-ODP registration; Open MPI over UCX: mpi_verify's messages and puts, every byte
#   checked, pinned and ODP;
# - NVMe over Fabrics: an nvmet-rdma target on the address exporting a RAM disk, the
#   kernel's NVMe host connected to it (nvme-cli), fio writing and verifying every block
#   (4 KiB random, 128 KiB sequential from an offset that is not a page's).
# Each TAP line says what ran and how much data it checked; a kernel oops or lockdep report
# fails the run (test/vm/run.sh).
set -u

. "$(dirname "$0")/ecosystem-lib.sh"
devices=("$@")
[ ${#devices[@]} -gt 0 ] || devices=(pfnic0 rxe0)
n=0
fail=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fail=1; echo "not ok $n - $*"; }

# sent DEVICE: the device's count of what it sent (pfnic: send WQEs, for its peers of this
# kernel; rxe: packets), to show that a program's traffic went through it.
sent() {
	local v
	v=$(eco_counter "$1" send_wqes)
	[ -n "$v" ] || v=$(eco_counter "$1" sent_pkts)
	echo "${v:-0}"
}

# pair NAME PORT CHECK SERVER_CMD -- CLIENT_CMD: the server, then the client once the server
# listens; both must exit 0, and the client's output must match the regex CHECK (if any).
# With $teardown set (a regex), a side that crashed once it was done, saying so in its
# output, counts as having exited 0 (see ucx()).
pair() {
	local name=$1 port=$2 check=$3 server=() client=() out crc src
	shift 3
	while [ $# -gt 0 ] && [ "$1" != -- ]; do server+=("$1"); shift; done
	shift
	client=("$@")
	out=$(mktemp -d)
	# standard error apart: a program's buffered output comes at its exit, after its errors
	timeout 180 "${server[@]}" > "$out/srv" 2> "$out/srv.err" &
	local srv=$!
	eco_wait_listen "$port"
	timeout 180 "${client[@]}" > "$out/cli" 2> "$out/cli.err"
	crc=$?
	wait $srv
	src=$?
	if [ -n "${teardown:-}" ]; then
		[ $crc = 0 ] || ! cat "$out/cli" "$out/cli.err" | grep -q "$teardown" || crc=0
		[ $src = 0 ] || ! cat "$out/srv" "$out/srv.err" | grep -q "$teardown" || src=0
	fi
	if [ $crc = 0 ] && [ $src = 0 ] && { [ -z "$check" ] || cat "$out/cli" "$out/cli.err" | grep -Eq "$check"; }; then
		ok "$name"
	else
		not_ok "$name (client exit $crc, server exit $src)"
		sed 's/^/# client: /' "$out/cli" | tail -n 8
		sed 's/^/# client (stderr): /' "$out/cli.err" | tail -n 8
		sed 's/^/# server: /' "$out/srv" | tail -n 8
		sed 's/^/# server (stderr): /' "$out/srv.err" | tail -n 8
	fi
	rm -rf "$out"
}

# refused NAME REGEX SECONDS CMD...: CMD must fail, saying REGEX, within SECONDS.
refused() {
	local name=$1 regex=$2 limit=$3 out rc t0
	shift 3
	out=$(mktemp)
	t0=$(date +%s)
	timeout "$limit" "$@" > "$out" 2>&1
	rc=$?
	if [ $rc != 0 ] && [ $rc != 124 ] && grep -Eq "$regex" "$out"; then
		ok "$name (in $(($(date +%s) - t0)) s)"
	else
		not_ok "$name (exit $rc after $(($(date +%s) - t0)) s)"
		sed 's/^/# /' "$out" | tail -n 8
	fi
	rm -f "$out"
}

rdma_cm_tools() {
	local d=$1 a=${addr[$1]}
	# rping -V compares what each RDMA READ brought back with what was sent
	pair "rping on $d: 50 round trips of 9000 bytes (3 pages each), every byte checked" 7174 '' \
		rping -s -a "$a" -p 7174 -C 50 -S 9000 -- \
		rping -c -a "$a" -p 7174 -C 50 -S 9000 -V
	pair "ucmatose on $d: 4 RC connections, 20 messages of 3000 bytes each way (it checks no data)" 7471 \
		'return status 0' \
		ucmatose -b "$a" -c 4 -C 20 -S 3000 -- ucmatose -s "$a" -c 4 -C 20 -S 3000
	pair "udaddy on $d: 4 UD endpoints, 20 datagrams each way (it checks no data)" 7174 'return status 0' \
		udaddy -b "$a" -c 4 -C 20 -- udaddy -s "$a" -c 4 -C 20
	pair "rdma_server and rdma_client on $d: one message each way (they check no data)" 7471 'end 0' \
		rdma_server -s "$a" -- rdma_client -s "$a"
	local op
	for op in write read send; do
		pair "ib_${op}_bw -R on $d: 100 messages of 64 KiB over rdma_cm (perftest checks no data)" 18515 'MsgRate' \
			"ib_${op}_bw" -R -d "$d" -n 100 -- "ib_${op}_bw" -R -d "$d" -n 100 "$a"
	done
	refused "rping on $d to a port nobody listens on is rejected" 'REJECTED|error|fail' 30 \
		rping -c -a "$a" -p 7999 -C 1
	refused "ucmatose on $d to an address nobody has fails to resolve" \
		'ADDR_ERROR' 30 ucmatose -s "${a%.*}.77" -c 1 -C 1
}

# libfabric's verbs provider: fi_pingpong on a msg endpoint and on an rdm one (ofi_rxm over
# verbs), every size up to its largest, the data checked (-c).
libfabric() {
	local d=$1 a=${addr[$1]} before
	before=$(sent "$d")
	pair "fi_pingpong on $d: verbs provider, msg endpoint, 20 round trips of each size, every byte checked" \
		47592 '' fi_pingpong -p verbs -e msg -d "$d" -I 20 -c -B 47592 -- \
		fi_pingpong -p verbs -e msg -d "$d" -I 20 -c -P 47592 "$a"
	# ofi_rxm sizes its completion queue by the job's size (FI_UNIVERSE_SIZE, 256 peers by
	# default), past any soft device's max_cqe: this job has two
	pair "fi_pingpong on $d: verbs;ofi_rxm provider, rdm endpoint, 20 round trips of each size, every byte checked" \
		47593 '' env FI_UNIVERSE_SIZE=2 fi_pingpong -p 'verbs;ofi_rxm' -e rdm -d "$d" -I 20 -c -B 47593 -- \
		env FI_UNIVERSE_SIZE=2 fi_pingpong -p 'verbs;ofi_rxm' -e rdm -d "$d" -I 20 -c -P 47593 "$a"
	echo "# $d sent $(($(sent "$d") - before)) (send WQEs or packets) for libfabric"
}

# reg_methods DEVICE: UCX's registration methods to run on DEVICE, into $methods: pinned
# (cached), and ODP where the device has implicit ODP, which UCX's odp method registers (rxe
# has none: explicit ODP only, since 6.15).
reg_methods() {
	methods=rcache,direct
	if ibv_devinfo -v -d "$1" 2> /dev/null | grep -A3 general_odp_caps | grep -q ODP_SUPPORT_IMPLICIT; then
		methods+=" odp"
	else
		echo "# $1 has no implicit ODP on this kernel: UCX's odp registration is not run on it"
	fi
}

# UCX 1.13's odp method crashes in its own teardown on every device (uct_ib_md_close hands
# its implicit MR's handle to a deregistration that now takes parameters): once a run has
# done its work, that crash, and only that one, is let pass.
ucx_odp_teardown='uct_ib_md_close'

# UCX on DEVICE: ucx_perftest's tag-matched and put bandwidth (which check no data), with
# UCX registering memory as it does by default (pinned, cached) and through ODP (an implicit
# ODP MR, whose page faults pfnic counts).
ucx() {
	local d=$1 method test before faults env methods teardown
	# shellcheck disable=SC2207 # eco_ucx_env prints words without blanks
	env=($(eco_ucx_env "$d"))
	reg_methods "$d"
	for method in $methods; do
		teardown=
		[ "$method" = odp ] && teardown=$ucx_odp_teardown
		for test in tag_bw ucp_put_bw; do
			before=$(sent "$d")
			faults=$(eco_counter "$d" page_faults_handled)
			pair "ucx_perftest $test on $d over rc_verbs, registration $method: 500 messages of 64 KiB (it checks no data)" \
				13337 'Final:' env "${env[@]}" UCX_IB_REG_METHODS="$method" \
				ucx_perftest -p 13337 -- env "${env[@]}" UCX_IB_REG_METHODS="$method" \
				ucx_perftest 127.0.0.1 -p 13337 -t "$test" -s 65536 -n 500 -w 20
			echo "# $d sent $(($(sent "$d") - before)) (send WQEs or packets) for it${faults:+, and resolved $(($(eco_counter "$d" page_faults_handled) - faults)) page faults}"
		done
	done
}

# Open MPI over UCX on DEVICE (no shared memory): mpi_verify's messages and puts, every byte
# checked, with pinned and with ODP registration.
mpi() {
	local d=$1 method out rc before e methods
	local prog=build/cmake/tests/mpi_verify xs=()
	[ -x "$prog" ] || { not_ok "Open MPI on $d: $prog not built (no MPI where it was built)"; return; }
	for e in $(eco_ucx_env "$d"); do xs+=(-x "$e"); done
	# Open MPI's launcher will not start on a host named "(none)", as a guest is at boot
	[ "$(hostname)" != "(none)" ] || hostname localhost
	reg_methods "$d" > /dev/null
	for method in $methods; do
		before=$(sent "$d")
		out=$(timeout 300 mpirun --allow-run-as-root --oversubscribe -np 2 --mca pml ucx \
			--mca osc ucx --mca btl self "${xs[@]}" -x UCX_IB_REG_METHODS="$method" \
			"$prog" 2 2>&1)
		rc=$?
		# every byte was checked before MPI_Finalize, where UCX's odp teardown crashes
		[ "$method" != odp ] || ! grep -q "$ucx_odp_teardown\|ompi_mpi_finalize" <<< "$out" || rc=0
		if [ $rc = 0 ] && [ "$(grep -c '^ok ' <<< "$out")" = 2 ]; then
			ok "Open MPI over UCX on $d, registration $method: $(sed -n 's/^ok 1 - //p' <<< "$out"); $(sed -n 's/^ok 2 - //p' <<< "$out")"
			echo "# $d sent $(($(sent "$d") - before)) (send WQEs or packets) for it"
		else
			not_ok "Open MPI over UCX on $d, registration $method (exit $rc)"
			sed 's/^/# /' <<< "$out" | tail -n 12
		fi
	done
}

# NVMe over Fabrics through DEVICE: a RAM disk exported by nvmet-rdma on its address.
nvme_of() {
	local d=$1 a=${addr[$1]} nqn=nqn.2026-12.dev.pfnic:eco-$1 port=$((${#done_nvme[@]} + 1))
	local disk=/dev/ram${#done_nvme[@]} dev out rc job
	done_nvme+=("$d")
	eco_nvmet_modules || { not_ok "NVMe over Fabrics on $d: modules"; return; }
	eco_nvmet_export "$nqn" "$disk" "$a" "$port" ||
		{ not_ok "NVMe over Fabrics on $d: nvmet-rdma target on $a"; return; }
	if ! dev=$(eco_nvme_connect "$nqn" "$a"); then
		not_ok "NVMe over Fabrics on $d: nvme connect over rdma to $a"
		sed 's/^/# /' <<< "$dev" | tail -n 8
	else
		ok "NVMe over Fabrics on $d: nvme connect over rdma to $a gave $dev"
		for job in "--rw=randwrite --bs=4k --size=16M --verify=crc32c --iodepth=8" \
			"--rw=write --bs=128k --size=16M --offset=3k --verify=md5 --iodepth=4"; do
			# shellcheck disable=SC2086 # $job is fio's options
			out=$(timeout 300 fio --name=eco --filename="$dev" $job --direct=1 \
				--ioengine=libaio --output-format=terse 2>&1)
			rc=$?
			if [ $rc = 0 ] && ! grep -q 'verify:' <<< "$out"; then
				ok "fio on $dev ($d): $job: every block written, read back and checked"
			else
				not_ok "fio on $dev ($d): $job (exit $rc)"
				sed 's/^/# /' <<< "$out" | tail -n 8
			fi
		done
		timeout 60 nvme disconnect -n "$nqn" > /dev/null ||
			not_ok "NVMe over Fabrics on $d: nvme disconnect"
	fi
	eco_nvmet_unexport "$nqn" "$port"
}

done_nvme=()
echo "TAP version 13"
eco_devices "${devices[@]}" || { echo "Bail out! the devices could not be made"; exit 1; }
# an error of the shell's own (a bad expansion) ends the loop early: it must not pass
finished=
for d in "${devices[@]}"; do
	rdma_cm_tools "$d"
	libfabric "$d"
	ucx "$d"
	mpi "$d"
	nvme_of "$d"
	finished=$d
done
[ "$finished" = "${devices[-1]}" ] || not_ok "ecosystem.sh stopped before the end (after ${finished:-no device})"
echo "1..$n"
exit $fail
