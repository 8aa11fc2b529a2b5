#!/bin/bash
# soak.sh SECONDS SEED [WORKERS]: pfnic_soak against pfnic0 (loaded, with swap for its page-
# outs), then what must hold once it is done, as TAP: the soak's five checks, then nothing of
# pfnic0 is left in the kernel's resource tracker, and the module unloads. The rig scans the
# console for oops, warning, KASAN, lockdep and kmemleak reports after the command.
seconds=${1:?usage: soak.sh SECONDS SEED [WORKERS]} seed=${2:?} workers=${3:-4}
. test/guest/nothing-left.sh
echo "TAP version 13"
echo "1..7"
build/cmake/tests/pfnic_soak -d pfnic0 -g 1 --seconds "$seconds" --seed "$seed" \
	--workers "$workers" > /tmp/pfnic-soak.out 2>&1
rc=$?
# its checks are 1 to 5; a soak that stopped short leaves the plan unfulfilled
grep -v -E '^(TAP version|1\.\.)' /tmp/pfnic-soak.out
# what the device counted meanwhile: faults, invalidations, retries
rdma statistic show link pfnic0/1 2>&1 | sed 's/^/# /'
[ $rc = 0 ] || echo "# pfnic_soak exited $rc (replay: pfnic_soak --seconds $seconds --seed $seed --workers $workers)"
nothing_left 6
