#!/usr/bin/env bash
# Installs the Debian packages the peer benchmark needs, only those missing.
# Usage: bench/peers/install-deps.sh   (as root; a no-op when all are present)
set -euo pipefail

PACKAGES=(
  fio                 # workload generator (libaio, JSON output with clat percentiles)
  qemu-utils          # qemu-img: qcow2 overlays for the qemu-storage-daemon peer
  qemu-system-common  # qemu-storage-daemon with the FUSE export
  nbdkit              # high-latency source: file plugin + delay filter
  libnbd-bin          # nbdfuse: exposes the NBD export as a regular file
  fuse3               # fusermount3
  coreutils util-linux procps  # cp --sparse, truncate, du, findmnt, mountpoint
  linux-perf          # profiling follow-ups (not run by the suite itself)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
