#!/usr/bin/env bash
# run.sh [OPTIONS] NAME [--] COMMAND [ARG...]
# Boot kernel NAME of the matrix in QEMU (TCG) with the host's root as the guest's root,
# run COMMAND inside (from the top of this tree; test/vm/guest has set-up steps),
# print its output, and exit with its status.
#
# Options:
#   --mem SIZE         guest memory (default 2G)
#   --numa             two NUMA nodes of half the memory each, one CPU each
#   --dimm SIZE        add a hot-pluggable DIMM of SIZE, onlined as Movable memory; with
#                      --numa, the DIMM is node 1 on its own (no CPU, no boot memory), and
#                      node 0 has the rest
#   --qmp PATH         a QMP socket at PATH, to hot-add or remove memory from the host
#   --forward PORT     forward 127.0.0.1:PORT on the host to the guest's PORT
#   --nic              a virtio NIC that reaches nothing (a netdev with a PCI device
#                      under it, as a hardware NIC has; test/vm/guest net brings it up)
#   --link PORT:PEER:N a virtio NIC (MAC 52:54:00:00:00:0N) on an Ethernet link to one
#                      other guest: QEMU sends its frames as UDP datagrams from the host's
#                      loopback port PORT to port PEER, where the other guest's QEMU (run
#                      with --link PEER:PORT:M) takes them, and the other way round. Neither
#                      side waits for the other, and a guest booted again (see --timeout)
#                      finds the link as it was. test/vm/guest link brings it up
#   --timeout SECONDS  power the guest off after this long (default 900); a guest that has
#                      not started the command after PFNIC_BOOT_LIMIT seconds (the kernel's
#                      boot_limit in kernels.json, else 180) is booted again, three times at most
#   --console          copy the guest's kernel console to stderr as it runs
#
# Exit status: the command's; 124 if the guest timed out; 125 if it never ran the command
# or stopped without reporting; 126 if the command passed but the kernel reported an oops,
# BUG, warning, lockdep, KASAN, KFENCE, debug-objects or RCU report, a sleep in atomic
# context, a hung task, or (at the end of the run, on a kernel with kmemleak) a leak; the
# console log is printed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mem=2G numa=0 dimm= qmp= forward= nic=0 link= timeout_s=900 console=0
while [ $# -gt 0 ]; do
	case $1 in
	--mem) mem=$2; shift 2 ;;
	--numa) numa=1; shift ;;
	--dimm) dimm=$2; shift 2 ;;
	--qmp) qmp=$2; shift 2 ;;
	--forward) forward=$2; shift 2 ;;
	--nic) nic=1; shift ;;
	--link) link=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--console) console=1; shift ;;
	--) shift; break ;;
	-*) rig_die "unknown option $1" ;;
	*) break ;;
	esac
done
name=${1:?usage: run.sh [OPTIONS] NAME [--] COMMAND...}
shift
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || rig_die "no command to run in the guest"

kdir=$(kernel_dir "$name")
rel=$(kernel_release "$name")
# The uncompressed kernel through its PVH entry is faster under TCG; a kernel built here
# comes as a bzImage (see build-kernel.sh).
boot=$kdir/vmlinux
[ -s "$kdir/bzImage" ] && boot=$kdir/bzImage
[ -s "$boot" ] || rig_die "kernel $name has no vmlinux (run test/vm/fetch-kernels.sh $name)"
"$RIG_DIR/mkinitrd.sh" "$name"

# The command script, where the guest finds it through the shared root.
mkdir -p "$CACHE/run"
rundir=$(mktemp -d "$CACHE/run/vm.XXXXXX")
trap 'rm -rf "$rundir"' EXIT
log=$CACHE/logs/$name-$(date +%Y%m%d-%H%M%S)-$$.console.log
mkdir -p "$CACHE/logs"

# The guest reads this script through the 9p root, at the same path as on the host.
{
	printf 'cd %q || exit 125\n' "$TOP"
	printf 'export PFNIC_TOP=%q PFNIC_RELEASE=%q\n' "$TOP" "$rel"
	# libibverbs loads the provider built in this tree as well as the system's
	printf '[ -f build/cmake/provider/libpfnic-rdmav34.so ] && export RDMAV_DRIVERS=%q\n' \
		"$TOP/build/cmake/provider/libpfnic"
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} > "$rundir/cmd.sh"
chmod 644 "$rundir/cmd.sh"

