#!/usr/bin/env bash
# shellcheck disable=SC2086  # option strings (*_OPTS) are split into words on purpose
# Read-driven hydration: how a clone of a remote (NBD) source serves the
# reads a machine makes while it boots, and readers that stream the whole
# image. Every ratio is measured in this run. Never part of the test command.
#
# Usage: bench/readdriven/run.sh [--quick] [--rounds N] [--only SECTIONS] [--prepare]
#   --quick      small image, one delay, small sources: a smoke run
#   --prepare    only build the cached image, its trace and the random source
#   --rounds N   repetitions of every measurement (median reported; default 1)
#   --only       comma-separated subset of: trace,seq,buffered
#
# Sections:
#   trace     a boot-like read trace (e2fsck -fn of an ext4 image, then reading
#             a few hundred of its files), replayed at queue depth 1 with
#             O_DIRECT against fresh clones of that image served by
#             nbdkit -t NBDKIT_THREADS --filter=stats --filter=delay rdelay=DELAY, for every
#             DELAY in DELAYS, in the configurations main, cor, hints,
#             profile (after a recording clone, "record"), against the
#             image file itself (local: the floor) and against a clone
#             hydrated completely first (hydrated: clonefs's own floor).
#   seq       dd bs=1M iflag=direct of a whole clone of SEQ_MIB of random data
#             while hydration runs: source bytes read / image size, the dd
#             time and the time until hydration is complete.
#   buffered  cat of the whole clone (direct_io: no kernel readahead, clonefs reads ahead) against
#             cat of the same delayed source through nbdfuse.
#
# Environment: CLONEFS (binary; default build/cli/clonefs of this checkout),
# WORK (default /var/tmp/clonefs-bench/readdriven; the image, its trace and
# the random sources are cached in $WORK/images), and the knobs under
# "configuration" below, notably the options of each configuration:
#   MAIN_OPTS PROFILE_OPTS COR_OPTS HINTS_OPTS RECORD_OPTS SEQ_OPTS BUF_OPTS
# NBDKIT_THREADS (the servers' threads per connection; default 128, see
# there) and CONFIGS, the trace configurations to run (record always runs);
# (@P@ in them is replaced by the profile file; "--X on|off" is passed as
# "--X" / "--no-X" to a clonefs whose help lists --no-X). A configuration whose
# options this clonefs does not know (`clonefs mount --help`) is skipped and
# reported as such; main then runs with MAIN_FALLBACK_OPTS (none: the
# behaviour before those options existed).
#
# Output: $WORK/runs/<stamp>/{results.jsonl,report.md,...}; the report is
# also printed on stdout.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PEERS=$REPO/bench/peers

QUICK=0 ONLY="" ROUNDS_ARG="" PREPARE=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --rounds) ROUNDS_ARG=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --prepare) PREPARE=1 ;;
    -h|--help) sed -n '3,39p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

# ---- configuration ------------------------------------------------------------
WORK=${WORK:-/var/tmp/clonefs-bench/readdriven}
CLONEFS=${CLONEFS:-$REPO/build/cli/clonefs}
CLONEFS_OPTS=${CLONEFS_OPTS:-}      # extra options for every clonefs mount (lib.sh)
if [ $QUICK = 1 ]; then
  # 512 MiB image, ~250 MiB of files; 60 files read; 256 MiB random sources.
  : "${BOOT_MIB:=512}" "${BOOT_INODE_RATIO:=8192}"
  : "${BOOT_TREE:=usr/lib/python3.11 usr/share/perl usr/share/vim usr/share/man}"
  : "${BOOT_RANDOM:=2x16 4x1}" "${BOOT_FILES:=60}" "${BOOT_FILES_MIB:=8}"
  : "${DELAYS:=5ms}" "${SEQ_MIB:=256}"
