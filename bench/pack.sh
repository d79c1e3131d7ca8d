#!/bin/sh
# Benchmark: `ctxpack pack` (zstd level 3) against
# `tar --sort=name -cf - -T LIST | zstd -T0 -3` on a generated tree of 100k
# files and 1 GB, the same file list (ctxpack ls), output to a file in both
# cases, medians of 5 in one run, warm page cache.  Goal: at most 0.8x the
# time at no more than 1.03x the size.  Also reports MB/s (of tar stream)
# and peak memory (max RSS, /usr/bin/time).
#   bench/pack.sh [--quick]     (--quick: 10k files, 100 MB)
# The tree is cached under bench/work/ (its own copy: other benchmarks
# write into theirs).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh

files=100000; bytes=1000000000; runs=5
[ "${1:-}" = --quick ] && { files=10000; bytes=100000000; }
CTXPACK=${CTXPACK:-./ctxpack}
case $CTXPACK in /*) ;; *) CTXPACK=$(pwd)/$CTXPACK ;; esac

tree=$BENCH_WORK/pack-tree-$files-$bytes
if [ ! -f "$tree/.complete" ]; then
	rm -rf "$tree"
	python3 bench/gen-tree "$tree" --files "$files" --bytes "$bytes" >&2
	touch "$tree/.complete"
fi
# the list: what ctxpack packs (no ignore file), dirs included
"$CTXPACK" ls -0 --ignore-file /dev/null "$tree" > "$BENCH_WORK/pack-list0"
n=$(tr -cd '\0' < "$BENCH_WORK/pack-list0" | wc -c)
ours=$BENCH_WORK/pack-out.ctxpack.zst
theirs=$BENCH_WORK/pack-out.tar.zst
trap 'rm -f "$ours" "$theirs"' EXIT

c_cmd="'$CTXPACK' pack -q --ignore-file /dev/null -o - '$tree' > '$ours'"
t_cmd="tar -C '$tree' --sort=name --no-recursion --null -T '$BENCH_WORK/pack-list0' -cf - | zstd -q -T0 -3 > '$theirs'"

# warm the page cache, then alternate the two, $runs each, taking turns
# at going first
sh -c "$t_cmd"; sh -c "$c_cmd"
: > "$BENCH_WORK/.pack-c"; : > "$BENCH_WORK/.pack-t"
i=0
while [ $i -lt $runs ]; do
	if [ $((i % 2)) = 0 ]; then
		time_once sh -c "$c_cmd" >> "$BENCH_WORK/.pack-c"
		time_once sh -c "$t_cmd" >> "$BENCH_WORK/.pack-t"
	else
		time_once sh -c "$t_cmd" >> "$BENCH_WORK/.pack-t"
		time_once sh -c "$c_cmd" >> "$BENCH_WORK/.pack-c"
	fi
	i=$((i + 1))
done
med() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
c=$(med "$BENCH_WORK/.pack-c")
t=$(med "$BENCH_WORK/.pack-t")

cs=$(wc -c < "$ours"); ts=$(wc -c < "$theirs")
tarbytes=$(zstd -dqc "$ours" | wc -c)
c_mem=$( { /usr/bin/time -f '%M %U %S' sh -c "$c_cmd"; } 2>&1 | tail -1)
c_cpu=$(echo "$c_mem" | awk '{printf "%.2f", $2 + $3}'); c_mem=${c_mem%% *}
t_mem=$( { /usr/bin/time -f '%M' sh -c "tar -C '$tree' --sort=name --no-recursion --null -T '$BENCH_WORK/pack-list0' -cf - | /usr/bin/time -f '%M' zstd -q -T0 -3 > '$theirs'"; } 2>&1 | sort -n | tail -1)
t_cpu=$( { /usr/bin/time -f '%U %S' sh -c "$t_cmd"; } 2>&1 | tail -1 | awk '{printf "%.2f", $1 + $2}')
zstd -tq "$ours"

mbs() { awk -v b="$tarbytes" -v s="$1" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }
echo "| pack ($files files, $n entries, $(awk -v b="$tarbytes" 'BEGIN{printf "%.0f", b/1e6}') MB of tar, zstd -3, $(nproc) cpus) | ctxpack ${c}s $(mbs "$c") MB/s $cs B ${c_mem} KiB | tar|zstd -T0 ${t}s $(mbs "$t") MB/s $ts B ${t_mem} KiB | time $(ratio "$c" "$t")x (goal <= 0.8x), cpu ${c_cpu}s vs ${t_cpu}s, size $(awk -v a="$cs" -v b="$ts" 'BEGIN{printf "%.3f", a/b}')x (goal <= 1.03x) |"
