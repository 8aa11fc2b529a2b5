#!/usr/bin/env bash
# mkinitrd.sh NAME: the guest's initramfs for one kernel of the matrix, at
# .cache/kernels/<name>/initrd.cpio.gz: busybox, the modules that mount the host's root over
# virtio-9p (with their dependencies), and test/vm/init. Everything else the guest runs
# comes from the host's root, so this stays small (~2 MB) and rarely changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

name=${1:?usage: mkinitrd.sh NAME}
rel=$(kernel_release "$name")
root=$(kernel_root "$name")
out=$(kernel_dir "$name")/initrd.cpio.gz
# Rebuilt only when the init script or this builder changed.
if [ -s "$out" ] && [ "$out" -nt "$RIG_DIR/init" ] && [ "$out" -nt "$0" ]; then
	exit 0
fi

work=$(mktemp -d "$CACHE/initrd.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,sbin,proc,sys,dev,tmp,run,ro,rw,newroot,etc,lib/modules/"$rel"}
cp /bin/busybox "$work/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ -e "$work/bin/$applet" ] || ln -s busybox "$work/bin/$applet"
done

# Modules in load order, dependencies first; decompressed, since busybox's insmod
# does not read .ko.xz or .ko.zst.
declare -A seen=()
order=()
add_module() {
	local m=$1 f dep
	[ -n "${seen[$m]:-}" ] && return 0
	seen[$m]=1
	f=$(modinfo ${root:+-b "$root"} -k "$rel" -n "$m") || rig_die "kernel $name has no module $m"
	[ "$f" = "(builtin)" ] && return 0
	for dep in $(modinfo ${root:+-b "$root"} -k "$rel" -F depends "$m" | tr , ' '); do
		add_module "$dep"
	done
	case $f in
	*.xz) xz -dc "$f" > "$work/lib/modules/$rel/$m.ko" ;;
	*.zst) zstd -qdc "$f" > "$work/lib/modules/$rel/$m.ko" ;;
	*) cp "$f" "$work/lib/modules/$rel/$m.ko" ;;
	esac
	order+=("$m")
}
for m in virtio_pci 9pnet_virtio 9p overlay; do add_module "$m"; done
printf '%s\n' "${order[@]}" > "$work/etc/modules"

cp "$RIG_DIR/init" "$work/init"
chmod 755 "$work/init"
(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1 > "$out.tmp")
mv "$out.tmp" "$out"
rig_log "initramfs for $name: $(du -h "$out" | cut -f1), modules: ${order[*]:-none}"