else
  # 2 GiB image, ~1.4 GiB of files (parts of /usr/share and /usr/lib, 160 MiB
  # of random files; /usr/share/doc and the like left out: their thousands of
  # directories would make e2fsck's directory pass most of the trace); 240
  # files (~40 MiB at most) read.
  : "${BOOT_MIB:=2048}" "${BOOT_INODE_RATIO:=16384}"
  : "${BOOT_TREE:=usr/share/locale usr/share/man usr/share/vim usr/share/perl usr/share/icons
     usr/share/i18n usr/share/cmake-3.25 usr/share/java usr/share/fonts usr/share/zoneinfo
     usr/share/X11 usr/lib/llvm-14 usr/lib/python3 usr/lib/python3.11 usr/lib/git-core
     usr/lib/gcc usr/lib/systemd usr/lib/file}"
  : "${BOOT_RANDOM:=4x32 16x2}" "${BOOT_FILES:=240}" "${BOOT_FILES_MIB:=40}"
  : "${DELAYS:=5ms 50ms}" "${SEQ_MIB:=1024}"
fi
BOOT_TREE=$(xargs <<<"$BOOT_TREE")   # one line, single spaces
: "${ROUNDS:=1}"
[ -n "$ROUNDS_ARG" ] && ROUNDS=$ROUNDS_ARG
: "${COALESCE_KIB:=128}"            # trace: contiguous reads merged up to this (readahead)
: "${SEQ_DELAY:=5ms}" "${BUF_DELAY:=5ms}"
# nbdkit threads per connection. The delay filter sleeps in a server thread
# for the whole delay, so with nbdkit's default 16 the emulated link would
# carry at most 16 requests per connection per delay -- a limit of the
# emulation, not of a link, whose latency occupies no server thread (at
# 50 ms: ~960 requests/s over the copier's 3 connections). 128 keeps the
# server from being what is measured; NBDKIT_THREADS= (empty) for nbdkit's
# default.
: "${NBDKIT_THREADS=128}"
export NBDKIT_THREADS
: "${REPLAY_TIMEOUT_S:=1800}" "${HYD_TIMEOUT_S:=900}"
: "${MAIN_OPTS=--copy-on-read off --read-hints off}"
: "${MAIN_FALLBACK_OPTS=}"
: "${COR_OPTS=--copy-on-read on --read-hints off}"
: "${HINTS_OPTS=--copy-on-read on --read-hints on}"
: "${RECORD_OPTS=--copy-on-read on --read-hints on --record-profile @P@}"
: "${PROFILE_OPTS=--copy-on-read on --read-hints on --profile @P@}"
: "${SEQ_OPTS=}" "${BUF_OPTS=}"    # the defaults
: "${CONFIGS:=main cor hints profile local hydrated}"   # trace: the configurations run
SECTIONS=${ONLY:-trace,seq,buffered}

STAMP=$(date +%Y%m%d-%H%M%S)
RUN=$WORK/runs/$STAMP$([ $QUICK = 1 ] && echo -quick)$([ $PREPARE = 1 ] && echo -prepare)
IMG=$WORK/images
MNT=$WORK/mnt
RESULTS=$RUN/results.jsonl
mkdir -p "$RUN" "$IMG" "$MNT"
export WORK

# shellcheck source-path=SCRIPTDIR source=../peers/lib.sh
source "$PEERS/lib.sh"
BENCH="$PY $PEERS/bench.py"
trap 'cleanup_all' EXIT
trap 'log "interrupted"; exit 130' INT TERM

for tool in nbdkit nbdfuse strace e2fsck debugfs mkfs.ext4 fio fusermount3; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install nbdkit nbdfuse strace e2fsprogs fio fuse3)"
done
[ -x "$CLONEFS" ] || die "clonefs binary not found at $CLONEFS (set CLONEFS=path)"
[ "$(id -u)" = 0 ] || die "run as root (drop_caches, FUSE mounts)"

# attempt DESC FUNC ARGS...: one measurement in a subshell with set -e; a
# failure is logged and recorded, what it started is torn down, the run goes on.
# Safe to nest: errexit is off around the subshell, whatever the caller has.
attempt() {
  local desc=$1 flags=$- rc; shift
  local mark; mark=$(cleanup_count)
  set +e
  ( set -e; "$@" )
  rc=$?
  [[ $flags == *e* ]] && set -e
  cleanup_since "$mark"
  if [ $rc -ne 0 ]; then
    log "FAILED ($rc): $desc"
    record error "$desc" - 0 rc=$rc
  fi
  return 0
}
want() { [[ ",$SECTIONS," == *",$1,"* ]]; }
size_of() { stat -Lc %s "$1"; }
mib_s() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.2f", (t > 0 ? b / 1048576 / t : 0) }'; }

