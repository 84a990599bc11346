#!/usr/bin/env bash
# Builds the clonefs command from the committed HEAD of this checkout (not the
# work tree), in $WORK/head-src and $WORK/head-build, and prints the binary's
# path, so a report names exactly the commit it measured.
# Usage: CLONEFS=$(bench/peers/build-head.sh) bench/peers/run.sh ...
# Environment: WORK (default /var/tmp/clonefs-bench/peers), BUILD_TYPE (default
# the project's default, RelWithDebInfo).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-/var/tmp/clonefs-bench/peers}
SRC=$WORK/head-src
BUILD=$WORK/head-build
rev=$(git -C "$REPO" rev-parse HEAD)
if [ "$(cat "$SRC/.commit" 2>/dev/null)" != "$rev" ]; then
  # Unpack beside, then replace only files whose content changed, so that an
  # incremental build recompiles only what the new commit touched.
  NEW=$WORK/head-src.new
  rm -rf "$NEW"; mkdir -p "$NEW" "$SRC"
  git -C "$REPO" archive --format=tar HEAD | tar -x -C "$NEW"
  (cd "$NEW" && find . -type f) | while read -r f; do
    cmp -s "$NEW/$f" "$SRC/$f" || { mkdir -p "$(dirname "$SRC/$f")"; cp "$NEW/$f" "$SRC/$f"; }  # mtime now: rebuilt
  done
  (cd "$SRC" && find . -type f ! -name .commit) | while read -r f; do
    [ -e "$NEW/$f" ] || rm -f "$SRC/$f"
  done
  rm -rf "$NEW"
  echo "$rev" > "$SRC/.commit"
fi
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >"$WORK/head-cmake.log" 2>&1 \
  || { tail -20 "$WORK/head-cmake.log" >&2; exit 1; }
cmake --build "$BUILD" --target clonefs -j2 >"$WORK/head-build.log" 2>&1 \
  || { grep -m20 -E 'error|Error' "$WORK/head-build.log" >&2; exit 1; }
echo "$BUILD/cli/clonefs"
