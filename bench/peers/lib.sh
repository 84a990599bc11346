# Helpers for bench/peers/run.sh (sourced, not run). Every daemon or mount a
# helper starts is registered in $RUN/cleanup and torn down by cleanup_all,
# newest first, whatever happens to the run.
#
# Needs: $RUN (this run's result dir), $RESULTS (JSON lines file), $HERE.

PY=/usr/bin/python3
BENCH="$PY $HERE/bench.py"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now() { echo "$EPOCHREALTIME"; }
# elapsed T0 [T1]: seconds between two now() stamps, 3 decimals.
elapsed() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.3f", b - a }'; }

# record SEC CASE SYS ROUND [--metrics FILE|-] [k=v ...]
record() {
  local sec=$1 case=$2 sys=$3 round=$4; shift 4
  $BENCH record "$RESULTS" --sec "$sec" --case "$case" --sys "$sys" --round "$round" "$@"
}

drop_caches() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then echo 3 > /proc/sys/vm/drop_caches; fi
}

# ---- cleanup registry ------------------------------------------------------

register() { echo "$*" >> "$RUN/cleanup"; }

# proc_start PID: the process's start time in clock ticks (field 22 of stat).
proc_start() { awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }

# register_pid PID: a process this script started, to be stopped at cleanup.
register_pid() { register pid "$1:$(proc_start "$1")"; }

cleanup_one() {
  local kind=$1 arg=$2
  case $kind in
    clonefs)
      if grep -q " $arg fuse" /proc/mounts 2>/dev/null; then
        timeout 60 "$CLONEFS" unmount "$arg" >/dev/null 2>&1 \
          || fusermount3 -u "$arg" >/dev/null 2>&1 \
          || umount -l "$arg" >/dev/null 2>&1
      fi ;;
    fuse)
      if grep -q " $arg fuse" /proc/mounts 2>/dev/null; then
        fusermount3 -u "$arg" >/dev/null 2>&1 || umount -l "$arg" >/dev/null 2>&1
      fi ;;
    pid)
      # arg is PID:STARTTIME, so a recycled pid is never signalled.
      local start=${arg#*:}; arg=${arg%%:*}
      [ "$(proc_start "$arg")" = "$start" ] || return 0
      if kill -0 "$arg" 2>/dev/null; then
        kill "$arg" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$arg" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$arg" 2>/dev/null || true
      fi ;;
  esac
  return 0
}

cleanup_count() { [ -f "$RUN/cleanup" ] && wc -l < "$RUN/cleanup" || echo 0; }

# cleanup_since N: tears down what was registered after the first N entries.
cleanup_since() {
  local n=$1
  [ -f "$RUN/cleanup" ] || return 0
  tail -n +$((n + 1)) "$RUN/cleanup" | tac | while read -r kind arg; do
    cleanup_one "$kind" "$arg"
  done
  head -n "$n" "$RUN/cleanup" > "$RUN/cleanup.tmp"; mv "$RUN/cleanup.tmp" "$RUN/cleanup"
}

cleanup_all() { cleanup_since 0; }

# ---- fio -------------------------------------------------------------------

# fio_job NAME FILE JOB RUNTIME_S OUT_JSON [extra fio args...]
# JOB: seqread | seqwrite (1 MiB, QD8), randread | randwrite (4 KiB, QD16),
#      syncwrite (4 KiB random writes from 4 threads with synchronous pwrite,
#      as QEMU's default thread pool issues them), lat (4 KiB random reads, QD1).
fio_job() {
  local name=$1 file=$2 job=$3 runtime=$4 out=$5; shift 5
  local spec engine=libaio
  case $job in
    seqread)   spec="--rw=read --bs=1M --iodepth=8" ;;
    seqwrite)  spec="--rw=write --bs=1M --iodepth=8" ;;
    randread)  spec="--rw=randread --bs=4k --iodepth=16" ;;
    randwrite) spec="--rw=randwrite --bs=4k --iodepth=16" ;;
    syncwrite) spec="--rw=randwrite --bs=4k --numjobs=4"; engine=psync ;;
    lat)       spec="--rw=randread --bs=4k --iodepth=1" ;;
    *) die "unknown fio job $job" ;;
  esac
  local size; size=$(stat -Lc %s "$file")
  # shellcheck disable=SC2086
  fio --name="$name" --filename="$file" --size="$size" $spec \
      --direct=1 --ioengine="$engine" --time_based --runtime="$runtime" \
      --norandommap --randrepeat=0 --fallocate=none --group_reporting \
      --percentile_list=50:99:99.9 --output-format=json --output="$out" "$@" \
      >/dev/null 2>"$out.err"
}

