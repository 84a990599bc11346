#!/bin/bash
# clonefs demo, on a fresh Debian 12 machine, as root:
#
#   cli/demo.sh
#
# (CLONEFS=/path/to/clonefs cli/demo.sh uses that binary instead of build/.)
# Installed (share/doc/clonefs/examples/demo.sh, from the package or `cmake
# --install`), it runs the clonefs found on PATH and installs nothing.
#
# In a source tree, installs what is missing and builds clonefs (into build/
# if not built yet). Then clones a 256 MiB ext4 image and uses the clone at
# once through a loop device while the background copier fills the
# destination; then shows that the destination alone is a complete, clean
# image. Works in a fresh directory under /var/tmp and cleans up after
# itself, even when interrupted.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bold=$'\033[1m'
plain=$'\033[0m'
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '    $ %s\n' "$*"; "$@"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: run as root (it mounts FUSE, loop devices and ext4)" >&2
  exit 1
fi

# A source tree has tests/install-deps.sh and can build clonefs; the
# installed copy of this script has neither and uses the installed clonefs.
in_tree=0
[[ -x $root/tests/install-deps.sh && -f $root/CMakeLists.txt ]] && in_tree=1
if ((in_tree == 1)); then
  say "Installing missing packages (tests/debian-packages.txt)"
  "$root/tests/install-deps.sh"
fi

# CLONEFS=/path/to/clonefs runs the demo with another build.
if [[ -n ${CLONEFS:-} ]]; then
  clonefs=$CLONEFS
elif ((in_tree == 1)); then
  clonefs=$root/build/cli/clonefs
  if [[ ! -x $clonefs ]]; then
    say "Building clonefs into build/"
    cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$root/build" -j"$(nproc)" --target clonefs
  fi
else
  clonefs=$(command -v clonefs) ||
    { echo "demo: no clonefs on PATH; install it, or give its path: CLONEFS=/path/to/clonefs $0" >&2; exit 1; }
fi
missing=()
for tool in mkfs.ext4 e2fsck losetup mount sha256sum; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]} > 0)); then
  echo "demo: missing ${missing[*]}; install them (apt-get install e2fsprogs util-linux mount coreutils)" >&2
  exit 1
fi
has_command() { "$clonefs" --help | grep -qE "^  $1 "; }

work="$(mktemp -d /var/tmp/clonefs-demo.XXXXXX)"
mnt="$work/clone"      # the clonefs mount: holds dest.img, the exposed file
data="$work/data"      # the ext4 file system on the loop device
loop=""
cleanup() {
  set +e
  mountpoint -q "$data" && umount "$data"
  [[ -n $loop ]] && losetup -d "$loop" 2>/dev/null
  findmnt -rn -t fuse.clonefs "$mnt" >/dev/null && "$clonefs" unmount --force "$mnt" >/dev/null
  mountpoint -q "$work/check" && umount "$work/check"
  sleep 0.2
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up"; exit 130' INT TERM
mkdir -p "$mnt" "$data" "$work/tree" "$work/check"
cd "$work"

say "1. A source image: a 256 MiB ext4 file system holding files, made without mounting anything"
head -c 96M /dev/urandom >tree/photos.bin
seq 1 200000 >tree/numbers.txt
cp -r /usr/share/doc/util-linux tree/docs 2>/dev/null || true
photos_sha=$(sha256sum tree/photos.bin | cut -d' ' -f1)
run truncate -s 256M source.img
run mkfs.ext4 -q -F -d tree source.img
chmod a-w source.img
echo "    source.img: $(du -h --apparent-size source.img | cut -f1) image, $(du -h source.img | cut -f1) of data"

say "2. Clone it: dest.img is usable at once; background copying is capped at 16 MiB/s so it is visible"
start=$(date +%s%N)
run "$clonefs" mount --rate 16M --on-complete "touch $work/complete" source.img dest.img "$mnt"
echo "    mounted in $((($(date +%s%N) - start) / 1000000)) ms"
run ls -l "$mnt"

say "3. A loop device with direct I/O over the exposed file, and the file system on it"
loop=$(losetup --direct-io=on -f --show "$mnt/dest.img")
echo "    $loop over $mnt/dest.img, direct I/O: $(cat /sys/block/${loop#/dev/}/loop/dio)"
run mount "$loop" "$data"
run ls "$data"

say "4. Read a file (its regions come from the source until copied) and check it"
got=$(sha256sum "$data/photos.bin" | cut -d' ' -f1)
echo "    photos.bin sha256 $got"
[[ $got == "$photos_sha" ]] && echo "    matches the original" || { echo "    MISMATCH"; exit 1; }

say "5. Write a new file and sync it (the writes land in dest.img)"
head -c 16M /dev/urandom >"$data/new.bin"
run sync -f "$data/new.bin"
new_sha=$(sha256sum "$data/new.bin" | cut -d' ' -f1)
echo "    new.bin sha256 $new_sha"

say "6. Hydration: the copier fills dest.img in the background"
source_bytes=$(du -B1 source.img | cut -f1)
progress() {
  if has_command status; then
    "$clonefs" status "$mnt" | head -n 3 | sed 's/^/    /'
  else
    # Without `clonefs status`: dest.img's allocated bytes against the data
    # in the source (holes are hydrated by leaving holes).
    local d
    d=$(du -B1 dest.img | cut -f1)
    echo "    dest.img holds $((d >> 20)) MiB of the source's $((source_bytes >> 20)) MiB of data (+ new writes)"
  fi
}
if has_command wait; then
  progress
  run "$clonefs" wait "$mnt"
else
  while [[ ! -e $work/complete ]]; do
    progress
    sleep 1
  done
fi
echo "    hydration complete (--on-complete ran: $(ls "$work/complete" >/dev/null && echo yes))"

say "7. Tear down in order: the file system, the loop device, then the clone (final commit)"
run umount "$data"
run losetup -d "$loop"
loop=""
run "$clonefs" unmount "$mnt"

say "8. dest.img alone is the complete image"
run e2fsck -fn dest.img
run mount -o loop,ro dest.img "$work/check"
run ls -l "$work/check"
[[ $(sha256sum "$work/check/new.bin" | cut -d' ' -f1) == "$new_sha" ]] &&
  echo "    new.bin is there, checksum intact"
[[ $(sha256sum "$work/check/photos.bin" | cut -d' ' -f1) == "$photos_sha" ]] &&
  echo "    photos.bin is there, checksum intact"
umount "$work/check"

say "Done. The source was never written: $(stat -c '%A' source.img) $(du -h --apparent-size source.img | cut -f1)"
