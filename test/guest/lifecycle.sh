#!/bin/bash
# lifecycle.sh: pfnic devices and the module going away under live users, as TAP.
# Needs pfnic.ko loaded with pfnic0 on d0 (test/vm/guest pfnic netdev=d0).
echo "TAP version 13"
echo "1..8"
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
fail=0
ko=build/driver/$PFNIC_KERNEL/pfnic.ko

# 1. a process killed in the middle of ODP traffic releases everything
timeout 60 ib_write_bw -d pfnic0 -x 1 -F --odp -D 20 -p 19001 > /dev/null 2>&1 &
srv=$!
sleep 1
timeout 60 ib_write_bw -d pfnic0 -x 1 -F --odp -D 20 -p 19001 127.0.0.1 > /dev/null 2>&1 &
cli=$!
sleep 3
wqes() { rdma statistic show link pfnic0/1 | grep -o 'send_wqes [0-9]*' | cut -d' ' -f2; }
before=$(wqes)
sleep 1
after=$(wqes)
pkill -9 -x ib_write_bw
wait $cli $srv 2> /dev/null
[ "${after:-0}" -gt "${before:-0}" ]
ok $? "traffic was running when the processes were killed ($before -> $after send WQEs)"
left=$(test/vm/guest released pfnic0)
ok $? "the killed processes left nothing behind: $left"

# held_by_process: whether a process holds a QP of pfnic0 now (rdma's resource tracker).
held_by_process() {
	for _ in $(seq 1 50); do
		rdma resource show qp link pfnic0/1 2> /dev/null | grep -q 'pid [1-9]' && return 0
		sleep 0.2
	done
	return 1
}

# 2. rdma link delete with a process holding resources (a pingpong server waiting)
timeout 60 ibv_rc_pingpong -d pfnic0 -g 1 -p 19002 > /dev/null 2>&1 &
srv=$!
held_by_process
ok $? "a pingpong server holds a QP of pfnic0: $(rdma resource show qp link pfnic0/1 | head -n 1)"
timeout 20 rdma link delete pfnic0
ok $? "rdma link delete pfnic0 returns while a process uses it"
pkill -9 -x ibv_rc_pingpong
wait $srv 2> /dev/null
[ ! -e /sys/class/infiniband/pfnic0 ]
ok $? "pfnic0 is gone"

# 3. module unload with a device and a live user
rdma link add pfnic0 type pfnic netdev d0
ok $? "pfnic0 is made again"
timeout 60 ibv_rc_pingpong -d pfnic0 -g 1 -p 19003 > /dev/null 2>&1 &
srv=$!
held_by_process
ok $? "a pingpong server holds a QP of the new pfnic0"
timeout 20 rmmod pfnic
rc=$?
pkill -9 -x ibv_rc_pingpong
wait $srv 2> /dev/null
[ $rc = 0 ] && [ ! -e /sys/module/pfnic ]
ok $? "rmmod pfnic with a device in use unloads it"
exit $fail
