#!/usr/bin/env bash
# shellcheck disable=SC2046  # $(systems ...) is split into words on purpose
# clonefs against its peers: qemu-storage-daemon (qcow2 overlay + copy-on-read
# filter, FUSE export), the dest file directly (no FUSE) and cp --sparse=always.
# Every comparison is a ratio measured in this run, alternating systems on the
# same files. Never part of the test command.
#
# Usage: bench/peers/run.sh [--quick] [--only SECTIONS] [--rounds N] [--out FILE]
#                           [--peers-only]
#   --quick       small sizes and short runs: a smoke run of the whole harness
#   --only        comma-separated subset of:
#                 hydration,fio,passthrough,transport,latency,fsync,ttfb,highlat,remote
#   --rounds N    repetitions of every alternating measurement (median reported)
#   --out FILE    also write the markdown report to FILE (e.g. docs/performance.md)
#   --peers-only  skip every clonefs run (harness validation without clonefs)
#
# Environment: CLONEFS (binary; default build/cli/clonefs of this checkout),
# CLONEFS_OPTS (extra options for every clonefs mount), QSD_CACHE (direct, the
# default, or writeback: how qemu-storage-daemon opens its files), WORK (scratch dir,
# default /var/tmp/clonefs-bench/peers), RUNTIME (seconds per fio run), and the size
# knobs listed under "configuration" below (and RM_* for the remote section,
# listed at the top of remote.sh).
#
# Output: $WORK/runs/<stamp>/{results.jsonl,report.md,*.json}; the report is
# also printed on stdout.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

QUICK=0 ONLY="" OUT="" PEERS_ONLY=0 ROUNDS_ARG=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --only) ONLY=$2; shift ;;
    --rounds) ROUNDS_ARG=$2; shift ;;
    --out) OUT=$2; shift ;;
    --peers-only) PEERS_ONLY=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

# ---- configuration ------------------------------------------------------------
WORK=${WORK:-/var/tmp/clonefs-bench/peers}
CLONEFS=${CLONEFS:-$REPO/build/cli/clonefs}
CLONEFS_OPTS=${CLONEFS_OPTS:-}
if [ $QUICK = 1 ]; then
  : "${ROUNDS:=1}" "${RUNTIME:=3}" "${DATA_MIB:=256}" "${SPARSE_MIB:=4096}" "${SPARSE_CHUNK_MIB:=1}"
  : "${LAT_RATE:=33554432}" "${FSYNC_COUNT:=40}" "${HL_MIB:=64}" "${HL_CAP_S:=20}"
  : "${HYD_TIMEOUT_S:=120}"
else
  : "${ROUNDS:=2}" "${RUNTIME:=10}" "${DATA_MIB:=4096}" "${SPARSE_MIB:=65536}" "${SPARSE_CHUNK_MIB:=16}"
  : "${LAT_RATE:=104857600}" "${FSYNC_COUNT:=200}" "${HL_MIB:=512}" "${HL_CAP_S:=120}"
  : "${HYD_TIMEOUT_S:=600}"
fi
[ -n "$ROUNDS_ARG" ] && ROUNDS=$ROUNDS_ARG
SPARSE_CHUNKS=${SPARSE_CHUNKS:-64}          # data runs spread over the sparse source
TTFB_SIZES=${TTFB_SIZES:-"1G 64G 1T"}       # sparse sources for mount-to-first-byte and RSS
RSS_LOAD_S=${RSS_LOAD_S:-2}                 # seconds of random reads before reading RSS
HL_DELAY=${HL_DELAY:-5ms}                   # nbdkit delay filter rdelay
HL_THRESHOLDS=${HL_THRESHOLDS:-"1 4 16 64"}
HL_ROUNDS=${HL_ROUNDS:-1}                   # high-latency runs are long: one round by default
SECTIONS=${ONLY:-hydration,fio,passthrough,transport,latency,fsync,ttfb,highlat,remote}

STAMP=$(date +%Y%m%d-%H%M%S)
RUN=$WORK/runs/$STAMP$([ $QUICK = 1 ] && echo -quick)
IMG=$WORK/images
MNT=$WORK/mnt
RESULTS=$RUN/results.jsonl
mkdir -p "$RUN" "$IMG" "$MNT"
export WORK

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=remote.sh
source "$HERE/remote.sh"
trap 'cleanup_all' EXIT
trap 'log "interrupted"; exit 130' INT TERM

