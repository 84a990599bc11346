#!/bin/bash
# The test command: installs what is missing, builds from scratch, runs the
# unit and mount tiers (the mount tier on both FUSE transports: /dev/fuse,
# then io_uring), builds and checks the Debian package, runs the unit
# and component tiers under ASan+UBSan and TSan, then fuzzes every parser
# for a few seconds.
#
#   tests/run.sh            everything (what CI runs)
#   tests/run.sh --quick    normal build and tests only: no package, no sanitizer builds, no fuzzing
#
# Then (not with --quick) every fuzz target of tests/fuzz for a few seconds
# over its committed corpus.
#
# Build trees: build/ (normal), build-asan/, build-tsan/, build-fuzz/. Mount
# tests need root and /dev/fuse; they skip elsewhere, but with CI=true a skip
# is a failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
jobs=$(nproc)

tests/install-deps.sh

# Ninja schedules the whole build graph at once (make stops at target
# boundaries), which matters on two cores.
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

# What the test builds need and no more: line tables only (-g1: backtraces
# keep file and line; full debug info made the -O2 objects a quarter slower
# to compile and every link slower; the code is the same), and lld, which
# links the test drivers in about a third of the CPU time of ld.bfd.
ci_flags=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG")
command -v ld.lld >/dev/null && ci_flags+=(-DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld)

configure() {  # configure DIR [cmake args...]
  local dir=$1; shift
  rm -rf "$dir"
  cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${ci_flags[@]}" "$@" \
    >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; return 1; }
}

build() {  # build DIR [cmake args...]: everything (binaries, tests, benchmarks)
  configure "$@"
  cmake --build "$1" -j"$jobs"
}

build_tests() {  # build_tests DIR [cmake args...]: only the unit and component tests
  configure "$@"
  cmake --build "$1" -j"$jobs" --target clonefs_unit_component_tests
}

echo "== normal build (at ${SECONDS}s)"
# Prefix /usr: the Debian package is made from this tree. The component
# tier runs under ASan+UBSan and TSan below; the normal tree builds and runs
# it only with --quick (the whole run must fit in 20 minutes on two cores).
tiers="unit;mount"
((quick == 1)) && tiers="unit;component;mount"
build build -DCMAKE_INSTALL_PREFIX=/usr -DCLONEFS_TEST_TIERS="$tiers"
# The mount tier runs on both FUSE transports: /dev/fuse, then io_uring
# (docs/design.md). io_uring needs the kernel's enable_uring parameter, which
# is turned on for the tests and put back afterwards.
uring_param=/sys/module/fuse/parameters/enable_uring
uring_before=""
if [[ -w $uring_param ]]; then
  uring_before=$(cat "$uring_param")
  trap '[[ $uring_before == N ]] && echo 0 > "$uring_param" || true' EXIT
  echo 1 >"$uring_param"
fi
echo "== tests: $tiers, mounts over /dev/fuse (at ${SECONDS}s)"
# Twice as many tests as cores: the mount tests spend most of their time
# waiting for daemons, servers and the kernel.
(cd build && CLONEFS_FUSE_TRANSPORT=dev ctest --output-on-failure -j"$((jobs * 2))" --timeout 600)
if [[ -n $uring_before ]]; then
  echo "== tests: mount, over FUSE io_uring (at ${SECONDS}s)"
  (cd build && CLONEFS_FUSE_TRANSPORT=uring ctest --output-on-failure -j"$((jobs * 2))" \
    --timeout 600 -L mount)
else
  echo "== tests: mount over FUSE io_uring SKIPPED: this kernel has no $uring_param" \
    "(FUSE over io_uring needs Linux 6.14+ with CONFIG_FUSE_IO_URING)"
fi

if ((quick == 0)); then
  # The package check mostly waits (apt, the demo's rate-limited copy), so it
  # runs beside the ASan+UBSan build and is joined before the sanitizer tests.
  echo "== Debian package: build, install, demo with the installed binary, remove (at ${SECONDS}s, in the background)"
  tests/package_check.sh build >build/package_check.log 2>&1 &
  package_pid=$!
  echo "== ASan+UBSan build (at ${SECONDS}s)"
  build_tests build-asan -DCLONEFS_SANITIZE=asan
  package_rc=0
  wait "$package_pid" || package_rc=$?
  cat build/package_check.log
  ((package_rc == 0)) || { echo "== the Debian package check failed"; exit 1; }
  (cd build-asan && ctest --output-on-failure -j"$jobs" -L 'unit|component' --timeout 900)
  echo "== TSan build (at ${SECONDS}s)"
  build_tests build-tsan -DCLONEFS_SANITIZE=tsan
  (cd build-tsan && ctest --output-on-failure -j"$jobs" -L 'unit|component' --timeout 900)
  echo "== fuzz targets (at ${SECONDS}s)"
  # A smoke run: the committed corpus (every input that once found a bug)
  # and a few seconds of new inputs per target. Long runs: docs/fuzzing.md.
  rm -rf build-fuzz
  tests/fuzz/run.sh all 2
fi
echo "== all tests passed (in ${SECONDS}s)"
