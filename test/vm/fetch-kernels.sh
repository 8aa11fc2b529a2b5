#!/usr/bin/env bash
# fetch-kernels.sh [NAME...]: make the kernels of the matrix (test/vm/kernels.json) bootable
# and buildable-against, under .cache/kernels/<name>/:
#   release      the kernel's `uname -r`
#   vmlinux      the uncompressed kernel, booted through its PVH entry (faster under TCG)
#   tree/        (archive kernels) the unpacked packages: lib/modules, usr/src headers, kbuild
#
# "host" kernels are Debian bookworm's own, installed by apt (setup.sh does that). "archive"
# kernels come from another suite: they are downloaded with a private apt configuration
# (the host's apt sources and package state are never touched) and unpacked with dpkg -x.
# "build" kernels are compiled from a Debian source package by build-kernel.sh.
# A kernel already prepared is left alone: nothing is downloaded or built twice.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MIRROR=${PFNIC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
declare -A UPDATED=()  # suites whose lists this run has fetched

# apt_for SUITE [refresh]: private apt options whose state lives under .cache/apt/<suite>;
# the package lists are fetched when there are none, or when asked to refresh them.
apt_for() {
	local d=$CACHE/apt/$1
	mkdir -p "$d/lists/partial" "$d/archives/partial" "$d/state"
	[ -e "$d/state/status" ] || : > "$d/state/status"
	printf 'deb [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$1" > "$d/sources.list"
	APT=(-o "Dir::Etc::SourceList=$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d" -o "Dir::Cache::Archives=$d/archives"
		-o "Dir::State::status=$d/state/status" -o APT::Architecture=amd64 -o Debug::NoLocking=1
		-o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
	if { [ "${2:-}" = refresh ] && [ -z "${UPDATED[$1]:-}" ]; } || ! ls "$d/lists/"*_Packages* > /dev/null 2>&1; then
		rig_log "apt update ($1, private lists)"
		apt-get "${APT[@]}" -qq update
		UPDATED[$1]=1
	fi
}

# download SUITE DEST PKG...: fetch .debs (into the suite's archive cache) and unpack into DEST.
download_unpack() {
	local suite=$1 dest=$2 p f
	shift 2
	apt_for "$suite"
	mkdir -p "$dest"
	for p in "$@"; do
		f=$(find "$CACHE/apt/$suite/archives" -maxdepth 1 -name "${p%%/*}_*.deb" | sort -V | tail -n 1)
		if [ -z "$f" ]; then
			(cd "$CACHE/apt/$suite/archives" && apt-get "${APT[@]}" -qq download "$p")
			f=$(find "$CACHE/apt/$suite/archives" -maxdepth 1 -name "${p%%/*}_*.deb" | sort -V | tail -n 1)
		fi
		[ -n "$f" ] || rig_die "could not download $p from $suite"
		dpkg -x "$f" "$dest"
	done
}

# extract_vmlinux BZIMAGE OUT: cut the compressed payload out of a bzImage and inflate it.
extract_vmlinux() {
	local img=$1 out=$2 magic tool off
	for magic in xz zstd; do
		case $magic in
		xz) off=$(LC_ALL=C grep -abo $'\xfd7zXZ\x00' "$img" | head -n 1 | cut -d: -f1 || true); tool=(xz -dc) ;;
		zstd) off=$(LC_ALL=C grep -abo $'\x28\xb5\x2f\xfd' "$img" | head -n 1 | cut -d: -f1 || true); tool=(zstd -qdc) ;;
		esac
		[ -n "$off" ] || continue
		# The stream is followed by the bzImage's trailer, which the decompressor rejects
		# after writing the whole kernel: judge by the result, not the exit status.
		tail -c +$((off + 1)) "$img" | "${tool[@]}" > "$out.tmp" 2> /dev/null || true
		if head -c 4 "$out.tmp" | grep -q $'\x7fELF'; then
			mv "$out.tmp" "$out"
			return 0
		fi
	done
	rm -f "$out.tmp"
	rig_die "no xz or zstd kernel found inside $img"
}

# The kbuild helpers of trixie and sid need a newer glibc than bookworm's: run each through
# sid's own dynamic loader and libraries, unpacked under .cache/sidlibc.
prepare_sid_libc() {
	local d=$CACHE/sidlibc
	[ -e "$d/ready" ] && return 0
	rm -rf "$d"
	download_unpack sid "$d" libc6 libelf1t64 zlib1g libzstd1
	touch "$d/ready"
}

wrap_kbuild_helpers() {
	local kbuild=$1 ld lp f
	ld=$CACHE/sidlibc/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
	lp=$CACHE/sidlibc/usr/lib/x86_64-linux-gnu
	find "$kbuild" -type f -perm -u+x ! -name '*.elf' -print0 | while IFS= read -r -d '' f; do
		head -c 4 "$f" | grep -q $'\x7fELF' || continue
		mv "$f" "$f.elf"
		# --argv0 keeps the name, so Debian's dispatching wrappers still find their siblings
		printf '#!/bin/sh\nexec "%s" --library-path "%s" --argv0 "$0" "%s.elf" "$@"\n' \
			"$ld" "$lp" "$f" > "$f"
		chmod 755 "$f"
	done
}