"$HERE/install-deps.sh" >&2 || die "missing packages"

cf_enabled() { [ $PEERS_ONLY = 0 ]; }
if cf_enabled && [ ! -x "$CLONEFS" ]; then
  die "clonefs binary not found at $CLONEFS (set CLONEFS=path, or --peers-only)"
fi
# CF_FUSE: the mount option that keeps a complete clone's opens with the
# daemon (no FUSE passthrough), for the sections that measure the FUSE path
# on the hydrated clone; empty for a clonefs without passthrough.
CF_FUSE=()
if cf_enabled && "$CLONEFS" mount --help 2>/dev/null | grep -q -- --no-passthrough; then
  CF_FUSE=(--no-passthrough)
fi
want() {
  [[ ",$SECTIONS," == *",$1,"* ]] || return 1
  [ -f "$RESULTS" ] || die "$RUN vanished during the run (removed by another process?)"
}

# cf_build_info: what was measured: version, build type and source commit.
cf_build_info() {
  local dir; dir=$(dirname "$(dirname "$(readlink -f "$CLONEFS")")")
  local bt; bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$dir/CMakeCache.txt" 2>/dev/null)
  local src; src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:[A-Z]*=//p' "$dir/CMakeCache.txt" 2>/dev/null)
  local rev; rev=$(cut -c1-7 "$src/.commit" 2>/dev/null)
  [ -n "$rev" ] || rev="work tree of $(git -C "${src:-$REPO}" log -1 --format=%h 2>/dev/null)"
  echo "$("$CLONEFS" --version 2>/dev/null | head -1) ${bt:-unknown build type}, built from $rev"
}

# attempt DESC FUNC ARGS...: runs one measurement in a subshell with set -e;
# a failure is logged and recorded, tears down what that run started, and the
# suite goes on.
attempt() {
  local desc=$1; shift
  local mark; mark=$(cleanup_count)
  ( set -e; "$@" )
  local rc=$?
  cleanup_since "$mark"
  if [ $rc -ne 0 ]; then
    log "FAILED ($rc): $desc"
    record error "$desc" - 0 rc=$rc
  fi
  return 0
}

# order R A B...: the systems in alternating order (reversed on even rounds).
order() {
  local r=$1; shift
  if (( r % 2 == 1 )); then printf '%s\n' "$@"; else printf '%s\n' "$@" | tac; fi
}
systems() { if cf_enabled; then echo clonefs "$@"; else echo "$@"; fi; }

D=${DATA_MIB}M
SRC=$IMG/data-$D.img              # DATA_MIB of random data throughout
SPARSE=$IMG/sparse-${SPARSE_MIB}M.img  # SPARSE_MIB, SPARSE_CHUNKS runs of data
CF_HYD=$IMG/cf-hydrated-$D.img    # clonefs dest, fully hydrated (with its metadata)
QSD_HYD=$IMG/qsd-hydrated-$D.qcow2
DIRECT=$IMG/direct-$D.img         # plain copy of the source: the dest-direct baseline

# ---- sections -------------------------------------------------------------------

hyd_cp() {  # hyd_cp SRC DEST CASE ROUND
  rm -f "$2"; drop_caches
  local t0; t0=$(now)
  cp --sparse=always "$1" "$2"; sync "$2"
  record hydration "$3" cp "$4" time_s="$(elapsed "$t0")" dest_kib="$(du_kib "$2")"
}

hyd_clonefs() {  # hyd_clonefs SRC DEST CASE ROUND
  local src=$1 dest=$2 mnt=$MNT/hyd
  cf_fresh_dest "$src" "$dest"; drop_caches
  local t0 t1 t2; t0=$(now)
  cf_mount "$src" "$dest" "$mnt"
  cf_wait "$mnt" "$HYD_TIMEOUT_S" || die "hydration not done in $HYD_TIMEOUT_S s"
  t1=$(now)
  cf_unmount "$mnt"
  t2=$(now)
  touch "$dest.hydrated"
  local check=()
  if [ "$4" = "$ROUNDS" ]; then  # once: cmp of the whole image is slow
    if cmp -s "$src" "$dest"; then check=(verified=1)
    else check=(verified=0); log "WARNING: $dest differs from $src"; fi
  fi
  record hydration "$3" clonefs "$4" time_s="$(elapsed "$t0" "$t1")" \
    time_with_unmount_s="$(elapsed "$t0" "$t2")" dest_kib="$(du_kib "$dest")" \
    meta_kib="$(du_kib "$(cf_meta "$dest")")" "${check[@]}"
}

