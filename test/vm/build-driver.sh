#!/usr/bin/env bash
# build-driver.sh [--source DIR --out DIR] [NAME...]: build driver/ (pfnic.ko, ummunotify.ko)
# against each kernel of the matrix, and the rig's own test module (test/guest/kmod: rig_splat.ko).
# Output: build/driver/<name>/{pfnic,ummunotify}.ko and build/driver/<name>/kmod/rig_splat.ko. One
# source tree serves every kernel; Kbuild writes its objects beside the sources, so each kernel
# builds in its own copy of driver/. --source and --out build another tree's driver (an older
# revision's, for test/bench/against.sh) into OUT/<name>/ instead; the rig's module is then left out.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

source_dir=$TOP/driver out_dir=$TOP/build/driver rig_module=1

build_one() {
	local name=$1 kdir out flags=()
	kdir=$(kernel_build_dir "$name")
	[ -d "$kdir" ] || rig_die "no kernel headers at $kdir (run test/vm/fetch-kernels.sh $name)"
	out=$out_dir/$name
	mkdir -p "$out"
	# Copy only what changed, so an unchanged driver is not rebuilt.
	cp -u -r "$source_dir"/*.[ch] "$source_dir/uapi" "$source_dir/Kbuild" "$source_dir/Makefile" "$out/"
	if [ "$(matrix_get "$name" source)" = archive ]; then
		flags=("${ARCHIVE_KERNEL_MAKE_FLAGS[@]}")
	fi
	make -s -C "$kdir" M="$out" "${flags[@]}" modules
	for ko in pfnic ummunotify; do
		[ -s "$out/$ko.ko" ] || rig_die "build for $name produced no $ko.ko"
	done
	[ $rig_module = 1 ] || return 0
	mkdir -p "$out/kmod"
	cp -u "$TOP"/test/guest/kmod/*.c "$TOP/test/guest/kmod/Kbuild" "$out/kmod/"
	make -s -C "$kdir" M="$out/kmod" "${flags[@]}" modules
	[ -s "$out/kmod/rig_splat.ko" ] || rig_die "build for $name produced no rig_splat.ko"
}

main() {
	local names n t0
	while [ $# -gt 0 ]; do
		case $1 in
		--source) source_dir=$(cd "$2" && pwd) || rig_die "no directory $2"; rig_module=0; shift 2 ;;
		--out) out_dir=$(mkdir -p "$2" && cd "$2" && pwd) || rig_die "cannot make $2"; rig_module=0; shift 2 ;;
		*) break ;;
		esac
	done
	names=("$@")
	[ ${#names[@]} -gt 0 ] || mapfile -t names < <(matrix_names)
	for n in "${names[@]}"; do
		t0=$(date +%s)
		build_one "$n"
		rig_log "pfnic.ko and ummunotify.ko for $n ($(kernel_release "$n")) built in $(elapsed "$t0")s"
	done
}
main "$@"
