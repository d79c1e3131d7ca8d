#!/bin/sh
# Benchmark: push and pull of a 256 MiB random blob to a docker-registry on
# 127.0.0.1, ctxpack against `skopeo copy` of a blob of the same size
# (skopeo copies an oci: layout holding it, with --preserve-digests so it
# sends the bytes as they are), medians of 5; plus a re-push of an existing
# blob, which must send no blob bytes and take under 100 ms.
# Goals (issue 5): push and pull at most 1.0x skopeo's time.
#   bench/registry.sh [--quick]      (--quick: 32 MiB, 3 runs)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh

mib=256; runs=5
[ "${1:-}" = --quick ] && { mib=32; runs=3; }
CTXPACK=${CTXPACK:-./ctxpack}
case "$CTXPACK" in /*) ;; *) CTXPACK=$(pwd)/$CTXPACK ;; esac
for t in /usr/bin/docker-registry skopeo python3; do
	command -v "$t" >/dev/null 2>&1 || { echo "bench/registry.sh: $t is missing" >&2; exit 1; }
done
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1

W=$(mktemp -d "$BENCH_WORK/registry.XXXXXX")
export XDG_CACHE_HOME=$W/xdg HOME=$W/home
mkdir -p "$XDG_CACHE_HOME" "$HOME"
REGPID=
cleanup() {
	if [ -n "$REGPID" ]; then
		kill "$REGPID" 2>/dev/null || true
		wait "$REGPID" 2>/dev/null || true
	fi
	rm -rf "$W"
}
trap 'rc=$?; cleanup; exit $rc' EXIT
trap 'exit 130' INT TERM

bench_registry_start "$W"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"
skop() { skopeo --policy "$W/policy.json" --tmpdir "$W" "$@"; }

# A blob: random bytes behind a zstd magic, like a cache archive.  Every
# push run gets new blobs and a new repository, so that nothing is skipped
# or mounted (skopeo remembers where it pushed a blob and mounts from
# there), and every run uploads every byte.
mkblob() {
	printf '\050\265\057\375' >"$1"
	head -c $((mib * 1048576 - 4)) /dev/urandom >>"$1"
}

med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$W/t.c"; : >"$W/t.s"
n=1
while [ $n -le $runs ]; do
	mkblob "$W/c.bin"
	time_once "$CTXPACK" push -q "$W/c.bin" "$REG/bench/c$n:b" >>"$W/t.c"
	[ $n -eq 1 ] && mv "$W/c.bin" "$W/blob1.bin"
	rm -f "$W/c.bin"
	# skopeo's source: a new artifact in an oci: layout
	mkblob "$W/s.bin"
	rm -rf "$W/src"
	"$CTXPACK" push -q "$W/s.bin" "oci:$W/src:b" >/dev/null
	rm -f "$W/s.bin"
	sync
	time_once skopeo --policy "$W/policy.json" --tmpdir "$W" copy -q --preserve-digests \
		--dest-tls-verify=false "oci:$W/src:b" "docker://$REG/bench/s$n:b" >>"$W/t.s"
	n=$((n + 1))
done
pc=$(med <"$W/t.c"); ps=$(med <"$W/t.s")
rm -rf "$W/src"
blob=$W/blob1.bin

# pull: into a fresh file / layout each run
: >"$W/t.c"; : >"$W/t.s"
n=1
while [ $n -le $runs ]; do
	rm -f "$W/out.bin"; rm -rf "$W/dst"; sync
	time_once "$CTXPACK" pull -q -o "$W/out.bin" "$REG/bench/c1:b" >>"$W/t.c"
	time_once skopeo --policy "$W/policy.json" --tmpdir "$W" copy -q --preserve-digests \
		--src-tls-verify=false "docker://$REG/bench/c1:b" "oci:$W/dst:b" >>"$W/t.s"
	n=$((n + 1))
done
lc=$(med <"$W/t.c"); ls_=$(med <"$W/t.s")
cmp -s "$W/out.bin" "$blob" || { echo "pulled bytes differ" >&2; exit 1; }

# re-push of an existing blob: HEADs only (the digest cache needs the
# file's ctime to be over 2 s old, as it is in real use)
sleep 3
"$CTXPACK" push -q "$blob" "$REG/bench/c1:b" >/dev/null
: >"$W/t.c"
n=1
while [ $n -le $runs ]; do
	time_once "$CTXPACK" push -q "$blob" "$REG/bench/c1:b" >>"$W/t.c"
	n=$((n + 1))
done
rc=$(med <"$W/t.c")
up=$("$CTXPACK" push --json "$blob" "$REG/bench/c1:b" | sed 's/.*"uploaded":\([0-9]*\).*/\1/')

ms() { awk -v s="$1" 'BEGIN { printf "%.0f ms", s * 1000 }'; }
echo "| registry, ${mib} MiB random blob, medians of $runs | ctxpack | skopeo copy | ratio | goal |"
echo "|---|---|---|---|---|"
echo "| push | ${pc}s | ${ps}s | $(ratio "$pc" "$ps")x | <= 1.0x |"
echo "| pull | ${lc}s | ${ls_}s | $(ratio "$lc" "$ls_")x | <= 1.0x |"
echo "| re-push of an existing blob | $(ms "$rc") ($up blob bytes sent) | | | < 100 ms, 0 bytes |"