# ---- clonefs options ----------------------------------------------------------------

MOUNT_HELP=$("$CLONEFS" mount --help 2>&1)
# cf_knows OPTS: every --option in OPTS is in `clonefs mount --help`.
cf_knows() {
  local w
  for w in $1; do
    case $w in
      --*) grep -qE -- "(^|[[:space:]])$w([[:space:]=]|$)" <<<"$MOUNT_HELP" || return 1 ;;
    esac
  done
  return 0
}
# cf_onoff OPTS: "--NAME on" and "--NAME off" written as "--NAME" and
# "--no-NAME" when this clonefs spells its switch that way (--no-NAME in its
# help), like --hydration / --no-hydration; other words unchanged.
cf_onoff() {
  local out=() w
  set -- $1
  while [ $# -gt 0 ]; do
    w=$1
    if [[ $w == --* && $# -ge 2 && ( $2 == on || $2 == off ) ]] \
       && grep -qE -- "(^|[[:space:]])--no-${w#--}([[:space:]=,]|$)" <<<"$MOUNT_HELP"; then
      if [ "$2" = on ]; then out+=("$w"); else out+=("--no-${w#--}"); fi
      shift 2; continue
    fi
    out+=("$w"); shift
  done
  echo "${out[*]}"
}
# cfg_opts CONFIG PROFILE: the options of CONFIG (@P@ -> PROFILE), or fails.
cfg_opts() {
  local o
  case $1 in
    main) o=$(cf_onoff "$MAIN_OPTS"); cf_knows "$o" || o=$MAIN_FALLBACK_OPTS ;;
    cor) o=$COR_OPTS ;;
    hints) o=$HINTS_OPTS ;;
    record) o=$RECORD_OPTS ;;
    profile) o=$PROFILE_OPTS ;;
    seq) o=$SEQ_OPTS ;;
    buffered) o=$BUF_OPTS ;;
  esac
  o=$(cf_onoff "$o")
  cf_knows "$o" || return 1
  echo "${o//@P@/${2:-}}"
}

cf_build_info() {
  local dir; dir=$(dirname "$(dirname "$(readlink -f "$CLONEFS")")")
  local bt; bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$dir/CMakeCache.txt" 2>/dev/null)
  local src; src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:[A-Z]*=//p' "$dir/CMakeCache.txt" 2>/dev/null)
  # a build of bench/peers/build-head.sh names its commit in .commit
  local rev; rev=$(cut -c1-7 "$src/.commit" 2>/dev/null)
  [ -n "$rev" ] && rev="commit $rev" \
    || rev="work tree at $(git -C "${src:-$REPO}" log -1 --format=%h 2>/dev/null || echo '?')"
  echo "$("$CLONEFS" --version 2>/dev/null | head -1), ${bt:-unknown build type}, built from $rev"
}

# ---- the replay tool ---------------------------------------------------------------

# The build of this checkout (or of CLONEFS) if it has trace_replay, else
# compiled here into $WORK/bin.
find_replay() {
  local b
  for b in "$(dirname "$(dirname "$(readlink -f "$CLONEFS")")")/bench/readdriven/trace_replay" \
           "$REPO/build/bench/readdriven/trace_replay"; do
    if [ -x "$b" ] && [ "$b" -nt "$HERE/trace_replay.cc" ]; then echo "$b"; return 0; fi
  done
  b=$WORK/bin/trace_replay
  if [ ! -x "$b" ] || [ "$HERE/trace_replay.cc" -nt "$b" ]; then
    mkdir -p "$WORK/bin"
    ${CXX:-c++} -std=c++20 -O2 -Wall -o "$b" "$HERE/trace_replay.cc" >&2 \
      || die "cannot compile $HERE/trace_replay.cc"
  fi
  echo "$b"
}
REPLAY=$(find_replay) || exit 1

# ---- the NBD server ----------------------------------------------------------------

# The server: rs_start TAG IMAGE "delay" "rdelay=DELAY" and rs_stop (lib.sh).

