#!/bin/bash
# fuzz.sh SEED CALLS PROCS THREADS: pfnic_fuzz against pfnic0 (loaded, with ummunotify), in a
# memory cgroup of its own, then what must hold once it is done, as TAP: every process ran its
# calls, nothing of pfnic0 is left in the kernel's resource tracker, and the module unloads. The fuzzer's own TAP and
# the last lines of each process's log (the calls before a failure) become comments.
seed=${1:?usage: fuzz.sh SEED CALLS PROCS THREADS} calls=${2:?} procs=${3:?} threads=${4:?}
log=/tmp/pfnic-fuzz.log
. test/guest/nothing-left.sh
echo "TAP version 13"
echo "1..3"
# The fuzzers run in a memory cgroup of half the guest's available memory: what the kernel
# allocates for their objects is charged to it, and a random length can ask for gigabytes of
# an ODP MR's tables. In the cgroup such a registration fails with ENOMEM, as it must, where
# the whole guest would have its OOM killer end the run (each fuzzer also keeps its MRs'
# tables under a budget: pfnic_fuzz.c, MR_TABLE_BUDGET).
cg=/sys/fs/cgroup/pfnic-fuzz
half=$(awk '/^MemAvailable:/ {print int($2 / 2) "K"}' /proc/meminfo)
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p "$cg" && echo +memory > /sys/fs/cgroup/cgroup.subtree_control && echo "$half" > "$cg/memory.max" ||
	echo "# no memory cgroup for the fuzzers"
(
	echo "$BASHPID" > "$cg/cgroup.procs" 2> /dev/null
	exec build/cmake/tests/pfnic_fuzz -d pfnic0 -g 1 --seed "$seed" --calls "$calls" --procs "$procs" \
		--threads "$threads" --log "$log"
) > /tmp/pfnic-fuzz.out 2>&1
rc=$?
releases=$(cat "$log"* 2> /dev/null | grep -c "release all")
echo "# the fuzzers' memory cgroup: $half at most, $(cat "$cg/memory.peak" 2> /dev/null || echo '?') bytes at the peak; everything let go at a quarter full $releases times"
rmdir "$cg" 2> /dev/null
sed 's/^/# /' /tmp/pfnic-fuzz.out
if [ $rc = 0 ]; then
	echo "ok 1 - $procs processes from seed $seed made $calls calls each, with $threads memory threads"
else
	for f in "$log"*; do echo "# the last calls in $f:"; tail -n 5 "$f" | sed 's/^/#   /'; done
	echo "not ok 1 - $procs processes from seed $seed made $calls calls each (replay: pfnic_fuzz --seed $seed --calls $calls --procs $procs)"
fi
nothing_left 2
