#!/bin/bash
# One NBD connection shared by user reads and the copier: hydration time and
# the latency of users' reads of unhydrated data during hydration.
#
#   bench/sources/shared_link.sh [--before OLD_CLONEFS] [--rounds N] [BUILD_DIR]
#
# nbdkit serves a 512 MiB random image on a Unix socket with multi-conn
# turned off (`--filter=multi-conn multi-conn-mode=disable`, as a server
# that does not advertise it, e.g. qemu-nbd by default), `--filter=delay`
# (rdelay) and optionally `--filter=rate` (burstiness 0.1 s). Configurations:
# 5 ms; 50 ms; 50 ms at 200 Mbit/s; 5 ms at 80 Mbit/s. For each:
#
#   - hydrate: nbdcopy of the whole export (one connection: the ideal
#     pipelined reader of that server), then each clonefs from starting the
#     mount until `clonefs wait` returns complete; page cache dropped first;
#   - latency: 2 s after the mount returns, 20 reads of 4 KiB (O_DIRECT)
#     at random offsets of the image's upper half (not yet hydrated), 0.3 s
#     apart; p50, p90 and max in ms.
#
# With --before, the older binary runs alternately with this build's (in the
# same rounds), so the two compare under the same load. Output: one line
# per measurement, and a markdown table at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
before="" rounds=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --before) before="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) break ;;
  esac
done
build="${1:-$root/build}"
after="$build/cli/clonefs"
[[ -x "$after" ]] || { echo "build $after first (cmake --build $build)"; exit 1; }
[[ -z "$before" || -x "$before" ]] || { echo "--before $before: not an executable"; exit 1; }
command -v nbdkit >/dev/null && command -v nbdcopy >/dev/null ||
  { echo "needs nbdkit and nbdcopy (apt-get install nbdkit libnbd-bin)"; exit 1; }
[[ $(id -u) = 0 ]] || { echo "run as root (FUSE mounts, drop_caches)"; exit 1; }

dir=$(mktemp -d /var/tmp/clonefs-shared-link-XXXXXX)
srv=""
cleanup() {
  mountpoint -q "$dir/mnt" 2>/dev/null && { "$after" unmount "$dir/mnt" >/dev/null 2>&1 ||
    umount -l "$dir/mnt" 2>/dev/null || true; }
  [[ -n "$srv" ]] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/mnt"
head -c $((512 << 20)) /dev/urandom >"$dir/img"
uri="nbd+unix:///?socket=$dir/sock"

cat >"$dir/probe.py" <<'EOF'
import mmap, os, random, sys, time
f = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
size = os.fstat(f).st_size
buf = mmap.mmap(-1, 4096)
lat = []
rng = random.Random(1)
for _ in range(20):
    time.sleep(0.3)
    off = size // 2 + rng.randrange(size // 8192) * 4096
    t = time.monotonic()
    os.preadv(f, [buf], off)
    lat.append((time.monotonic() - t) * 1000)
lat.sort()
print("%.1f %.1f %.1f" % (lat[10], lat[18], lat[-1]))
EOF

start_server() {  # start_server DELAY RATE
  rm -f "$dir/sock" "$dir/pid"
  local filters=(--filter=multi-conn) args=(multi-conn-mode=disable "rdelay=$1")
  [[ -n "$2" ]] && { filters+=(--filter=rate); args+=("rate=$2" burstiness=0.1); }
  filters+=(--filter=delay)
  nbdkit -f --exit-with-parent -r -U "$dir/sock" -P "$dir/pid" "${filters[@]}" \
    file "$dir/img" "${args[@]}" &
  srv=$!
  for _ in $(seq 100); do [[ -S "$dir/sock" ]] && break; sleep 0.05; done
}
stop_server() { kill "$srv"; wait "$srv" 2>/dev/null || true; srv=""; }
fresh() { rm -rf "$dir/dest.img" "$dir/dest.img.clonefs"; sync; echo 3 >/proc/sys/vm/drop_caches; }
secs() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

hydrate() {  # hydrate BIN -> seconds
  fresh
  local t0; t0=$(date +%s.%N)
  "$1" mount "$uri" "$dir/dest.img" "$dir/mnt" >/dev/null
  "$1" wait "$dir/mnt" >/dev/null
  secs "$t0"
  "$1" unmount "$dir/mnt" >/dev/null
}
latency() {  # latency BIN -> "p50 p90 max"
  fresh
  "$1" mount "$uri" "$dir/dest.img" "$dir/mnt" >/dev/null
  sleep 2
  python3 "$dir/probe.py" "$dir/mnt/dest.img"
  "$1" unmount "$dir/mnt" >/dev/null
}

bins=(after)
[[ -n "$before" ]] && bins=(before after)
bin_path() { [[ "$1" = before ]] && echo "$before" || echo "$after"; }
table=()
for cfg in "5ms:" "50ms:" "50ms:200M" "5ms:80M"; do
  delay=${cfg%%:*} rate=${cfg#*:}
  for r in $(seq "$rounds"); do
    start_server "$delay" "$rate"
    fresh
    t0=$(date +%s.%N)
    nbdcopy "$uri" "$dir/out.img"
    n=$(secs "$t0")
    rm -f "$dir/out.img"
    line="| $delay | ${rate:-none} | $r | $n"
    for b in "${bins[@]}"; do
      h=$(hydrate "$(bin_path "$b")")
      read -r p50 p90 mx <<<"$(latency "$(bin_path "$b")")"
      echo "delay=$delay rate=${rate:-none} round=$r $b: hydrate ${h}s (nbdcopy ${n}s)," \
        "user reads p50 ${p50} p90 ${p90} max ${mx} ms"
      line="$line | $h | $p50 / $p90 / $mx"
    done
    table+=("$line |")
    stop_server
  done
done
echo
hdr="| delay | rate cap | round | nbdcopy s"
for b in "${bins[@]}"; do hdr="$hdr | $b: hydrate s | $b: user read p50 / p90 / max ms"; done
echo "$hdr |"
printf '%s\n' "${table[@]}"
