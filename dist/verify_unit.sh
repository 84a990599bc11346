#!/bin/bash
# systemd-analyze verify on clonefs@.service, instantiated, with ExecStart
# pointing at BINDIR. Fails on any diagnostic (unknown keys are only warned
# about by systemd-analyze, with exit code 0).
#   verify_unit.sh UNIT.in BINDIR
set -uo pipefail
unit=$1 bindir=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
sed "s#@CMAKE_INSTALL_FULL_BINDIR@#$bindir#g" "$unit" >"$tmp/clonefs@vm1.service"
out=$(systemd-analyze verify --man=no "$tmp/clonefs@vm1.service" 2>&1)
rc=$?
if ((rc != 0)) || [[ -n "$out" ]]; then
  echo "systemd-analyze verify (exit $rc):"; echo "$out"; exit 1
fi
echo "clonefs@.service: systemd-analyze verify reports nothing"
