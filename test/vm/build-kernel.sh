#!/usr/bin/env bash
# build-kernel.sh NAME: build a "build" kernel of the matrix (test/vm/kernels.json) from a
# Debian kernel source package, configured by the entry's config fragment over the
# x86_64 defconfig. The result, in $(kernel_dir NAME), is laid out as fetch-kernels.sh lays
# out the kernels it unpacks:
#   release      the kernel's `uname -r`
#   bzImage      the kernel, booted the ordinary way (a KASAN kernel dies at once through
#                the PVH entry that the rig uses for the others' vmlinux)
#   tree/        lib/modules/<release> (installed modules), usr/src/linux-headers-<release>
#                (the build tree itself, which out-of-tree modules build against)
#   key          what it was built from: the source package's version and the fragment's
#                and this script's hashes; a kernel whose key matches is not built again
#
# Build kernels live outside the checkout (see kernel_dir in lib.sh), so a fresh clone on a
# machine that built one already finds it. A change of fragment rebuilds in the same tree
# (make recompiles only what the change touches); a new source package starts afresh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

name=${1:?usage: build-kernel.sh NAME}
[ "$(matrix_get "$name" source)" = build ] || rig_die "kernel $name is not built from source"
pkg=$(matrix_get "$name" package)
fragment=$RIG_DIR/$(matrix_get "$name" config)
[ -f "$fragment" ] || rig_die "kernel $name: no config fragment $fragment"
dir=$(kernel_dir "$name")

# The source package comes from the host's own suite, like the packages setup.sh installs.
if ! dpkg-query -W -f '${Status}' "$pkg" 2> /dev/null | grep -q 'ok installed'; then
	[ "$(id -u)" = 0 ] || rig_die "run as root to install $pkg"
	rig_log "installing $pkg"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" > /dev/null
fi
version=$(dpkg-query -W -f '${Version}' "$pkg")
tarball=$(dpkg -L "$pkg" | grep -E '/usr/src/linux-source-.*\.tar\.xz$' | head -n 1)
[ -n "$tarball" ] || rig_die "$pkg ships no source tarball"
key="$pkg $version $(sha256sum < "$fragment" | cut -c1-16) $(sha256sum < "$0" | cut -c1-16)"
if [ -e "$dir/ready" ] && [ "$(cat "$dir/key" 2> /dev/null)" = "$key" ]; then
	exit 0
fi

mkdir -p "$dir"
src=$dir/src
if [ "$(cat "$dir/source-version" 2> /dev/null)" != "$version" ] || [ ! -f "$src/Makefile" ]; then
	rig_log "kernel $name: unpacking $pkg $version"
	rm -rf "$dir"
	mkdir -p "$dir"
	tar -xf "$tarball" -C "$dir"
	mv "$dir"/linux-source-* "$src"
	echo "$version" > "$dir/source-version"
fi
rm -f "$dir/ready"

# The defconfig, then the fragment; every line of the fragment must survive olddefconfig
# (an option whose dependencies are missing is silently dropped otherwise).
make -s -C "$src" x86_64_defconfig
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$fragment" > "$dir/merge.log"
make -s -C "$src" olddefconfig
missing=()
while IFS= read -r line; do
	case $line in
	'# CONFIG_'*' is not set')
		opt=${line#\# }
		opt=${opt%% *}
		grep -q -E "^$opt=[ym]" "$src/.config" && missing+=("$line")
		;;
	CONFIG_*)
		grep -q -x -F "$line" "$src/.config" || missing+=("$line")
		;;
	esac
done < "$fragment"
[ ${#missing[@]} -eq 0 ] || rig_die "kernel $name: the config did not take: ${missing[*]}"

rig_log "kernel $name: building ($(nproc) jobs)"
make -s -C "$src" -j "$(($(nproc) + 1))" bzImage modules > "$dir/build.log" 2>&1 ||
	{ tail -n 40 "$dir/build.log" >&2; rig_die "kernel $name failed to build (log: $dir/build.log)"; }
rel=$(make -s -C "$src" kernelrelease)
rm -rf "$dir/tree"
make -s -C "$src" INSTALL_MOD_PATH="$dir/tree" INSTALL_MOD_STRIP=1 modules_install > /dev/null
mkdir -p "$dir/tree/usr/src"
ln -sfn ../../../src "$dir/tree/usr/src/linux-headers-$rel"
cp "$src/arch/x86/boot/bzImage" "$dir/bzImage"
echo "$rel" > "$dir/release"
echo "$key" > "$dir/key"
touch "$dir/ready"
rig_log "kernel $name: $rel built"
