#!/usr/bin/env bash
# The README's first command ends here: configure a build directory if there is
# none, build the strata program and the demo, and run the demo
# (tools/quickstart.c: the hnswlib tutorial workflow done with strata).
#
#   bash tools/scripts/quickstart.sh [REPO_ROOT]
#
# REPO_ROOT defaults to the tree this script lives in. Installs missing Debian
# packages first (deps.sh). Idempotent: an existing
# build directory is reused (ninja rebuilds only what changed). The build
# directory is $STRATA_BUILD_DIR, default "build" under the root.
set -euo pipefail
root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$root"
build=${STRATA_BUILD_DIR:-build}

bash tools/scripts/deps.sh  # installs only what is missing

if [ ! -f "$build/build.ninja" ]; then
	echo "quickstart: configuring $build (meson setup, release)" >&2
	meson setup "$build" --buildtype=release >/dev/null
fi
echo "quickstart: building" >&2
ninja -C "$build" tools/strata tools/strata-quickstart >/dev/null
echo >&2
exec "$build/tools/strata-quickstart"
