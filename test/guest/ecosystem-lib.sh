# shellcheck shell=bash
# ecosystem-lib.sh: sourced by ecosystem.sh and ecosystem-bench.sh. The devices of those runs,
# each on a netdev and an address of its own (so that rdma_cm finds exactly that device for
# the address), and what exporting a RAM disk over NVMe over Fabrics through one takes.

IP=/usr/bin/ip
declare -A addr=([pfnic0]=198.51.100.1 [rxe0]=203.0.113.1)
declare -A netdev=([pfnic0]=d1 [rxe0]=d2)

# eco_link NETDEV ADDR: a netdev with one IPv4 address (no DAD: the link-local GID would come
# late): one end of a veth pair whose other end is up and has no address, so that neighbours
# are looked up as on a wire (a dummy netdev answers every lookup) and an address nobody has
# fails to resolve.
eco_link() {
	$IP link show "$1" > /dev/null 2>&1 && return 0
	modprobe veth || return 1
	$IP link set lo up
	$IP link add "$1" type veth peer name "$1peer" || return 1
	echo 0 > "/proc/sys/net/ipv6/conf/$1/accept_dad"
	$IP link set "$1peer" up
	$IP link set "$1" up
	$IP addr add "$2/24" dev "$1"
}

# eco_devices DEVICE...: each device on its netdev, rdma_cm's modules loaded. Return: non-zero
# (with a message) if one cannot be made.
eco_devices() {
	local d
	for d in "$@"; do
		[ -n "${addr[$d]:-}" ] || { echo "no address planned for $d" >&2; return 1; }
		eco_link "${netdev[$d]}" "${addr[$d]}" || { echo "no netdev for $d" >&2; return 1; }
	done
	modprobe rdma_ucm || { echo "rdma_ucm does not load" >&2; return 1; }
	for d in "$@"; do
		case $d in
		rxe*) test/vm/guest rxe "$d" "${netdev[$d]}" ;;
		pfnic*) test/vm/guest pfnic && { rdma link show "$d/1" > /dev/null 2>&1 ||
			rdma link add "$d" type pfnic netdev "${netdev[$d]}"; } ;;
		esac || { echo "$d cannot be made" >&2; return 1; }
	done
}

# eco_nvmet_modules: NVMe over Fabrics' target and host, RAM disks of 128 MiB, configfs.
eco_nvmet_modules() {
	modprobe brd rd_nr=2 rd_size=131072 && modprobe nvmet && modprobe nvmet-rdma &&
		modprobe nvme-rdma || return 1
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
}

# eco_nvmet_export NQN DISK ADDR PORT: DISK exported as subsystem NQN by nvmet-rdma on
# ADDR:4420, as target port number PORT.
eco_nvmet_export() {
	local c=/sys/kernel/config/nvmet nqn=$1 disk=$2 a=$3 port=$4
	mkdir "$c/subsystems/$nqn" && echo 1 > "$c/subsystems/$nqn/attr_allow_any_host" &&
		mkdir "$c/subsystems/$nqn/namespaces/1" &&
		echo "$disk" > "$c/subsystems/$nqn/namespaces/1/device_path" &&
		echo 1 > "$c/subsystems/$nqn/namespaces/1/enable" &&
		mkdir "$c/ports/$port" && echo rdma > "$c/ports/$port/addr_trtype" &&
		echo ipv4 > "$c/ports/$port/addr_adrfam" && echo "$a" > "$c/ports/$port/addr_traddr" &&
		echo 4420 > "$c/ports/$port/addr_trsvcid" &&
		ln -s "$c/subsystems/$nqn" "$c/ports/$port/subsystems/$nqn"
}

# eco_nvmet_unexport NQN PORT: undoes eco_nvmet_export.
eco_nvmet_unexport() {
	local c=/sys/kernel/config/nvmet nqn=$1 port=$2
	rm -f "$c/ports/$port/subsystems/$nqn"
	rmdir "$c/ports/$port"
	echo 0 > "$c/subsystems/$nqn/namespaces/1/enable"
	rmdir "$c/subsystems/$nqn/namespaces/1" "$c/subsystems/$nqn"
}

# eco_nvme_connect NQN ADDR: the kernel's NVMe host connected to NQN at ADDR over rdma;
# prints the namespace's block device (with native multipath, the subsystem's), or nvme's
# error. Return: non-zero if there is no block device.
eco_nvme_connect() {
	local nqn=$1 a=$2 s dev= out
	out=$(timeout 60 nvme connect -t rdma -n "$nqn" -a "$a" -s 4420 \
		--hostnqn=nqn.2014-08.org.nvmexpress:uuid:0e0c0515-7e57-4d1c-9a5f-000000000001 2>&1) ||
		{ echo "$out"; return 1; }
	for _ in $(seq 1 50); do
		for s in /sys/block/nvme*; do
			[ "$(cat "$s/device/subsysnqn" 2> /dev/null)" = "$nqn" ] && dev=/dev/$(basename "$s")
		done
		[ -n "$dev" ] && [ -b "$dev" ] && { echo "$dev"; return 0; }
		dev=
		sleep 0.1
	done
	echo "no block device for $nqn"
	return 1
}

# eco_counter DEVICE NAME: one of the device's counters (rdma statistic), or nothing.
eco_counter() {
	rdma statistic show link "$1/1" 2> /dev/null |
		awk -v n="$2" '{ for (i = 1; i < NF; i++) if ($i == n) print $(i + 1) }'
}

# eco_ucx_env DEVICE: UCX's settings for a run on DEVICE alone, over rc_verbs (with ud_verbs
# for UCP's wireup), no shared memory. UCX's UD checks each datagram's destination against the
# packet type mlx5 reports in a receive's SL bits; rxe reports none, and UCX would drop all of
# rxe's datagrams: the check is off for rxe (pfnic reports the type as mlx5 does).
eco_ucx_env() {
	echo "UCX_NET_DEVICES=$1:1 UCX_TLS=rc_verbs,ud_verbs"
	case $1 in rxe*) echo UCX_UD_VERBS_ETH_DGID_CHECK=n ;; esac
}

# eco_wait_listen PORT: until an rdma_cm ID or a TCP socket listens on PORT (10 s at most).
eco_wait_listen() {
	for _ in $(seq 1 100); do
		rdma resource show cm_id 2> /dev/null | grep -q "state LISTEN .*:$1 " && return 0
		ss -ltn 2> /dev/null | grep -q ":$1 " && return 0
		sleep 0.1
	done
	return 1
}
