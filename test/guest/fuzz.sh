#!/bin/bash
# fuzz.sh SEED CALLS PROCS THREADS: pfnic_fuzz against pfnic0 (loaded, with ummunotify), in a
# memory cgroup of its own, then what must hold once it is done, as TAP: every process ran its
# calls, nothing of pfnic0 is left in the kernel's resource tracker, and the module unloads. The fuzzer's own TAP and
# the last lines of each process's log (the calls before a failure) become comments.
seed=${1:?usage: fuzz.sh SEED CALLS PROCS THREADS} calls=${2:?} procs=${3:?} threads=${4:?}
log=/tmp/pfnic-fuzz.log
. test/guest/nothing-left.sh
echo "TAP version 13"
echo "1..4"
# The fuzzers run in memory cgroups, each its own, sharing half the guest's available memory:
# what the kernel allocates for their objects is charged there, and a random length can ask
# for gigabytes of an ODP MR's tables. In the cgroup such a registration fails with ENOMEM, as
# it must, where the whole guest would have its OOM killer end the run; each fuzzer also lets
# all it holds go when its cgroup is a quarter full (pfnic_fuzz.c, mind_the_cgroup).
cg=/sys/fs/cgroup/pfnic-fuzz
half=$(awk '/^MemAvailable:/ {print int($2 / 2) "K"}' /proc/meminfo)
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
cgroup=()
if mkdir -p "$cg" && echo +memory > /sys/fs/cgroup/cgroup.subtree_control && echo "$half" > "$cg/memory.max" &&
	echo +memory > "$cg/cgroup.subtree_control"; then
	cgroup=(--cgroup "$cg")
else
	echo "# no memory cgroup for the fuzzers"
fi
build/cmake/tests/pfnic_fuzz -d pfnic0 -g 1 --seed "$seed" --calls "$calls" --procs "$procs" \
	--threads "$threads" --log "$log" "${cgroup[@]}" > /tmp/pfnic-fuzz.out 2>&1
rc=$?
releases=$(cat "$log"* 2> /dev/null | grep -c "release all")
echo "# the fuzzers' memory cgroups: $half at most, $(cat "$cg/memory.peak" 2> /dev/null || echo '?') bytes at the peak; everything let go at a quarter full $releases times"
sed 's/^/# /' /tmp/pfnic-fuzz.out
if [ $rc = 0 ]; then
	echo "ok 1 - $procs processes from seed $seed made $calls calls each, with $threads memory threads"
else
	for f in "$log"*; do echo "# the last calls in $f:"; tail -n 5 "$f" | sed 's/^/#   /'; done
	echo "not ok 1 - $procs processes from seed $seed made $calls calls each (replay: pfnic_fuzz --seed $seed --calls $calls --procs $procs)"
fi
# Kernel memory still charged to the fuzzers' cgroups once they all exited is memory the
# kernel kept for objects they no longer have: a leak (the release kernels have no kmemleak).
# Frees after an RCU grace period or from a workqueue get a few seconds, and memory.stat is
# flushed every 2 s.
if [ ${#cgroup[@]} = 0 ]; then
	echo "ok 2 # SKIP no memory cgroup to count the kernel's memory in"
else
	for _ in $(seq 20); do
		kernel=$(awk '$1 == "kernel" {print $2}' "$cg/memory.stat")
		[ "$kernel" -lt $((1 << 20)) ] && break
		sleep 0.5
	done
	if [ "$kernel" -lt $((1 << 20)) ]; then
		echo "ok 2 - the kernel keeps no memory for the fuzzers once they exited ($kernel bytes charged)"
	else
		sed -n 's/^\(kernel\|slab\|vmalloc\|percpu\|sock\|kernel_stack\|pagetables\) /#   &/p' "$cg/memory.stat"
		echo "not ok 2 - the kernel keeps $kernel bytes charged to the fuzzers after they exited"
	fi
fi
rmdir "$cg"/fuzzer* "$cg" 2> /dev/null
nothing_left 3