# ---- clonefs -----------------------------------------------------------------

# cf_file DEST MNT: the exposed file for a clone of DEST mounted on MNT.
cf_file() {
  local f; f="$2/$(basename "$1")"
  if [ ! -e "$f" ]; then
    local only; only=$(find "$2" -mindepth 1 -maxdepth 1 -type f 2>/dev/null | head -n 2)
    [ "$(printf '%s\n' "$only" | grep -c .)" = 1 ] && f=$only
  fi
  echo "$f"
}

cf_meta() { echo "$1.clonefs"; }  # default metadata dir beside dest

# cf_fresh_dest SRC DEST: an empty sparse dest of the source's size, no metadata.
cf_fresh_dest() {
  rm -rf "$2" "$(cf_meta "$2")" "$2.hydrated"
  truncate -s "$(stat -Lc %s "$1")" "$2"
}

# cf_mount_args SRC DEST MNT [opts...]: prints the mount command line, one arg per line.
cf_mount_args() {
  local src=$1 dest=$2 mnt=$3; shift 3
  # shellcheck disable=SC2086
  printf '%s\n' "$CLONEFS" mount $CLONEFS_OPTS "$@" "$src" "$dest" "$mnt"
}

# cf_mount SRC DEST MNT [opts...]
cf_mount() {
  local src=$1 dest=$2 mnt=$3; shift 3
  mkdir -p "$mnt"
  register clonefs "$mnt"
  # shellcheck disable=SC2086
  "$CLONEFS" mount $CLONEFS_OPTS "$@" "$src" "$dest" "$mnt" >"$RUN/last-mount.log" 2>&1 \
    || { cat "$RUN/last-mount.log" >&2; die "clonefs mount $src $dest $mnt failed"; }
}

cf_unmount() {
  local mnt=$1
  timeout 120 "$CLONEFS" unmount "$mnt" >"$RUN/last-unmount.log" 2>&1 || {
    cat "$RUN/last-unmount.log" >&2
    log "clonefs unmount $mnt failed; using fusermount3 -u"
    fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
  }
  for _ in $(seq 100); do grep -q " $mnt fuse" /proc/mounts || return 0; sleep 0.1; done
  die "$mnt still mounted"
}

# cf_pid MNT: pid of the daemon serving MNT (from its status, else from /proc).
cf_pid() {
  local mnt=$1 p exe
  p=$(cf_status "$mnt" 2>/dev/null | json_get pid 2>/dev/null)
  if [ -n "$p" ] && [ -d "/proc/$p" ]; then echo "$p"; return 0; fi
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case $(basename "$exe") in clonefs*) ;; *) continue ;; esac
    if tr '\0' '\n' < "$p/cmdline" 2>/dev/null | grep -qxF "$mnt"; then
      basename "$p"; return 0
    fi
  done
  return 1
}

# cf_status MNT: status fields as JSON (see bench.py status).
cf_status() {
  "$CLONEFS" status "$1" --json > "$RUN/status.json" 2>"$RUN/status.err" || return 1
  $BENCH status "$RUN/status.json"
}

# status_delta BEFORE AFTER KEY...: the growth of the KEYs (summed) between
# two cf_status objects (a missing or null key counts as 0).
status_delta() {
  $PY -c 'import json,sys; a,b=(json.loads(x) for x in sys.argv[1:3]); print(sum((b.get(k) or 0)-(a.get(k) or 0) for k in sys.argv[3:]))' "$@"
}

# json_get KEY: reads a JSON object on stdin, prints one field ('' if null).
json_get() {
  $PY -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"
}

# cf_wait MNT TIMEOUT_S: waits until hydration is complete and committed.
# Returns 1 on timeout or failure. `clonefs wait` polls stats (no commit) every
# 0.1 s; without it, `clonefs status --json` is polled (each query commits).
cf_wait() {
  local mnt=$1 timeout=$2 t0 rc; t0=$(now)
  if [ "${CLONEFS_HAS_WAIT:-1}" = 1 ]; then
    timeout $((${timeout%.*} + 30)) "$CLONEFS" wait "$mnt" --quiet --interval 0.1 \
      --timeout "$timeout" >/dev/null 2>"$RUN/wait.err"
    rc=$?
    case $rc in
      0) return 0 ;;
      2|124) return 1 ;;
      3|4) log "clonefs wait: $(head -c 300 "$RUN/wait.err")"; return 1 ;;
    esac
    log "clonefs wait unusable (rc=$rc: $(head -c 200 "$RUN/wait.err")); polling status"
    CLONEFS_HAS_WAIT=0
  fi
  while :; do
    local st fin
    st=$(cf_status "$mnt") || { log "clonefs status unusable: $(head -c 200 "$RUN/status.err")"; return 2; }
    fin=$(json_get "done" <<<"$st")
    [ "$fin" = True ] && return 0
    [ "$(awk -v a="$(elapsed "$t0")" -v b="$timeout" 'BEGIN { print (a > b) }')" = 1 ] && return 1
    sleep 0.1
  done
}