hyd_qsd() {  # hyd_qsd SRC OVERLAY CASE ROUND: a sequential read through copy-on-read
  local src=$1 ov=$2 exp=$MNT/qsd-hyd.img
  qsd_overlay "$src" "$ov"; drop_caches
  local t0; t0=$(now)
  qsd_start "$src" "$ov" "$exp" hyd
  dd if="$exp" of=/dev/null bs=1M iflag=direct status=none
  qsd_stop "$exp" hyd
  record hydration "$3" qsd "$4" time_s="$(elapsed "$t0")" dest_kib="$(du_kib "$ov")"
}

sec_hydration() {
  log "hydration: ${DATA_MIB} MiB of data; sparse ${SPARSE_MIB} MiB source"
  local r s
  for ((r = 1; r <= ROUNDS; r++)); do
    for s in $(order $r $(systems cp qsd)); do
      case $s in
        cp) attempt "hydration data cp r$r" hyd_cp "$SRC" "$DIRECT" data $r ;;
        clonefs) attempt "hydration data clonefs r$r" hyd_clonefs "$SRC" "$CF_HYD" data $r ;;
        qsd) attempt "hydration data qsd r$r" hyd_qsd "$SRC" "$QSD_HYD" data $r ;;
      esac
    done
  done
  record hydration sparse source 0 size_kib=$((SPARSE_MIB * 1024)) data_kib="$(du_kib "$SPARSE")"
  for ((r = 1; r <= ROUNDS; r++)); do
    for s in $(order $r $(systems cp)); do
      case $s in
        cp) attempt "hydration sparse cp r$r" hyd_cp "$SPARSE" "$IMG/sparse-cp.img" sparse $r ;;
        clonefs) attempt "hydration sparse clonefs r$r" \
                   hyd_clonefs "$SPARSE" "$IMG/sparse-cf.img" sparse $r ;;
      esac
    done
  done
  rm -f "$IMG/sparse-cp.img"
}

# The hydrated images the later sections start from (made here if the
# hydration section did not run); `ensure_hydrated clonefs`: clonefs's only.
ensure_hydrated() {
  if [ "${1:-}" != clonefs ]; then
    if [ ! -f "$DIRECT" ]; then cp --sparse=always "$SRC" "$DIRECT"; fi
    if [ ! -f "$QSD_HYD" ]; then hyd_qsd "$SRC" "$QSD_HYD" prep 0; fi
  fi
  if cf_enabled && [ ! -f "$CF_HYD.hydrated" ]; then
    hyd_clonefs "$SRC" "$CF_HYD" prep 0
  fi
}

fio_run() {  # fio_run SYS FILE JOB STATE ROUND
  local out=$RUN/fio-$4-$3-$1-r$5.json
  drop_caches
  fio_job "$3" "$2" "$3" "$RUNTIME" "$out" || { cat "$out.err" >&2; die "fio $3 on $2 failed"; }
  $BENCH fio "$out" | record fio "$3/$4" "$1" "$5" --metrics -
}

fio_fresh_clonefs() {  # fio_fresh_clonefs JOB ROUND: unhydrated clone, copier off
  local dest=$IMG/cf-fresh.img mnt=$MNT/fresh
  cf_fresh_dest "$SRC" "$dest"
  cf_mount "$SRC" "$dest" "$mnt" --no-hydration
  fio_run clonefs "$(cf_file "$dest" "$mnt")" "$1" unhydrated "$2"
  cf_unmount "$mnt"
}

fio_fresh_qsd() {  # fio_fresh_qsd JOB ROUND: empty overlay
  local ov=$IMG/qsd-fresh.qcow2 exp=$MNT/qsd-fresh.img
  qsd_overlay "$SRC" "$ov"
  qsd_start "$SRC" "$ov" "$exp" fresh
  fio_run qsd "$exp" "$1" unhydrated "$2"
  qsd_stop "$exp" fresh
}

