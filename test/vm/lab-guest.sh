#!/bin/sh
# lab-guest.sh PORT: the lab's guest side (test/lab.sh): rxe0 on a dummy netdev, pfnic.ko,
# the NIC that carries the forwarded port, then the API in the foreground.
set -e
port=${1:-8080}
test/vm/guest rxe
test/vm/guest pfnic
test/vm/guest net
echo "lab: guest $(uname -r): modules $(lsmod | awk '$1 ~ /^(pfnic|rdma_rxe)$/ {print $1}' | sort | tr '\n' ' ')"
echo "lab: ibv_devinfo -v inside the guest, to compare with the API:"
ibv_devinfo -v
echo "lab: API listening on port $port (forwarded to the host's 127.0.0.1:$port)"
PORT=$port HOST=0.0.0.0 exec node dist/api/src/server.js
