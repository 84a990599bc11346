#!/bin/bash
# `clonefs --version` names the version and the commit it was built from.
#   check_version.sh CLONEFS_BINARY VERSION SOURCE_DIR
set -uo pipefail
bin=$1 version=$2 src=$3
got=$("$bin" --version) || { echo "clonefs --version failed"; exit 1; }
commit=unknown
if [[ -e "$src/.git" ]] && command -v git >/dev/null; then
  commit=$(git -C "$src" describe --always --dirty --abbrev=12)
fi
want="clonefs $version (commit $commit)"
if [[ "$got" != "$want" ]]; then
  echo "clonefs --version: expected '$want', got '$got'"
  exit 1
fi
echo "$got"
