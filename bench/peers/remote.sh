# shellcheck shell=bash disable=SC2046  # $(systems ...) is split into words on purpose
# The `remote` section of bench/peers/run.sh (sourced by it, after lib.sh):
# clonefs hydrating from an NBD source (SPEC §9) against
#   - nbdcopy, the ideal pipelined reader, copying the export to a local file;
#   - qemu-storage-daemon with QEMU's own NBD client (driver=nbd) as the
#     backing node of a qcow2 overlay, a copy-on-read filter on top, exported
#     through FUSE as the other sections do, hydrated by reading the file.
# Every measurement gets a fresh server on a Unix socket:
#   nbdkit -r -U SOCK --filter=stats [--filter=error|rate|delay ...] file IMAGE
# so the stats filter (outermost) counts what that one system read from the
# source. Each server is stopped by pid when its measurement ends, and by the
# cleanup registry whatever happens.
#
# Cases (records of section "remote"):
#   hyd/DELAY        full hydration of RM_MIB of random data, every RM_DELAYS
#   ttfb/DELAY       mount to first byte (clonefs, qsd), every RM_LAT_DELAYS
#   lat-qd1/DELAY    4 KiB reads of unhydrated data, QD1 and QD16, each at a
#   lat-qd16/DELAY   64 KiB-aligned offset not read before (clonefs
#                    --no-hydration; qsd with a fresh overlay, no streaming)
#   sparse           RM_SPARSE_MIB apparent holding RM_SPARSE_EXTENTS x 1 MiB
#   outage           clean hydration vs one with a RM_OUTAGE_S source outage
#   rate/BITS        hydration under nbdkit's rate filter (bits per second)
#
# Needs from run.sh: QUICK, ROUNDS, RUNTIME, HYD_TIMEOUT_S, IMG, MNT, RUN,
# CLONEFS, cf_enabled, attempt, order, systems.

if [ "$QUICK" = 1 ]; then
  : "${RM_MIB:=256}" "${RM_DELAYS:=5ms}" "${RM_LAT_DELAYS:=5ms}" "${RM_SPARSE_MIB:=4096}"
  : "${RM_SPARSE_EXTENTS:=64}" "${RM_RATES:=400000000}"
else
  : "${RM_MIB:=1024}" "${RM_DELAYS:=0ms 5ms 50ms}" "${RM_LAT_DELAYS:=5ms 50ms}"
  : "${RM_SPARSE_MIB:=16384}" "${RM_SPARSE_EXTENTS:=256}" "${RM_RATES:=400000000 2000000000}"
fi
: "${RM_SPARSE_DELAY:=5ms}"      # rdelay of the sparse case
: "${RM_OUTAGE_DELAY:=5ms}"      # rdelay of the outage case
: "${RM_OUTAGE_S:=10}"           # seconds the source fails every request
: "${RM_OUTAGE_AT:=0.25}"        # hydrated fraction at which the outage starts
: "${RM_RATE_DELAY:=5ms}"        # rdelay under the rate filter
: "${RM_BURST_S:=0.1}"           # rate filter burstiness (nbdkit's default, 2 s, bursts at start)
: "${RM_QSD_QD:=8}"              # 1 MiB sequential reads in flight hydrating qsd
: "${RM_LAT_S:=$RUNTIME}"        # about this long per latency run
: "${RM_TIMEOUT_S:=$HYD_TIMEOUT_S}"
: "${NBDKIT_THREADS:=}"          # nbdkit -t (threads per connection); empty: nbdkit's default

RM_SRC=$IMG/remote-data-${RM_MIB}M.img
RM_SPARSE=$IMG/remote-sparse-${RM_SPARSE_MIB}M-${RM_SPARSE_EXTENTS}x1M.img

# The server: rs_start / rs_stop (lib.sh).

# ---- helpers ---------------------------------------------------------------------

