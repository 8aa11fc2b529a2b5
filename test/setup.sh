#!/usr/bin/env bash
# setup.sh: install and build everything pfnic needs on a Debian bookworm machine (as root).
# Idempotent: a second run installs, downloads and rebuilds nothing that is already there.
# Phases, each timed: packages (apt), node modules (npm), kernels (the VM matrix),
# build (addon, TypeScript, pfnic.ko for every kernel).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# Debian packages: the VM rig (qemu, busybox, kernels, and what building the debug kernel
# takes), rdma-core, the build tools, valgrind (the ummunotify benchmark), chromium (the
# dashboard's browser test), Prometheus (the lab test runs the Grafana dashboard's queries on
# it), and the RDMA software the ecosystem and pyverbs groups run on pfnic (rdma_cm's tools,
# libfabric, UCX, Open MPI and its compiler wrapper for mpi_verify, NVMe over Fabrics' host
# tools and fio, pyverbs).
APT_PACKAGES=(
	qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static cpio kmod
	bc bison flex libelf-dev libssl-dev
	rdma-core ibverbs-utils ibverbs-providers libibverbs-dev perftest iproute2 numactl
	rdmacm-utils libfabric-bin ucx-utils openmpi-bin libopenmpi-dev nvme-cli fio python3-pyverbs
	build-essential cmake ninja-build pkg-config libmnl-dev xz-utils zstd valgrind chromium prometheus
	debian-archive-keyring ca-certificates
	debhelper dh-dkms dkms lintian
)

phase() {
	local name=$1 t0
	shift
	t0=$(date +%s)
	"$@"
	printf 'setup: %-13s %4ss\n' "$name" $(($(date +%s) - t0))
}

install_packages() {
	local missing=() p
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f '${Status}' "$p" 2> /dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || { echo "setup: run as root to install: ${missing[*]}" >&2; exit 1; }
	echo "setup: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
	# Debian's prometheus package starts a server of its own (port 9090): the tests start
	# theirs (their own port and storage), so the one just installed is stopped and stays off
	if [[ " ${missing[*]} " == *" prometheus "* ]]; then
		if [ -d /run/systemd/system ]; then
			systemctl disable --now prometheus.service > /dev/null 2>&1 || true
		elif [ -x /etc/init.d/prometheus ]; then
			/etc/init.d/prometheus stop > /dev/null 2>&1 || true
			update-rc.d prometheus disable > /dev/null 2>&1 || true
		fi
	fi
}

check_node() {
	local v
	v=$(node -p 'process.versions.node' 2> /dev/null) || { echo "setup: Node.js 20.17 or newer is needed" >&2; exit 1; }
	node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 17) ? 0 : 1)' ||
		{ echo "setup: Node.js $v is too old; pfnic needs 20.17 or newer" >&2; exit 1; }
}

install_node_modules() {
	# npm ci only when the lockfile changed since the last install.
	if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
		return 0
	fi
	npm ci --no-audit --no-fund --loglevel=error
}

build_all() {
	# configure every time (about a second), so changed CMake options are always taken
	{ npm run -s build:addon-configure && npm run -s build:addon-compile; } > build/cmake-js.log 2>&1 ||
		{ cat build/cmake-js.log >&2; exit 1; }
	npx --no-install tsc -p tsconfig.json
	test/vm/build-driver.sh
}

mkdir -p build
phase packages install_packages
check_node
phase node-modules install_node_modules
phase kernels test/vm/fetch-kernels.sh
phase build build_all
