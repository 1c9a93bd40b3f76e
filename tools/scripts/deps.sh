#!/usr/bin/env bash
# Install what strata needs to build and test on Debian, only what is missing
# (idempotent: a machine that has everything makes no network call).
set -euo pipefail
# libclang-rt-14-dev: libFuzzer and the sanitizer runtimes of clang (fuzz/); llvm: the
# symbolizer for readable sanitizer stacks; gcovr: tools/scripts/coverage.sh; python3-numpy:
# the Python binding (tools/python/), its only dependency.
pkgs=(meson ninja-build pkg-config gcc g++ clang liburing-dev libxxhash-dev libzstd-dev
      libcriterion-dev libhnswlib-dev python3 python3-numpy libclang-rt-14-dev llvm gcovr)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}" >&2
	SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
