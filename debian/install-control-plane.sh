#!/bin/sh
# install-control-plane.sh ROOT ADDON: lays out the control plane in ROOT as it is in the
# tree (the server finds its addon, dashboard and package.json relative to itself): the
# compiled server, the dashboard, the addon, and the production node_modules alone, without
# what only a developer of those modules uses (their tests, docs, TypeScript sources,
# editor and VCS files).
set -eu
root=$1 addon=$2
[ -f "$addon" ] || { echo "install-control-plane: no addon at $addon" >&2; exit 1; }
[ -f dist/api/src/server.js ] || { echo "install-control-plane: the server is not compiled (tsc)" >&2; exit 1; }

rm -rf "$root"
mkdir -p "$root/dist" "$root/api" "$root/build/cmake/Release"
cp -a dist/api dist/control "$root/dist/"
find "$root/dist" -name '*.js.map' -delete
cp -a api/dashboard "$root/api/"
cp package.json "$root/"
install -m 0644 "$addon" "$root/build/cmake/Release/pfnic_addon.node"

# node_modules: a copy of the tree's, pruned to the production dependencies (no network)
cp package-lock.json "$root/"
cp -a node_modules "$root/"
(cd "$root" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
rm -f "$root/package-lock.json" "$root/node_modules/.package-lock.json"
rm -rf "$root/node_modules/.bin"
nm=$root/node_modules
find "$nm" -depth -type d \( -name test -o -name tests -o -name integration -o -name scripts -o -name __tests__ -o -name benchmark \
	-o -name benchmarks -o -name bench -o -name example -o -name examples -o -name docs \
	-o -name .github -o -name .husky -o -name .vscode -o -name coverage \) -exec rm -rf {} +
find "$nm" -type f \( -name '*.md' -o -name '*.markdown' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' \
	-o -name '*.map' -o -name '.npmignore' \
	-o -name '.gitignore' -o -name '.gitattributes' -o -name '.gitmodules' -o -name '.eslintrc*' \
	-o -name '.prettierrc*' -o -name '.editorconfig' -o -name '.taprc' -o -name '.travis.yml' \
	-o -name 'tsconfig*.json' -o -name '.borp.yaml' -o -name 'eslint.config.*' -o -name '*.sh' \
	-o -name '*.html' ! -path '*/static/*' \) -delete
# the modules' command-line tools (their "bin"), which the server never runs: a file that
# starts with #! goes; what is left is data to node, and none of it is executable
find "$nm" -type f -exec sh -c 'for f; do
	[ "$(head -c 2 "$f")" != "#!" ] || rm -f "$f"
done' sh {} +
find "$nm" -type f -exec chmod 0644 {} +
find "$root" -type d -empty -delete
