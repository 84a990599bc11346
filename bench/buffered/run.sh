#!/bin/bash
# bench/buffered: 4 KiB random writes and reads (fio, QD16, O_DIRECT on the
# exposed file) on a --buffered clone right after its hydration, against the
# thinnest libfuse server (thinfuse.c: one pread/pwrite per request, the
# same open flags) over a copy of the image with a cold page cache, which is
# what FUSE itself costs here. Also the dest's page-cache residency after
# hydration (fincore) and the hydration time. Never part of the tests.
#
#   bench/buffered/run.sh [--before BINARY] [--rounds N] [--mib M] [--runtime S]
#
# --before BINARY adds the same clonefs rows for another build (e.g. main
# before a change), alternating with CLONEFS (default build/cli/clonefs) in
# each round. Needs root (mounts, dropping caches). Prints a markdown table
# of medians and ratios; raw lines go to $WORK/results.txt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CLONEFS=${CLONEFS:-$REPO/build/cli/clonefs}
BEFORE="" ROUNDS=3 MIB=3072 RUNTIME=5
while (($#)); do
  case $1 in
    --before) BEFORE=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --mib) MIB=$2; shift ;;
    --runtime) RUNTIME=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
WORK=${WORK:-/var/tmp/clonefs-bench/buffered}
mkdir -p "$WORK/mnt" "$WORK/tmnt"
cd "$WORK"
: > results.txt
THIN_PID=""
cleanup() {
  for b in "$CLONEFS" $BEFORE; do "$b" unmount "$WORK/mnt" >/dev/null 2>&1 || true; done
  if [[ -n $THIN_PID ]]; then
    fusermount3 -u "$WORK/tmnt" 2>/dev/null || true
    kill "$THIN_PID" 2>/dev/null || true
    wait "$THIN_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

gcc -O2 -Wall -o thinfuse "$HERE/thinfuse.c" $(pkg-config --cflags --libs fuse3)
[[ -f src.img && $(stat -c %s src.img) == $((MIB << 20)) ]] ||
  head -c $((MIB << 20)) /dev/urandom > src.img
cp src.img thin.img

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
fio4k() {  # fio4k FILE RW -> IOPS
  fio --name=b --filename="$1" --rw="$2" --bs=4k --iodepth=16 --ioengine=libaio --direct=1 \
    --runtime="$RUNTIME" --time_based --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(int(j["read"]["iops"]+j["write"]["iops"]))'
}
clone_round() {  # clone_round LABEL BINARY
  local label=$1 bin=$2
  rm -rf dst.img dst.img.clonefs
  drop
  local t0=$EPOCHREALTIME
  "$bin" mount --buffered src.img dst.img mnt >/dev/null
  "$bin" wait mnt >/dev/null
  local t1=$EPOCHREALTIME
  echo "$label hydration_s $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" >> results.txt
  echo "$label cached_mib $(( $(fincore -nb -o RES dst.img) >> 20 ))" >> results.txt
  echo "$label randwrite $(fio4k mnt/dst.img randwrite)" >> results.txt
  echo "$label randread $(fio4k mnt/dst.img randread)" >> results.txt
  "$bin" unmount mnt >/dev/null
}
thin_round() {
  drop
  ./thinfuse thin.img tmnt &
  THIN_PID=$!
  for _ in $(seq 50); do [[ -e tmnt/img ]] && break; sleep 0.1; done
  echo "thinfuse randwrite $(fio4k tmnt/img randwrite)" >> results.txt
  echo "thinfuse randread $(fio4k tmnt/img randread)" >> results.txt
  fusermount3 -u tmnt
  wait "$THIN_PID" || true
  THIN_PID=""
}
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  clone_round clonefs "$CLONEFS"
  [[ -n $BEFORE ]] && clone_round before "$BEFORE"
  thin_round
done

python3 - "$MIB" "$RUNTIME" <<'PY'
import statistics, sys
vals = {}
for line in open("results.txt"):
    who, what, v = line.split()
    vals.setdefault((who, what), []).append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}
thin_w, thin_r = med[("thinfuse", "randwrite")], med[("thinfuse", "randread")]
print(f"{sys.argv[1]} MiB image, --buffered, fio 4 KiB QD16 libaio O_DIRECT on the exposed file, "
      f"{sys.argv[2]} s per run, medians of {len(vals[('thinfuse', 'randwrite')])} rounds")
print()
print("| | hydration | dest cached after | randwrite IOPS | vs thinfuse | randread IOPS | vs thinfuse |")
print("|---|---|---|---|---|---|---|")
for who in ("before", "clonefs"):
    if (who, "randwrite") not in med:
        continue
    w, r = med[(who, "randwrite")], med[(who, "randread")]
    print(f"| {who} | {med[(who, 'hydration_s')]:.2f} s | {med[(who, 'cached_mib')]:.0f} MiB | "
          f"{w:.0f} | {w / thin_w:.2f}x | {r:.0f} | {r / thin_r:.2f}x |")
print(f"| thinfuse (cold cache) | | | {thin_w:.0f} | 1.00x | {thin_r:.0f} | 1.00x |")
PY
