# Shared helpers for the benchmark scripts (sourced).
#   bench_tree FILES BYTES   -> prints the path of a cached generated tree
#   median_time RUNS CMD...  -> prints the median wall time in seconds
#   ratio A B                -> prints A/B with two decimals
BENCH_WORK=${BENCH_WORK:-$(pwd)/bench/work}
mkdir -p "$BENCH_WORK"

bench_tree() {
	t=$BENCH_WORK/tree-$1-$2
	if [ ! -f "$t/.complete" ]; then
		rm -rf "$t"
		python3 bench/gen-tree "$t" --files "$1" --bytes "$2" >&2
		touch "$t/.complete"
	fi
	echo "$t"
}

# Wall time of one run in seconds (float).
time_once() {
	python3 - "$@" <<'PY'
import subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
e = time.perf_counter() - t
if r.returncode != 0:
    sys.exit("benchmark command failed: %s" % " ".join(sys.argv[1:]))
print("%.4f" % e)
PY
}

median_time() {
	runs=$1; shift
	i=0; : > "$BENCH_WORK/.times"
	while [ $i -lt "$runs" ]; do
		time_once "$@" >> "$BENCH_WORK/.times"; i=$((i + 1))
	done
	sort -n "$BENCH_WORK/.times" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