# cf_hydrated: the fully hydrated clonefs image exists (else the hydrated
# clonefs runs fail rather than measure a partly hydrated clone).
cf_hydrated() { [ -f "$CF_HYD.hydrated" ] || die "no fully hydrated clonefs image"; }

fio_hydrated() {
  local cfmnt=$MNT/cf-hyd qexp=$MNT/qsd-hydrated.img r job s
  if cf_enabled; then cf_hydrated; cf_mount "$SRC" "$CF_HYD" "$cfmnt" "${CF_FUSE[@]}"; fi
  qsd_start "$SRC" "$QSD_HYD" "$qexp" hydfio
  for ((r = 1; r <= ROUNDS; r++)); do
    for job in seqread randread seqwrite randwrite syncwrite; do
      for s in $(order $r $(systems qsd direct)); do
        case $s in
          clonefs) attempt "fio $job hydrated clonefs" \
                     fio_run clonefs "$(cf_file "$CF_HYD" "$cfmnt")" $job hydrated $r ;;
          qsd) attempt "fio $job hydrated qsd" fio_run qsd "$qexp" $job hydrated $r ;;
          direct) attempt "fio $job hydrated direct" fio_run direct "$DIRECT" $job hydrated $r ;;
        esac
      done
    done
  done
}

sec_fio() {
  log "fio: ${RUNTIME}s per run, ${ROUNDS} rounds, $DATA_MIB MiB image"
  attempt "hydrated images" ensure_hydrated
  attempt "fio hydrated" fio_hydrated
  local r job s
  for ((r = 1; r <= ROUNDS; r++)); do
    for job in seqread randread seqwrite randwrite syncwrite; do
      for s in $(order $r $(systems qsd direct)); do
        case $s in
          clonefs) attempt "fio $job unhydrated clonefs" fio_fresh_clonefs $job $r ;;
          qsd) attempt "fio $job unhydrated qsd" fio_fresh_qsd $job $r ;;
          direct) attempt "fio $job unhydrated direct" fio_run direct "$DIRECT" $job unhydrated $r ;;
        esac
      done
    done
  done
}

# ---- passthrough after completion ------------------------------------------------
# pt_run SYS JOB ROUND: the fio JOB on a new open of the complete clone
# (SYS passthrough: FUSE passthrough, checked active; SYS fuse: the same
# clone with --no-passthrough, served by the daemon as opens made before
# completion are), or on that clone's dest file itself, not mounted (SYS
# direct: the same file, so its layout on disk is no difference). A fresh
# mount per run; the daemon's READ/WRITE requests during the run are recorded.
pt_run() {
  local sys=$1 job=$2 r=$3 mnt=$MNT/pt
  cf_hydrated
  if [ "$sys" = direct ]; then fio_run direct "$CF_HYD" "$job" passthrough "$r"; return; fi
  local opt=--passthrough
  [ "$sys" = fuse ] && opt=--no-passthrough
  # The transport section stores --fuse-transport with this clone: back to
  # the default here.
  cf_mount "$SRC" "$CF_HYD" "$mnt" "$opt" --fuse-transport auto
  local st0 st1 pt
  st0=$(cf_status "$mnt") || st0='{}'
  pt=$(json_get passthrough <<<"$st0")
  if [ "$sys" = passthrough ] && [ "$pt" != active ]; then
    die "passthrough is not active on $mnt: '$pt'"
  fi
  fio_run "$sys" "$(cf_file "$CF_HYD" "$mnt")" "$job" passthrough "$r"
  st1=$(cf_status "$mnt") || st1='{}'
  cf_unmount "$mnt"
  local d
  d=$(status_delta "$st0" "$st1" fuse_read_requests fuse_write_requests)
  record ptstate "$job" "$sys" "$r" state="${pt:-unknown}" daemon_requests="$d"
}

