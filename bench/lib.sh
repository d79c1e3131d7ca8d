# Shared helpers for the benchmark scripts (sourced).
#   bench_tree FILES BYTES   -> prints the path of a cached generated tree
#   median_time RUNS CMD...  -> prints the median wall time in seconds
#   ratio A B                -> prints A/B with two decimals
#   bench_registry_start DIR -> starts docker-registry on 127.0.0.1 with its
#                               storage in DIR/reg; sets REGPID and REG
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

# Debian's docker-registry on a free loopback port, with a config of its own
# (never the package default, which listens on all interfaces), storage in
# $1/reg, deletes enabled.  Sets REGPID (the caller stops it) and REG.
bench_registry_start() {
	_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat >"$1/config.yml" <<EOC
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $1/reg
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$_port
EOC
	/usr/bin/docker-registry serve "$1/config.yml" >"$1/registry.log" 2>&1 &
	REGPID=$!
	REG=127.0.0.1:$_port
	_i=0
	until curl -s -o /dev/null "http://$REG/v2/"; do
		_i=$((_i + 1))
		[ $_i -lt 100 ] || { echo "registry did not start:" >&2; cat "$1/registry.log" >&2; exit 1; }
		sleep 0.1
	done
}
