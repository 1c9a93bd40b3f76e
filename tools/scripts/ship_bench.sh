#!/usr/bin/env bash
# Pack / unpack throughput and compression ratio of a strata bundle against
# `tar -c DIR | zstd -T0` on the same database, in the same run (README,
# "Shipping and tuning").
#
#   bash tools/scripts/ship_bench.sh STRATA_EXE DB [REPEATS]
#
# Both sides use zstd level 3 and every core (strata pack --threads 0, zstd
# -T0), read a warm page cache and write to the file system of $TMPDIR (or
# /tmp). Each step runs REPEATS times (default 5), alternating the methods so
# that a burst of load elsewhere hits both; the median wall time of each step
# (process start included) is reported. MB/s is the database's bytes (not the
# compressed bytes) per second, so pack and unpack rows compare directly.
# What differs, by design: strata pack fsyncs the bundle before renaming it
# into place, and strata unpack verifies every checksum and every segment in
# full (seg_verify) and fsyncs every file before it renames the directory
# into place; tar | zstd does none of that. The rows "...; sync" time tar and
# zstd followed by `sync`, to bound the fsync part of the difference.
set -euo pipefail
exe=$1
db=$2
reps=${3:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/ship-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT

raw=$(find "$db" -maxdepth 1 -type f -printf '%s\n' | awk '{s += $1} END {print s}')
parent=$(cd "$(dirname "$db")" && pwd)
name=$(basename "$db")

now() { date +%s.%N; }
# time_cmd VAR CMD...: run CMD, append its wall seconds to the array VAR.
time_cmd() {
	local -n acc=$1
	shift
	local t0 t1
	t0=$(now)
	"$@"
	t1=$(now)
	acc+=("$(echo "$t1 - $t0" | bc -l)")
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

pack_s=() unpack_s=() tarz_s=() tarz_sync_s=() untarz_s=() untarz_sync_s=()
strata_pack() { "$exe" pack "$db" "$work/b.strata" --quiet; }
strata_unpack() { "$exe" unpack "$work/b.strata" "$work/u" --quiet; }
tar_zstd() { tar -C "$parent" -cf - "$name" | zstd -T0 -3 -q -f -o "$work/b.tar.zst"; }
tar_zstd_sync() { tar_zstd && sync; }
untar_zstd() { mkdir -p "$work/t" && zstd -d -T0 -q -c "$work/b.tar.zst" | tar -C "$work/t" -xf -; }
untar_zstd_sync() { untar_zstd && sync; }

# One untimed round warms the page cache for both.
strata_pack; tar_zstd
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((i = 0; i < reps; i++)); do
	time_cmd pack_s strata_pack
	time_cmd tarz_s tar_zstd
	time_cmd tarz_sync_s tar_zstd_sync
	rm -rf "$work/u" "$work/t"
	time_cmd unpack_s strata_unpack
	time_cmd untarz_s untar_zstd
	rm -rf "$work/t"
	time_cmd untarz_sync_s untar_zstd_sync
	rm -rf "$work/u" "$work/t"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

bundle=$(stat -c %s "$work/b.strata")
tarz=$(stat -c %s "$work/b.tar.zst")
row() { # label seconds compressed_bytes
	awk -v l="$1" -v s="$2" -v raw="$raw" -v c="$3" 'BEGIN {
		printf "| %s | %.3f | %.0f | %s |\n", l, s, raw / 1e6 / s, c ? sprintf("%.3f", raw / c) : "" }'
}
echo "database: $db, $raw bytes, $(find "$db" -maxdepth 1 -type f | wc -l) files; bundle $bundle bytes, tar.zst $tarz bytes; median of $reps"
echo
echo "| step | seconds | MB/s | ratio |"
echo "|---|--:|--:|--:|"
row "strata pack (level 3, all cores)" "$(median "${pack_s[@]}")" "$bundle"
row "tar -c \\| zstd -T0 -3" "$(median "${tarz_s[@]}")" "$tarz"
row "tar -c \\| zstd -T0 -3; sync" "$(median "${tarz_sync_s[@]}")" "$tarz"
row "strata unpack (verify all, fsync)" "$(median "${unpack_s[@]}")" 0
row "zstd -d -T0 \\| tar -x" "$(median "${untarz_s[@]}")" 0
row "zstd -d -T0 \\| tar -x; sync" "$(median "${untarz_sync_s[@]}")" 0
