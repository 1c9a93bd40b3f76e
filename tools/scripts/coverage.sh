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
# that ran. Prints the per-file table, a line per directory, and a last line
# "coverage format/+wal/: lines NN.N% (hit/total)".
#
# STRATA_COVERAGE_CORPORA=<dir> also replays <dir>/<target>/ (e.g. what a long
# local fuzzing run grew, fuzz/README.md) through both flavours of each
# harness, to see what a corpus would add before committing part of it.
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
if [ -n "${STRATA_COVERAGE_CORPORA:-}" ]; then
	for t in "$STRATA_COVERAGE_CORPORA"/*/; do
		t=$(basename "$t")
		for fl in "" _nock; do
			exe="$dir/fuzz/regress_$t$fl"
			[ -x "$exe" ] || continue
			"$exe" "$STRATA_COVERAGE_CORPORA/$t" >/dev/null 2>&1 || { echo "coverage.sh: $exe failed on $STRATA_COVERAGE_CORPORA/$t" >&2; status=1; }
		done
	done
fi

# Sources compiled twice (the no-checksum copy for the fuzz replays) merge per line.
gcovr --root "$root" --object-directory "$dir" \
	--filter "$root/format/" --filter "$root/wal/" \
	--exclude-unreachable-branches --print-summary | tee "$dir/coverage.txt" || exit 1
for sub in format wal; do
	echo "coverage $sub/: $(gcovr --root "$root" --object-directory "$dir" --filter "$root/$sub/" \
		--exclude-unreachable-branches --print-summary 2>/dev/null | sed -n 's/^lines: */lines /p')"
done
lines=$(sed -n 's/^lines: *//p' "$dir/coverage.txt")
echo "coverage format/+wal/: lines $lines"
exit $status