size_of() { stat -c %s "$1"; }
mib_s() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.2f", (t > 0 ? b / 1048576 / t : 0) }'; }
# delay_s 5ms -> 0.005 (also 0.5s, 2)
delay_s() {
  awk -v d="$1" 'BEGIN { if (d ~ /ms$/) { sub(/ms$/, "", d); print d / 1000 }
                         else { sub(/s$/, "", d); print d + 0 } }'
}
# same_as IMAGE COPY: 1 if equal byte for byte, else 0 (logged).
same_as() {
  if cmp -s "$1" "$2"; then echo 1; else log "WARNING: $2 differs from $1"; echo 0; fi
}
rm_fresh_dest() { rm -rf "$1" "$(cf_meta "$1")"; }

# ---- the three systems -------------------------------------------------------

rm_nbdcopy() {  # rm_nbdcopy CASE IMAGE ROUND FILTERS PARAMS
  local dest=$IMG/rm-nbdcopy.img size; size=$(size_of "$2")
  rm -f "$dest"; drop_caches
  rs_start nbdcopy "$2" "$4" "$5"
  local t0 t; t0=$(now)
  nbdcopy --flush "$RS_URI" "$dest" || die "nbdcopy $RS_URI $dest failed"
  t=$(elapsed "$t0")
  rs_stop nbdcopy "$RUN/rs.json"
  local check=()
  [ "$3" = "$ROUNDS" ] && check=(verified="$(same_as "$2" "$dest")")
  record remote "$1" nbdcopy "$3" --metrics "$RUN/rs.json" time_s="$t" \
    mib_s="$(mib_s "$size" "$t")" dest_kib="$(du_kib "$dest")" "${check[@]}"
  rm -f "$dest"
}

# rm_clonefs CASE IMAGE ROUND FILTERS PARAMS: from starting the mount to
# `clonefs wait` returning complete, the mount command's own share of it
# (it opens the source and reads its fingerprints), then the unmount.
rm_clonefs() {
  local dest=$IMG/rm-cf.img mnt=$MNT/rm size; size=$(size_of "$2")
  rm_fresh_dest "$dest"; drop_caches
  rs_start clonefs "$2" "$4" "$5"
  local t0 tm t1 t2; t0=$(now)
  cf_mount "$RS_URI" "$dest" "$mnt"
  tm=$(now)
  cf_wait "$mnt" "$RM_TIMEOUT_S" || die "hydration from $RS_URI not complete in $RM_TIMEOUT_S s"
  t1=$(now)
  cf_status "$mnt" > "$RUN/cf-status.json" || echo '{}' > "$RUN/cf-status.json"
  local t1b; t1b=$(now)
  cf_unmount "$mnt"
  t2=$(now)
  rs_stop clonefs "$RUN/rs.json"
  local check=() t; t=$(elapsed "$t0" "$t1")
  [ "$3" = "$ROUNDS" ] && check=(verified="$(same_as "$2" "$dest")")
  local st=$RUN/cf-status.json
  record remote "$1" clonefs "$3" --metrics "$RUN/rs.json" \
    time_s="$t" mount_s="$(elapsed "$t0" "$tm")" unmount_s="$(elapsed "$t1b" "$t2")" \
    mib_s="$(mib_s "$size" "$t")" after_mount_mib_s="$(mib_s "$size" "$(elapsed "$tm" "$t1")")" \
    dest_kib="$(du_kib "$dest")" meta_kib="$(du_kib "$(cf_meta "$dest")")" \
    src_errors="$(json_get src_errors < "$st")" src_retries="$(json_get src_retries < "$st")" \
    src_reconnects="$(json_get src_reconnects < "$st")" "${check[@]}"
  rm_fresh_dest "$dest"
}