sec_passthrough() {
  cf_enabled || { log "passthrough: clonefs only, skipped"; return 0; }
  if [ ${#CF_FUSE[@]} = 0 ]; then log "passthrough: $CLONEFS has no --no-passthrough, skipped"; return 0; fi
  log "passthrough: ${RUNTIME}s per run, ${ROUNDS} rounds: passthrough vs the FUSE path vs dest"
  attempt "hydrated images" ensure_hydrated clonefs
  local r job s
  for ((r = 1; r <= ROUNDS; r++)); do
    for job in seqread randread seqwrite randwrite; do
      for s in $(order $r passthrough fuse direct); do
        attempt "passthrough $job $s r$r" pt_run "$s" "$job" "$r"
      done
    done
  done
}

# ---- FUSE transports ------------------------------------------------------------
# tr_run SYS JOB ROUND: the fio JOB on the complete clone served by the daemon
# (--no-passthrough) over FUSE io_uring (SYS uring, checked in status) or
# /dev/fuse (SYS dev), or on that clone's dest file itself (SYS direct). A
# fresh mount per run; the requests that came through io_uring are recorded.
tr_run() {
  local sys=$1 job=$2 r=$3 mnt=$MNT/tr
  cf_hydrated
  if [ "$sys" = direct ]; then fio_run direct "$CF_HYD" "$job" transport "$r"; return; fi
  cf_mount "$SRC" "$CF_HYD" "$mnt" --no-passthrough --fuse-transport "$sys"
  local st0 st1 tr
  st0=$(cf_status "$mnt") || st0='{}'
  tr=$(json_get fuse_transport <<<"$st0")
  if [ "$sys" = uring ] && [ "${tr#io_uring}" = "$tr" ]; then
    die "io_uring is not in use on $mnt: '$tr'"
  fi
  fio_run "$sys" "$(cf_file "$CF_HYD" "$mnt")" "$job" transport "$r"
  st1=$(cf_status "$mnt") || st1='{}'
  cf_unmount "$mnt"
  local d
  d=$(status_delta "$st0" "$st1" fuse_uring_requests)
  record trstate "$job" "$sys" "$r" transport="${tr:-unknown}" uring_requests="$d"
}

sec_transport() {
  cf_enabled || { log "transport: clonefs only, skipped"; return 0; }
  local param=/sys/module/fuse/parameters/enable_uring before
  if [ ! -w $param ]; then log "transport: no writable $param (Linux 6.14+, root), skipped"; return 0; fi
  if ! "$CLONEFS" mount --help 2>/dev/null | grep -q -- --fuse-transport; then
    log "transport: $CLONEFS has no --fuse-transport, skipped"; return 0
  fi
  before=$(cat $param)
  echo 1 >$param
  log "transport: ${RUNTIME}s per run, ${ROUNDS} rounds: io_uring vs /dev/fuse vs dest"
  attempt "hydrated images" ensure_hydrated clonefs
  local r job s
  for ((r = 1; r <= ROUNDS; r++)); do
    for job in seqread randread seqwrite randwrite; do
      for s in $(order $r uring dev direct); do
        attempt "transport $job $s r$r" tr_run "$s" "$job" "$r"
      done
    done
  done
  [ "$before" = N ] && echo 0 >$param
  return 0
}

lat_run() {  # lat_run CASE ROUND: 4 KiB random reads at QD1 while the copier is in CASE
  local case=$1 r=$2 dest mnt=$MNT/lat opts=()
  case $case in
    idle-nohydration) opts=(--no-hydration) ;;
    full-speed) ;;
    rate-limited) opts=(--rate "$LAT_RATE") ;;
  esac
  if [ "$case" = idle-hydrated ]; then
    cf_hydrated; dest=$CF_HYD; opts=("${CF_FUSE[@]}")
  else
    dest=$IMG/cf-lat.img; cf_fresh_dest "$SRC" "$dest"
  fi
  drop_caches
  cf_mount "$SRC" "$dest" "$mnt" "${opts[@]}"
  local out=$RUN/lat-$case-r$r.json
  fio_job lat "$(cf_file "$dest" "$mnt")" lat "$RUNTIME" "$out" \
    || { cat "$out.err" >&2; die "fio lat failed"; }
  local st hyd="" tot="" rs=""
  if st=$(cf_status "$mnt"); then
    hyd=$(json_get hydrated_regions <<<"$st"); tot=$(json_get total_regions <<<"$st")
    rs=$(json_get region_size <<<"$st")
  fi
  cf_unmount "$mnt"
  $BENCH fio "$out" | record latency "$case" clonefs "$r" --metrics - \
    hydrated_regions_after="${hyd:-na}" total_regions="${tot:-na}" region_size="${rs:-na}"
}

