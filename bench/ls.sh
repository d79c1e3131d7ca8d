#!/bin/sh
# Benchmark: `ctxpack ls` against `find DIR -printf '%P\n' | sort` on a
# generated tree of 100k files with a .dockerignore of 10 patterns,
# medians of 5 in one run.  Goal: at most 1.5x find's time.
#   bench/ls.sh [--quick]     (--quick: 10k files)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh

files=100000; bytes=1000000000; runs=5
[ "${1:-}" = --quick ] && { files=10000; bytes=100000000; }
tree=$(bench_tree "$files" "$bytes")
cat > "$tree/.dockerignore" <<'P'
.git
**/node_modules
**/__pycache__
**/*.pyc
**/*.bin
src1*/**/tests*
dist
*.log
!important.log
**/.cache
P
CTXPACK=${CTXPACK:-./ctxpack}
n=$($CTXPACK ls "$tree" | wc -l)
f=$(median_time $runs sh -c "find '$tree' -printf '%P\n' | LC_ALL=C sort >/dev/null")
c=$(median_time $runs sh -c "$CTXPACK ls '$tree' >/dev/null")
ratio=$(ratio "$c" "$f")
echo "| ls ($files files, 10 patterns, $n entries listed) | ctxpack ${c}s | find|sort ${f}s | ratio ${ratio}x (goal <= 1.5x) |"