rm_qsd() {  # rm_qsd CASE IMAGE ROUND FILTERS PARAMS: sequential reads through copy-on-read
  local ov=$IMG/rm-qsd.qcow2 exp=$MNT/rm-qsd.img size; size=$(size_of "$2")
  rs_start qsd "$2" "$4" "$5"
  qsd_overlay "$RS_URI" "$ov" "$size"; drop_caches
  local t0 t; t0=$(now)
  qsd_start "$RS_URI" "$ov" "$exp" rm
  fio --name=hydrate --filename="$exp" --size="$size" --rw=read --bs=1M \
    --iodepth="$RM_QSD_QD" --direct=1 --ioengine=libaio --output-format=json \
    --output="$RUN/rm-qsd-fio.json" >/dev/null 2>"$RUN/rm-qsd-fio.err" \
    || die "fio through qsd failed: $(head -c 300 "$RUN/rm-qsd-fio.err")"
  qsd_stop "$exp" rm
  t=$(elapsed "$t0")
  rs_stop qsd "$RUN/rs.json"
  record remote "$1" qsd "$3" --metrics "$RUN/rs.json" time_s="$t" \
    mib_s="$(mib_s "$size" "$t")" dest_kib="$(du_kib "$ov")"
  rm -f "$ov"
}

# ---- time to first byte, and reads of unhydrated data ----------------------

rm_ttfb_clonefs() {  # rm_ttfb_clonefs DELAY ROUND
  local dest=$IMG/rm-ttfb.img mnt=$MNT/rm-ttfb t args
  rm_fresh_dest "$dest"; mkdir -p "$mnt"; drop_caches
  rs_start ttfb "$RM_SRC" delay "rdelay=$1"
  register clonefs "$mnt"
  mapfile -t args < <(cf_mount_args "$RS_URI" "$dest" "$mnt")
  t=$($BENCH ttfb --file "$mnt/$(basename "$dest")" --timeout 60 -- "${args[@]}") \
    || die "no first byte: $t"
  cf_unmount "$mnt"
  rs_stop ttfb "$RUN/rs.json"
  record remote "ttfb/$1" clonefs "$2" --metrics - <<<"$t"
  rm_fresh_dest "$dest"
}

rm_ttfb_qsd() {  # rm_ttfb_qsd DELAY ROUND
  local ov=$IMG/rm-qsd-ttfb.qcow2 exp=$MNT/rm-qsd-ttfb.img tag=rmttfb t args
  rs_start ttfb "$RM_SRC" delay "rdelay=$1"
  qsd_overlay "$RS_URI" "$ov" "$(size_of "$RM_SRC")"
  touch "$exp"; rm -f "$RUN/qsd-$tag.pid"; drop_caches
  register fuse "$exp"
  mapfile -t args < <(qsd_args "$RS_URI" "$ov" "$exp" "$tag")
  t=$($BENCH ttfb --file "$exp" --timeout 60 -- "${args[@]}") || die "no first byte: $t"
  register_pid "$(qsd_pid $tag)"
  qsd_stop "$exp" $tag
  rs_stop ttfb "$RUN/rs.json"
  record remote "ttfb/$1" qsd "$2" --metrics - <<<"$t"
  rm -f "$ov"
}

# rm_lat_fio SYS FILE DELAY ROUND: QD1 then QD16 4 KiB reads, every one at a
# 64 KiB-aligned offset no earlier read touched (fio replays an iolog), about
# RM_LAT_S seconds each.
rm_lat_fio() {
  local sys=$1 file=$2 delay=$3 r=$4 n1 n16 qd log=$RUN/rm-lat.iolog
  n1=$(awk -v s="$RM_LAT_S" -v d="$(delay_s "$delay")" 'BEGIN { d = d < 0.001 ? 0.001 : d
    n = int(s / d); print (n < 20 ? 20 : n) }')
  n16=$((n1 * 16))
  $BENCH iolog --out "$log" --size "$(size_of "$RM_SRC")" --count $((n1 + n16)) --split "$n1" \
    --seed "$r" >/dev/null
  for qd in 1 16; do
    local out=$RUN/rm-lat-$sys-qd$qd-$delay-r$r.json src=$log
    [ $qd = 16 ] && src=$log.2
    fio --name="lat-qd$qd" --read_iolog="$src" --replay_redirect="$file" --replay_no_stall=1 \
      --direct=1 --ioengine=libaio --iodepth=$qd --runtime=$((RM_LAT_S * 4 + 10)) \
      --percentile_list=50:99:99.9 --output-format=json --output="$out" >/dev/null 2>"$out.err" \
      || die "fio lat-qd$qd on $file failed: $(head -c 300 "$out.err")"
    $BENCH fio "$out" | record remote "lat-qd$qd/$delay" "$sys" "$r" --metrics -
  done
}