sec_latency() {
  cf_enabled || { log "latency: clonefs only, skipped"; return 0; }
  log "latency: 4 KiB random reads QD1, ${RUNTIME}s, copier idle / full speed / $LAT_RATE B/s"
  attempt "hydrated images" ensure_hydrated
  local r c
  for ((r = 1; r <= ROUNDS; r++)); do
    for c in $(order $r idle-nohydration full-speed rate-limited idle-hydrated); do
      attempt "latency $c r$r" lat_run "$c" "$r"
    done
  done
}

FSYNC_STRIDE=1048576
fsync_probe() {  # fsync_probe SYS CASE FILE STRIDE ROUND [ODIRECT]
  $BENCH fsync --file "$3" --count "$FSYNC_COUNT" --stride "$4" --seed "$5" --odirect "${6:-0}" \
    | record fsync "$2" "$1" "$5" --metrics -
}

fsync_clonefs() {  # fsync_clonefs CASE ROUND
  local mnt=$MNT/fsync dest opts=()
  if [ "$1" = no-new-hydrations ]; then cf_hydrated; dest=$CF_HYD; opts=("${CF_FUSE[@]}")
  else dest=$IMG/cf-fsync.img; cf_fresh_dest "$SRC" "$dest"; opts=(--no-hydration); fi
  cf_mount "$SRC" "$dest" "$mnt" "${opts[@]}"
  local stride=0 rs
  if [ "$1" = new-hydrations ]; then
    stride=$FSYNC_STRIDE
    rs=$(cf_status "$mnt" | json_get region_size) || rs=""
    if [ -n "$rs" ] && [ "${rs%.*}" -gt "$stride" ]; then stride=${rs%.*}; fi
  fi
  fsync_probe clonefs "$1" "$(cf_file "$dest" "$mnt")" "$stride" "$2"
  cf_unmount "$mnt"
}

fsync_qsd() {  # fsync_qsd CASE ROUND
  local exp=$MNT/qsd-fsync.img ov=$QSD_HYD stride=0
  if [ "$1" = new-hydrations ]; then
    ov=$IMG/qsd-fsync.qcow2; qsd_overlay "$SRC" "$ov"; stride=$FSYNC_STRIDE
  fi
  qsd_start "$SRC" "$ov" "$exp" fsync
  fsync_probe qsd "$1" "$exp" "$stride" "$2"
  qsd_stop "$exp" fsync
}

sec_fsync() {
  log "fsync: $FSYNC_COUNT x (pwrite 4 KiB + fdatasync)"
  attempt "hydrated images" ensure_hydrated
  local r s c
  for ((r = 1; r <= ROUNDS; r++)); do
    for c in no-new-hydrations new-hydrations; do
      for s in $(order $r $(systems qsd direct direct-odirect)); do
        case $s in
          clonefs) attempt "fsync $c clonefs" fsync_clonefs "$c" "$r" ;;
          qsd) attempt "fsync $c qsd" fsync_qsd "$c" "$r" ;;
          direct) [ "$c" = no-new-hydrations ] && \
                    attempt "fsync direct" fsync_probe direct "$c" "$DIRECT" 0 "$r" ;;
          direct-odirect) [ "$c" = no-new-hydrations ] && \
                    attempt "fsync direct O_DIRECT" fsync_probe direct-odirect "$c" "$DIRECT" 0 "$r" 1 ;;
        esac
      done
    done
  done
}

size_mib() {  # 1G -> 1024, 1T -> 1048576
  case $1 in *T) echo $(( ${1%T} * 1048576 )) ;; *G) echo $(( ${1%G} * 1024 )) ;; *M) echo "${1%M}" ;; esac
}

# rss_after_load PID FILE: random reads for RSS_LOAD_S, then the daemon's memory.
rss_after_load() {
  fio_job rssload "$2" randread "$RSS_LOAD_S" "$RUN/rssload.json" >/dev/null 2>&1 || true
  $BENCH vm "$1"
}

