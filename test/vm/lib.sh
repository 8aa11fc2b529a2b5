# Shared by the rig's scripts: where things live, and how to read the kernel matrix.
# shellcheck shell=bash

RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$RIG_DIR/../.." && pwd)
# Everything downloaded or generated for the VMs lives here (ignored by git), so a second
# run neither downloads nor rebuilds what it already has.
CACHE=${PFNIC_CACHE:-$TOP/.cache}
# Kernels built from source take long enough to build that they must outlive the checkout
# (CI clones afresh each run): they live in the user's cache, shared by every checkout.
if [ -n "${PFNIC_BUILT_CACHE:-}" ]; then
	BUILT_CACHE=$PFNIC_BUILT_CACHE
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
	BUILT_CACHE=$XDG_CACHE_HOME/pfnic
elif [ -n "${HOME:-}" ] && [ "$HOME" != / ]; then
	BUILT_CACHE=$HOME/.cache/pfnic
else
	BUILT_CACHE=/var/cache/pfnic
fi
MATRIX=$RIG_DIR/kernels.json

# Debian builds its newer kernels with a newer gcc than bookworm has: out-of-tree modules for
# them are built with the host's gcc, with the two options whose flags it does not know off
# (the module is compatible: same ABI, checked by loading it in that kernel).
ARCHIVE_KERNEL_MAKE_FLAGS=(CC=gcc CONFIG_CC_HAS_MIN_FUNCTION_ALIGNMENT= CONFIG_DEBUG_INFO_BTF_MODULES=
	KCFLAGS=-Wno-attributes)

rig_log() { printf 'rig: %s\n' "$*" >&2; }
rig_die() { printf 'rig: error: %s\n' "$*" >&2; exit 1; }

# matrix_names: the kernel names of the matrix, in order.
matrix_names() {
	node -e 'for (const k of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) console.log(k.name)' "$MATRIX"
}

# matrix_get NAME FIELD: one field of a matrix entry (arrays print one item a line).
matrix_get() {
	node -e '
		const [file, name, field] = process.argv.slice(1);
		const k = JSON.parse(require("fs").readFileSync(file, "utf8")).find((e) => e.name === name);
		if (!k) { console.error(`no kernel "${name}" in the matrix`); process.exit(2); }
		const v = k[field];
		if (v === undefined) process.exit(0);
		console.log(Array.isArray(v) ? v.join("\n") : String(v));
	' "$MATRIX" "$1" "$2"
}

# kernel_dir NAME: where a kernel's unpacked tree, vmlinux and initramfs are kept.
kernel_dir() {
	if [ "$(matrix_get "$1" source)" = build ]; then
		printf '%s/kernels/%s\n' "$BUILT_CACHE" "$1"
	else
		printf '%s/kernels/%s\n' "$CACHE" "$1"
	fi
}

# kernel_release NAME: its `uname -r`, once fetched.
kernel_release() {
	local f
	f=$(kernel_dir "$1")/release
	[ -s "$f" ] || rig_die "kernel $1 is not prepared: run test/vm/fetch-kernels.sh $1"
	cat "$f"
}

# kernel_root NAME: the directory holding lib/modules/<release> and usr/src (empty = host /).
kernel_root() {
	if [ "$(matrix_get "$1" source)" = host ]; then
		printf '\n'
	else
		printf '%s/tree\n' "$(kernel_dir "$1")"
	fi
}

# kernel_build_dir NAME: the kbuild tree to build out-of-tree modules against.
kernel_build_dir() {
	local rel root
	rel=$(kernel_release "$1")
	root=$(kernel_root "$1")
	printf '%s/usr/src/linux-headers-%s\n' "$root" "$rel"
}

# elapsed SECONDS_START: whole seconds since then, for phase timings.
elapsed() { echo $(($(date +%s) - $1)); }

# each_kernel "RUN OPTIONS" COMMAND [KERNEL...]: runs the shell COMMAND in a guest of each
# kernel (default: every kernel of the matrix) with test/vm/run.sh's RUN OPTIONS (split on
# spaces), one after the other, saying each one's exit status and time; ends with "N passed,
# N failed" and fails if any did. For the long runs (test/fuzz.sh, test/soak.sh).
each_kernel() {
	local options=$1 command=$2 k t0 rc failed=0 kernels
	shift 2
	kernels=("$@")
	[ ${#kernels[@]} -gt 0 ] || mapfile -t kernels < <(matrix_names)
	for k in "${kernels[@]}"; do
		t0=$(date +%s)
		# shellcheck disable=SC2086 # the options are words
		"$RIG_DIR/run.sh" $options "$k" -- sh -c "$command"
		rc=$?
		echo "# kernel $k: exit $rc after $(elapsed "$t0") s"
		[ $rc = 0 ] || failed=$((failed + 1))
	done
	echo "$((${#kernels[@]} - failed)) passed, $failed failed"
	[ $failed = 0 ]
}