# loglevel=5: the console gets every warning and error, where the checks below read them
# (quiet would keep WARN_ON's and lockdep's reports, which are warnings, off it), and not
# the boot's informational chatter.
append="console=ttyS0 loglevel=5 panic=-1 oops=panic pfnic.run=$rundir/cmd.sh pfnic.kernel=$name"
# On a loaded host the clocksource watchdog finds TCG's TSC unstable and switches clocks at
# run time, patching kernel text; under multi-threaded TCG another vCPU then ran a stale
# breakpoint in sched_clock_cpu and the kernel oopsed (int3). The TSC is the host's clock
# here: trusting it leaves nothing to switch.
append+=" tsc=reliable"
# What the matrix adds for this kernel (kernels.json "append").
extra=$(matrix_get "$name" append)
[ -n "$extra" ] && append+=" $extra"
# Shortly before the timeout the guest dumps its tasks to the console (see init).
[ "$timeout_s" -ge 60 ] && append+=" pfnic.dump_after=$(( timeout_s - 20 ))"
root=$(kernel_root "$name")
[ -n "$root" ] && append+=" pfnic.modroot=$root"
# PFNIC_APPEND: more of it, to look into a guest (ignore_loglevel shows the whole boot)
[ -n "${PFNIC_APPEND:-}" ] && append+=" $PFNIC_APPEND"

# the CPU model: QEMU's "max" unless the matrix says otherwise for this kernel
cpu=$(matrix_get "$name" cpu)
# Two sockets of one CPU each: with --numa each CPU is a node of its own, and two CPUs of one
# socket would share a last-level cache across nodes, which the kernel warns of at boot.
args=(-accel "tcg${PFNIC_TCG_OPTS:+,$PFNIC_TCG_OPTS}" -cpu "${cpu:-max}" -smp 2,sockets=2 -nodefaults -display none -no-reboot
	-kernel "$boot" -initrd "$kdir/initrd.cpio.gz"
	-fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap"
	-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
	-serial "file:$log" -chardev stdio,id=out,signal=off -serial chardev:out -serial "file:$rundir/rig")
if [ "$numa" = 1 ] && [ -n "$dimm" ]; then
	# the kernel allocates for itself from node 0 first, so node 1's memory holds only
	# what is placed there: a block of it onlined as Normal takes pinned pages, not slab
	args+=(-m "$mem,slots=4,maxmem=16G" -object "memory-backend-ram,id=n0,size=$mem"
		-numa node,nodeid=0,memdev=n0,cpus=0-1 -numa node,nodeid=1
		-object "memory-backend-ram,id=dimm0mem,size=$dimm"
		-device pc-dimm,id=dimm0,memdev=dimm0mem,node=1)
	append+=" memhp_default_state=online_movable"
elif [ "$numa" = 1 ]; then
	half=$(( $(numfmt --from=iec "$mem") / 2 ))
	args+=(-m "$mem" -object "memory-backend-ram,id=n0,size=$half" -object "memory-backend-ram,id=n1,size=$half"
		-numa node,nodeid=0,memdev=n0,cpus=0 -numa node,nodeid=1,memdev=n1,cpus=1)
elif [ -n "$dimm" ]; then
	args+=(-m "$mem,slots=4,maxmem=16G" -object "memory-backend-ram,id=dimm0mem,size=$dimm"
		-device pc-dimm,id=dimm0,memdev=dimm0mem)
	append+=" memhp_default_state=online_movable"
else
	args+=(-m "$mem")
fi
[ -n "$qmp" ] && args+=(-qmp "unix:$qmp,server=on,wait=off")
if [ -n "$forward" ]; then
	# restrict=on: the guest reaches nothing outside; only the forwarded port comes in.
	args+=(-netdev "user,id=lab,restrict=on,hostfwd=tcp:127.0.0.1:$forward-:$forward"
		-device virtio-net-pci,netdev=lab,romfile=)
elif [ $nic = 1 ]; then
	args+=(-netdev user,id=lab,restrict=on -device virtio-net-pci,netdev=lab,romfile=)
fi
if [ -n "$link" ]; then
	IFS=: read -r link_port link_peer link_n <<< "$link"
	[[ $link_port =~ ^[0-9]+$ && $link_peer =~ ^[0-9]+$ && $link_n =~ ^[1-9]$ ]] ||
		rig_die "--link $link: PORT:PEER:N, two UDP ports and a digit"
	args+=(-netdev "socket,id=wire,udp=127.0.0.1:$link_peer,localaddr=127.0.0.1:$link_port"
		-device "virtio-net-pci,netdev=wire,mac=52:54:00:00:00:0$link_n,romfile=")
fi
args+=(-append "$append")

