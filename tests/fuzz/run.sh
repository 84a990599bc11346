#!/bin/bash
# Builds the fuzz targets (build-fuzz/, clang + libFuzzer) and runs them.
#
#   tests/fuzz/run.sh TARGET SECONDS [libFuzzer flags...]
#   tests/fuzz/run.sh all SECONDS [libFuzzer flags...]
#
# TARGET is a name from tests/fuzz/CMakeLists.txt (superblock, profile, ...;
# `tests/fuzz/run.sh list` lists them); "all" runs every target, as many at
# once as there are cores (FUZZ_JOBS overrides). SECONDS 0 means no time
# limit (give -runs=N then). Each target starts from its committed seeds in
# tests/fuzz/corpus/TARGET/ and writes what it finds to build-fuzz/corpus/TARGET/
# (the committed corpus is only read); a crash or a violated property leaves
# its input in build-fuzz/artifacts/ and makes this script fail. The log of
# each run is build-fuzz/logs/TARGET.log.
#
# A long run in the background, e.g. ten million inputs:
#   nice tests/fuzz/run.sh superblock 0 -runs=10000000
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}

if (($# < 1)); then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
target=$1
mapfile -t all_targets < <(sed -n '/^set(CLONEFS_FUZZ_TARGETS/,/)/p' tests/fuzz/CMakeLists.txt |
  sed 's/set(CLONEFS_FUZZ_TARGETS//; s/)//' | tr ' ' '\n' | grep -v '^\s*$')
if [[ $target == list ]]; then
  printf '%s\n' "${all_targets[@]}"
  exit 0
fi
(($# >= 2)) || { echo "usage: $0 TARGET|all SECONDS [libFuzzer flags...]" >&2; exit 2; }
seconds=$2
shift 2
if [[ $target == all ]]; then
  targets=("${all_targets[@]}")
else
  printf '%s\n' "${all_targets[@]}" | grep -qx -- "$target" ||
    { echo "unknown fuzz target '$target'; one of: ${all_targets[*]}" >&2; exit 2; }
  targets=("$target")
fi

# Configure once; ninja rebuilds what changed.
if [[ ! -f $build/build.ninja ]]; then
  mkdir -p "$build"
  cmake -S . -B "$build" -G Ninja -DCLONEFS_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log"; exit 1; }
fi
ninja -C "$build" "${targets[@]/%/_fuzz}" >"$build/ninja.log" 2>&1 || { cat "$build/ninja.log"; exit 1; }

mkdir -p "$build/logs" "$build/artifacts"
run_one() {  # run_one TARGET [flags...]: runs it, prints one summary line
  local t=$1; shift
  local log=$build/logs/$t.log
  mkdir -p "$build/corpus/$t"
  local limit=()
  ((seconds > 0)) && limit=(-max_total_time="$seconds")
  local rc=0
  "$build/tests/fuzz/${t}_fuzz" "$build/corpus/$t" "tests/fuzz/corpus/$t" "${limit[@]}" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "$@" >"$log" 2>&1 || rc=$?
  local runs
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if ((rc == 0)); then
    printf 'fuzz %-20s ok      %10s inputs  %s\n' "$t" "${runs:-?}" \
      "$(grep -o 'cov: [0-9]*' "$log" | tail -1)"
  else
    printf 'fuzz %-20s FAILED  %10s inputs  (exit %d; log %s)\n' "$t" "${runs:-?}" "$rc" "$log"
    grep -E 'property violated|exception escaped|ERROR:|SUMMARY:|Test unit written' "$log" |
      head -8 | sed 's/^/    /'
  fi
  return "$rc"
}

jobs=${FUZZ_JOBS:-$(nproc)}
failed=0
running=0
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n || failed=1
    running=$((running - 1))
  fi
  run_one "$t" "$@" &
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
exit "$failed"
