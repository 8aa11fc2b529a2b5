#!/bin/bash
# packages.sh DEB_DIR [--prebuilt TARBALL] [--late-headers TREE] [--make-args ARGS]: pfnic's
# Debian packages on a host, as TAP: installed (DKMS builds the modules for this kernel), used
# with no environment variable (modprobe as /etc/modprobe.d/pfnic.conf says, ibv_devinfo,
# ibv_rc_pingpong -o, a program built with pkg-config against the registration cache), the
# control plane's unit verified and its server started as the unit says, then everything
# purged and checked gone.
# The guest's root is a throwaway overlay, so installing there changes nothing of the host.
#
# --prebuilt TARBALL: DKMS's build for this kernel was done on the host
#   (test/vm/dkms-prebuild.sh: a build under TCG takes a quarter of an hour); the tarball
#   goes where the package's postinst has DKMS load prebuilt modules from, and DKMS
#   installs them.
# --late-headers TREE: this kernel's headers are not where its build link points when the
#   packages go in (DKMS must skip it and say why); they are then installed from TREE's
#   usr/src, as a header package does, and DKMS's kernel hook must build the modules.
# --make-args ARGS: extra make arguments for DKMS's build (an /etc/dkms/pfnic.conf, as an
#   admin would write): the rig's newer kernels were built by a newer gcc than this host has.
set -u
debs=${1:?usage: packages.sh DEB_DIR [--prebuilt TARBALL] [--late-headers TREE] [--make-args ARGS]}
shift
late_tree='' make_args='' prebuilt=''
while [ $# -gt 0 ]; do
	case $1 in
	--prebuilt) prebuilt=$2; shift 2 ;;
	--late-headers) late_tree=$2; shift 2 ;;
	--make-args) make_args=$2; shift 2 ;;
	*) echo "packages.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

echo "TAP version 13"
n=0 failed=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
note() { sed 's/^/# /'; }
started=$(date +%s)
took() { echo "# $1 took $(($(date +%s) - started)) s"; started=$(date +%s); }

release=$(uname -r)
packages=(pfnic-dkms pfnic-ibverbs-provider libpfnic-regcache0 libpfnic-regcache-dev pfnic-control)
files=()
for p in "${packages[@]}"; do
	f=$(ls "$debs"/"${p}"_*.deb 2> /dev/null | head -1)
	[ -n "$f" ] || { echo "Bail out! no $p package in $debs"; exit 1; }
	files+=("$f")
done
unset RDMAV_DRIVERS IBV_CONFIG_DIR

# What a purge must leave as it was: the names under the directories the packages write to
# (package managers' own records aside).
snapshot() {
	{
		find /etc /var/lib /usr/lib/pfnic-control "/lib/modules/$release" \
			/usr/lib/x86_64-linux-gnu/libibverbs /usr/include/pfnic -xdev
		find /usr/src -maxdepth 1
	} 2> /dev/null |
		grep -Ev '^/var/lib/(dpkg|apt|ucf|systemd/deb-systemd-helper-(enabled|masked))(/|$)|^/var/lib/dkms/mok\.(key|pub)$|^/etc/ld\.so\.cache$|^/lib/modules/[^/]*/modules\.' |
		sort
}
# man-db's trigger re-indexes every manual page at each install and purge, a minute or more
# under TCG: it does so while this file exists (the debconf answer only writes or removes it
# when man-db is configured). Nothing here asks a question, and no terminal would answer it.
rm -f /var/lib/man-db/auto-update
export DEBIAN_FRONTEND=noninteractive
snapshot > /tmp/before-install
took "listing what is there"

# --- install --------------------------------------------------------------------------------
if [ -n "$prebuilt" ]; then
	version=$(dpkg-deb -f "${files[0]}" Version)
	install -D -m 0644 "$prebuilt" "/usr/share/pfnic-dkms/pfnic-${version%%-*}.dkms.tar.gz"
fi
if [ -n "$late_tree" ]; then
	# the build link must lead nowhere, as on a host whose headers are not installed
	[ ! -e "/lib/modules/$release/build/include" ]
	ok $? "no headers for $release yet"
fi
dpkg -i "${files[@]}" > /tmp/install.log 2>&1
ok $? "dpkg -i ${packages[*]}"
note < /tmp/install.log
took "installing"

[ -z "$(lsmod | grep -E '^(pfnic|ummunotify) ')" ]
ok $? "nothing was loaded at install"

