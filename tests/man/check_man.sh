#!/bin/bash
# Checks the manual page: groff finds nothing to warn about, and each
# command's section documents exactly the options its --help lists.
#   check_man.sh CLONEFS_BINARY MAN_PAGE
set -uo pipefail
bin=$1 page=$2
fail=0

warnings=$(groff -man -ww -z "$page" 2>&1)
if [[ -n "$warnings" ]]; then
  echo "groff -man -ww -z $page warns:"; echo "$warnings"; fail=1
fi

# Long options defined by `clonefs CMD --help` (boost's layout: "  --opt ARG"
# or "  -o [ --opt ] ARG" at the start of a line), without --help.
help_options() {
  "$bin" "$1" --help 2>&1 | sed -nE 's/^  (-[A-Za-z] \[ )?--([a-z][a-z0-9-]*).*/--\2/p' |
    grep -vx -- '--help' | sort -u
}
# Long options given a .TP entry in the section ".SS clonefs CMD ...".
man_options() {
  awk -v cmd="$1" '
    /^\.S[SH] / { insec = ($1 == ".SS" && $2 == "clonefs" && $3 == cmd); tp = 0; next }
    insec && /^\.TP/ { tp = 1; next }
    insec && tp { print; tp = 0 }' "$page" |
    sed 's/\\-/-/g' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
}

# The commands: those `clonefs --help` lists, each with its own section, and
# no section for a command it does not list. The top-level options the
# SYNOPSIS names are in `clonefs --help` too.
top=$("$bin" --help 2>&1)
commands=$(sed -n '/^Commands:/,/^$/p' <<<"$top" | sed -nE 's/^  ([a-z]+) .*/\1/p' | sort)
[[ -n "$commands" ]] || { echo "clonefs --help lists no commands"; fail=1; }
sections=$(sed -nE 's/^\.SS clonefs ([a-z]+)( .*)?$/\1/p' "$page" | sort)
only_help=$(comm -23 <(echo "$commands") <(echo "$sections"))
only_man=$(comm -13 <(echo "$commands") <(echo "$sections"))
if [[ -n "$only_help" ]]; then echo "in clonefs --help, no section in the manual page:" $only_help; fail=1; fi
if [[ -n "$only_man" ]]; then echo "a section in the manual page, not in clonefs --help:" $only_man; fail=1; fi
for opt in --help --version; do
  grep -qF -- "$opt" <<<"$top" || { echo "clonefs --help does not mention $opt (the manual page's SYNOPSIS does)"; fail=1; }
done

for cmd in $commands; do
  h=$(help_options "$cmd")
  m=$(man_options "$cmd")
  # profile has no options of its own; every other command has some.
  if [[ -z "$h" && ( -n "$m" || "$cmd" != profile ) ]]; then
    echo "clonefs $cmd --help lists no options"; fail=1; continue
  fi
  only_help=$(comm -23 <(echo "$h") <(echo "$m"))
  only_man=$(comm -13 <(echo "$h") <(echo "$m"))
  if [[ -n "$only_help" ]]; then echo "clonefs $cmd: in --help, not in the manual page:" $only_help; fail=1; fi
  if [[ -n "$only_man" ]]; then echo "clonefs $cmd: in the manual page, not in --help:" $only_man; fail=1; fi
done
((fail == 0)) && echo "manual page: no groff warnings; options match --help for every command"
exit $fail
