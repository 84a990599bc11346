#!/bin/bash
# Process-crash soak (TESTING §2, model 1): tests/mount/kill_crash_test with
# many rounds -- a SIGKILL of the daemon under concurrent writes, fsyncs and
# reads each, the crash contract checked on the whole image after every one
# -- over /dev/fuse and, where the kernel has it, over FUSE io_uring.
#
#   bench/soak/kill_soak.sh [ROUNDS [RUNS]]     (defaults: 50 rounds, 2 runs)
#
# Each run is a fresh clone (a new random seed, printed on failure); ROUNDS
# kills per run, RUNS runs per transport. Needs root and /dev/fuse; turns the
# kernel's enable_uring on for the io_uring runs and restores it. BUILD
# (default build) is the build tree; the test and clonefs are built first.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-50}
runs=${2:-2}
build=${BUILD:-build}
cmake --build "$build" --target kill_crash_test clonefs >/dev/null
test_bin=$build/tests/mount/kill_crash_test
logs=$(mktemp -d /var/tmp/clonefs-kill-soak.XXXXXX)

param=/sys/module/fuse/parameters/enable_uring
transports=dev
if [ -w "$param" ]; then
  old=$(cat "$param")
  trap 'echo "$old" > "$param"' EXIT
  echo 1 > "$param"
  transports="dev uring"
else
  echo "FUSE over io_uring not available here ($param): /dev/fuse only"
fi

failed=0
for tr in $transports; do
  kills=0
  start=$(date +%s)
  for run in $(seq "$runs"); do
    log=$logs/$tr-$run.log
    if CLONEFS_FUSE_TRANSPORT=$tr CLONEFS_KILL_ROUNDS=$rounds "$test_bin" >"$log" 2>&1; then
      kills=$((kills + rounds))
    else
      failed=$((failed + 1))
      echo "FAILED: $tr run $run (log: $log)"
      grep -E "Failure|holds|seed|round [0-9]+$" "$log" | head -20 || true
    fi
  done
  echo "$tr: $kills kills checked in $(($(date +%s) - start)) s, $runs run(s) of $rounds"
done
if [ "$failed" -ne 0 ]; then
  echo "$failed run(s) violated the crash contract or failed; logs in $logs"
  exit 1
fi
rm -rf "$logs"
echo "no crash-contract violation"