# ---- qemu-storage-daemon (recipe (a): qcow2 overlay + copy-on-read + FUSE) ---

# qsd_overlay SRC OVERLAY [SIZE]: a fresh, empty qcow2 overlay over the raw
# source. An NBD source (nbd+unix:///?socket=PATH) needs SIZE in bytes: the
# overlay is created without opening it (the daemon gets its backing node
# on the command line anyway).
qsd_overlay() {
  rm -f "$2"
  if [ -n "${3:-}" ]; then
    qemu-img create -q -f qcow2 -o cluster_size=64k -u -b "$1" -F raw "$2" "$3"
  else
    qemu-img create -q -f qcow2 -o cluster_size=64k -b "$1" -F raw "$2"
  fi
}

# qsd_args SRC OVERLAY EXPOSED TAG: prints the daemon's command line, one arg per line.
# QSD_CACHE=direct (default) opens source and overlay with O_DIRECT, as clonefs
# does by default (QEMU's cache=none); QSD_CACHE=writeback uses the page cache.
# SRC is a raw file, or nbd+unix:///?socket=PATH for QEMU's own NBD client
# (driver=nbd) as the overlay's backing node.
qsd_args() {
  local src=$1 ov=$2 exp=$3 tag=$4 direct=on
  [ "${QSD_CACHE:-direct}" = writeback ] && direct=off
  local srcnode="driver=file,node-name=src,filename=$src,read-only=on,cache.direct=$direct"
  case $src in
    nbd+unix://*) srcnode="driver=nbd,node-name=src,server.type=unix,server.path=${src#*socket=},read-only=on" ;;
  esac
  printf '%s\n' qemu-storage-daemon \
    --blockdev "$srcnode" \
    --blockdev "driver=qcow2,node-name=top,file.driver=file,file.filename=$ov,file.cache.direct=$direct,backing=src" \
    --blockdev "driver=copy-on-read,node-name=cor,file=top" \
    --export "type=fuse,id=e,node-name=cor,mountpoint=$exp,writable=on" \
    --chardev "socket,id=m,path=$RUN/qsd-$tag.qmp,server=on,wait=off" --monitor chardev=m \
    --daemonize --pidfile "$RUN/qsd-$tag.pid"
}

# qsd_start SRC OVERLAY EXPOSED TAG
qsd_start() {
  local exp=$3 tag=$4
  rm -f "$RUN/qsd-$tag.pid" "$RUN/qsd-$tag.qmp"; touch "$exp"
  register fuse "$exp"
  mapfile -t args < <(qsd_args "$@")
  "${args[@]}" 2>"$RUN/qsd-$tag.err" || { cat "$RUN/qsd-$tag.err" >&2; die "qemu-storage-daemon failed"; }
  register_pid "$(cat "$RUN/qsd-$tag.pid")"
}

qsd_pid() { cat "$RUN/qsd-$1.pid"; }

# qsd_stop EXPOSED TAG: SIGTERM flushes and removes the export; unmount if left over.
qsd_stop() {
  local exp=$1 pid; pid=$(qsd_pid "$2")
  cleanup_one pid "$pid:$(proc_start "$pid")"
  cleanup_one fuse "$exp"
}

# ---- nbdkit + delay filter, exposed as a file by nbdfuse -------------------

# nbd_start FILE RDELAY DIR: serves FILE read-only with a read delay; prints the exposed path.
nbd_start() {
  local file=$1 delay=$2 dir=$3
  mkdir -p "$dir"
  rm -f "$RUN/nbd.sock" "$RUN/nbdkit.pid" "$RUN/nbdfuse.pid"
  nbdkit -r -U "$RUN/nbd.sock" -P "$RUN/nbdkit.pid" --filter=delay file file="$file" \
    rdelay="$delay" 2>"$RUN/nbdkit.err" || die "nbdkit failed: $(cat "$RUN/nbdkit.err")"
  register_pid "$(cat "$RUN/nbdkit.pid")"
  register fuse "$dir"
  nbdfuse -r -P "$RUN/nbdfuse.pid" "$dir/source.img" --unix "$RUN/nbd.sock" \
    >"$RUN/nbdfuse.log" 2>&1 &
  for _ in $(seq 100); do [ -s "$RUN/nbdfuse.pid" ] && break; sleep 0.1; done
  [ -s "$RUN/nbdfuse.pid" ] || die "nbdfuse did not start: $(cat "$RUN/nbdfuse.log")"
  echo "$dir/source.img"
}

