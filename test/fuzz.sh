#!/usr/bin/env bash
# fuzz.sh [-n CALLS] [-s SEED] [-p PROCS] [-t THREADS] [KERNEL...]: pfnic_fuzz at length, in a
# guest of each kernel (default: every kernel of the matrix, the debug kernel included):
# CALLS calls in all (default 1,000,000), shared by PROCS processes (4) with THREADS memory
# threads each (2), from SEED (the date's, printed). Each guest then checks that nothing of
# pfnic0 is left and the module unloads; the rig fails it on any oops, warning, KASAN,
# lockdep or kmemleak report. Run test/setup.sh first. Replay a failure with the same
# -s, -n and -p on that kernel.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
calls=1000000 seed=$(date +%Y%m%d) procs=4 threads=2
while getopts n:s:p:t: o; do
	case $o in
	n) calls=$OPTARG ;;
	s) seed=$OPTARG ;;
	p) procs=$OPTARG ;;
	t) threads=$OPTARG ;;
	*) echo "usage: test/fuzz.sh [-n CALLS] [-s SEED] [-p PROCS] [-t THREADS] [KERNEL...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
. test/vm/lib.sh
echo "# seed $seed, $calls calls in $procs processes"
each_kernel "--numa --timeout ${PFNIC_FUZZ_TIMEOUT:-14400}" \
	"test/vm/guest rxe >/dev/null && test/vm/guest pfnic netdev=d0 && test/vm/guest ummunotify && exec test/guest/fuzz.sh $seed $((calls / procs)) $procs $threads" \
	"$@"
