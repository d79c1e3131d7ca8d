#!/bin/sh
# Benchmark: `ctxpack hash` on a generated tree (100k files, 1 GB), in one
# run, medians of 5 (the two sides of each pair alternate):
#   warm  ctxpack hash, nothing changed   vs  git status --porcelain
#         (the same tree committed to git; git's defaults, preloadIndex on)
#   cold  ctxpack hash, empty index        vs  find -type f | xargs xxhsum -H2
#         (both read the same regular files; the page cache is warm for
#         both: "cold" means an empty index, not an empty page cache)
# Goals: warm <= 1.0x git (stretch 0.5x), cold <= 1.0x xxhsum.
#
#   bench/hash.sh [--quick]      (--quick: 10k files, 100 MB)
#
# The tree (and its git repository, kept beside it so the tree holds no
# .git) is generated once and cached under bench/work/, which is ignored.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh

files=100000; bytes=1000000000; runs=5
[ "${1:-}" = --quick ] && { files=10000; bytes=100000000; }
CTXPACK=${CTXPACK:-$(pwd)/ctxpack}
for tool in git xxhsum; do
	command -v $tool >/dev/null || { echo "bench/hash.sh: needs $tool" >&2; exit 1; }
done

# a tree of our own: other benchmarks add files (.dockerignore) to theirs
tree=$BENCH_WORK/hash-tree-$files
if [ ! -f "$tree.done" ]; then
	rm -rf "$tree" "$tree.git"
	echo "generating $tree ..." >&2
	python3 bench/gen-tree "$tree" --files "$files" --bytes "$bytes" >&2
	touch "$tree.done"
fi
g() { git --git-dir="$tree.git" --work-tree="$tree" "$@"; }
if [ ! -f "$tree.git/bench-committed" ]; then
	rm -rf "$tree.git"
	echo "committing $tree to git (once) ..." >&2
	g init -q
	g config gc.auto 0 # no background repacking during the timings
	g add -A
	g -c user.name=bench -c user.email=bench@example.invalid commit -q -m tree
	touch "$tree.git/bench-committed"
fi
idx=$BENCH_WORK/hash-index-$files
rm -rf "$idx" "$BENCH_WORK"/hash-cold-*

# warm-ups: fill the page cache, settle git's index, fill and settle ours
g status --porcelain >/dev/null
g status --porcelain >/dev/null
"$CTXPACK" hash --index "$idx" "$tree" >/dev/null
"$CTXPACK" hash --index "$idx" "$tree" >/dev/null
find "$tree" -type f -print0 | xargs -0 cat >/dev/null

json=$("$CTXPACK" hash --json --index "$idx" "$tree")
echo "warm run: $json" >&2
case $json in *'"hashed":0,'*) ;; *) echo "bench/hash.sh: the warm run read files" >&2; exit 1 ;; esac
nfiles=$(echo "$json" | sed 's/.*"files":\([0-9]*\).*/\1/')
[ -z "$(g status --porcelain)" ] || { echo "bench/hash.sh: git sees changes" >&2; exit 1; }

# the pairs alternate (A B A B ...) so a busy machine weighs on both alike
pair() { # outA outB, then: --  cmdA... -- cmdB...
	fa=$1; fb=$2; shift 3
	a=; while [ "$1" != -- ]; do a="$a '$1'"; shift; done; shift
	: > "$fa"; : > "$fb"; i=0
	while [ $i -lt $runs ]; do
		eval "time_once $a" >> "$fa"
		time_once "$@" >> "$fb"
		i=$((i + 1))
	done
}
med() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

pair "$BENCH_WORK/.t-cw" "$BENCH_WORK/.t-gw" -- \
	"$CTXPACK" hash --index "$idx" "$tree" -- \
	git --git-dir="$tree.git" --work-tree="$tree" status --porcelain
# cold: a new empty index directory for every run
pair "$BENCH_WORK/.t-cc" "$BENCH_WORK/.t-xx" -- \
	sh -c 'exec "$1" hash --index "$(mktemp -d "$2/hash-cold-XXXXXX")" "$3"' \
		sh "$CTXPACK" "$BENCH_WORK" "$tree" -- \
	sh -c 'find "$1" -type f -print0 | xargs -0 xxhsum -H2 >/dev/null 2>&1' sh "$tree"
cw=$(med "$BENCH_WORK/.t-cw"); gw=$(med "$BENCH_WORK/.t-gw")
cc=$(med "$BENCH_WORK/.t-cc"); xx=$(med "$BENCH_WORK/.t-xx")
echo "runs (s): ctxpack warm $(tr '\n' ' ' < "$BENCH_WORK/.t-cw")| git $(tr '\n' ' ' < "$BENCH_WORK/.t-gw")" >&2
echo "runs (s): ctxpack cold $(tr '\n' ' ' < "$BENCH_WORK/.t-cc")| xxhsum $(tr '\n' ' ' < "$BENCH_WORK/.t-xx")" >&2
rm -rf "$idx" "$BENCH_WORK"/hash-cold-*

echo "| hash warm ($nfiles files, nothing changed) | ctxpack ${cw}s | git status ${gw}s | ratio $(ratio "$cw" "$gw")x (goal <= 1.0x, stretch 0.5x) |"
echo "| hash cold ($nfiles files, empty index, page cache warm) | ctxpack ${cc}s | xxhsum -H2 ${xx}s | ratio $(ratio "$cc" "$xx")x (goal <= 1.0x) |"