nbd_stop() {
  cleanup_one fuse "$1"
  local pid; pid=$(cat "$RUN/nbdkit.pid" 2>/dev/null)
  [ -n "$pid" ] && cleanup_one pid "$pid:$(proc_start "$pid")"
  return 0
}

# ---- source images -----------------------------------------------------------

# make_data_image PATH SIZE_MIB: random data throughout (kept between runs).
make_data_image() {
  local path=$1 mib=$2
  if [ -f "$path" ] && [ "$(stat -c %s "$path")" = $((mib * 1048576)) ] && [ -f "$path.ok" ]; then
    return 0
  fi
  log "creating $path ($mib MiB of random data)"
  rm -f "$path" "$path.ok"
  fio --name=fill --filename="$path" --size="${mib}M" --rw=write --bs=1M --iodepth=8 \
      --ioengine=libaio --direct=1 --refill_buffers --buffer_compress_percentage=0 \
      --randrepeat=0 >/dev/null || die "fio fill of $path failed"
  touch "$path.ok"
}

# make_sparse_image PATH SIZE_MIB CHUNKS CHUNK_MIB: CHUNKS runs of random data spread evenly.
make_sparse_image() {
  local path=$1 mib=$2 chunks=$3 chunk=$4 i step
  local stamp="$path.ok-$mib-$chunks-$chunk"
  if [ -f "$path" ] && [ -f "$stamp" ]; then return 0; fi
  log "creating $path ($mib MiB, $chunks x $chunk MiB of data)"
  rm -f "$path" "$path".ok-*
  truncate -s "${mib}M" "$path"
  step=$((mib / chunks))
  for ((i = 0; i < chunks; i++)); do
    dd if=/dev/urandom of="$path" bs=1M count="$chunk" seek=$((i * step)) conv=notrunc \
      status=none || die "dd into $path failed"
  done
  sync "$path"
  touch "$stamp"
}

du_kib() { du -sk "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# ---- an NBD source server (the remote section, bench/readdriven) -------------

# rs_start TAG IMAGE FILTERS PARAMS: nbdkit serving IMAGE read-only on
# $RUN/rs-TAG.sock, the stats filter outermost, then FILTERS (names, outermost
# first) with PARAMS (their key=value settings). Sets RS_URI.
rs_start() {
  local tag=$1 image=$2 filters=$3 params=$4 f
  local sock=$RUN/rs-$tag.sock pidf=$RUN/rs-$tag.pid
  local args=(-r -U "$sock" -P "$pidf" --filter=stats)
  [ -n "${NBDKIT_THREADS:-}" ] && args+=(-t "$NBDKIT_THREADS")
  for f in $filters; do args+=(--filter="$f"); done
  rm -f "$sock" "$pidf" "$RUN/rs-$tag.stats"
  # shellcheck disable=SC2086  # PARAMS is split into key=value words on purpose
  nbdkit "${args[@]}" file file="$image" statsfile="$RUN/rs-$tag.stats" $params \
    2>"$RUN/rs-$tag.err" || die "nbdkit failed: $(head -c 500 "$RUN/rs-$tag.err")"
  for _ in $(seq 100); do [ -s "$pidf" ] && [ -S "$sock" ] && break; sleep 0.05; done
  [ -s "$pidf" ] || die "nbdkit wrote no pid file: $(head -c 500 "$RUN/rs-$tag.err")"
  register_pid "$(cat "$pidf")"
  RS_URI="nbd+unix:///?socket=$sock"
}

# rs_stop TAG OUT_JSON: stops the server (SIGTERM: it writes its stats as it
# exits) and writes what it served as JSON (bench.py nbdstats).
rs_stop() {
  local pid; pid=$(cat "$RUN/rs-$1.pid" 2>/dev/null)
  [ -n "$pid" ] && cleanup_one pid "$pid:$(proc_start "$pid")"
  $BENCH nbdstats "$RUN/rs-$1.stats" > "$2"
}