fresh_dest() { rm -rf "$1" "$(cf_meta "$1")"; }

# hydrated_bytes < STATUS_JSON (cf_status's fields): bytes hydrated, '' if unknown.
hydrated_bytes() {
  $PY -c 'import json, sys
d = json.load(sys.stdin); b = d.get("hydrated_bytes")
if b is None and d.get("hydrated_regions") is not None and d.get("region_size"):
    b = d["hydrated_regions"] * d["region_size"]
print("" if b is None else int(b))'
}

# ---- the boot image and its trace ------------------------------------------------

# The image is keyed by what goes into it, the trace by that and how it is made.
ITAG=$(echo "$BOOT_MIB $BOOT_INODE_RATIO $BOOT_TREE $BOOT_RANDOM" | md5sum | cut -c1-8)
TTAG=$(echo "trace-v1 $BOOT_FILES $BOOT_FILES_MIB $COALESCE_KIB" | md5sum | cut -c1-8)
BOOT_IMG=$IMG/boot-${BOOT_MIB}M-$ITAG.img
TRACE=$BOOT_IMG.$TTAG.trace
FILES=$BOOT_IMG.$TTAG.files

# pick_files COUNT MIB: COUNT regular files of 4 KiB to 4 MiB of the image
# (from $BOOT_IMG.list; names debugfs takes unquoted), at most MIB MiB in all,
# chosen by a hash of their path (spread over the tree, the same every time):
# half of them larger than 64 KiB (libraries, programs), the rest of any size
# (configuration, scripts).
pick_files() {
  $PY -c '
import hashlib, re, sys
count, limit = int(sys.argv[1]), int(sys.argv[2]) << 20
rows = [l.rstrip("\n").split(" ", 1) for l in open(sys.argv[3])]
rows = [(int(s), p) for s, p in rows
        if 4096 < int(s) <= 4 << 20 and re.fullmatch(r"[A-Za-z0-9._/+-]+", p)]
key = lambda p: hashlib.sha1(p.encode()).hexdigest()
rows.sort(key=lambda r: key(r[1]))
chosen, total = set(), 0
for want, least in ((count // 2, 64 << 10), (count, 0)):
    for size, path in rows:
        if len(chosen) >= want: break
        if size <= least or total + size > limit or path in chosen: continue
        chosen.add(path); total += size
for path in sorted(chosen, key=key):
    print("/" + path)
' "$1" "$2" "$BOOT_IMG.list"
}

# build_boot_image: the ext4 image (once) and its file list $BOOT_IMG.list
# ("SIZE PATH" of every regular file).
build_boot_image() {
  if [ -f "$BOOT_IMG.ok" ] && [ -s "$BOOT_IMG.list" ]; then return 0; fi
  local stage=$IMG/stage-$ITAG d spec i
  log "building $BOOT_IMG: ${BOOT_MIB} MiB ext4 from /{${BOOT_TREE// /,}} + random files $BOOT_RANDOM"
  rm -rf "$stage" "$BOOT_IMG" "$BOOT_IMG".*
  mkdir -p "$stage/data"
  for d in $BOOT_TREE; do
    [ -d "/$d" ] || { log "no /$d: left out of the image"; continue; }
    mkdir -p "$stage/$(dirname "$d")"
    # hard links when /usr and $WORK share a file system (mkfs only reads them)
    cp -al "/$d" "$stage/$d" 2>/dev/null || { rm -rf "${stage:?}/$d"; cp -a "/$d" "$stage/$d"; } \
      || die "cannot copy /$d"
  done
  for spec in $BOOT_RANDOM; do  # NxMIB: N files of MIB MiB of random data
    for ((i = 0; i < ${spec%x*}; i++)); do
      head -c "${spec#*x}M" /dev/urandom > "$stage/data/random-${spec#*x}M-$i.bin" || die "random file"
    done
  done
  log "tree: $(du -sm "$stage" | cut -f1) MiB, $(find "$stage" | wc -l) entries; mkfs.ext4 -d"
  local t0; t0=$(now)
  mkfs.ext4 -q -F -L boot -i "$BOOT_INODE_RATIO" -d "$stage" "$BOOT_IMG" "${BOOT_MIB}M" \
    > "$RUN/mkfs.log" 2>&1 || { cat "$RUN/mkfs.log" >&2; die "mkfs.ext4 -d failed"; }
  log "mkfs.ext4 took $(elapsed "$t0") s; $(du -m "$BOOT_IMG" | cut -f1) MiB allocated"
  (cd "$stage" && find . -type f -printf '%s %P\n') > "$BOOT_IMG.list"
  rm -rf "$stage"
  touch "$BOOT_IMG.ok"
}

# build_trace: the reads e2fsck -fn and then debugfs cat of the chosen files
# make on the image, through strace, turned into $TRACE by mktrace.py (once).
build_trace() {
  if [ -s "$TRACE" ] && [ -s "$FILES" ]; then return 0; fi
  local img; img=$(readlink -f "$BOOT_IMG")
  local st=(strace -f -qq -y -s 0 -e "trace=openat,pread64,preadv,preadv2,read,lseek")
  local base=$IMG/boot-$ITAG.$TTAG
  pick_files "$BOOT_FILES" "$BOOT_FILES_MIB" > "$FILES.tmp" || die "pick_files failed"
  sed 's|.*|cat "&"|' "$FILES.tmp" > "$base.debugfs"
  "${st[@]}" -o "$base.e2fsck.strace" e2fsck -fn "$img" > "$RUN/e2fsck.log" 2>&1 \
    || { cat "$RUN/e2fsck.log" >&2; die "e2fsck -fn $img found problems (or failed)"; }
  "${st[@]}" -o "$base.debugfs.strace" debugfs -f "$base.debugfs" "$img" \
    > "$RUN/debugfs.out" 2> "$RUN/debugfs.err" || die "debugfs failed: $(head -c 300 "$RUN/debugfs.err")"
  grep -v '^debugfs ' "$RUN/debugfs.err" | grep -q . \
    && log "debugfs said: $(grep -v '^debugfs ' "$RUN/debugfs.err" | head -3)"
  log "files read: $(grep -c . "$FILES.tmp"), $(($(wc -c < "$RUN/debugfs.out") / 1048576)) MiB"
  rm -f "$RUN/debugfs.out"
  $PY "$HERE/mktrace.py" --image "$img" --coalesce-kib "$COALESCE_KIB" \
    "$base.e2fsck.strace" "$base.debugfs.strace" > "$TRACE.tmp" \
    2> "$TRACE.summary" || die "mktrace failed: $(cat "$TRACE.summary")"
  rm -f "$base".*.strace "$base.debugfs"
  mv "$FILES.tmp" "$FILES"
  mv "$TRACE.tmp" "$TRACE"
  log "$(cat "$TRACE.summary")"
}

# ---- section trace -------------------------------------------------------------------

# replay FILE OUT_JSON [TIMELINE]: the trace at QD1, O_DIRECT; data checked
# against the image; each request's start and latency go to TIMELINE.
# A mismatch (exit 3) is recorded (mismatches > 0) and logged, not fatal.
replay() {
  local rc=0 tl=()
  [ $# -ge 3 ] && tl=(--timeline "$3")
  timeout "$REPLAY_TIMEOUT_S" "$REPLAY" "$TRACE" "$1" --json --verify "$BOOT_IMG" "${tl[@]}" > "$2" \
    2> "$2.err" || rc=$?
  case $rc in
    0) ;;
    3) log "WARNING: $(head -c 300 "$2.err")" ;;
    *) die "replay on $1 failed (rc $rc): $(head -c 300 "$2.err")" ;;
  esac
}