rm_lat_clonefs() {  # rm_lat_clonefs DELAY ROUND: the copier off, nothing hydrated
  local dest=$IMG/rm-lat.img mnt=$MNT/rm-lat
  rm_fresh_dest "$dest"; drop_caches
  rs_start lat "$RM_SRC" delay "rdelay=$1"
  cf_mount "$RS_URI" "$dest" "$mnt" --no-hydration
  rm_lat_fio clonefs "$(cf_file "$dest" "$mnt")" "$1" "$2"
  cf_unmount "$mnt"
  rs_stop lat "$RUN/rs.json"
  rm_fresh_dest "$dest"
}

rm_lat_qsd() {  # rm_lat_qsd DELAY ROUND: a fresh overlay, no streaming
  local ov=$IMG/rm-qsd-lat.qcow2 exp=$MNT/rm-qsd-lat.img
  rs_start lat "$RM_SRC" delay "rdelay=$1"
  qsd_overlay "$RS_URI" "$ov" "$(size_of "$RM_SRC")"; drop_caches
  qsd_start "$RS_URI" "$ov" "$exp" rmlat
  rm_lat_fio qsd "$exp" "$1" "$2"
  qsd_stop "$exp" rmlat
  rs_stop lat "$RUN/rs.json"
  rm -f "$ov"
}

# ---- outage --------------------------------------------------------------------

# rm_outage MODE ROUND: clonefs hydrating through nbdkit's error filter at
# RM_OUTAGE_DELAY. MODE outage: once RM_OUTAGE_AT is hydrated, every request
# fails with EIO for RM_OUTAGE_S (the filter's error-file exists); clean: the
# same server and the same polling of the daemon's stats (control socket, no
# commit) up to RM_OUTAGE_AT, no outage.
rm_outage() {
  local mode=$1 r=$2 dest=$IMG/rm-outage.img mnt=$MNT/rm-outage flag=$RUN/rs-outage.flag
  local size; size=$(size_of "$RM_SRC")
  rm -f "$flag"; rm_fresh_dest "$dest"; drop_caches
  rs_start outage "$RM_SRC" "error delay" \
    "error=EIO error-rate=100% error-file=$flag rdelay=$RM_OUTAGE_DELAY"
  local t0 t1; t0=$(now)
  cf_mount "$RS_URI" "$dest" "$mnt"
  local w=(--socket "$(cf_meta "$dest")/control.sock" --t0 "$t0" --interval 0.02
           --timeout "$RM_TIMEOUT_S")
  if [ "$mode" = outage ]; then
    w+=(--until 0 --outage-at "$RM_OUTAGE_AT" --outage-flag "$flag" --outage-s "$RM_OUTAGE_S")
  else
    w+=(--until "$RM_OUTAGE_AT")
  fi
  $BENCH watch "${w[@]}" > "$RUN/watch.json"
  cf_wait "$mnt" "$RM_TIMEOUT_S" || die "hydration not complete in $RM_TIMEOUT_S s after the outage"
  t1=$(now)
  cf_status "$mnt" > "$RUN/cf-status.json" || echo '{}' > "$RUN/cf-status.json"
  cf_unmount "$mnt"
  rs_stop outage "$RUN/rs.json"
  local st=$RUN/cf-status.json t; t=$(elapsed "$t0" "$t1")
  record remote outage "clonefs-$mode" "$r" --metrics "$RUN/rs.json" --metrics "$RUN/watch.json" \
    time_s="$t" mib_s="$(mib_s "$size" "$t")" outage_s="$([ "$mode" = outage ] && echo "$RM_OUTAGE_S" || echo 0)" \
    src_errors="$(json_get src_errors < "$st")" src_retries="$(json_get src_retries < "$st")" \
    src_reconnects="$(json_get src_reconnects < "$st")" \
    copy_failures="$(json_get copy_failures < "$st")" \
    verified="$(same_as "$RM_SRC" "$dest")"
  rm -f "$flag"; rm_fresh_dest "$dest"
}

