#!/usr/bin/env bash
# The whole test suite, as README.md's second command and .ci/run run it:
#   1. install missing dependencies (deps.sh);
#   2. release build (-O3, -Werror) with failpoints: every meson test;
#   3. debug-optimized build under ASan+UBSan (no recovery): every meson test;
#   4. clang libFuzzer build (-Dfuzz=true): suite 'fuzz', every harness of fuzz/
#      in both checksum modes for $STRATA_FUZZ_SECONDS s each (default 60);
#   5. debug-optimized build under TSan, with failpoints (the power-loss
#      recorder's thread test needs them): suite 'concurrency';
#   6. print the totals of all runs as one line "N passed, N failed, N skipped".
# Exit status non-zero if anything failed.
# Build dirs: build-test, build-asan, build-fuzz, build-tsan.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bash tools/scripts/deps.sh || exit 1

jobs=${STRATA_TEST_JOBS:-2}
status=0
run_suite() { # name, [--suite S]..., meson setup args...
	local dir=$1; shift
	local suites=()
	while [ "${1:-}" = --suite ]; do suites+=("$1" "$2"); shift 2; done
	rm -f "$dir/meson-logs/testlog.json"  # a stale log must not count for this run
	local t0=$SECONDS t1 rc=0
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null || { echo "test.sh: meson setup $dir failed" >&2; meson setup "$dir" "$@"; return 1; }
	fi
	ninja -C "$dir" || return 1
	t1=$SECONDS
	meson test -C "$dir" --num-processes "$jobs" --print-errorlogs "${suites[@]}" || rc=1
	echo "test.sh: $dir: build $((t1 - t0)) s, tests $((SECONDS - t1)) s"
	return $rc
}

run_suite build-test -Dbuildtype=release -Dfailpoints=true -Dwerror=true || status=1
# No sanitizer suppressions: every leak, error and race fails its test. (A blanket
# "leak:libcriterion.so" once here matched every leak of every Criterion test, since
# libcriterion is on every test's stack; removed, nothing leaks without it.)
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	run_suite build-asan -Dbuildtype=debugoptimized -Db_ndebug=false -Dfailpoints=true \
	-Db_sanitize=address,undefined -Dc_args=-fno-sanitize-recover=all -Dwerror=true || status=1
# libFuzzer needs clang; the harnesses build their own ASan+UBSan copies of the library.
CC=clang CXX=clang++ run_suite build-fuzz --suite fuzz -Dfuzz=true -Dtests=disabled -Dbench=disabled \
	-Dbuildtype=debugoptimized -Db_ndebug=false -Dwerror=true || status=1
# halt_on_error: the first race fails the test with its report (no suppressions).
TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
	run_suite build-tsan --suite concurrency -Dbuildtype=debugoptimized -Db_ndebug=false \
	-Dfailpoints=true -Db_sanitize=thread -Dbench=disabled -Dwerror=true || status=1

python3 - build-test build-asan build-fuzz build-tsan <<'PY'
import json, os, sys
ok = bad = skip = 0
for d in sys.argv[1:]:
    log = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        bad += 1  # a build that never got to run its tests counts as a failure
        continue
    for line in open(log):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"): ok += 1
        elif r == "SKIP": skip += 1
        else: bad += 1
print(f"{ok} passed, {bad} failed, {skip} skipped")
sys.exit(1 if bad else 0)
PY
[ $? -eq 0 ] || status=1
exit $status
