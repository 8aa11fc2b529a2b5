#!/usr/bin/env bash
# dkms-prebuild.sh DEB NAME OUT: DKMS builds the modules of the pfnic-dkms package DEB for
# kernel NAME of the matrix, here on the host, and packs them into OUT, a binaries-only DKMS
# tarball (dkms mktarball). Placed where the package's postinst looks for one
# (/usr/share/pfnic-dkms/pfnic-<version>.dkms.tar.gz), it is what DKMS installs on a host that
# has no compiler or headers. The rig's tests install it in guests: a build under TCG takes a
# quarter of an hour, against seconds here (the full tier builds in the guest as well).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
deb=$(realpath "${1:?usage: dkms-prebuild.sh DEB NAME OUT}") name=${2:?} out=$(realpath -m "${3:?}")
release=$(kernel_release "$name")
kdir=$(kernel_build_dir "$name")
work=$(mktemp -d "${TMPDIR:-/tmp}/dkms-prebuild.XXXXXX")
trap 'rm -rf "$work"' EXIT

dpkg-deb -x "$deb" "$work/unpacked"
src=$(echo "$work"/unpacked/usr/src/pfnic-*)
version=${src##*/pfnic-}
if [ "$(matrix_get "$name" source)" = archive ]; then
	# the host's gcc for a kernel Debian built with a newer one (lib.sh): DKMS sources
	# dkms.conf, so a later MAKE[0] is the one it runs, as from an admin's /etc/dkms/pfnic.conf
	# shellcheck disable=SC2016 # ${kernel_source_dir} is DKMS's to expand
	printf 'MAKE[0]="make KDIR=${kernel_source_dir} %s"\n' "${ARCHIVE_KERNEL_MAKE_FLAGS[*]}" >> "$src/dkms.conf"
fi
trees=(--dkmstree "$work/dkms" --sourcetree "$work/unpacked/usr/src" --installtree "$work/installed")
mkdir -p "$work/dkms" "$work/installed"
dkms add "${trees[@]}" -m pfnic -v "$version" > /dev/null
dkms build "${trees[@]}" -m pfnic -v "$version" -k "$release" --kernelsourcedir "$kdir" ||
	{ cat "$work/dkms/pfnic/$version/build/make.log" >&2 2> /dev/null; exit 1; }
mkdir -p "$(dirname "$out")"
dkms mktarball "${trees[@]}" -m pfnic -v "$version" -k "$release" --binaries-only --archive "$out" > /dev/null
rig_log "DKMS built pfnic $version for $name ($release): $out"