ttfb_clonefs() {  # ttfb_clonefs SIZE ROUND
  local src=$IMG/ttfb-$1.img dest=$IMG/cf-ttfb.img mnt=$MNT/ttfb
  cf_fresh_dest "$src" "$dest"; mkdir -p "$mnt"; drop_caches
  register clonefs "$mnt"
  local t vm st pid args
  mapfile -t args < <(cf_mount_args "$src" "$dest" "$mnt")
  t=$($BENCH ttfb --file "$mnt/$(basename "$dest")" --timeout 60 -- "${args[@]}")
  pid=$(cf_pid "$mnt") || die "no clonefs daemon found for $mnt"
  vm=$(rss_after_load "$pid" "$(cf_file "$dest" "$mnt")")
  st=$(cf_status "$mnt") || st='{}'
  cf_unmount "$mnt"
  local regions rs
  regions=$(json_get total_regions <<<"$st"); rs=$(json_get region_size <<<"$st")
  record ttfb "$1" clonefs "$2" --metrics - <<<"$t" \
    vmhwm_kib="$(json_get vmhwm_kib <<<"$vm")" vmrss_kib="$(json_get vmrss_kib <<<"$vm")" \
    total_regions="${regions:-na}" region_size="${rs:-na}" size_mib="$(size_mib "$1")"
}

ttfb_qsd() {  # ttfb_qsd SIZE ROUND
  local src=$IMG/ttfb-$1.img ov=$IMG/qsd-ttfb.qcow2 exp=$MNT/qsd-ttfb.img tag=ttfb
  qsd_overlay "$src" "$ov"; touch "$exp"; rm -f "$RUN/qsd-$tag.pid"; drop_caches
  register fuse "$exp"
  local t vm pid args
  mapfile -t args < <(qsd_args "$src" "$ov" "$exp" "$tag")
  t=$($BENCH ttfb --file "$exp" --timeout 60 -- "${args[@]}")
  pid=$(qsd_pid $tag); register_pid "$pid"
  vm=$(rss_after_load "$pid" "$exp")
  qsd_stop "$exp" $tag
  record ttfb "$1" qsd "$2" --metrics - <<<"$t" \
    vmhwm_kib="$(json_get vmhwm_kib <<<"$vm")" vmrss_kib="$(json_get vmrss_kib <<<"$vm")" \
    size_mib="$(size_mib "$1")"
}

sec_ttfb() {
  log "ttfb/rss: sparse sources of $TTFB_SIZES"
  local size r s
  for size in $TTFB_SIZES; do
    make_sparse_image "$IMG/ttfb-$size.img" "$(size_mib "$size")" 1 1
    for ((r = 1; r <= ROUNDS; r++)); do
      for s in $(order $r $(systems qsd)); do
        attempt "ttfb $size $s r$r" "ttfb_$s" "$size" "$r"
      done
    done
  done
  rm -f "$IMG/cf-ttfb.img" "$IMG/qsd-ttfb.qcow2"; rm -rf "$(cf_meta "$IMG/cf-ttfb.img")"
}

hl_cp() {  # hl_cp NSRC ROUND
  local dest=$IMG/hl-cp.img; rm -f "$dest"; drop_caches
  local t0; t0=$(now)
  cp --sparse=always "$1" "$dest"; sync "$dest"
  local t; t=$(elapsed "$t0")
  record highlat cp cp "$2" time_s="$t" \
    mib_s="$(awk -v t="$t" -v m="$HL_MIB" 'BEGIN { printf "%.2f", m / t }')"
  rm -f "$dest"
}