# ---- the section -------------------------------------------------------------------

sec_remote() {
  log "remote: $RM_MIB MiB over NBD at $RM_DELAYS; sparse ${RM_SPARSE_MIB} MiB; outage ${RM_OUTAGE_S}s; rates $RM_RATES bit/s"
  make_data_image "$RM_SRC" "$RM_MIB"
  if [ ! -f "$RM_SPARSE.ok" ]; then
    log "creating $RM_SPARSE ($RM_SPARSE_EXTENTS x 1 MiB of data)"
    rm -f "$RM_SPARSE"
    $BENCH scattered "$RM_SPARSE" --size-mib "$RM_SPARSE_MIB" --extents "$RM_SPARSE_EXTENTS" \
      || die "could not create $RM_SPARSE"
    touch "$RM_SPARSE.ok"
  fi
  record remote config source 0 size_mib="$RM_MIB" delays="${RM_DELAYS// /,}" \
    lat_delays="${RM_LAT_DELAYS// /,}" sparse_mib="$RM_SPARSE_MIB" \
    sparse_data_kib="$(du_kib "$RM_SPARSE")" sparse_extents="$RM_SPARSE_EXTENTS" \
    sparse_delay="$RM_SPARSE_DELAY" outage_s="$RM_OUTAGE_S" outage_at="$RM_OUTAGE_AT" \
    outage_delay="$RM_OUTAGE_DELAY" rates="${RM_RATES// /,}" rate_delay="$RM_RATE_DELAY" \
    burst_s="$RM_BURST_S" qsd_qd="$RM_QSD_QD" lat_s="$RM_LAT_S" \
    nbdkit_threads="${NBDKIT_THREADS:-default}" nbdcopy="$(nbdcopy --version 2>/dev/null | head -1)"
  local d r s bits
  for d in $RM_DELAYS; do
    for ((r = 1; r <= ROUNDS; r++)); do
      for s in $(order $r $(systems nbdcopy qsd)); do
        attempt "remote hyd $d $s r$r" "rm_$s" "hyd/$d" "$RM_SRC" $r delay "rdelay=$d"
      done
    done
  done
  for d in $RM_LAT_DELAYS; do
    for ((r = 1; r <= ROUNDS; r++)); do
      for s in $(order $r $(systems qsd)); do
        attempt "remote ttfb $d $s r$r" "rm_ttfb_$s" "$d" $r
        attempt "remote latency $d $s r$r" "rm_lat_$s" "$d" $r
      done
    done
  done
  for ((r = 1; r <= ROUNDS; r++)); do
    for s in $(order $r $(systems nbdcopy)); do
      attempt "remote sparse $s r$r" "rm_$s" sparse "$RM_SPARSE" $r delay "rdelay=$RM_SPARSE_DELAY"
    done
  done
  if cf_enabled; then
    for ((r = 1; r <= ROUNDS; r++)); do
      for s in $(order $r clean outage); do
        attempt "remote outage $s r$r" rm_outage "$s" $r
      done
    done
  fi
  for bits in $RM_RATES; do
    for ((r = 1; r <= ROUNDS; r++)); do
      for s in $(order $r $(systems nbdcopy)); do
        attempt "remote rate $bits $s r$r" "rm_$s" "rate/$bits" "$RM_SRC" $r "rate delay" \
          "rate=$bits burstiness=$RM_BURST_S rdelay=$RM_RATE_DELAY"
      done
    done
  done
}
