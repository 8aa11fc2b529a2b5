#!/bin/sh
# Inside a guest booted with --dimm and --qmp: waits for the host to hot-add a DIMM over
# QMP, checks its memory blocks come online as Movable (memhp_default_state, or by hand),
# offlines them again, and prints TAP.
mem=/sys/devices/system/memory
blocks() { ls -d $mem/memory* | xargs -n 1 basename | sort; }
blocks > /tmp/blocks.before
before=$(wc -l < /tmp/blocks.before)
echo "1..3"
echo "# ready-for-hotadd: $before memory blocks"
i=0
while [ "$(blocks | wc -l)" -le "$before" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
new=$(blocks | comm -13 /tmp/blocks.before -)
count=$(echo $new | wc -w)
if [ "$count" -gt 0 ]; then
	echo "ok 1 - hot-added memory appears in the guest: $(echo $new)"
else
	echo "not ok 1 - no memory block appeared within 60 s"
fi
for b in $new; do
	[ "$(cat $mem/$b/state)" = offline ] && echo online_movable > $mem/$b/state
done
movable=0
for b in $new; do
	[ "$(cat $mem/$b/state)" = online ] && [ "$(cat $mem/$b/valid_zones)" = Movable ] && movable=$((movable + 1))
done
if [ "$count" -gt 0 ] && [ "$movable" = "$count" ]; then
	echo "ok 2 - every new block is online and Movable ($movable)"
else
	echo "not ok 2 - $movable of $count new blocks are online and Movable"
fi
offline=0
for b in $new; do echo offline > $mem/$b/state && offline=$((offline + 1)); done
if [ "$count" -gt 0 ] && [ "$offline" = "$count" ]; then
	echo "ok 3 - and every one goes offline again"
else
	echo "not ok 3 - offlined $offline of $count"
fi
