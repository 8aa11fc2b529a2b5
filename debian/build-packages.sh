#!/usr/bin/env bash
# build-packages.sh [OUT_DIR]: builds pfnic's Debian packages from this tree with Debian's
# own tooling (dpkg-buildpackage, debhelper, dh-dkms), into OUT_DIR (default build/packages):
# pfnic-dkms, pfnic-ibverbs-provider, libpfnic-regcache0, libpfnic-regcache-dev and
# pfnic-control. The build runs in a copy of the tree's files (those git tracks, or would),
# so the tree's own build outputs are neither used nor touched. Build dependencies:
#   sudo apt-get build-dep ./        (from the top of the tree), and Node.js 20.17 or newer
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/packages}
mkdir -p "$out"
out=$(cd "$out" && pwd)
version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
src=$out/pfnic-$version

rm -rf "$src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
mkdir -p "$src"
cd "$top"
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
	# what git tracks, and new files it does not ignore; not what was deleted
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		cpio -0 -pdm --quiet "$src"
else
	tar --exclude=./node_modules --exclude=./build --exclude=./dist --exclude=./.cache \
		--exclude=./.git -cf - . | tar -xf - -C "$src"
fi

# The control plane builds with the tree's node modules: linked from the tree when they
# were installed from this lockfile, else installed afresh (from npm's cache when it can)
if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
	cp -al node_modules "$src/"
else
	(cd "$src" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
fi

cd "$src"
DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -b -us -uc
cd "$out"
rm -rf "$src"
ls -1 "$out"/*.deb
