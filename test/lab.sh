#!/usr/bin/env bash
# lab.sh: install and build everything (test/setup.sh), then start the lab: a VM running
# kernel $PFNIC_LAB_KERNEL of the matrix (default 7.x, whose rxe has ODP) with pfnic.ko and
# rxe0 loaded, two NUMA nodes (the second a hot-pluggable DIMM), a demo workload (an ODP MR
# churned and moved between the nodes) and the control plane serving its API and dashboard,
# reachable from this machine at http://127.0.0.1:$PORT (default 8080). PFNIC_API_TOKEN
# turns on the routes that change the guest (taking memory offline). Stop it with Ctrl-C.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

kernel=${PFNIC_LAB_KERNEL:-7.x}
port=${PORT:-8080}
case $port in
'' | *[!0-9]*) echo "lab: PORT must be a TCP port number, not '$port'" >&2; exit 2 ;;
esac

test/setup.sh
if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
	echo "lab: 127.0.0.1:$port is already in use; pick another with PORT=" >&2
	exit 1
fi
echo "lab: starting kernel $kernel; the dashboard will be at http://127.0.0.1:$port/ (API docs: /docs)"
# two NUMA nodes, the second a DIMM the dashboard can take offline (PFNIC_API_TOKEN)
exec test/vm/run.sh --timeout 0 --numa --dimm 384M --forward "$port" "$kernel" -- \
	test/vm/lab-guest.sh "$port" "${PFNIC_API_TOKEN:-}"
