#!/usr/bin/env bash
# soak.sh [-d SECONDS] [-s SEED] [-w WORKERS] [KERNEL...]: the race soak at length, in a
# two-node guest with a hot-pluggable DIMM of each kernel (default: every kernel of the
# matrix, the debug kernel included): pfnic_soak for SECONDS (default 600) from SEED (the
# date's, printed) with WORKERS worker processes (4); then nothing of pfnic0 may be left and
# the module must unload, and the rig fails the guest on any oops, warning, KASAN, lockdep or
# kmemleak report. Run test/setup.sh first. CI runs a 60 s slice on the newest and the debug
# kernel (test/vm/pfnic-suite.ts).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
seconds=600 seed=$(date +%Y%m%d) workers=4
while getopts d:s:w: o; do
	case $o in
	d) seconds=$OPTARG ;;
	s) seed=$OPTARG ;;
	w) workers=$OPTARG ;;
	*) echo "usage: test/soak.sh [-d SECONDS] [-s SEED] [-w WORKERS] [KERNEL...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
. test/vm/lib.sh
echo "# seed $seed, $seconds s, $workers workers"
each_kernel "--numa --dimm 384M --timeout $((seconds + 1800))" \
	"test/vm/guest rxe >/dev/null && test/vm/guest pfnic netdev=d0 && test/vm/guest zram-swap && exec test/guest/soak.sh $seconds $seed $workers" \
	"$@"
