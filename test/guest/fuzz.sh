#!/bin/bash
# fuzz.sh SEED CALLS PROCS THREADS: pfnic_fuzz against pfnic0 (loaded, with ummunotify), then
# what must hold once it is done, as TAP: every process ran its calls, nothing of pfnic0 is
# left in the kernel's resource tracker, and the module unloads. The fuzzer's own TAP and
# the last lines of each process's log (the calls before a failure) become comments.
seed=${1:?usage: fuzz.sh SEED CALLS PROCS THREADS} calls=${2:?} procs=${3:?} threads=${4:?}
log=/tmp/pfnic-fuzz.log
. test/guest/nothing-left.sh
echo "TAP version 13"
echo "1..3"
build/cmake/tests/pfnic_fuzz -d pfnic0 -g 1 --seed "$seed" --calls "$calls" --procs "$procs" \
	--threads "$threads" --log "$log" > /tmp/pfnic-fuzz.out 2>&1
rc=$?
sed 's/^/# /' /tmp/pfnic-fuzz.out
if [ $rc = 0 ]; then
	echo "ok 1 - $procs processes from seed $seed made $calls calls each, with $threads memory threads"
else
	for f in "$log"*; do echo "# the last calls in $f:"; tail -n 5 "$f" | sed 's/^/#   /'; done
	echo "not ok 1 - $procs processes from seed $seed made $calls calls each (replay: pfnic_fuzz --seed $seed --calls $calls --procs $procs)"
fi
nothing_left 2