prepare_host_kernel() {
	local name=$1 dir rel pkg
	dir=$(kernel_dir "$name")
	pkg=$(dpkg-query -W -f '${Depends}' linux-image-amd64 2> /dev/null | grep -o 'linux-image-[^ ,]*' | head -n 1) ||
		rig_die "linux-image-amd64 is not installed (run test/setup.sh)"
	rel=${pkg#linux-image-}
	[ -d "/lib/modules/$rel" ] || rig_die "/lib/modules/$rel is missing"
	[ -d "/usr/src/linux-headers-$rel" ] || rig_die "headers for $rel are missing (linux-headers-amd64)"
	mkdir -p "$dir"
	if [ ! -s "$dir/vmlinux" ] || [ "$(cat "$dir/release" 2> /dev/null)" != "$rel" ]; then
		extract_vmlinux "/boot/vmlinuz-$rel" "$dir/vmlinux"
	fi
	echo "$rel" > "$dir/release"
}

# uncompress_modules TREE RELEASE (false when there was nothing to do): Debian compresses its
# kernels' modules, and every depmod (DKMS runs one per install and one per removal) then
# spends a minute or more in xz under TCG for what it reads in seconds uncompressed. The
# modules stay byte for byte what Debian built, under the names depmod and modprobe look for.
uncompress_modules() {
	local tree=$1 rel=$2 mods
	mods=$tree/usr/lib/modules/$rel
	find "$mods" \( -name '*.ko.xz' -o -name '*.ko.zst' \) -print -quit | grep -q . || return 1
	rig_log "kernel $rel: uncompressing its modules"
	find "$mods" -name '*.ko.xz' -print0 | xargs -0 -r -P "$(nproc)" -n 64 xz -d
	find "$mods" -name '*.ko.zst' -print0 | xargs -0 -r -P "$(nproc)" -n 64 zstd -q -d --rm
}

prepare_archive_kernel() {
	local name=$1 suite dir abi rel pkgs=() p hdr
	dir=$(kernel_dir "$name")
	if [ -e "$dir/ready" ] && [ -d "$dir/tree" ]; then
		# a tree kept from before the modules were uncompressed here
		rel=$(cat "$dir/release")
		uncompress_modules "$dir/tree" "$rel" && depmod -b "$dir/tree" "$rel"
		return 0
	fi
	suite=$(matrix_get "$name" suite)
	# Lists kept from an earlier run may name a kernel the archive has since dropped.
	apt_for "$suite" refresh
	# The suite's newest kernel ABI, read from its headers metapackage.
	abi=$(apt-cache "${APT[@]}" show linux-headers-amd64 | sed -n 's/^Depends:.*linux-headers-\([^ ,]*\)-amd64 .*/\1/p' | head -n 1)
	[ -n "$abi" ] || rig_die "cannot tell which kernel $suite ships"
	rel=$abi-amd64
	rig_log "kernel $name: $suite $rel"
	while IFS= read -r p; do pkgs+=("${p//\{abi\}/$abi}"); done < <(matrix_get "$name" packages)
	rm -rf "$dir"
	download_unpack "$suite" "$dir/tree" "${pkgs[@]}"
	# Debian ships modules under usr/lib; depmod -b expects lib/modules under its base.
	[ -e "$dir/tree/lib" ] || ln -s usr/lib "$dir/tree/lib"
	uncompress_modules "$dir/tree" "$rel" || true
	depmod -b "$dir/tree" "$rel"
	local img
	img=$(find "$dir/tree/boot" "$dir/tree/usr/lib/modules/$rel" -maxdepth 1 -name 'vmlinuz*' 2> /dev/null | head -n 1 || true)
	[ -n "$img" ] || rig_die "no vmlinuz in the $name packages"
	extract_vmlinux "$img" "$dir/vmlinux"
	prepare_sid_libc
	# The headers' Makefile names /usr/src; point it at the unpacked tree.
	for hdr in "$dir/tree/usr/src/linux-headers-$rel" "$dir/tree/usr/src/linux-headers-$abi-common"; do
		[ -f "$hdr/Makefile" ] && sed -i "s#/usr/src/#$dir/tree/usr/src/#g" "$hdr/Makefile"
	done
	for p in "$dir/tree/usr/lib/linux-kbuild-"*; do wrap_kbuild_helpers "$p"; done
	echo "$rel" > "$dir/release"
	touch "$dir/ready"
}

main() {
	local names=("$@") n
	[ ${#names[@]} -gt 0 ] || mapfile -t names < <(matrix_names)
	for n in "${names[@]}"; do
		case $(matrix_get "$n" source) in
		host) prepare_host_kernel "$n" ;;
		archive) prepare_archive_kernel "$n" ;;
		build) "$RIG_DIR/build-kernel.sh" "$n" ;;
		*) rig_die "kernel $n: unknown source" ;;
		esac
		rig_log "kernel $n ready: $(kernel_release "$n")"
	done
}
main "$@"
