# nothing_left N: sourced by the guest scripts that end a run against pfnic0. Prints TAP
# points N and N+1: nothing of pfnic0 is left in the kernel's resource tracker, and pfnic.ko
# unloads.
nothing_left() {
	local left
	if left=$(test/vm/guest released pfnic0); then
		echo "ok $1 - nothing of pfnic0 is left: $left"
	else
		echo "not ok $1 - pfnic0 still has objects: $left"
	fi
	if timeout 60 rmmod pfnic && [ ! -e /sys/module/pfnic ]; then
		echo "ok $(($1 + 1)) - pfnic.ko unloads"
	else
		echo "not ok $(($1 + 1)) - pfnic.ko does not unload"
	fi
}
