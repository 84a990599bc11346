#!/bin/bash
# Builds the Debian package from a build tree (configured with
# -DCMAKE_INSTALL_PREFIX=/usr), checks that apt knows every package it
# names, installs it, checks the installed command, manual page and bash
# completion, runs the installed demo (with the installed binary), and
# removes the package again (unless a clonefs package was installed before:
# then it stays, upgraded).
#   tests/package_check.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
if [[ "$prefix" != /usr ]]; then
  echo "package_check: $build is configured with prefix '$prefix'; the package needs /usr" >&2
  exit 1
fi
was_installed=0
dpkg-query -W -f='${Status}' clonefs 2>/dev/null | grep -q 'install ok installed' && was_installed=1

rm -f "$build"/clonefs_*.deb
(cd "$build" && cpack -G DEB >cpack.log 2>&1) || { cat "$build/cpack.log"; exit 1; }
deb=$(ls "$build"/clonefs_*.deb)
echo "package: $(basename "$deb"); depends: $(dpkg-deb -f "$deb" Depends)"
# Every package the control file names (Depends, Recommends, Suggests) must
# exist: a misspelt or invented name only shows when a user tries to install it.
for field in Depends Recommends Suggests; do
  for p in $(dpkg-deb -f "$deb" "$field" | tr ',|' '\n' | sed -E 's/\(.*\)//; s/:any$//' | xargs -n1); do
    if [[ -z $(apt-cache policy "$p" 2>/dev/null) ]]; then
      echo "package_check: $field names '$p', which apt does not know" >&2
      exit 1
    fi
  done
done
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "$deb" >"$build/apt.log" 2>&1 ||
  { cat "$build/apt.log"; exit 1; }
cleanup() {
  if ((was_installed == 0)); then apt-get remove -y -qq clonefs >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

fail=0
want=$("$build/cli/clonefs" --version)
got=$(/usr/bin/clonefs --version)
[[ "$got" == "$want" ]] || { echo "installed clonefs --version: '$got', built: '$want'"; fail=1; }
echo "installed: $got"
man -w clonefs >/dev/null || { echo "man -w clonefs finds no manual page"; fail=1; }
[[ -f /usr/share/bash-completion/completions/clonefs ]] || { echo "no bash completion installed"; fail=1; }
[[ -f /usr/lib/systemd/system/clonefs@.service || -f /lib/systemd/system/clonefs@.service ]] ||
  { echo "no systemd unit installed"; fail=1; }
grep -q '^ExecStart=/usr/bin/clonefs ' /usr/lib/systemd/system/clonefs@.service ||
  { echo "the installed unit does not run /usr/bin/clonefs"; fail=1; }
# The demo as the package installs it, run as a user would: it finds the
# installed clonefs on PATH.
demo=/usr/share/doc/clonefs/examples/demo.sh
if [[ ! -x $demo ]]; then
  echo "$demo is not installed, or not executable"; fail=1
elif ! (unset CLONEFS; cd / && PATH=/usr/sbin:/usr/bin:/sbin:/bin "$demo") \
    >"$build/demo-installed.log" 2>&1; then
  echo "the installed demo ($demo) failed:"; tail -30 "$build/demo-installed.log"; fail=1
elif ! grep -qF '$ /usr/bin/clonefs mount' "$build/demo-installed.log"; then
  echo "the installed demo did not run /usr/bin/clonefs:"; grep -F 'clonefs mount' "$build/demo-installed.log"; fail=1
fi
if ((was_installed == 0)); then
  trap - EXIT
  apt-get remove -y -qq clonefs >"$build/apt-remove.log" 2>&1 ||
    { echo "apt-get remove clonefs failed:"; cat "$build/apt-remove.log"; fail=1; }
  for f in /usr/bin/clonefs /usr/share/man/man8/clonefs.8.gz /usr/lib/systemd/system/clonefs@.service; do
    [[ -e "$f" ]] && { echo "$f is still there after apt-get remove"; fail=1; }
  done
fi
((fail == 0)) && echo "package: installs, runs the demo, and is removed cleanly"
exit $fail
