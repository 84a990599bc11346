#!/bin/bash
# NBD source read rate against nbdcopy, from the same nbdkit server.
#
#   bench/sources/run.sh [BUILD_DIR]     (default: build)
#
# For each delay (5 ms and 50 ms per read, nbdkit's delay filter) a 1 GiB
# nbdkit memory source is served on a Unix socket; clonefs's source device
# (source_bench: ReadAsync, 64 MiB in flight, 4 MiB reads, requests of
# 256 KiB -- the default -- 1 MiB and 4 MiB) and nbdcopy (to null:, extents
# off so it reads every byte; its defaults: 4 connections, 256 KiB requests,
# 16 MiB queued per connection = 64 MiB in flight; and with 4 MiB requests)
# run alternately, three rounds; the best of each is reported, with the
# ratio of clonefs at its default to the better nbdcopy.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"
bench="$build/bench/sources/source_bench"
[[ -x "$bench" ]] || { echo "build $bench first (cmake --build $build --target source_bench)"; exit 1; }
dir=$(mktemp -d /tmp/clonefs-srcbench-XXXXXX)
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

rate_nbdcopy() {  # rate_nbdcopy URI [nbdcopy args...] -> MiB/s
  local uri=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  nbdcopy --no-extents -S 0 "$@" "$uri" null:
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 1024 / (b - a) }'
}

best() { printf '%s\n' "$@" | sort -g | tail -1; }

printf '%-6s %13s %13s %13s %13s %13s %6s\n' delay "clonefs 256K" "clonefs 1M" \
  "clonefs 4M" "nbdcopy" "nbdcopy 4M" ratio
for delay in 5ms 50ms; do
  sock="$dir/nbd.sock"
  rm -f "$sock" "$dir/pid"
  # -t 64: the server itself is not the bottleneck, the delay is.
  nbdkit -f --exit-with-parent -t 64 -U "$sock" -P "$dir/pid" --filter=delay memory 1G \
    rdelay="$delay" &
  pid=$!
  for _ in $(seq 100); do [[ -e "$dir/pid" ]] && break; sleep 0.05; done
  uri="nbd+unix:///?socket=$sock"
  r256=() r1m=() r4m=() copy=() copy4=()
  for _ in 1 2 3; do
    r256+=("$("$bench" "$uri" --request-kib 256 | awk '{print $2}')")
    copy+=("$(rate_nbdcopy "$uri")")
    r1m+=("$("$bench" "$uri" --request-kib 1024 | awk '{print $2}')")
    r4m+=("$("$bench" "$uri" --request-kib 4096 | awk '{print $2}')")
    copy4+=("$(rate_nbdcopy "$uri" --request-size=4194304)")
  done
  a=$(best "${r256[@]}") b=$(best "${r1m[@]}") c=$(best "${r4m[@]}")
  n=$(best "${copy[@]}") n4=$(best "${copy4[@]}")
  ideal=$(best "$n" "$n4")
  ratio=$(awk -v a="$a" -v b="$ideal" 'BEGIN { printf "%.2f", a / b }')
  printf '%-6s %7s MiB/s %7s MiB/s %7s MiB/s %7s MiB/s %7s MiB/s %6s\n' \
    "$delay" "$a" "$b" "$c" "$n" "$n4" "$ratio"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
