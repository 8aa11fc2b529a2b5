#!/bin/sh
# subtests.sh NAME COMMAND [NAME COMMAND...]: runs each COMMAND (sh -c) in turn in this
# guest and prints the TAP of each as a subtest called NAME, indented under it, then a line
# ok/not ok by its exit status, and the time it took as "# kernel K: NAME took N s" (the
# matrix's kernel name, as the suites print it for groups in guests of their own). Used where
# booting costs most (the debug kernel: its checkers at boot, kmemleak's scan at the end), so
# several groups share one guest. Exit status: 0 if every command exited 0, 1 otherwise.
set -u

[ $(($# % 2)) -eq 0 ] && [ $# -gt 0 ] || { echo "usage: subtests.sh NAME COMMAND [NAME COMMAND...]" >&2; exit 2; }

n=0 failed=0
echo "TAP version 14"
while [ $# -gt 0 ]; do
	name=$1 command=$2
	shift 2
	n=$((n + 1))
	echo "# Subtest: $name"
	start=$(date +%s)
	# The command's TAP is indented under the subtest; its exit status comes out through a
	# file, as a pipeline's status is its last command's.
	status_file=/tmp/subtests.$$.status
	{ sh -c "$command" 2>&1; echo $? > "$status_file"; } | sed 's/^/    /'
	status=$(cat "$status_file")
	rm -f "$status_file"
	if [ "$status" = 0 ]; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name # exit status $status"
		failed=1
	fi
	echo "# kernel ${PFNIC_KERNEL:-?}: $name took $(($(date +%s) - start)) s"
done
echo "1..$n"
exit $failed
