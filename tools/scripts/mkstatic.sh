#!/usr/bin/env bash
# mkstatic.sh OUT.a IN.a... : combine static archives into one relocatable
# object, make every hidden symbol local (so an application that embeds strata
# statically and has its own `seg_check` or `wal_open` links safely), and
# archive it. Only strata_* symbols stay global. Used by engine/meson.build.
set -euo pipefail
out=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ld -r -o "$tmp/strata.o" --whole-archive "$@"
objcopy --localize-hidden "$tmp/strata.o"
rm -f "$out"
ar rcs "$out" "$tmp/strata.o"
