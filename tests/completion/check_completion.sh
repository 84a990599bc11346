#!/bin/bash
# Checks the bash completion against the real command:
#   check_completion.sh CLONEFS_BINARY COMPLETION_FILE
set -uo pipefail
bin=$(realpath "$1") file=$(realpath "$2")
export PATH="$(dirname "$bin"):$PATH"
# shellcheck disable=SC1091
source /usr/share/bash-completion/bash_completion || exit 1
# shellcheck disable=SC1090
source "$file" || exit 1
fail=0

complete_line() {  # complete_line "clonefs mount --ra" -> the candidates, sorted, one per line
  local line=$1
  COMP_LINE=$line
  COMP_POINT=${#line}
  read -ra COMP_WORDS <<<"$line"
  [[ $line == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _clonefs clonefs "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  printf '%s\n' "${COMPREPLY[@]}" | sort
}

expect() {  # expect LINE WORD...: the candidates are exactly WORD...
  local line=$1; shift
  local got want
  got=$(complete_line "$line")
  want=$(printf '%s\n' "$@" | sort)
  if [[ "$got" != "$want" ]]; then
    echo "completing '$line': expected [$(echo $want)], got [$(echo $got)]"; fail=1
  fi
}

expect_has() {  # expect_has LINE WORD...: the candidates include every WORD
  local line=$1; shift
  local got w
  got=$(complete_line "$line")
  for w in "$@"; do
    grep -qx -- "$w" <<<"$got" || { echo "completing '$line': '$w' missing from [$(echo $got)]"; fail=1; }
  done
}

expect "clonefs mo" mount
expect "clonefs un" unmount
# Exactly the commands `clonefs --help` lists, and --help, --version.
mapfile -t commands < <("$bin" --help 2>&1 | sed -n '/^Commands:/,/^$/p' | sed -nE 's/^  ([a-z]+) .*/\1/p')
((${#commands[@]} > 0)) || { echo "clonefs --help lists no commands"; fail=1; }
expect "clonefs " "${commands[@]}" --help --version
expect "clonefs mount --ra" --rate
expect "clonefs mount --record" --record-profile
expect "clonefs mount --no-pass" --no-passthrough
expect "clonefs mount --passt" --passthrough
expect_has "clonefs mount --" --region-size --no-hydration --copy-on-read --allow-other --foreground
expect "clonefs wait --ti" --timeout
expect "clonefs status --js" --json
expect "clonefs mount --log-level " debug error info warning
expect_has "clonefs message /mnt/x " enable_hydration disable_hydration rate copy_on_read read_hints
expect "clonefs message /mnt/x copy_on_read " off on
expect "clonefs profile " show
expect "clonefs profile --" --help
# Option values, and the positional arguments after an option's value. The
# running clones' mountpoints are a fixed list here.
_clonefs_mountpoints() { echo /mnt/clone-a; }
expect "clonefs wait " /mnt/clone-a
expect "clonefs wait --timeout 60 " /mnt/clone-a
expect "clonefs wait --stall-timeout 60 " /mnt/clone-a
expect "clonefs wait --stall-timeout " ""
expect "clonefs status --watch 5 " /mnt/clone-a
expect "clonefs status -w 5 --dm " /mnt/clone-a
expect "clonefs status --watch " /mnt/clone-a
expect "clonefs status --watch /mnt/clone-a " ""
expect "clonefs status -w 0.5 /mnt/clone-a " ""
expect "clonefs mount --fuse-transport " auto dev uring
expect "clonefs mount --fuse-transport u" uring
# SOURCE and DEST complete as files, MOUNTPOINT as a directory.
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/dir" && touch "$tmp/src.img"
cd "$tmp" || exit 1
expect "clonefs mount --fuse-transport dev src.img " dir src.img
expect "clonefs mount --log-level debug src.img " dir src.img
expect "clonefs mount --fuse-transport dev src.img d.img " dir
# Every option that --help shows with a value (OPT ARG, -x [ --opt ] ARG)
# is known to take one: its value is not counted as SOURCE, DEST or
# MOUNTPOINT.
value_options() {  # value_options CMD: the options of CMD --help that take a value
  "$bin" "$1" --help 2>&1 |
    sed -nE 's/^  (-[A-Za-z] \[ )?(--[a-z][a-z0-9-]*)( \])? ([A-Z][A-Z_]*|arg)( .*)?$/\2/p'
}
for opt in $(value_options mount); do
  expect "clonefs mount $opt v src.img " dir src.img
done
cd - >/dev/null || exit 1
for cmd in unmount status wait; do
  for opt in $(value_options "$cmd"); do
    expect "clonefs $cmd $opt 1 " /mnt/clone-a
  done
done
# Every option --help lists is offered.
for cmd in "${commands[@]}"; do
  mapfile -t opts < <("$bin" "$cmd" --help 2>&1 | sed -nE 's/^  (-[A-Za-z] \[ )?(--[a-z][a-z0-9-]*).*/\2/p')
  expect_has "clonefs $cmd --" "${opts[@]}"
done
((fail == 0)) && echo "bash completion: every case completes as expected"
exit $fail