: > "$log"
if [ "$console" = 1 ]; then
	tail -n +1 -F "$log" 2> /dev/null >&2 &
	tailer=$!
	trap 'kill $tailer 2> /dev/null; rm -rf "$rundir"' EXIT
fi
# Under TCG a guest can die or hang before it reaches the command: while the kernel patches
# its own text on two vCPUs at once (about one boot in twenty), and the debug kernel right
# after 'ACPI: setting ELCR' (one boot in four on some machines). Nothing has run then, so
# such a boot is retried, said aloud, up to three times; a guest that fails after the command
# has started is never retried. A kernel slow to boot (the debug kernel, on a loaded host)
# may be given longer (kernels.json).
boot_limit=${PFNIC_BOOT_LIMIT:-$(matrix_get "$name" boot_limit)}
boot_limit=${boot_limit:-180}
for attempt in 1 2 3 4; do
	set +e
	timeout --foreground -k 10 "$timeout_s" qemu-system-x86_64 "${args[@]}" < /dev/null &
	qpid=$!
	# stdio away from the caller's pipes, so nothing this leaves behind holds them open
	(
		for _ in $(seq "$boot_limit"); do
			sleep 1
			grep -q -s -E '^pfnic-rig: (running|exit)' "$rundir/rig" "$log" && exit 0
		done
		: > "$rundir/boot-hang"
		kill "$qpid"
	) < /dev/null > /dev/null 2>&1 &
	watcher=$!
	wait "$qpid"
	qrc=$?
	kill "$watcher" 2> /dev/null
	wait "$watcher" 2> /dev/null
	set -e
	grep -q -s -E '^pfnic-rig: (running|exit)' "$rundir/rig" "$log" && break
	[ "$qrc" = 124 ] && break
	if [ -f "$rundir/boot-hang" ]; then
		what="hung while booting (nothing ran after ${boot_limit}s)"
	else
		what="died while booting (qemu exit $qrc)"
	fi
	[ "$attempt" = 4 ] && break
	rm -f "$rundir/boot-hang"
	rig_log "guest $name $what, booting it again; its console: $log.boot$attempt"
	grep -E 'Oops|BUG:|panic' "$log" | head -n 3 >&2 || true
	mv "$log" "$log.boot$attempt"
	: > "$rundir/rig"
	: > "$log"
done

# from the rig's own port, which only init writes; else from the console (an older initramfs)
status=$(sed -n 's/^pfnic-rig: exit \([0-9]*\).*/\1/p' "$rundir/rig" 2> /dev/null | tail -n 1)
[ -n "$status" ] || status=$(sed -n 's/^pfnic-rig: exit \([0-9]*\).*/\1/p' "$log" | tail -n 1)
# What the kernel's checkers print when they find something: BUG: (KASAN, KFENCE, sleeping in
# atomic context, soft lockups), WARNING: (WARN_ON, lockdep, RCU, refcounts, debug objects),
# and the lines init adds for kmemleak and for lockdep having turned itself off.
splat=$(grep -n -E 'BUG:|Oops|WARNING:|Call Trace|general protection|possible circular locking|INFO: task .* blocked|detected stalls? on|UBSAN:|ODEBUG:|kernel panic|Kernel panic|^pfnic-rig: (kmemleak|lockdep):' "$log" || true)
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	rig_log "guest $name timed out after ${timeout_s}s; console log: $log"
	# from the start of the command: the tasks the guest dumped show where it hung
	if grep -q '^pfnic-rig: running' "$log"; then
		sed -n '/^pfnic-rig: running/,$p' "$log" | tail -n 250 >&2
	else
		tail -n 60 "$log" >&2
	fi
	exit 124
fi
if [ -z "$status" ]; then
	if [ -f "$rundir/boot-hang" ]; then
		rig_log "guest $name $what; console log: $log"
	else
		rig_log "guest $name stopped without reporting a status (qemu exit $qrc); console log: $log"
	fi
	# what the summary shows of it: the kernel's first report, else the console's last words
	if [ -n "$splat" ]; then
		rig_log "guest $name's kernel, first: $(printf '%s\n' "$splat" | head -n 1 | cut -c 1-200)"
	else
		rig_log "guest $name's console ended: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c 1-200)"
	fi
	tail -n 30 "$log" >&2
	exit 125
fi
if [ -n "$splat" ]; then
	rig_log "kernel $name reported a problem, first: $(printf '%s\n' "$splat" | head -n 1 | cut -c 1-200); console log: $log"
	cat "$log" >&2
	[ "$status" = 0 ] && exit 126
fi
exit "$status"
