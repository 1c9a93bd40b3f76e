#!/usr/bin/env bash
# Line coverage of format/ and wal/ from the test suite and the fuzz corpora:
#
#   bash tools/scripts/coverage.sh            # build dir build-coverage
#
# Builds with gcc and -Db_coverage=true (debug, failpoints on, so the fault
# tests run), runs every meson test - the Criterion suites, the fault tests,
# and suite 'fuzz-regress', which replays fuzz/corpus/<target>/ and
# tests/fuzz-regress/<target>/ through each harness with and without checksums
# (fuzz/regress_driver.c) - then asks gcovr for the lines of format/ and wal/
# that ran. Prints the per-file table and a last line
# "coverage format/+wal/: lines NN.N% (hit/total)".
# Exit status: non-zero if the build or a test failed (the figure is printed anyway).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bash tools/scripts/deps.sh || exit 1
dir=${STRATA_COVERAGE_DIR:-build-coverage}
status=0

if [ ! -f "$dir/build.ninja" ]; then
	CC=gcc meson setup "$dir" -Dbuildtype=debug -Db_coverage=true -Dfailpoints=true \
		-Dbench=disabled >/dev/null || { echo "coverage.sh: meson setup $dir failed" >&2; exit 1; }
fi
ninja -C "$dir" || exit 1
# Counts from an earlier run would inflate the figure.
find "$dir" -name '*.gcda' -delete
meson test -C "$dir" --num-processes "${STRATA_TEST_JOBS:-2}" --print-errorlogs || status=1

# Sources compiled twice (the no-checksum copy for the fuzz replays) merge per line.
gcovr --root "$root" --object-directory "$dir" \
	--filter "$root/format/" --filter "$root/wal/" \
	--exclude-unreachable-branches --print-summary | tee "$dir/coverage.txt" || exit 1
lines=$(sed -n 's/^lines: *//p' "$dir/coverage.txt")
echo "coverage format/+wal/: lines $lines"
exit $status