if [ -n "$late_tree" ]; then
	grep -q "pfnic-dkms: .*headers are missing" /tmp/install.log
	ok $? "the install said the running kernel's headers are missing and what to do"
	[ ! -e "/lib/modules/$release/updates/dkms/pfnic.ko" ]
	ok $? "and built nothing for it"
	# install the headers as linux-headers-<release> would (the build link is relative)
	for d in "$late_tree"/usr/src/*; do
		ln -s "$d" "/usr/src/$(basename "$d")"
	done
	if [ -n "$make_args" ]; then
		mkdir -p /etc/dkms
		printf 'MAKE[0]="make KDIR=${kernel_source_dir} %s"\n' "$make_args" > /etc/dkms/pfnic.conf
	fi
	# what a header package's postinst runs
	/etc/kernel/header_postinst.d/dkms "$release" > /tmp/hook.log 2>&1
	ok $? "the kernel headers' hook ran DKMS for $release"
	note < /tmp/hook.log
	took "building through the headers' hook"
fi

dkms status pfnic > /tmp/status 2>&1
grep -q "pfnic/.*, $release, .*: installed" /tmp/status
ok $? "dkms status: pfnic installed for $release"
note < /tmp/status
for m in pfnic ummunotify; do
	path=$(modinfo -F filename "$m" 2> /dev/null)
	[ "$path" = "/lib/modules/$release/updates/dkms/$m.ko" ]
	ok $? "modprobe finds DKMS's $m.ko ($path)"
done

# --- the modules and the provider, as an admin uses them -----------------------------------
ip link set lo up && modprobe dummy && ip link add d0 type dummy && echo 0 > /proc/sys/net/ipv6/conf/d0/accept_dad &&
	ip link set d0 up && ip addr add 192.0.2.1/24 dev d0
ok $? "a netdev d0"
sed -i 's/^#options pfnic netdev=eth0$/options pfnic netdev=d0/' /etc/modprobe.d/pfnic.conf
grep -q '^options pfnic netdev=d0$' /etc/modprobe.d/pfnic.conf
ok $? "/etc/modprobe.d/pfnic.conf takes the netdev its comment shows"
modprobe pfnic && modprobe ummunotify
ok $? "modprobe pfnic; modprobe ummunotify"
[ -d /sys/module/ib_uverbs ]
ok $? "pfnic.conf's softdep loaded ib_uverbs with it"
# what udev would do with pfnic0's add event (rdma-core's rules then load roce.conf's modules)
udevadm test --action=add /sys/class/infiniband/pfnic0 > /tmp/udev 2>&1
grep -q '^ID_RDMA_ROCE=1$' /tmp/udev
ok $? "udev's rules mark pfnic0 as a RoCE device (76-pfnic.rules)"
grep -E 'ID_RDMA|SYSTEMD_WANTS|76-pfnic' /tmp/udev | head -5 | note
for _ in $(seq 1 50); do [ -e /sys/class/infiniband/pfnic0 ] && [ -c /dev/ummunotify ] && break; sleep 0.1; done
[ -e /sys/class/infiniband/pfnic0 ] && [ -c /dev/ummunotify ]
ok $? "pfnic0 is on d0 and /dev/ummunotify is there"

ls /etc/libibverbs.d/pfnic.driver /usr/lib/x86_64-linux-gnu/libibverbs/libpfnic-rdmav*.so 2>&1 | note
ibv_devinfo -v -d pfnic0 > /tmp/devinfo 2>&1
ok $? "ibv_devinfo -v -d pfnic0, with no RDMAV_DRIVERS"
grep -q 'hca_id:[[:space:]]*pfnic0' /tmp/devinfo && grep -q 'ODP_SUPPORT' /tmp/devinfo &&
	grep -A 8 'rc_odp_caps' /tmp/devinfo | grep -q SUPPORT_SEND
ok $? "it lists pfnic0 and its ODP capabilities"
grep -E 'hca_id|transport|node_guid|state|ODP|odp_caps|SUPPORT_' /tmp/devinfo | head -20 | note

timeout 120 ibv_rc_pingpong -d pfnic0 -g 1 -o -n 200 -s 8192 -p 18515 > /tmp/pp-server 2>&1 &
server=$!
sleep 1
timeout 120 ibv_rc_pingpong -d pfnic0 -g 1 -o -n 200 -s 8192 -p 18515 127.0.0.1 > /tmp/pp-client 2>&1
client=$?
wait $server
[ $client = 0 ] && [ $? = 0 ]
ok $? "ibv_rc_pingpong -o over pfnic0, client and server"
cat /tmp/pp-client /tmp/pp-server | note
took "using the modules and the provider"

# --- the registration cache's development package -------------------------------------------
# built as a user of the package would: pkg-config, the installed header and library
cflags=$(pkg-config --cflags pfnic-regcache) && libs=$(pkg-config --libs pfnic-regcache)
ok $? "pkg-config pfnic-regcache: $cflags $libs"
# shellcheck disable=SC2086 # the flags are words
gcc -O2 -Itest/guest $cflags test/guest/regcache_churn.c -o /tmp/regcache_churn $libs > /tmp/cc.log 2>&1
ok $? "regcache_churn builds against the shared library"
note < /tmp/cc.log
ldd /tmp/regcache_churn | grep -qE "libpfnic-regcache.so.0 => (/usr)?/lib/x86_64-linux-gnu/libpfnic-regcache.so.0"
ok $? "and links the installed libpfnic-regcache.so.0"
# shellcheck disable=SC2086
gcc -O2 -Itest/guest $cflags test/guest/regcache_churn.c -o /tmp/regcache_churn_static \
	"/usr/lib/$(gcc -print-multiarch)/libpfnic-regcache.a" $(pkg-config --libs libibverbs) -pthread > /tmp/cc.log 2>&1 &&
	! readelf -d /tmp/regcache_churn_static | grep -q libpfnic-regcache
ok $? "and against the static library, which it then does not need at run time"
note < /tmp/cc.log
timeout 300 /tmp/regcache_churn -d pfnic0 -g 1 -n 400 > /tmp/churn.log 2>&1
ok $? "regcache_churn (shared) over pfnic0: every byte checked while memory churns"
grep -E '^(not ok|# )' /tmp/churn.log | head -20 | note
took "the registration cache"

# --- the control plane ----------------------------------------------------------------------
unit=/lib/systemd/system/pfnic-control.service
getent passwd pfnic > /tmp/user
ok $? "the service's user exists: $(cat /tmp/user)"
uid=$(id -u pfnic 2> /dev/null)
[ -n "$uid" ] && [ "$uid" -lt 1000 ] && ! getent passwd pfnic | grep -qE ':/bin/(ba)?sh$'
ok $? "a system user without a login shell"
[ "$(stat -c '%U %a' /etc/pfnic/admin.token 2> /dev/null)" = "pfnic 600" ] &&
	[ "$(stat -c '%U %a' /etc/pfnic/tokens 2> /dev/null)" = "pfnic 700" ]
ok $? "the admin token and the token directory are the pfnic user's alone ($(stat -c '%n %U %a' /etc/pfnic/admin.token /etc/pfnic/tokens | tr '\n' ' '))"

systemd-analyze verify --man=no --recursive-errors=no "$unit" > /tmp/verify 2>&1
rc=$?
[ $rc = 0 ] && ! grep -q 'pfnic-control' /tmp/verify
ok $? "systemd-analyze verify pfnic-control.service: exit $rc, nothing said of it"
note < /tmp/verify
systemd-analyze security --offline=yes "$unit" 2>&1 | grep -E 'exposure level' | note

# the unit's own words: its user, environment, capabilities and command
unit_value() { sed -n "s/^$1=//p" "$unit"; }
user=$(unit_value User) group=$(unit_value Group) exec_start=$(unit_value ExecStart)
caps=$(unit_value AmbientCapabilities | tr 'A-Z' 'a-z' | sed -e 's/cap_//g' -e 's/ /,+/g')
environment=()
while IFS= read -r e; do environment+=("$e"); done < <(unit_value Environment)
[ "$user" = pfnic ] && [ -n "$exec_start" ] && [ -n "$caps" ]
ok $? "the unit runs $exec_start as $user:$group with +$caps, ${environment[*]}"
setpriv --reuid="$user" --regid="$group" --init-groups --inh-caps="+$caps" --ambient-caps="+$caps" \
	--bounding-set="-all,+$caps" --no-new-privs -- \
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${environment[@]}" $exec_start > /tmp/server.log 2>&1 &
server=$!
up=1
for _ in $(seq 1 150); do
	curl -sf http://127.0.0.1:8080/v1/health > /tmp/health 2> /dev/null && { up=0; break; }
	kill -0 $server 2> /dev/null || break
	sleep 0.2
done
ok $up "the server starts as ExecStart says and answers /v1/health"
[ $up = 0 ] || head -40 /tmp/server.log | note
pid=$(pgrep -f '^node /usr/lib/pfnic-control/dist/api/src/server.js' | head -1)
[ -n "$pid" ] && [ "$(stat -c %U "/proc/$pid")" = pfnic ]
ok $? "it runs as pfnic (pid ${pid:-none})"
[ -n "$pid" ] && grep -E '^Cap(Eff|Amb|Bnd)' "/proc/$pid/status" | note

token=$(cat /etc/pfnic/admin.token)
api() { curl -s -o /tmp/body -w '%{http_code}' "$@"; }
[ "$(api http://127.0.0.1:8080/v1/devices)" = 200 ] && jq -e 'map(.name) | index("pfnic0") != null' /tmp/body > /dev/null
ok $? "GET /v1/devices lists pfnic0"

# root's MRs and root's /dev/ummunotify: what the capabilities are for (each program holds
# what it made until its standard input ends)
exec 7> >(build/cmake/tests/mr_hold -d pfnic0 > /tmp/mr_hold.out 2>&1)
exec 8> >(build/cmake/tests/ummunotify --hold 8 > /tmp/hold.out 2>&1)
for _ in $(seq 1 100); do grep -q ready /tmp/mr_hold.out 2> /dev/null && grep -q ready /tmp/hold.out 2> /dev/null && break; sleep 0.1; done
holder=$(pgrep -f '^build/cmake/tests/ummunotify --hold 8$' | head -1)
code=$(api -H "Authorization: Bearer $token" -H 'Cache-Control: no-cache' http://127.0.0.1:8080/v1/mrs)
[ "$code" = 200 ] && jq -e '[.[] | select(.device == "pfnic0" and .lkey != null)] | length >= 2' /tmp/body > /dev/null
ok $? "with the admin token, /v1/mrs shows root's MRs on pfnic0 with their keys ($code; CAP_NET_ADMIN)"
code=$(api -H 'Cache-Control: no-cache' http://127.0.0.1:8080/v1/ummunotify)
[ "$code" = 200 ] && jq -e --argjson p "${holder:-0}" \
	'.unreadable_processes == 0 and ([.processes[] | select(.pid == $p)] | length == 1)' /tmp/body > /dev/null
ok $? "/v1/ummunotify sees root's /dev/ummunotify and reads every process ($code; CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH)"
jq -c '{unreadable_processes, error, processes: [.processes[] | {pid, command, files}]}' /tmp/body 2>&1 | head -c 600 | note
echo "the holder: pid $holder, $(head -c 200 /tmp/hold.out)" | note
exec 7>&- 8>&-

block=$(for b in /sys/devices/system/memory/memory*; do
	[ "$(cat "$b/state")" = online ] && [ "$(cat "$b/valid_zones" 2> /dev/null)" = Movable ] && basename "$b"
done | tail -1)
block=${block#memory}
if [ -n "$block" ]; then
	code=$(api -X POST -H "Authorization: Bearer $token" "http://127.0.0.1:8080/v1/memory/blocks/$block/offline")
	state=$(cat "/sys/devices/system/memory/memory$block/state")
	[ "$code" = 200 ] && [ "$state" = offline ]
	ok $? "an admin offlines memory block $block through it ($code, sysfs: $state; CAP_DAC_OVERRIDE)"
	code=$(api -X POST -H "Authorization: Bearer $token" "http://127.0.0.1:8080/v1/memory/blocks/$block/online?zone=movable")
	[ "$code" = 200 ] && [ "$(cat "/sys/devices/system/memory/memory$block/state")" = online ]
	ok $? "and onlines it again ($code)"
else
	ok 1 "a Movable memory block to offline (run the guest with --dimm)"
fi
[ "$(api http://127.0.0.1:8080/metrics)" = 200 ] && grep -q '^pfnic_' /tmp/body
ok $? "GET /metrics answers with pfnic's families"
kill $server
wait $server 2> /dev/null
grep -c '"level":[45]0' /tmp/server.log | sed 's/^/log lines at warn or error: /' | note
took "the control plane"

# --- purge ----------------------------------------------------------------------------------
modprobe -r pfnic ummunotify
ok $? "modprobe -r pfnic ummunotify"
ip link del d0
rm -f /etc/dkms/pfnic.conf
[ -z "$late_tree" ] || for d in "$late_tree"/usr/src/*; do rm -f "/usr/src/$(basename "$d")"; done
dpkg --purge "${packages[@]}" > /tmp/purge.log 2>&1
ok $? "dpkg --purge ${packages[*]}"
# the prebuilt modules were the test's, not the package's
[ -z "$prebuilt" ] || rm -rf /usr/share/pfnic-dkms
note < /tmp/purge.log
rmdir /etc/dkms 2> /dev/null
snapshot > /tmp/after-purge
diff /tmp/before-install /tmp/after-purge > /tmp/left
ok $? "the purge left nothing behind (and removed nothing else)"
note < /tmp/left
left=$(find /etc /var /tmp -xdev -user pfnic 2> /dev/null | head -5)
[ -z "$left" ]
ok $? "no file is the pfnic user's: ${left:-none}"
dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' "${packages[@]}" 2> /dev/null | grep -v '^un' > /tmp/known
[ ! -s /tmp/known ]
ok $? "dpkg knows none of the packages"
note < /tmp/known
took "purging"

echo "1..$n"
[ $failed = 0 ]
