#!/bin/sh
# lab-guest.sh PORT [TOKEN [READ_TOKEN]]: the lab's guest side (test/lab.sh, and the
# dashboard's browser test): rxe0 and pfnic0 on a dummy netdev, the NIC that carries the
# forwarded port, a demo workload, then the API in the foreground (with TOKEN, an admin's, the
# routes that change the host are on; with READ_TOKEN, reading needs a token too). The workload: an ODP MR of 8 MiB, on node 1 when the guest has one (the DIMM of
# run.sh --numa --dimm, which the dashboard can take offline), whose pages are given back
# and faulted in again every second, and moved between the nodes every 5 s (unless
# PFNIC_LAB_MIGRATE=0); with PFNIC_LAB_MRS=N, N more MRs of a page each; and a process
# watching 64 ranges through /dev/ummunotify.
set -e
port=${1:-8080}
token=${2:-}
read_token=${3:-}
test/vm/guest rxe
test/vm/guest pfnic netdev=d0
test/vm/guest net
echo "lab: guest $(uname -r): modules $(lsmod | awk '$1 ~ /^(pfnic|rdma_rxe)$/ {print $1}' | sort | tr '\n' ' ')"
echo "lab: ibv_devinfo -v inside the guest, to compare with the API:"
ibv_devinfo -v

node=
[ -d /sys/devices/system/node/node1 ] && node="-N 1"
# shellcheck disable=SC2086 # $node is an option and its value, or nothing
(while sleep 1; do echo dontneed; echo prefetch; done) |
	build/cmake/tests/mr_hold -d pfnic0 -p 256 -o 8192 -t 8192 $node ${PFNIC_LAB_MRS:+-m "$PFNIC_LAB_MRS"} > /dev/null &
holder=$!
if [ -n "$node" ] && [ "${PFNIC_LAB_MIGRATE:-1}" = 1 ]; then
	(while sleep 5; do
		migratepages "$holder" 1 0 2> /dev/null || true
		sleep 5
		migratepages "$holder" 0 1 2> /dev/null || true
	done) &
fi
echo "lab: a workload churns an ODP MR on pfnic0${node:+ and moves it between nodes 0 and 1}"
# a registration cache's view of memory: 64 ranges watched through /dev/ummunotify
test/vm/guest ummunotify
sleep 1000000 | build/cmake/tests/ummunotify --hold 64 > /dev/null &
echo "lab: a process watches 64 ranges through /dev/ummunotify"
echo "lab: API listening on port $port (forwarded to the host's 127.0.0.1:$port); dashboard at /"
anonymous_read=true
[ -n "$read_token" ] && anonymous_read=false
PORT=$port HOST=0.0.0.0 PFNIC_API_TOKEN=$token PFNIC_API_READ_TOKEN=$read_token PFNIC_ANONYMOUS_READ=$anonymous_read \
	exec node dist/api/src/server.js