hl_clonefs() {  # hl_clonefs NSRC THRESHOLD ROUND
  local dest=$IMG/cf-hl.img mnt=$MNT/hl args t
  cf_fresh_dest "$1" "$dest"; mkdir -p "$mnt"; drop_caches
  register clonefs "$mnt"
  mapfile -t args < <(cf_mount_args "$1" "$dest" "$mnt" --hydration-threshold "$2")
  local t0; t0=$(now)
  t=$($BENCH ttfb --file "$mnt/$(basename "$dest")" --timeout 60 -- "${args[@]}")
  local fin=1 t1 bytes
  cf_wait "$mnt" "$HL_CAP_S" || fin=0
  t1=$(elapsed "$t0")
  bytes=$((HL_MIB * 1048576))
  if [ $fin = 0 ]; then
    local st; st=$(cf_status "$mnt") || st='{}'
    bytes=$(json_get hydrated_bytes <<<"$st")
    if [ -z "$bytes" ]; then
      bytes=$(awk -v h="$(json_get hydrated_regions <<<"$st")" -v s="$(json_get region_size <<<"$st")" \
        'BEGIN { printf "%.0f", h * s }')
    fi
  fi
  cf_unmount "$mnt"
  record highlat "threshold-$2" clonefs "$3" --metrics - <<<"$t" done=$fin time_s="$t1" \
    hydrated_mib="$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')" \
    mib_s="$(awk -v b="$bytes" -v t="$t1" 'BEGIN { printf "%.2f", b / 1048576 / t }')"
}

sec_highlat() {
  log "high-latency source: $HL_MIB MiB through nbdkit delay rdelay=$HL_DELAY + nbdfuse"
  make_data_image "$IMG/hl-${HL_MIB}M.img" "$HL_MIB"
  local nsrc dir=$MNT/nbd r thr mark
  mark=$(cleanup_count)
  nsrc=$(nbd_start "$IMG/hl-${HL_MIB}M.img" "$HL_DELAY" "$dir") || { record error "nbd start" - 0 rc=1; return 0; }
  record highlat config source 0 delay="$HL_DELAY" size_mib="$HL_MIB" cap_s="$HL_CAP_S"
  for ((r = 1; r <= HL_ROUNDS; r++)); do
    attempt "highlat cp r$r" hl_cp "$nsrc" "$r"
    if cf_enabled; then
      for thr in $HL_THRESHOLDS; do
        attempt "highlat clonefs threshold $thr r$r" hl_clonefs "$nsrc" "$thr" "$r"
      done
    fi
  done
  cleanup_since "$mark"
  rm -rf "$IMG/cf-hl.img" "$(cf_meta "$IMG/cf-hl.img")"
}

# ---- main ---------------------------------------------------------------------------

log "run dir $RUN"
RUN_T0=$(now)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
$BENCH machine > "$RUN/machine.json"
record meta machine - 0 --metrics "$RUN/machine.json"
record meta config - 0 quick=$QUICK rounds="$ROUNDS" runtime_s="$RUNTIME" data_mib="$DATA_MIB" \
  sparse_mib="$SPARSE_MIB" sparse_data_mib=$((SPARSE_CHUNKS * SPARSE_CHUNK_MIB)) \
  lat_rate="$LAT_RATE" fsync_count="$FSYNC_COUNT" hl_mib="$HL_MIB" hl_delay="$HL_DELAY" \
  hl_cap_s="$HL_CAP_S" rss_load_s="$RSS_LOAD_S" peers_only=$PEERS_ONLY \
  qsd_cache="${QSD_CACHE:-direct}" \
  clonefs_opts="${CLONEFS_OPTS:-none}" \
  clonefs_build="$(cf_enabled && cf_build_info || echo none)" \
  commit="$(git -C "$REPO" log -1 --format='%h %cd' --date=short 2>/dev/null || echo unknown)"

if want hydration || want fio || want passthrough || want transport || want latency || want fsync; then
  make_data_image "$SRC" "$DATA_MIB"
fi
if want hydration; then
  make_sparse_image "$SPARSE" "$SPARSE_MIB" "$SPARSE_CHUNKS" "$SPARSE_CHUNK_MIB"
fi
want hydration && sec_hydration
want fio && sec_fio
want passthrough && sec_passthrough
want transport && sec_transport
want latency && sec_latency
want fsync && sec_fsync
want ttfb && sec_ttfb
want highlat && sec_highlat
want remote && sec_remote
cleanup_all
record meta load - 0 start="$LOAD_START" end="$(cut -d' ' -f1-3 /proc/loadavg)" \
  duration_s="$(elapsed "$RUN_T0")"

$PY "$HERE/report.py" "$RESULTS" > "$RUN/report.md" || die "report failed"
cat "$RUN/report.md"
if [ -n "$OUT" ]; then cp "$RUN/report.md" "$OUT"; log "report written to $OUT"; fi
log "results in $RUN"
