#!/usr/bin/env bash
# README.md's C example must compile against the public header alone, link
# against libstrata.so and run: documentation that is checked, not hoped.
# Args: README.md, the engine/ source dir (strata.h), the built libstrata.so,
# meson's b_sanitize value (a sanitized library needs its runtime first), and
# optionally the built libstrata.a and the generated strata.pc's directory: the
# example is then also linked statically with what `pkg-config --static` says.
set -euo pipefail
readme=$1 inc=$2 lib=$3 sanitize=${4:-none} static=${5:-} pcdir=${6:-}
[ -z "$static" ] || static=$(realpath "$static")
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
if [ -n "$static" ] && [ "$sanitize" = none ]; then
	libs=$(PKG_CONFIG_PATH="$pcdir" pkg-config --static --libs strata | sed 's/-lstrata//; s/-L[^ ]*//')
	# shellcheck disable=SC2086 # the flags are words
	cc -std=c11 -Wall -Wextra -Werror -I"$inc" "$tmp/example.c" -o "$tmp/example-static" \
		"$static" $libs
	rm -rf "$tmp/my.db"
	./example-static > out-static.txt
	cmp out.txt out-static.txt || { echo "the static build answers differently"; exit 1; }
	echo "README example, linked with libstrata.a and pkg-config --static: ok"
fi
