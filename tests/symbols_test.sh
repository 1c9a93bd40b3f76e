#!/usr/bin/env bash
# Only strata_* may be defined and global in libstrata.so and libstrata.a:
# everything else is hidden (shared) or localized (static), per STYLE.md 2.3.
set -euo pipefail
so=$1 a=$2
bad_so=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^strata_' || true)
bad_a=$(nm -g --defined-only "$a" | awk 'NF==3 {print $3}' | grep -v '^strata_' || true)
[ -z "$bad_so" ] || { echo "exported from $so:"; echo "$bad_so"; exit 1; }
[ -z "$bad_a" ] || { echo "global in $a:"; echo "$bad_a"; exit 1; }
n=$(nm -D --defined-only "$so" | grep -c ' strata_')
[ "$n" -ge 10 ] || { echo "only $n strata_ symbols exported: API missing?"; exit 1; }
echo "ok: $n public symbols, nothing else exported"
