#!/usr/bin/env bash
# run_fuzz.sh - one time-boxed libFuzzer run, as a meson test of suite 'fuzz':
#
#   run_fuzz.sh <fuzzer> <seed corpus dir> <regression dir> <dictionary> <artifact dir>
#
# The fuzzer works on a temporary COPY of the seed corpus (the committed corpus
# never grows in CI) and also reads the regression inputs; it runs for
# $STRATA_FUZZ_SECONDS seconds (default 60). A crash, leak, timeout (10 s per
# input) or out-of-memory fails the test and leaves the input in the artifact
# dir (add it to tests/fuzz-regress/<target>/ under a name saying what it found).
# The last line summarises the run: executions, exec/s, coverage, corpus size.
# A single allocation of 256 MiB or more is a finding too (-malloc_limit_mb):
# no input of a few KiB may make a parser allocate what a header claims
# (the largest honest one is zstd's window, at most 128 MiB, bundle.c).
# With STRATA_FUZZ_CORPUS_OUT=<dir> the grown corpus is kept in <dir>/<fuzzer>/
# (for long local runs and coverage; CI leaves it unset).
set -uo pipefail
if [ $# -ne 5 ]; then
	echo "usage: $0 <fuzzer> <corpus> <regress dir> <dict> <artifact dir>" >&2
	exit 2
fi
fuzzer=$1 corpus=$2 regress=$3 dict=$4 artifacts=$5
secs=${STRATA_FUZZ_SECONDS:-60}
name=$(basename "$fuzzer")

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-$name-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$artifacts"
cp -R "$corpus/." "$work/corpus/" || exit 1
dirs=("$work/corpus")
[ -d "$regress" ] && dirs+=("$regress")

# -error_exitcode: libFuzzer's default, 77, would read as "skipped" to meson.
# The outer timeout is a guard in case the fuzzer itself hangs outside an input.
timeout --signal=KILL $((secs + 300)) "$fuzzer" \
	-dict="$dict" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
	-error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
	-artifact_prefix="$artifacts/" "${dirs[@]}" 2>"$work/log"
rc=$?

# The log is long; keep its head (seeds loaded) and tail (the outcome).
head -n 20 "$work/log"
echo "[...]"
tail -n 40 "$work/log"
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -n 1)
ft=$(grep -o 'ft: [0-9]*' "$work/log" | tail -n 1)
units=$(find "$work/corpus" -type f | wc -l)
bytes=$(du -sb "$work/corpus" | cut -f1)
if [ -n "${STRATA_FUZZ_CORPUS_OUT:-}" ]; then
	mkdir -p "$STRATA_FUZZ_CORPUS_OUT/$name" && cp -R "$work/corpus/." "$STRATA_FUZZ_CORPUS_OUT/$name/"
fi
echo "$name: ${secs}s, ${execs:-?} executions, ${eps:-?} exec/s, ${cov:-cov: ?}, ${ft:-ft: ?}, corpus $units files / $bytes bytes, exit $rc"
[ "$rc" -eq 0 ] || exit 1
exit 0