tr_local() {  # tr_local DELAY ROUND: the image file itself, no clonefs
  drop_caches
  replay "$BOOT_IMG" "$RUN/replay.json"
  record trace "$1" local "$2" --metrics "$RUN/replay.json" src_read_bytes=0 src_read_ops=0
}

# tr_hydrated DELAY ROUND: a clone hydrated completely before the replay: what
# clonefs itself costs (the FUSE path), with nothing left to fetch.
tr_hydrated() {
  local delay=$1 r=$2 dest=$IMG/rd-dest.img mnt=$MNT/trace
  fresh_dest "$dest"
  rs_start trace "$BOOT_IMG" delay "rdelay=$delay"
  cf_mount "$RS_URI" "$dest" "$mnt"
  cf_wait "$mnt" "$HYD_TIMEOUT_S" || die "the clone did not complete"
  drop_caches
  replay "$(cf_file "$dest" "$mnt")" "$RUN/replay.json"
  cf_unmount "$mnt"
  rs_stop trace "$RUN/srv.json"
  record trace "$delay" hydrated "$r" --metrics "$RUN/replay.json" src_read_bytes=0 src_read_ops=0
  fresh_dest "$dest"
}

# tr_clone CONFIG DELAY ROUND: a fresh clone of the served image, the trace
# replayed on it as soon as the mount returns, then unmounted.
tr_clone() {
  local cfg=$1 delay=$2 r=$3 dest=$IMG/rd-dest.img mnt=$MNT/trace opts
  local prof=$RUN/boot-$delay-r$r.profile
  opts=$(cfg_opts "$cfg" "$prof") || { log "$cfg: this clonefs has no ${cfg} options; skipped"
    record trace "$delay" "$cfg" "$r" skipped=1; return 0; }
  if [ "$cfg" = profile ] && [ ! -s "$prof" ]; then die "no profile $prof (the record run failed?)"; fi
  [ "$cfg" = record ] && rm -f "$prof"
  fresh_dest "$dest"; drop_caches
  rs_start trace "$BOOT_IMG" delay "rdelay=$delay"
  local t0 tm t1; t0=$(now)
  cf_mount "$RS_URI" "$dest" "$mnt" $opts
  tm=$(now)
  replay "$(cf_file "$dest" "$mnt")" "$RUN/replay.json" "$RUN/timeline-$delay-$cfg-r$r.txt"
  t1=$(now)
  cf_status "$mnt" > "$RUN/cf-status.json" || echo '{}' > "$RUN/cf-status.json"
  cf_unmount "$mnt"
  rs_stop trace "$RUN/srv.json"
  local extra=()
  if [ "$cfg" = record ]; then
    [ -s "$prof" ] || die "--record-profile wrote no profile at unmount ($prof)"
    extra=(profile_bytes="$(size_of "$prof")")
  fi
  record trace "$delay" "$cfg" "$r" --metrics "$RUN/replay.json" --metrics "$RUN/srv.json" \
    mount_s="$(elapsed "$t0" "$tm")" mount_trace_s="$(elapsed "$t0" "$t1")" \
    hydrated_end_bytes="$(hydrated_bytes < "$RUN/cf-status.json")" opts="$(tr " " _ <<<"${opts//$prof/P}")" "${extra[@]}"
  log "trace $delay $cfg r$r: $(elapsed "$tm" "$t1") s"
  fresh_dest "$dest"
}

# files_mib: MiB of the files the trace reads.
files_mib() {
  awk 'NR == FNR { want[$0] = 1; next } ("/" $2) in want { s += $1 }
       END { printf "%.1f", s / 1048576 }' "$FILES" "$BOOT_IMG.list"
}

sec_trace() {
  build_boot_image
  build_trace
  local n; n=$(grep -c . "$TRACE")
  record meta trace - 0 image_mib="$BOOT_MIB" image_data_mib="$(du -m "$BOOT_IMG" | cut -f1)" \
    requests="$n" trace_mib="$(awk '{ s += $2 } END { printf "%.1f", s / 1048576 }' "$TRACE")" \
    files="$(grep -c . "$FILES")" files_mib="$(files_mib)" summary="$(tr ' ' _ < "$TRACE.summary")"
  local d r c
  for d in $DELAYS; do
    for ((r = 1; r <= ROUNDS; r++)); do
      attempt "trace $d record r$r" tr_clone record "$d" "$r"
      # the others alternate (reversed on even rounds); profile follows record's run
      local list="main cor hints profile local hydrated"
      (( r % 2 == 0 )) && list="hydrated local profile hints cor main"
      for c in $list; do
        [[ " $CONFIGS " == *" $c "* ]] || continue
        if [ "$c" = local ]; then attempt "trace $d local r$r" tr_local "$d" "$r"
        elif [ "$c" = hydrated ]; then attempt "trace $d hydrated r$r" tr_hydrated "$d" "$r"
        else attempt "trace $d $c r$r" tr_clone "$c" "$d" "$r"; fi
      done
    done
  done
}

# ---- section seq -----------------------------------------------------------------------

SEQ_SRC=$IMG/random-${SEQ_MIB}M.img

# seq_run ROUND: dd of the whole clone from the moment the mount returns;
# `clonefs wait` runs alongside and notes when hydration is complete.
seq_run() {
  local r=$1 dest=$IMG/rd-seq.img mnt=$MNT/seq opts size; size=$(size_of "$SEQ_SRC")
  opts=$(cfg_opts seq) || die "unknown SEQ_OPTS"
  fresh_dest "$dest"; drop_caches
  rs_start seq "$SEQ_SRC" delay "rdelay=$SEQ_DELAY"
  local t0 tm; t0=$(now)
  cf_mount "$RS_URI" "$dest" "$mnt" $opts
  tm=$(now)
  rm -f "$RUN/seq-wait.pid" "$RUN/seq-wait.done"
  ( "$CLONEFS" wait "$mnt" --quiet --interval 0.05 --timeout "$HYD_TIMEOUT_S" \
      >/dev/null 2>"$RUN/seq-wait.err" &
    echo $! > "$RUN/seq-wait.pid"
    rc=0; wait $! || rc=$?
    echo "$EPOCHREALTIME $rc" > "$RUN/seq-wait.done" ) &
  register_pid $!
  for _ in $(seq 100); do [ -s "$RUN/seq-wait.pid" ] && break; sleep 0.01; done
  register_pid "$(cat "$RUN/seq-wait.pid")"
  dd if="$(cf_file "$dest" "$mnt")" of=/dev/null bs=1M iflag=direct status=none \
    || die "dd of the clone failed"
  local tdd; tdd=$(now)
  for _ in $(seq $((HYD_TIMEOUT_S * 10 + 100))); do [ -s "$RUN/seq-wait.done" ] && break; sleep 0.1; done
  local done_t rc
  read -r done_t rc < "$RUN/seq-wait.done" || die "clonefs wait did not finish"
  [ "$rc" = 0 ] || die "clonefs wait: rc $rc: $(head -c 300 "$RUN/seq-wait.err")"
  cf_unmount "$mnt"
  rs_stop seq "$RUN/srv.json"
  local check=()
  [ "$r" = "$ROUNDS" ] && { if cmp -s "$SEQ_SRC" "$dest"; then check=(verified=1)
                            else check=(verified=0); log "WARNING: $dest differs from $SEQ_SRC"; fi; }
  record seq "$SEQ_DELAY" clonefs "$r" --metrics "$RUN/srv.json" size_bytes="$size" \
    mount_s="$(elapsed "$t0" "$tm")" dd_s="$(elapsed "$tm" "$tdd")" \
    dd_mib_s="$(mib_s "$size" "$(elapsed "$tm" "$tdd")")" hydrated_s="$(elapsed "$tm" "$done_t")" \
    opts="${opts// /_}" "${check[@]}"
  fresh_dest "$dest"
}

sec_seq() {
  make_data_image "$SEQ_SRC" "$SEQ_MIB"
  local r
  for ((r = 1; r <= ROUNDS; r++)); do attempt "seq r$r" seq_run "$r"; done
}

# ---- section buffered ------------------------------------------------------------------

# timed_cat FILE SYS ROUND: cat FILE > /dev/null (page cache, readahead)
timed_cat() {
  local t0 t; t0=$(now)
  cat "$1" > /dev/null || die "cat $1 failed"
  t=$(elapsed "$t0")
  record buffered "$BUF_DELAY" "$2" "$3" --metrics "$RUN/srv.json" time_s="$t" \
    mib_s="$(mib_s "$(size_of "$SEQ_SRC")" "$t")"
}

buf_clonefs() {  # buf_clonefs ROUND
  local dest=$IMG/rd-buf.img mnt=$MNT/buf opts
  opts=$(cfg_opts buffered) || die "unknown BUF_OPTS"
  fresh_dest "$dest"; drop_caches
  rs_start buf "$SEQ_SRC" delay "rdelay=$BUF_DELAY"
  cf_mount "$RS_URI" "$dest" "$mnt" $opts
  local t0 t; t0=$(now)
  cat "$(cf_file "$dest" "$mnt")" > /dev/null || die "cat of the clone failed"
  t=$(elapsed "$t0")
  cf_unmount "$mnt"
  rs_stop buf "$RUN/srv.json"
  record buffered "$BUF_DELAY" clonefs "$1" --metrics "$RUN/srv.json" time_s="$t" \
    mib_s="$(mib_s "$(size_of "$SEQ_SRC")" "$t")" opts="${opts// /_}"
  fresh_dest "$dest"
}

buf_nbdfuse() {  # buf_nbdfuse ROUND: the same server read through nbdfuse
  local dir=$MNT/nbdfuse pidf=$RUN/nbdfuse.pid
  mkdir -p "$dir"; drop_caches
  rs_start buf "$SEQ_SRC" delay "rdelay=$BUF_DELAY"
  rm -f "$pidf"
  register fuse "$dir"
  nbdfuse -r -P "$pidf" "$dir" "$RS_URI" > "$RUN/nbdfuse.log" 2>&1 &
  register_pid $!
  for _ in $(seq 100); do [ -s "$pidf" ] && break; sleep 0.1; done
  [ -s "$pidf" ] || die "nbdfuse did not start: $(head -c 300 "$RUN/nbdfuse.log")"
  local t0 t; t0=$(now)
  cat "$dir/nbd" > /dev/null || die "cat through nbdfuse failed"
  t=$(elapsed "$t0")
  fusermount3 -u "$dir" || umount -l "$dir"
  rs_stop buf "$RUN/srv.json"
  record buffered "$BUF_DELAY" nbdfuse "$1" --metrics "$RUN/srv.json" time_s="$t" \
    mib_s="$(mib_s "$(size_of "$SEQ_SRC")" "$t")"
}

sec_buffered() {
  make_data_image "$SEQ_SRC" "$SEQ_MIB"
  local r s list
  for ((r = 1; r <= ROUNDS; r++)); do
    list="clonefs nbdfuse"; (( r % 2 == 0 )) && list="nbdfuse clonefs"
    for s in $list; do attempt "buffered $s r$r" "buf_$s" "$r"; done
  done
}

# ---- main -------------------------------------------------------------------------------

log "run dir $RUN"
if [ $PREPARE = 1 ]; then
  build_boot_image && build_trace && make_data_image "$SEQ_SRC" "$SEQ_MIB"
  log "prepared: $BOOT_IMG, $TRACE, $SEQ_SRC"
  exit 0
fi
RUN_T0=$(now)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
$BENCH machine > "$RUN/machine.json"
record meta machine - 0 --metrics "$RUN/machine.json"
record meta config - 0 quick=$QUICK rounds="$ROUNDS" delays="${DELAYS// /,}" \
  boot_mib="$BOOT_MIB" boot_files="$BOOT_FILES" boot_files_mib="$BOOT_FILES_MIB" \
  boot_random="${BOOT_RANDOM// /,}" boot_tree="${BOOT_TREE// /,}" coalesce_kib="$COALESCE_KIB" \
  seq_mib="$SEQ_MIB" seq_delay="$SEQ_DELAY" buf_delay="$BUF_DELAY" \
  nbdkit_threads="${NBDKIT_THREADS:-default}" \
  clonefs_build="$(cf_build_info)" \
  main_opts_known="$(cf_knows "$(cf_onoff "$MAIN_OPTS")" && echo 1 || echo 0)" \
  commit="$(git -C "$REPO" log -1 --format='%h %cd' --date=short 2>/dev/null || echo unknown)"

want trace && attempt "section trace" sec_trace
want seq && attempt "section seq" sec_seq
want buffered && attempt "section buffered" sec_buffered
cleanup_all
record meta load - 0 start="$LOAD_START" end="$(cut -d' ' -f1-3 /proc/loadavg)" \
  duration_s="$(elapsed "$RUN_T0")"

$PY "$HERE/report.py" "$RESULTS" > "$RUN/report.md" || die "report failed"
cat "$RUN/report.md"
log "results in $RUN"
