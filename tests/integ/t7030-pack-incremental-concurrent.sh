#!/bin/sh
# Incremental packing with several processes on one store: four packs of
# one tree and packs of two trees sharing frames, all at once, from an
# empty store and again from a full one, each give a cold pack's bytes and
# leave a store the next pack reuses whole; a pack killed while it stores
# leaves nothing that is later trusted.  And `ctxpack build` goes through
# the same cache.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(5)
for i in range(250):
    p = os.path.join(root, "d%d" % (i % 6), "f%03d.bin" % i)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(rnd.randbytes(rnd.randrange(30000, 130000)))
with open(os.path.join(root, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY . /\n")
PY
cp -a "$C" "$TESTDIR/copy"
echo different > "$TESTDIR/copy/d0/extra.txt"
sleep 1
S=$XDG_CACHE_HOME/ctxpack
jget() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

ctxpack pack -q --no-cache -o "$TESTDIR/cold.zst" "$C"
ctxpack pack -q --no-cache -o "$TESTDIR/copy.cold.zst" "$TESTDIR/copy"

# race ROUND: 4 packs of ctx and 2 of the copy at once
race() {
	pids=
	for i in 1 2 3 4; do
		ctxpack pack -q -o "$TESTDIR/$1.$i.zst" "$C" 2> "$TESTDIR/$1.$i.err" &
		pids="$pids $!"
	done
	for i in 5 6; do
		ctxpack pack -q -o "$TESTDIR/$1.$i.zst" "$TESTDIR/copy" 2> "$TESTDIR/$1.$i.err" &
		pids="$pids $!"
	done
	rc=0
	for p in $pids; do wait "$p" || rc=1; done
	is "$rc" 0 "$1: six packs at once all succeed"
	bad=0
	for i in 1 2 3 4; do cmp -s "$TESTDIR/$1.$i.zst" "$TESTDIR/cold.zst" || bad=$((bad + 1)); done
	for i in 5 6; do cmp -s "$TESTDIR/$1.$i.zst" "$TESTDIR/copy.cold.zst" || bad=$((bad + 1)); done
	is "$bad" 0 "$1: every output is the cold pack's bytes"
	is "$(cat "$TESTDIR/$1".*.err)" "" "$1: no warnings"
}
race empty
ctxpack pack --json -o "$TESTDIR/after.zst" "$C" > "$TESTDIR/after.json"
same_files "$TESTDIR/after.zst" "$TESTDIR/cold.zst" "after the race: the same bytes"
is "$(jget "$TESTDIR/after.json" cache)" archive "after the race: the whole archive reused"
ctxpack pack --json -o "$TESTDIR/after2.zst" "$TESTDIR/copy" > "$TESTDIR/after2.json"
is "$(jget "$TESTDIR/after2.json" cache)" archive "after the race: the copy's archive reused"
race full

# a pack killed at random moments while it stores frames
rm -rf "$S"
for delay in 0.05 0.2 0.4 0.8; do
	# not the ctxpack function: $! must be the process itself, or the
	# kill hits a subshell and the pack goes on beside the next ones
	$EXEC_PREFIX "$CTXPACK" pack -q -o "$TESTDIR/killed.zst" "$C" 2>/dev/null &
	p=$!
	sleep $delay
	kill -9 $p 2>/dev/null
	wait $p 2>/dev/null
done
ctxpack pack --json -o "$TESTDIR/k.zst" "$C" > "$TESTDIR/k.json"
same_files "$TESTDIR/k.zst" "$TESTDIR/cold.zst" "after kill -9s: the same bytes"
is "$(jget "$TESTDIR/k.json" frames_damaged)" 0 "after kill -9s: no damaged frame was ever visible"
ctxpack pack --json -o "$TESTDIR/k2.zst" "$C" > "$TESTDIR/k2.json"
is "$(jget "$TESTDIR/k2.json" cache)" archive "after kill -9s: then the whole archive"
# temporaries of killed packs are removed by a later scan once stale
# (an hour), not while another pack may still be writing them
d=$(ls -d "$S"/frames/?? | head -1)
echo x > "$d/0123456789abcdef0123456789abcdef.tmp.999999.1"
echo x > "$d/fedcba9876543210fedcba9876543210.tmp.999999.2"
touch -d '2 hours ago' "$d/0123456789abcdef0123456789abcdef.tmp.999999.1"
ctxpack pack -q --cache-max 1M -o "$TESTDIR/k3.zst" "$TESTDIR/copy"
# (the packs killed above may have left fresh temporaries of their own:
# they stay too)
ok "a scan removes a stale temporary" test ! -e "$d/0123456789abcdef0123456789abcdef.tmp.999999.1"
ok "and keeps a fresh one" test -e "$d/fedcba9876543210fedcba9876543210.tmp.999999.2"
is "$(find "$S" -name '*.tmp.*' -mmin +60)" "" "no stale temporary is left anywhere"

# ctxpack build: the same cache (zstd: an unknown COMMAND gets an
# uncompressed tar by default)
rm -rf "$S"
ok "build, cold" ctxpack build -v --compress zstd "$C" -- sh -c "cat > '$TESTDIR/b1.zst'"
same_files "$TESTDIR/b1.zst" "$TESTDIR/cold.zst" "build, cold: the same bytes"
ctxpack build -v --compress zstd "$C" -- sh -c "cat > '$TESTDIR/b2.zst'" 2> "$TESTDIR/b2.err"
same_files "$TESTDIR/b2.zst" "$TESTDIR/cold.zst" "build, warm: the same bytes"
like "$(cat "$TESTDIR/b2.err")" "cache: archive reused" "build, warm: the whole archive reused"
head -c 5000 /dev/urandom > "$C/d2/f002.bin"
ctxpack pack -q --no-cache -o "$TESTDIR/cold2.zst" "$C"
ctxpack build -v --compress zstd "$C" -- sh -c "cat > '$TESTDIR/b3.zst'" 2> "$TESTDIR/b3.err"
same_files "$TESTDIR/b3.zst" "$TESTDIR/cold2.zst" "build after an edit: the same bytes"
like "$(cat "$TESTDIR/b3.err")" "cache: (assemble|frames): [0-9]+ frames, [0-9]+ reused, [12] compressed" \
	"build after an edit: one or two frames compressed"
ctxpack build -q --compress zstd "$C" -- sh -c "head -c 1000 > /dev/null" 2> "$TESTDIR/b4.err"
ctxpack build -q --compress zstd --no-cache "$C" -- sh -c "cat > '$TESTDIR/b5.zst'"
same_files "$TESTDIR/b5.zst" "$TESTDIR/cold2.zst" "build --no-cache: the same bytes"
ctxpack build -v --compress zstd "$C" -- sh -c "cat > '$TESTDIR/b6.zst'" 2> "$TESTDIR/b6.err"
same_files "$TESTDIR/b6.zst" "$TESTDIR/cold2.zst" "build after a reader that stopped early: the same bytes"

done_testing
