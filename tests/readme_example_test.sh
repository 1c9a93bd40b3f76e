#!/usr/bin/env bash
# README.md's C example must compile against the public header alone, link
# against libstrata.so and run: documentation that is checked, not hoped.
# Args: README.md, the engine/ source dir (strata.h), the built libstrata.so,
# and meson's b_sanitize value (a sanitized library needs its runtime first).
set -euo pipefail
readme=$1 inc=$2 lib=$3 sanitize=${4:-none}
san=()
[ "$sanitize" = none ] || san=(-fsanitize="$sanitize")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^```c$/{on=1; next} /^```$/{if(on){exit}} on' "$readme" > "$tmp/example.c"
[ -s "$tmp/example.c" ] || { echo "no \`\`\`c block in $readme"; exit 1; }
cc -std=c11 -Wall -Wextra -Werror "${san[@]}" -I"$inc" "$tmp/example.c" -o "$tmp/example" \
	-L"$(dirname "$lib")" -lstrata -Wl,-rpath,"$(dirname "$lib")"
cd "$tmp"
./example > out.txt
[ "$(wc -l < out.txt)" -eq 10 ] || { echo "expected 10 result lines:"; cat out.txt; exit 1; }
# The first hit of a stored vector is itself, at distance 0.
head -1 out.txt | grep -q '^0 0.0000$' || { echo "first line: $(head -1 out.txt)"; exit 1; }
echo "README example: ok"
